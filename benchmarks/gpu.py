"""The first checks on a CUDA GPU (shared notes, gpu.md), in one run: what auto picks, the CUDA tests, each
precision against fp32 per style (and fp16 with the norms in fp16 too), a batch against single frames, peak
memory, ms/frame, torch.compile's recompiles, then the file pipeline (x264, and the GPU's own encoder), bench and
training through the CLI. Each part prints as it goes and a failing part does not stop the others.
`--device cpu --quick` runs the same code on a CPU with small sizes, to try the script before a lease;
scripts/gpu_machine.sh makes ready what a GPU machine without registries needs.

    python benchmarks/gpu.py [--parts setup,tests,precision,...] [--device cuda] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import os
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch

from streamstyle.engines.backends import installed
from streamstyle.engines.fidelity import calibration_pictures, psnr, ssim, to_8bit
from streamstyle.models.dumoulin import NUM_STYLES
from streamstyle.offline.bench import scaled_clip
from streamstyle.processing.runtime import engines_here, resolve_runtime
from streamstyle.processing.styles import parse_style
from streamstyle.processing.stylizer import StyleModel, load_style_model

ROOT = Path(__file__).resolve().parents[1]
PAINTINGS = [ROOT / "samples" / "paintings" / name for name in ("vangogh_starry_night.jpg", "munch_the_scream.jpg")]
PARTS = ["setup", "tests", "precision", "batch", "memory", "speed", "file", "nvenc", "bench", "compile", "train"]


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """cuDNN convolutions (and matmuls) in TF32 or in true fp32 (streamstyle's choice; PyTorch's default for
    convolutions is TF32), for the calls inside."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def pictures(size: tuple[int, int], count: int) -> torch.Tensor:
    """`count` real video frames [N,3,H,W] in [0,1] at `size` (width, height)."""
    frames = calibration_pictures()[:count].transpose(0, 2, 3, 1)
    resized = np.stack([cv2.resize(frame, size, interpolation=cv2.INTER_AREA) for frame in frames])
    return torch.from_numpy(resized.transpose(0, 3, 1, 2).copy())


def model(name: str, device: str, precision: str) -> StyleModel:
    return load_style_model(name, resolve_runtime(device, precision, backend="torch"))


class PureHalf(torch.nn.Module):
    """A network with everything in fp16, its norms too (autocast keeps those in fp32, and converts the
    activations to and from fp16 around each): what fp16 without the conversions would cost and change."""

    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = copy.deepcopy(network).half()

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.network(*(value.half() for value in inputs)).float()


def model_variant(name: str, device: str, variant: str) -> StyleModel:
    """The model in `variant`: a precision, or fp16-pure (PureHalf, beside an fp32 runtime)."""
    if variant != "fp16-pure":
        return model(name, device, variant.removesuffix("-tf32"))
    pure = copy.copy(model(name, device, "fp32"))  # the loaded model is shared: its copy gets the other network
    pure.network = PureHalf(pure.network)  # type: ignore[arg-type]
    return pure


def paint(stylizer: StyleModel, content: torch.Tensor, style: str) -> np.ndarray:
    """Each frame painted alone, as 8-bit values [N,H,W,3] float32."""
    device = stylizer.runtime.device
    out = [stylizer.stylize(frame[None].to(device), parse_style(style)).cpu().numpy() for frame in content]
    return to_8bit(np.concatenate(out))


def compare(reduced: np.ndarray, reference: np.ndarray) -> str:
    finite = bool(np.isfinite(reduced).all())
    levels = float(np.abs(reduced - reference).max())
    least_psnr = min(psnr(a, b) for a, b in zip(reduced, reference, strict=True))
    least_ssim = min(ssim(a, b) for a, b in zip(reduced, reference, strict=True))
    return f"{least_psnr:6.1f} dB {least_ssim:.4f} {levels:5.0f} lv{'' if finite else ' NOT FINITE'}"


def part_setup(args: argparse.Namespace) -> None:
    print(f"torch {torch.__version__}, cuda {torch.version.cuda}, cudnn {torch.backends.cudnn.version()}")
    if torch.cuda.is_available():
        print(f"gpu {torch.cuda.get_device_name()}, capability {torch.cuda.get_device_capability()}")
    print(f"cudnn.allow_tf32 {torch.backends.cudnn.allow_tf32}, matmul.allow_tf32 "
          f"{torch.backends.cuda.matmul.allow_tf32}")  # fmt: skip
    auto = resolve_runtime("auto")
    print(f"auto: {auto.describe()}, batch {auto.default_batch_size}, live size {auto.live_max_size}, "
          f"fallback {auto.fallback.describe() if auto.fallback else None}")  # fmt: skip
    print(f"engines here ({args.device}): {engines_here(args.device)}; tensorrt installed {installed('tensorrt')}")


def part_precision(args: argparse.Namespace) -> None:
    """Each reduced precision against fp32 (TF32 off) on the GPU, per style, and that fp32 against the CPU's."""
    small = (160, 96) if args.quick else (640, 360)
    sizes = [small] if args.quick else [small, (1280, 720)]
    count = 2 if args.quick else 6
    styles = [str(i) for i in (range(NUM_STYLES) if not args.quick else (7, 17))]
    checks = [("dumoulin26", style) for style in styles] + [("magenta", str(path)) for path in PAINTINGS]
    cpu = {name: model(name, "cpu", "fp32") for name in ("dumoulin26", "magenta")}
    variants = ["fp16", "fp16-pure", "bf16", "fp32-tf32"] if args.device != "cpu" else ["bf16"]
    for size in sizes:
        content = pictures(size, count)
        print(f"\n{size[0]}x{size[1]}, {count} frames; least PSNR, least SSIM, max levels of 255 against fp32 "
              "(TF32 off) on this device; 'cpu' is that fp32 against the CPU's")  # fmt: skip
        print(f"{'model':<11} {'style':<26} " + " ".join(f"{v:<28}" for v in [*variants, "cpu"]))
        for name, style in checks:
            with tf32(False):
                reference = paint(model(name, args.device, "fp32"), content, style)
            row = []
            for variant in variants:
                with tf32(variant.endswith("-tf32")):
                    row.append(compare(paint(model_variant(name, args.device, variant), content, style), reference))
            if size == small or name == "magenta" or style in ("7", "13", "17"):
                row.append(compare(reference, paint(cpu[name], content, style)))
            label = Path(style).stem[:26]
            print(f"{name:<11} {label:<26} " + " ".join(f"{cell:<28}" for cell in row), flush=True)


def part_batch(args: argparse.Namespace) -> None:
    size = (160, 96) if args.quick else (640, 360)
    content = pictures(size, 8).to(args.device)
    for precision in ("fp32", "fp16") if args.device != "cpu" else ("fp32",):
        stylizer = model("dumoulin26", args.device, precision)
        with tf32(False):
            batch = stylizer.stylize(content, parse_style("7"))
            singles = torch.cat([stylizer.stylize(frame[None], parse_style("7")) for frame in content])
        print(f"{precision}: batch 8 against 8 single frames, max abs diff {float((batch - singles).abs().max()):.2e}")


def part_memory(args: argparse.Namespace) -> None:
    if args.device == "cpu":
        print("peak memory: CUDA only")
        return
    sizes = {"1080p": (1920, 1080), "4K": (3840, 2160)}
    for name in ("dumoulin26", "magenta"):
        for precision in ("fp16", "fp32"):
            stylizer = model(name, args.device, precision)
            style = parse_style("7" if name == "dumoulin26" else str(PAINTINGS[0]))
            for label, (width, height) in sizes.items():
                content = torch.rand(8, 3, height, width, device=args.device)
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                try:
                    stylizer.stylize(content, style)
                    torch.cuda.synchronize()
                    peak = (torch.cuda.max_memory_allocated() - base) / 2**30
                    print(f"{name} {precision} batch 8 {label}: peak {peak:.2f} GiB above the input")
                except torch.OutOfMemoryError as error:
                    print(f"{name} {precision} batch 8 {label}: out of memory ({str(error)[:80]})")
                del content


def median_ms(call: Callable[[], object], device: str, repeats: int) -> float:
    for _ in range(3):
        call()
    times = []
    for _ in range(repeats):
        if device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        call()
        if device != "cpu":
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def part_speed(args: argparse.Namespace) -> None:
    """ms/frame of the style network alone (inputs on the device), and with the condition given once for the
    batch ([1,D], one norm call) against once per sample ([B,D], the per-sample loop)."""
    sizes = {"360p": (160, 96)} if args.quick else {"720p": (1280, 720), "1080p": (1920, 1080)}
    variants = ["fp32", "fp32-tf32", "fp16", "fp16-pure", "bf16"] if args.device != "cpu" else ["fp32"]
    repeats = 3 if args.quick else 10
    print(f"{'model':<11} {'size':<6} {'precision':<10} {'batch':>5} {'ms/frame':>9} {'one cond':>9}")
    for name in ("dumoulin26", "magenta"):
        for label, (width, height) in sizes.items():
            for variant in variants:
                stylizer = model_variant(name, args.device, variant)
                dimension = NUM_STYLES if name == "dumoulin26" else 100
                for batch in (1, 8):
                    content = stylizer.runtime.layout(torch.rand(batch, 3, height, width, device=args.device))
                    per_sample = torch.full((batch, dimension), 1 / dimension, device=args.device)
                    with tf32(variant.endswith("-tf32")), torch.inference_mode(), stylizer.runtime.autocast():
                        looped = median_ms(partial(stylizer.run, content, per_sample), args.device, repeats)
                        once = median_ms(partial(stylizer.run, content, per_sample[:1]), args.device, repeats)
                    print(f"{name:<11} {label:<6} {variant:<10} {batch:>5} {looped / batch:>9.2f} "
                          f"{once / batch:>9.2f}", flush=True)  # fmt: skip


def part_compile(args: argparse.Namespace) -> None:
    """torch.compile over batches 8, 5, 8 (a video's last, short batch): seconds per call and recompiles."""
    torch._logging.set_logs(recompiles=True)
    size = (160, 96) if args.quick else (1280, 720)
    runtime = resolve_runtime(args.device, "fp16" if args.device != "cpu" else "fp32", compiled=True)
    stylizer = load_style_model("dumoulin26", runtime)
    for batch in (8, 5, 8, 8):
        content = torch.rand(batch, 3, size[1], size[0], device=args.device)
        start = time.perf_counter()
        stylizer.stylize(content, parse_style("7"))
        if args.device != "cpu":
            torch.cuda.synchronize()
        print(f"compiled, batch {batch}: {time.perf_counter() - start:.2f} s", flush=True)
    torch._logging.set_logs(recompiles=False)


def cli(*arguments: str, timeout: float = 300) -> None:
    command = [sys.executable, "-m", "streamstyle.cli", *arguments]
    print("$ streamstyle " + " ".join(arguments), flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    print((done.stdout + done.stderr).strip()[-3000:])
    print(f"exit {done.returncode} after {time.perf_counter() - start:.1f} s", flush=True)


def part_file(args: argparse.Namespace) -> None:
    frames = 24 if args.quick else 120
    sizes = {"360p": (320, 180)} if args.quick else {"720p": (1280, 720), "1080p": (1920, 1080)}
    with tempfile.TemporaryDirectory() as folder:
        for label, size in sizes.items():
            clip = scaled_clip(ROOT / "samples" / "clips" / "bikes.mp4", size, frames, Path(folder) / f"{label}.mp4")
            for extra in ([], ["--temporal", "off"]):
                cli("file", str(clip), str(Path(folder) / "out.mp4"), "--device", args.device, *extra)


def part_bench(args: argparse.Namespace) -> None:
    sizes = "360p" if args.quick else "360p,720p,1080p"
    with tempfile.TemporaryDirectory() as folder:
        for precision in ("fp16", "fp32") if args.device != "cpu" else ("fp32",):
            cli("bench", "--device", args.device, "--precision", precision, "--sizes", sizes, "--frames", "48",
                "--json", str(Path(folder) / "bench.json"), timeout=400)  # fmt: skip


def part_train(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        out = str(Path(folder) / "model.pt")
        common = ["--style", str(PAINTINGS[0]), "--content", str(ROOT / "samples" / "photos"), "--out", out,
                  "--device", args.device, "--checkpoint-every", "10"]  # fmt: skip
        cli("train", *common, "--steps", "10" if args.quick else "20")
        cli("train", *common, "--steps", "20" if args.quick else "40", "--resume")
        cli("image", str(ROOT / "samples" / "photos" / "skimage_astronaut.png"), str(Path(folder) / "a.png"),
            "--model", out, "--device", args.device)  # fmt: skip


def part_tests(args: argparse.Namespace) -> None:
    """The CUDA tests (tests/test_cuda.py), which skip on a machine without a GPU."""
    command = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "tests/test_cuda.py"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=400, cwd=ROOT)
    print((done.stdout + done.stderr).strip()[-6000:])


def part_nvenc(args: argparse.Namespace) -> None:
    """Whether the GPU's encoder opens here, and what it does for a 1080p file (the CPU's x264 was the limit)."""
    with tempfile.TemporaryDirectory() as folder:
        clip = scaled_clip(ROOT / "samples" / "clips" / "bikes.mp4", (1920, 1080), 24 if args.quick else 120,
                           Path(folder) / "1080p.mp4")  # fmt: skip
        cli("file", str(clip), str(Path(folder) / "out.mp4"), "--device", args.device, "--codec", "h264_nvenc")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--parts", default=",".join(PARTS))
    parser.add_argument("--quick", action="store_true", help="small sizes and few styles (a try on the CPU)")
    args = parser.parse_args()
    os.environ.setdefault("STREAMSTYLE_CACHE_DIR", tempfile.mkdtemp(prefix="streamstyle-gpu-"))
    resolve_runtime(args.device)  # streamstyle's own TF32 setting (off) first, which tf32() then restores
    for part in args.parts.split(","):
        print(f"\n=== {part} ===", flush=True)
        start = time.perf_counter()
        try:
            globals()[f"part_{part}"](args)
        except Exception:
            traceback.print_exc()
        print(f"--- {part}: {time.perf_counter() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
