"""VGG19 features (Simonyan & Zisserman 2014) for perceptual losses and quality metrics, with the Caffe
preprocessing its weights were trained with: BGR, 0-255, ImageNet mean subtracted, no std division."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

# Index of each named ReLU in torchvision's vgg19().features.
LAYER_INDEX = {
    "relu1_1": 1, "relu1_2": 3, "relu2_1": 6, "relu2_2": 8,
    "relu3_1": 11, "relu3_2": 13, "relu3_3": 15, "relu3_4": 17,
    "relu4_1": 20, "relu4_2": 22, "relu4_3": 24, "relu4_4": 26,
    "relu5_1": 29, "relu5_2": 31, "relu5_3": 33, "relu5_4": 35,
}  # fmt: skip
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYERS = ("relu4_2",)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def caffe_preprocess(rgb: torch.Tensor) -> torch.Tensor:
    """RGB [B,3,H,W] in [0,1] → BGR in 0..255 minus the ImageNet mean."""
    mean = rgb.new_tensor(CAFFE_MEAN_BGR)[None, :, None, None]
    return rgb.flip(1) * 255.0 - mean


class VGG19Features(nn.Module):
    """The convolutional part of VGG19, cut after relu5_1 (the deepest layer style and content losses use)."""

    def __init__(self):
        super().__init__()
        import torchvision  # here, not at the top: its import takes a second, and only training and metrics need VGG

        self.features = torchvision.models.vgg19(weights=None).features[: LAYER_INDEX["relu5_1"] + 1]
        for layer in self.features:
            if isinstance(layer, nn.ReLU):
                layer.inplace = False  # the outputs we return must not be overwritten by the next layer

    def forward(
        self, rgb: torch.Tensor, layers: Iterable[str] = STYLE_LAYERS + CONTENT_LAYERS
    ) -> dict[str, torch.Tensor]:
        """rgb: [B,3,H,W] in [0,1]. Returns the activations of the named ReLU layers."""
        wanted = {LAYER_INDEX[name]: name for name in layers}
        found = {}
        x = caffe_preprocess(rgb)
        for index, layer in enumerate(self.features[: max(wanted) + 1]):
            x = layer(x)
            if index in wanted:
                found[wanted[index]] = x
        return found
