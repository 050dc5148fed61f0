"""Which convolutions of dumoulin26 int8 should leave in float: for each choice (none, the first, the last, both),
how many of the built-in styles int8 then keeps within its bound of fp32 (fidelity.BOUNDS), and its ms/frame
at 640x360 with the ratio to OpenVINO fp32 (the baseline, in this same process; medians of interleaved rounds).

Calibrated on every other calibration frame and judged on the frames left out and the sample photos, so that a
choice is not judged on the pictures it was calibrated on (streamstyle itself calibrates on all 14 frames).

    python benchmarks/int8_layers.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np
import openvino as ov

from streamstyle.engines.export import cached_graph
from streamstyle.engines.fidelity import BOUNDS, calibration_pictures, least_error
from streamstyle.engines.graphs import graph_of
from streamstyle.engines.openvino_engine import compile_request
from streamstyle.engines.quantize import calibration_inputs, first_convolution, quantize
from streamstyle.io.images import read_image
from streamstyle.models.dumoulin import NUM_STYLES
from streamstyle.processing.runtime import resolve_runtime
from streamstyle.processing.stylizer import load_style_model

PHOTOS = Path(__file__).resolve().parent.parent / "samples" / "photos"
SIZE = (640, 360)


def held_out_pictures() -> np.ndarray:
    """The calibration frames left out of calibrating, and the sample photos at the frames' size ([N,3,H,W])."""
    photos = [cv2.resize(read_image(path), SIZE) for path in sorted(PHOTOS.iterdir())]
    photos_nchw = np.stack(photos).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return np.concatenate([calibration_pictures()[1::2], photos_nchw])


def style_weights(style: int) -> np.ndarray:
    weights = np.zeros((1, NUM_STYLES), np.float32)
    weights[0, style] = 1.0
    return weights


class Compiled:
    """A graph compiled for one 640x360 picture and one style."""

    def __init__(self, model: ov.Model, precision: str) -> None:
        shapes = (("content", (1, 3, SIZE[1], SIZE[0])), ("style_weights", (1, NUM_STYLES)))
        self.request = compile_request(ov.Core(), model, precision, shapes)

    def __call__(self, picture: np.ndarray, style: int) -> np.ndarray:
        self.request.infer({"content": picture[None], "style_weights": style_weights(style)})
        return self.request.get_output_tensor(0).data.copy()

    def milliseconds(self, picture: np.ndarray) -> float:
        start = time.perf_counter()
        self(picture, 0)
        return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    network = load_style_model("dumoulin26", resolve_runtime("cpu", "fp32", backend="torch")).network
    graph, spec = cached_graph(network), graph_of(network)
    fp32_model = ov.Core().read_model(graph)
    last = [op.get_friendly_name() for op in fp32_model.get_ordered_ops() if op.get_type_name() == "Convolution"][-1:]
    first = first_convolution(fp32_model)  # what streamstyle's second int8 graph leaves in float
    choices = {"none": [], "first": first, "last": last, "first and last": first + last}
    samples = calibration_inputs(spec, calibration_pictures()[0::2])
    fp32 = Compiled(fp32_model, "fp32")
    int8 = {name: Compiled(quantize(ov.Core().read_model(graph), samples, layers), "int8")
            for name, layers in choices.items()}  # fmt: skip

    pictures, bound = held_out_pictures(), BOUNDS["int8"]
    kept: dict[str, list[int]] = {name: [] for name in choices}
    for style in range(NUM_STYLES):
        references = np.concatenate([fp32(picture, style) for picture in pictures])
        for name, compiled in int8.items():
            painted = np.concatenate([compiled(picture, style) for picture in pictures])
            if bound.holds(*least_error(painted, references)):
                kept[name].append(style)

    times: dict[str, list[float]] = {name: [] for name in ["fp32", *choices]}
    for _ in range(args.rounds):
        for name, compiled in [("fp32", fp32), *int8.items()]:
            times[name].append(compiled.milliseconds(pictures[0]))
    baseline = statistics.median(times["fp32"])
    print(f"dumoulin26 at {SIZE[0]}x{SIZE[1]}, OpenVINO, medians of {args.rounds} interleaved rounds; styles "
          f"kept within {bound.psnr:.0f} dB and SSIM {bound.ssim} of fp32 on {len(pictures)} held-out pictures\n")
    print(f"{'int8, in float':<16} {'ms/frame':>9} {'vs fp32':>8}  styles kept")
    print(f"{'(fp32)':<16} {baseline:9.1f} {1.0:7.2f}x")
    for name in choices:
        median = statistics.median(times[name])
        print(f"{name:<16} {median:9.1f} {baseline / median:7.2f}x  {len(kept[name]):2d}: {kept[name]}")


if __name__ == "__main__":
    main()
