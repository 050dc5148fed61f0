"""The multi-style network of Dumoulin et al. 2017 ("A learned representation for artistic style"): one
transformer, 26 painting styles, each a row of scale/shift parameters for every conditional instance norm.
A weighted mix of rows blends styles; each sample in a batch may carry its own mix."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from streamstyle.models.layers import ConvLayer, ResidualBlock, UpsampleConvLayer, conditional_instance_norm

NUM_STYLES = 26
# Channels of the 18 conditional norms, in order: contract 1..3, residual 1..6 (conv1, conv2), expand 1..3.
NORM_CHANNELS = (32,) * 15 + (8, 4, 3)


class Dumoulin26(nn.Module):
    """Three contracting convs, six residual blocks, two upsampling convs and a sigmoid output conv, every
    conv followed by a conditional instance norm whose parameters are the style-weighted rows of a table."""

    def __init__(self):
        super().__init__()
        self.conv1 = ConvLayer(3, 32, kernel_size=9, bias=False)
        self.conv2 = ConvLayer(32, 32, kernel_size=3, stride=2, bias=False)
        self.conv3 = ConvLayer(32, 32, kernel_size=3, stride=2, bias=False)
        self.residuals = nn.ModuleList(ResidualBlock(32, bias=False) for _ in range(6))
        self.upsample1 = UpsampleConvLayer(32, 8, kernel_size=3, bias=False)
        self.upsample2 = UpsampleConvLayer(8, 4, kernel_size=3, bias=False)
        self.output = ConvLayer(4, 3, kernel_size=9, bias=False)
        # Row i holds style i's gammas (then betas) for all 18 norms, concatenated.
        self.gammas = nn.Parameter(torch.ones(NUM_STYLES, sum(NORM_CHANNELS)))
        self.betas = nn.Parameter(torch.zeros(NUM_STYLES, sum(NORM_CHANNELS)))

    def norm_params(self, style_weights: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        gammas = (style_weights @ self.gammas).split(NORM_CHANNELS, dim=1)
        betas = (style_weights @ self.betas).split(NORM_CHANNELS, dim=1)
        return list(zip(gammas, betas, strict=False))

    def forward(self, content: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        """content: [B,3,H,W] RGB in [0,1], H and W multiples of 4; style_weights: [B,26] summing to 1."""
        norms = iter(self.norm_params(style_weights))
        y = F.relu_(conditional_instance_norm(self.conv1(content), *next(norms)))
        y = F.relu_(conditional_instance_norm(self.conv2(y), *next(norms)))
        y = F.relu_(conditional_instance_norm(self.conv3(y), *next(norms)))
        for block in self.residuals:
            y = block(y, next(norms), next(norms))
        y = F.relu_(conditional_instance_norm(self.upsample1(y), *next(norms)))
        y = F.relu_(conditional_instance_norm(self.upsample2(y), *next(norms)))
        return torch.sigmoid(conditional_instance_norm(self.output(y), *next(norms)))
