"""Milliseconds per frame of each style network at 640x360 and 1280x720: the eager fp32 NCHW baseline against
channels_last, bf16 and (with --compile) torch.compile, all in this process, with the ratio to the baseline.
The configuration `--device auto --precision auto` picks is marked with *.

    python benchmarks/models.py [--repeats 9] [--batch 1] [--compile]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from streamstyle.models.dumoulin import NUM_STYLES
from streamstyle.processing.runtime import resolve_runtime
from streamstyle.processing.stylizer import load_style_model

SIZES = {"640x360": (360, 640), "1280x720": (720, 1280)}


def median_ms(call, repeats: int) -> float:
    call()
    call()  # warm-up: allocator, oneDNN primitive caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow first call)")
    args = parser.parse_args()

    auto = resolve_runtime(args.device)
    device = auto.device.type
    configs = [("fp32", False), ("fp32", True), ("bf16", True)]
    if device == "cuda":
        configs.append(("fp16", True))
    print(f"device {auto.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, batch {args.batch}")
    print(f"auto picks: {auto.describe()}  (* below)\n")
    print(f"{'model':<11} {'size':<9} {'config':<30} {'ms/frame':>9} {'vs eager':>9}")
    for name in ("magenta", "dumoulin26"):
        for size, (height, width) in SIZES.items():
            content = torch.rand(args.batch, 3, height, width, device=auto.device)
            baseline = None
            for precision, channels_last in configs:
                runtime = resolve_runtime(args.device, precision, channels_last)
                model = load_style_model(name, runtime)
                condition = torch.rand(args.batch, 100 if name == "magenta" else NUM_STYLES, device=auto.device)
                networks = [("eager", model.network)]
                if args.compile and precision == "fp32" and channels_last:
                    networks.append(("torch.compile", torch.compile(model.network, dynamic=False)))
                for label, network in networks:

                    def call(network=network, runtime=runtime, content=content, condition=condition):
                        with torch.inference_mode(), runtime.autocast():
                            network(runtime.layout(content), condition)
                        if device == "cuda":
                            torch.cuda.synchronize()

                    ms = median_ms(call, args.repeats) / args.batch
                    baseline = baseline or ms
                    chosen = "*" if runtime == auto and label == "eager" else " "
                    config = f"{label} {runtime.describe()}{chosen}"
                    print(f"{name:<11} {size:<9} {config:<30} {ms:9.1f} {baseline / ms:8.2f}x", flush=True)


if __name__ == "__main__":
    main()
