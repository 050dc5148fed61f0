"""int8 by post-training quantisation (NNCF) of a style network's OpenVINO graph, calibrated on real video frames,
and the check of whether int8 still paints a given style as fp32 does."""

from __future__ import annotations

import json
import logging
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import openvino as ov

from streamstyle.core.files import AtomicFile
from streamstyle.engines.export import save_openvino
from streamstyle.engines.graphs import GraphSpec
from streamstyle.io.images import read_image

# Bump when the quantisation changes, so cached int8 graphs are made again.
QUANTIZE_VERSION = 1
CALIBRATION = Path(__file__).parent / "calibration"
# Only the convolutions' inputs are quantised. The instance norms (MVN), their style-conditioned scale and shift
# (Multiply, Add; MatMul mixes a blend's parameters), the upsampling and the output's sigmoid stay in float:
# NNCF's default quantises those too (71 fake-quantise nodes in dumoulin26, against 18) and leaves 17-34 dB of
# PSNR against fp32 where the convolutions alone leave 35-42 dB on most styles.
FLOAT_OPERATIONS = ["MVN", "Multiply", "Add", "MatMul", "Subtract", "Interpolate", "Sigmoid"]
# What int8 must keep of a style against fp32 on 8-bit pictures; a style it cannot keep this close runs in fp32.
LEAST_PSNR = 35.0
LEAST_SSIM = 0.98

log = logging.getLogger(__name__)


@cache
def calibration_pictures() -> np.ndarray:
    """Frames of real video ([N,3,360,640] float32 in [0,1], NCHW): street scenes, a city at night, animation."""
    paths = sorted(CALIBRATION.glob("*.jpg"))
    return np.stack([read_image(path) for path in paths]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0


# The networks whose conditioning the calibration covers: the built-in styles' weights, or none (a trained
# network). A painting's style vector (magenta) could be any of a continuum no set of frames calibrates for.
CALIBRATED_INPUTS = (("content",), ("content", "style_weights"))


def calibrated(spec: GraphSpec) -> bool:
    return tuple(tensor.name for tensor in spec.inputs) in CALIBRATED_INPUTS


def calibration_inputs(spec: GraphSpec) -> list[dict[str, np.ndarray]]:
    """One sample per picture, and per built-in style where the network has them, so that every style's scale
    and shift meets the convolutions after it."""
    assert calibrated(spec), f"no calibration for {spec.name}'s inputs"
    pictures = calibration_pictures()
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


def quantized_graph(graph: Path, spec: GraphSpec, cache: Path) -> Path:
    """The int8 OpenVINO IR of an ONNX graph, calibrated once (about 6 s on 2 cores) and kept in `cache`."""
    xml = cache / f"{graph.stem}-int8-v{QUANTIZE_VERSION}.xml"
    if xml.is_file() and xml.with_suffix(".bin").is_file():
        return xml
    import nncf  # the int8 extra: imported only to calibrate, the once it is needed
    log.warning("calibrating %s for int8 on %d video frames, once (kept in %s)", spec.name,
                len(calibration_pictures()), cache)  # fmt: skip
    samples = calibration_inputs(spec)
    model = ov.Core().read_model(graph)
    model.reshape({name: list(array.shape) for name, array in samples[0].items()})
    quantized = nncf.quantize(
        model, nncf.Dataset(samples), preset=nncf.QuantizationPreset.MIXED, subset_size=len(samples),
        ignored_scope=nncf.IgnoredScope(types=FLOAT_OPERATIONS),
    )  # fmt: skip
    return save_openvino(quantized, xml)


def load_verdicts(path: Path) -> dict[str, list[float]]:
    """What int8 kept of each style checked before: (least PSNR, least SSIM) by the style's digest."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # none yet, or a file a crash left unreadable: check again


def save_verdicts(path: Path, verdicts: dict[str, list[float]]) -> None:
    with AtomicFile(path, replace_concurrent=True) as partial:
        partial.write_text(json.dumps(verdicts, indent=1, sort_keys=True))


def to_8bit(images: np.ndarray) -> np.ndarray:
    """[B,3,H,W] float in [0,1] → [B,H,W,3] float32 holding the 8-bit values a picture gets."""
    return np.round(np.clip(images, 0.0, 1.0) * 255.0).transpose(0, 2, 3, 1).astype(np.float32)


def psnr(first: np.ndarray, second: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two 8-bit pictures ([H,W,C], values 0-255, uint8 or float): the
    difference is taken in float64, never in the pictures' own type (uint8 would wrap around)."""
    error = float(np.mean((np.asarray(first, np.float64) - np.asarray(second, np.float64)) ** 2))
    return float("inf") if error == 0 else 10.0 * float(np.log10(255.0**2 / error))


def ssim(first: np.ndarray, second: np.ndarray) -> float:
    """Structural similarity (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5) of two 8-bit pictures ([H,W,C],
    values 0-255), the mean over pixels and channels."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(image: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(image, (11, 11), 1.5)

    mean1, mean2 = blur(first), blur(second)
    variance1 = blur(first * first) - mean1 * mean1
    variance2 = blur(second * second) - mean2 * mean2
    covariance = blur(first * second) - mean1 * mean2
    numerator = (2 * mean1 * mean2 + c1) * (2 * covariance + c2)
    denominator = (mean1 * mean1 + mean2 * mean2 + c1) * (variance1 + variance2 + c2)
    return float(np.mean(numerator / denominator))


def int8_error(int8: np.ndarray, fp32: np.ndarray) -> tuple[float, float]:
    """(least PSNR, least SSIM) over a batch of int8 outputs against the fp32 ones ([B,3,H,W] in [0,1])."""
    pairs = list(zip(to_8bit(int8), to_8bit(fp32), strict=True))
    return min(psnr(a, b) for a, b in pairs), min(ssim(a, b) for a, b in pairs)
