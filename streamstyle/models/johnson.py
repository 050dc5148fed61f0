"""The feed-forward transformer of Johnson, Alahi, Fei-Fei 2016 ("Perceptual losses for real-time style transfer
and super-resolution"), with instance norm (Ulyanov et al. 2016) and upsampling convolutions: one network per
style, trained by `streamstyle train`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from streamstyle.models.layers import ConvLayer, UpsampleConvLayer


class NormedResidualBlock(nn.Module):
    """conv → IN → ReLU → conv → IN, added to the input."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.norm1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, 3)
        self.norm2 = nn.InstanceNorm2d(channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x)))))


class TransformerNet(nn.Module):
    """Three convs down (9x9, then two stride-2 3x3), five residual blocks at 128 channels, two x2 upsampling
    convs and a 9x9 output conv; instance norm and ReLU after every conv but the last, a sigmoid to [0,1]."""

    def __init__(self):
        super().__init__()
        self.conv1, self.norm1 = ConvLayer(3, 32, 9), nn.InstanceNorm2d(32, affine=True)
        self.conv2, self.norm2 = ConvLayer(32, 64, 3, stride=2), nn.InstanceNorm2d(64, affine=True)
        self.conv3, self.norm3 = ConvLayer(64, 128, 3, stride=2), nn.InstanceNorm2d(128, affine=True)
        self.residuals = nn.Sequential(*(NormedResidualBlock(128) for _ in range(5)))
        self.upsample1, self.norm4 = UpsampleConvLayer(128, 64, 3), nn.InstanceNorm2d(64, affine=True)
        self.upsample2, self.norm5 = UpsampleConvLayer(64, 32, 3), nn.InstanceNorm2d(32, affine=True)
        self.output = ConvLayer(32, 3, 9)

    def forward(self, content: torch.Tensor) -> torch.Tensor:
        """content: [B,3,H,W] RGB in [0,1], H and W multiples of 4."""
        y = F.relu(self.norm1(self.conv1(content)))
        y = F.relu(self.norm2(self.conv2(y)))
        y = F.relu(self.norm3(self.conv3(y)))
        y = self.residuals(y)
        y = F.relu(self.norm4(self.upsample1(y)))
        y = F.relu(self.norm5(self.upsample2(y)))
        return torch.sigmoid(self.output(y))
