"""Building blocks shared by the style networks: small pure functions and the layers built on them."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NormParams = tuple[torch.Tensor, torch.Tensor]
"""Per-sample scale and shift of a conditional instance norm, each shaped [B, C]."""


def conditional_instance_norm(
    x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float = 1e-5
) -> torch.Tensor:
    """Instance-normalise x [B,C,H,W] (biased variance) and apply a per-sample scale and shift [B,C] (or [1,C]
    for the whole batch). Group norm with one channel per group is instance norm, and PyTorch's CPU kernel for
    it is 3-8x faster than var_mean on channels_last tensors (the norms took as long as the convolutions)."""
    if torch.compiler.is_exporting():
        # For an exported graph: ONNX's InstanceNormalization, then each sample's own scale and shift, one graph
        # for any batch size (the per-sample loop below would fix the batch size into it).
        return F.instance_norm(x, eps=eps) * gamma[:, :, None, None] + beta[:, :, None, None]
    channels = x.shape[1]
    if channels < 8 and x.device.type == "cpu" and x.is_contiguous(memory_format=torch.channels_last):
        # Below 8 channels the CPU kernel is the other way round: 11x slower on channels_last than on NCHW (6.8
        # against 0.6 ms with the round trip, for 3 channels at 640x360).
        x = conditional_instance_norm(x.contiguous(), gamma, beta, eps)
        return x.contiguous(memory_format=torch.channels_last)
    if gamma.shape[0] == 1:
        return F.group_norm(x, channels, gamma[0], beta[0], eps)
    # One style per sample: each normalised on its own, so a batch gives exactly what single runs give.
    samples = [F.group_norm(x[i : i + 1], channels, gamma[i], beta[i], eps) for i in range(x.shape[0])]
    return torch.cat(samples)


def gram_matrix(features: torch.Tensor) -> torch.Tensor:
    """Channel correlations of features [B,C,H,W], normalised by C*H*W (Gatys et al.)."""
    b, c, h, w = features.shape
    flat = features.reshape(b, c, h * w)
    return flat @ flat.transpose(1, 2) / (c * h * w)


def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) along one axis: the odd pixel goes after."""
    total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_to_multiple(x: torch.Tensor, multiple: int, minimum: int = 0) -> torch.Tensor:
    """Pad the bottom and right of x [B,C,H,W] so that H and W are multiples of `multiple`, and at least
    `minimum`: by reflection, or by repeating the edge where x is too small to reflect."""
    pad_h, pad_w = (-(-max(size, minimum) // multiple) * multiple - size for size in x.shape[2:])
    if pad_h == 0 and pad_w == 0:
        return x
    mode = "reflect" if pad_h < x.shape[2] and pad_w < x.shape[3] else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


class ConvLayer(nn.Module):
    """Reflection-padded convolution, so borders are not darkened by zero padding."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, bias: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, padding_mode="reflect", bias=bias
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UpsampleConvLayer(ConvLayer):
    """Nearest-neighbour x2 upsampling then a convolution: avoids the checkerboard of transposed convs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class ResidualBlock(nn.Module):
    """conv → CIN → ReLU → conv → CIN, added to the input; the norm parameters come from the style."""

    def __init__(self, channels: int, bias: bool = True):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3, bias=bias)
        self.conv2 = ConvLayer(channels, channels, 3, bias=bias)

    def forward(self, x: torch.Tensor, norm1: NormParams, norm2: NormParams) -> torch.Tensor:
        y = F.relu_(conditional_instance_norm(self.conv1(x), *norm1))
        return x + conditional_instance_norm(self.conv2(y), *norm2)
