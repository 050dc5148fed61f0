"""Arbitrary style transfer of Ghiasi et al. 2017 ("Exploring the structure of a real-time, arbitrary neural
artistic stylization network"), as released by Magenta: a style predictor maps any painting to a 100-d style
vector, from which a small transformer's 13 conditional instance norms take their scale and shift."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from streamstyle.models.layers import (
    ConvLayer,
    NormParams,
    ResidualBlock,
    UpsampleConvLayer,
    conditional_instance_norm,
    tf_same_padding,
)

STYLE_DIM = 100
STYLE_IMAGE_SIZE = 256
# Channels of the 13 style-conditioned norms, in order: residual1..5 (conv1, conv2), expand conv1..3.
NORM_CHANNELS = (32,) * 10 + (16, 8, 3)
# torchvision MobileNetV2 convolutions with stride 2; TensorFlow pads them 'SAME' (extra pixel bottom/right).
_STRIDED_CONVS = ("0.0", "2.conv.1.0", "4.conv.1.0", "7.conv.1.0", "14.conv.1.0")


def _pad_same(conv: nn.Conv2d, inputs: tuple[torch.Tensor]) -> tuple[torch.Tensor]:
    (x,) = inputs
    top, bottom = tf_same_padding(x.shape[2], conv.kernel_size[0], conv.stride[0])
    left, right = tf_same_padding(x.shape[3], conv.kernel_size[1], conv.stride[1])
    return (F.pad(x, (left, right, top, bottom)),)


class StylePredictor(nn.Module):
    """MobileNetV2 (width 1.0, batch norms folded into biases) → global average pool → linear 1280→100."""

    def __init__(self):
        super().__init__()
        import torchvision  # here, not at the top: its import takes a second of every start, dumoulin26's too

        self.features = torchvision.models.mobilenet_v2(weights=None, width_mult=1.0).features
        for name in _STRIDED_CONVS:
            conv = self.features.get_submodule(name)
            conv.padding = (0, 0)
            # A pre-hook rather than a wrapper keeps torchvision's state_dict key names.
            conv.register_forward_pre_hook(_pad_same)
        self.bottleneck = nn.Linear(1280, STYLE_DIM)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """image: [B,3,H,W] RGB in [0,1] (256x256 as trained). Returns style vectors [B,100]."""
        return self.bottleneck(self.features(image).mean(dim=(2, 3)))


class MagentaTransformer(nn.Module):
    """The 'light' transformer: three contracting convs, five residual blocks, two upsampling convs and a
    sigmoid output conv; every norm after the contraction is conditioned on the style vector."""

    def __init__(self):
        super().__init__()
        self.conv1 = ConvLayer(3, 8, kernel_size=9)
        self.conv2 = ConvLayer(8, 16, kernel_size=3, stride=2)
        self.conv3 = ConvLayer(16, 32, kernel_size=3, stride=2)
        self.residuals = nn.ModuleList(ResidualBlock(32, bias=False) for _ in range(5))
        self.upsample1 = UpsampleConvLayer(32, 16, kernel_size=3, bias=False)
        self.upsample2 = UpsampleConvLayer(16, 8, kernel_size=3, bias=False)
        self.output = ConvLayer(8, 3, kernel_size=9, bias=False)
        # All 13 norms' gammas then all 13 betas, from one matrix product.
        self.style_to_norms = nn.Linear(STYLE_DIM, 2 * sum(NORM_CHANNELS))

    def norm_params(self, style: torch.Tensor) -> list[NormParams]:
        gammas, betas = self.style_to_norms(style).chunk(2, dim=1)
        return list(zip(gammas.split(NORM_CHANNELS, dim=1), betas.split(NORM_CHANNELS, dim=1), strict=False))

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """content: [B,3,H,W] RGB in [0,1], H and W multiples of 4; style: [B,100]. Returns [B,3,H,W] in [0,1]."""
        norms = iter(self.norm_params(style))
        y = F.relu(self.conv1(content))
        y = F.relu(self.conv2(y))
        y = F.relu(self.conv3(y))
        for block in self.residuals:
            y = block(y, next(norms), next(norms))
        y = F.relu_(conditional_instance_norm(self.upsample1(y), *next(norms)))
        y = F.relu_(conditional_instance_norm(self.upsample2(y), *next(norms)))
        return torch.sigmoid(conditional_instance_norm(self.output(y), *next(norms)))
