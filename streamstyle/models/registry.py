"""What ships: each model's name, what it does, the styles it takes, its paper, and the packages its weights
come from."""

from __future__ import annotations

from dataclasses import dataclass

from streamstyle.models import weights
from streamstyle.models.dumoulin import NUM_STYLES


@dataclass(frozen=True)
class ModelInfo:
    name: str
    title: str
    styles: str
    credit: str
    sources: tuple[weights.WeightFile, ...]


MODELS = {
    "magenta": ModelInfo(
        "magenta",
        "arbitrary style: MobileNetV2 style predictor + 13-norm transformer",
        "any painting (--style painting.jpg, blends a.jpg:0.7,b.jpg:0.3)",
        "Ghiasi, Lee, Kudlur, Dumoulin, Shlens 2017, "
        "'Exploring the structure of a real-time, arbitrary neural artistic stylization network'",
        (weights.MAGENTA_PREDICTOR, weights.MAGENTA_TRANSFORMER),
    ),
    "dumoulin26": ModelInfo(
        "dumoulin26",
        "fixed multi-style: conditional instance norm, 26 styles in one net",
        f"built-in 0-{NUM_STYLES - 1} (--style 7, blends 3:0.5,12:0.5)",
        "Dumoulin, Shlens, Kudlur 2017, 'A learned representation for artistic style'",
        (weights.DUMOULIN26,),
    ),
    "vgg19": ModelInfo(
        "vgg19",
        "VGG19 features to relu5_1, for perceptual losses and metrics",
        "-",
        "Simonyan & Zisserman 2014, 'Very deep convolutional networks for large-scale image recognition'",
        (weights.VGG19,),
    ),
}
