"""Milliseconds per frame of each style network on every engine and precision this machine runs, with the ratio to
torch fp32 (the baseline, in this same process), medians of interleaved rounds so that a busy machine slows every
engine alike. What `--backend auto --precision auto` picks is marked with *.

    python benchmarks/engines.py [--sizes 360p,720p,1080p] [--models dumoulin26,magenta] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from streamstyle.models.dumoulin import NUM_STYLES
from streamstyle.models.magenta import STYLE_DIM
from streamstyle.processing.runtime import Runtime, engines_here, resolve_runtime
from streamstyle.processing.stylizer import load_style_model

SIZES = {"360p": (360, 640), "720p": (720, 1280), "1080p": (1080, 1920)}
# A built-in style int8's first graph keeps within its bounds (12, 14 and 23 do), and one that only its second
# graph, with the first convolution in float, keeps (0, 2, 7, 10, 16, 20): a style neither keeps runs in fp32.
STYLE = 14
SECOND_INT8_GRAPH = ("openvino int8 conv1 float", 20)


def timer(runtime: Runtime, model: str, batch: int, size: tuple[int, int], style: int = STYLE) -> Callable[[], float]:
    style_model = load_style_model(model, runtime)
    content = runtime.layout(torch.rand(batch, 3, *size, device=runtime.device))
    if model == "magenta":
        condition = torch.rand(batch, STYLE_DIM, device=runtime.device)
    else:
        condition = torch.nn.functional.one_hot(torch.full((batch,), style), NUM_STYLES).float().to(runtime.device)

    def once() -> float:
        start = time.perf_counter()
        with torch.inference_mode(), runtime.autocast():
            style_model.network(content, condition)
        if runtime.device.type == "cuda":
            torch.cuda.synchronize(runtime.device)
        return (time.perf_counter() - start) * 1000 / batch

    once()
    once()  # warm-up: allocators, kernel caches, the engines' own first-run work
    ran_in = getattr(style_model.network, "ran_in", None)
    if ran_in not in (None, runtime.precision):
        print(f"({runtime.describe()} on style {style} runs in {ran_in})")
    return once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="360p,720p,1080p")
    parser.add_argument("--models", default="dumoulin26,magenta")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    auto = resolve_runtime(args.device)
    found = {f"{backend} {precision}": resolve_runtime(args.device, precision, backend=backend)
             for backend, precision in engines_here(args.device)}
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}, "
          f"medians of {args.rounds} interleaved rounds; auto picks {auto.backend} {auto.precision} (*)\n")  # fmt: skip
    print(f"{'model':<11} {'size':<6} {'engine':<26} {'ms/frame':>9} {'vs torch fp32':>14}")
    for model in args.models.split(","):
        for size_name in args.sizes.split(","):
            # int8 has no calibration for magenta's painting vectors: it would time fp32 again.
            timers = {label: timer(runtime, model, args.batch, SIZES[size_name]) for label, runtime in found.items()
                      if not (model == "magenta" and runtime.precision == "int8")}  # fmt: skip
            if "openvino int8" in timers:
                label, style = SECOND_INT8_GRAPH
                timers[label] = timer(found["openvino int8"], model, args.batch, SIZES[size_name], style)
            times: dict[str, list[float]] = {label: [] for label in timers}
            for _ in range(args.rounds):
                for label, once in timers.items():
                    times[label].append(once())
            baseline = statistics.median(times["torch fp32"])
            for label, measured in times.items():
                median = statistics.median(measured)
                mark = "*" if label == f"{auto.backend} {auto.precision}" else " "
                print(f"{model:<11} {size_name:<6} {label + mark:<26} {median:>9.1f} {baseline / median:>13.2f}x")


if __name__ == "__main__":
    main()
