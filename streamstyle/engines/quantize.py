"""int8 by post-training quantisation (NNCF) of a style network's OpenVINO graph, calibrated on real video frames
(whether it then paints a given style as fp32 does is `fidelity`'s check)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from streamstyle.engines.export import save_openvino
from streamstyle.engines.fidelity import calibration_pictures
from streamstyle.engines.graphs import GraphSpec

if TYPE_CHECKING:
    import openvino as ov

# Bump when the quantisation changes, so cached int8 graphs are made again.
QUANTIZE_VERSION = 1
# Only the convolutions' inputs are quantised. The instance norms (MVN), their style-conditioned scale and shift
# (Multiply, Add; MatMul mixes a blend's parameters), the upsampling and the output's sigmoid stay in float:
# NNCF's default quantises those too (71 fake-quantise nodes in dumoulin26, against 18) and leaves 17-34 dB of
# PSNR against fp32 where the convolutions alone leave 35-42 dB on most styles.
FLOAT_OPERATIONS = ["MVN", "Multiply", "Add", "MatMul", "Subtract", "Interpolate", "Sigmoid"]

log = logging.getLogger(__name__)


# The networks whose conditioning the calibration covers: the built-in styles' weights, or none (a trained
# network). A painting's style vector (magenta) could be any of a continuum no set of frames calibrates for.
CALIBRATED_INPUTS = (("content",), ("content", "style_weights"))


def calibrated(spec: GraphSpec) -> bool:
    return tuple(tensor.name for tensor in spec.inputs) in CALIBRATED_INPUTS


def calibration_inputs(spec: GraphSpec, pictures: np.ndarray) -> list[dict[str, np.ndarray]]:
    """One sample per picture ([N,3,H,W] in [0,1]), and per built-in style where the network has them, so that
    every style's scale and shift meets the convolutions after it."""
    assert calibrated(spec), f"no calibration for {spec.name}'s inputs"
    if len(spec.inputs) == 1:
        return [{"content": picture[None]} for picture in pictures]
    styles = spec.inputs[1].shape[1]
    assert isinstance(styles, int), "the number of built-in styles is fixed"
    samples = []
    for index in range(max(styles, len(pictures))):
        weights = np.zeros((1, styles), np.float32)
        weights[0, index % styles] = 1.0
        samples.append({"content": pictures[index % len(pictures)][None], "style_weights": weights})
    return samples


def quantized_path(graph: Path, cache: Path, first_in_float: bool) -> Path:
    """Where the int8 IR of an ONNX graph is kept (its style verdicts beside it)."""
    return cache / f"{graph.stem}-int8{'-first-in-float' if first_in_float else ''}-v{QUANTIZE_VERSION}.xml"


def quantized_graph(graph: Path, spec: GraphSpec, cache: Path, first_in_float: bool = False) -> Path:
    """The int8 OpenVINO IR of an ONNX graph, calibrated once (about 6 s on 2 cores) and kept in `cache`;
    `first_in_float`: its first convolution left in float."""
    xml = quantized_path(graph, cache, first_in_float)
    if xml.is_file() and xml.with_suffix(".bin").is_file():
        return xml
    log.warning("calibrating %s for int8%s on %d video frames, once (kept in %s)", spec.name,
                " with its first convolution in float" if first_in_float else "", len(calibration_pictures()),
                cache)  # fmt: skip
    import openvino as ov  # here, not at the top: auto asks `calibrated` before choosing an engine

    model = ov.Core().read_model(graph)
    samples = calibration_inputs(spec, calibration_pictures())
    float_layers = first_convolution(model) if first_in_float else []
    return save_openvino(quantize(model, samples, float_layers), xml)


def first_convolution(model: ov.Model) -> list[str]:
    """The name of the model's first convolution (the picture's 3 channels in), as a list of float layers."""
    return [next(op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Convolution")]


def quantize(model: ov.Model, samples: list[dict[str, np.ndarray]], float_layers: Sequence[str] = ()) -> ov.Model:
    """`model` with its convolutions' inputs quantised to int8 for the ranges `samples` meet (the model is reshaped
    to their shapes); `float_layers`: operations, by name, also left in float."""
    # nncf imports torch's C++ extension builder, whose import warns on a CUDA build of torch without a GPU.
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    import nncf  # imported only to calibrate, the once it is needed: its import takes 1.5 s
    import rich  # nncf's own, for its progress bars

    # stdout is the user's: NNCF would write a line there for each operation left in float, and a progress bar.
    nncf.set_log_level(logging.ERROR)
    console = rich.get_console()
    quiet, console.quiet = console.quiet, True
    model.reshape({name: list(array.shape) for name, array in samples[0].items()})
    try:
        return nncf.quantize(
            model, nncf.Dataset(samples), preset=nncf.QuantizationPreset.MIXED, subset_size=len(samples),
            ignored_scope=nncf.IgnoredScope(types=FLOAT_OPERATIONS, names=list(float_layers)),
        )  # fmt: skip
    finally:
        console.quiet = quiet
