"""What each style network takes and gives as an exported graph: names, shapes, value ranges and meaning. The
export manifest, the engines and the browser page all go by these."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from streamstyle.models.dumoulin import NUM_STYLES, Dumoulin26
from streamstyle.models.johnson import TransformerNet
from streamstyle.models.magenta import STYLE_DIM, STYLE_IMAGE_SIZE, MagentaTransformer, StylePredictor

# The transformers downsample by 4 and reflect-pad by up to 4 pixels: their pictures' sides are multiples of 4, 8
# at least. A picture of another size is padded at the bottom and right by reflection and the output cropped back.
SIDE_MULTIPLE = 4
SMALLEST_SIDE = 8


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str, ...]  # a name for a size chosen at run time: batch, height, width
    meaning: str
    value_range: tuple[float, float] | None = None


@dataclass(frozen=True)
class GraphSpec:
    name: str  # the exported file's name without its suffix
    title: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]


CONTENT = TensorSpec(
    "content", ("batch", 3, "height", "width"),
    f"the photo: RGB, float32, NCHW; height and width multiples of {SIDE_MULTIPLE}, {SMALLEST_SIDE} at least",
    (0.0, 1.0),
)  # fmt: skip
STYLIZED = TensorSpec("stylized", ("batch", 3, "height", "width"), "the painted photo: RGB, float32, NCHW",
                      (0.0, 1.0))  # fmt: skip
STYLE_VECTOR_MEANING = "a painting's style vector, from magenta-predictor"

GRAPHS: dict[type[nn.Module], GraphSpec] = {
    Dumoulin26: GraphSpec(
        "dumoulin26", "Dumoulin et al. 2017: 26 built-in styles in one network",
        (CONTENT, TensorSpec("style_weights", ("batch", NUM_STYLES),
                             "each built-in style's weight, summing to 1 (one-hot for a single style)", (0.0, 1.0))),
        (STYLIZED,),
    ),
    MagentaTransformer: GraphSpec(
        "magenta-transformer", "Ghiasi et al. 2017: the transformer, conditioned on a style vector",
        (CONTENT, TensorSpec("style_vector", ("batch", STYLE_DIM), STYLE_VECTOR_MEANING
                             + "; less style is a mix with the photo's own vector")),
        (STYLIZED,),
    ),
    StylePredictor: GraphSpec(
        "magenta-predictor", "Ghiasi et al. 2017: the style predictor (MobileNetV2), run once per painting",
        (TensorSpec("style_image", ("batch", 3, STYLE_IMAGE_SIZE, STYLE_IMAGE_SIZE),
                    "the painting's centre square resized to 256x256 (antialiased bicubic): RGB, float32, NCHW",
                    (0.0, 1.0)),),
        (TensorSpec("style_vector", ("batch", STYLE_DIM), STYLE_VECTOR_MEANING),),
    ),
    TransformerNet: GraphSpec(
        "johnson", "Johnson et al. 2016: one style, trained by streamstyle train", (CONTENT,), (STYLIZED,)
    ),
}  # fmt: skip


def graph_of(network: nn.Module) -> GraphSpec:
    spec = GRAPHS.get(type(network))
    if spec is None:
        raise ValueError(f"{type(network).__name__} is not a style network that can be exported")
    return spec


def example_inputs(spec: GraphSpec, batch: int = 1, size: tuple[int, int] = (64, 64)) -> tuple[torch.Tensor, ...]:
    """Inputs of the right shapes for tracing the graph: a mid-grey picture, an even mix of styles."""
    height, width = size
    named = {"batch": batch, "height": height, "width": width}
    tensors = []
    for tensor in spec.inputs:
        shape = [named[dim] if isinstance(dim, str) else dim for dim in tensor.shape]
        tensors.append(torch.full(shape, 1.0 / shape[-1] if tensor.name == "style_weights" else 0.5))
    return tuple(tensors)
