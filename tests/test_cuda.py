"""The CUDA paths (issue 14, and the GPU notes): torch on a GPU paints what it paints on the CPU, in an fp32 that
is fp32 and in fp16 within 40 dB; TensorRT likewise; an onnxruntime that cannot use the GPU is refused rather
than left to run on the CPU; a batch the GPU's memory cannot hold runs in smaller ones, and a frame it cannot
hold is one line. Every test here skips without a CUDA GPU (this file imports no CPU-only engine, so that it runs
on a GPU machine that has none)."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import torch

from streamstyle.core.errors import DeviceError
from streamstyle.core.settings import TrainSettings
from streamstyle.engines.backends import installed, onnxruntime_has_cuda
from streamstyle.offline.train import train
from streamstyle.processing.runtime import resolve_runtime
from streamstyle.processing.stylizer import Stylizer, load_vgg19

from .conftest import ILL_CONDITIONED_WITHIN, PAINTINGS, PHOTOS, STARTUP_S, one_line_error, photo_batch

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

STARRY = next(path for path in PAINTINGS if path.stem == "vangogh_starry_night")
SCREAM = next(path for path in PAINTINGS if path.stem == "munch_the_scream")
PHOTOS_FOLDER = PHOTOS[0].parent
STYLES = pytest.mark.parametrize("style", ["7", "17", str(STARRY)], ids=["style 7", "style 17", "magenta"])


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / torch.mean((a.float().cpu() - b.float().cpu()) ** 2)))


def test_auto_takes_fp16_on_the_gpu_with_tensorrt_where_it_is_installed():
    expected = "tensorrt cuda fp16" if installed("tensorrt") else "torch cuda fp16 channels_last"
    assert resolve_runtime("cuda").describe() == expected


@pytest.mark.parametrize("backend", ["torch", pytest.param("tensorrt", marks=pytest.mark.skipif(
    not installed("tensorrt"), reason="needs the tensorrt extra"))])  # fmt: skip
@STYLES
def test_each_gpu_engine_paints_what_torch_paints_on_the_cpu(backend, style):
    content = photo_batch()
    expected = Stylizer(style, device="cpu", backend="torch").stylize_tensor(content)
    fp32 = Stylizer(style, device="cuda", precision="fp32", backend=backend)
    # In TF32, PyTorch's default for fp32 convolutions on CUDA, style 17 is 0.3 away (89 levels of 255).
    assert (fp32.stylize_tensor(content.cuda()).cpu() - expected).abs().max().item() < ILL_CONDITIONED_WITHIN
    fp16 = Stylizer(style, device="cuda", precision="fp16", backend=backend)
    assert psnr(fp16.stylize_tensor(content.cuda()), expected) >= 40


@pytest.mark.skipif(not installed("onnxruntime") or onnxruntime_has_cuda(), reason="needs onnxruntime's CPU build")
def test_an_onnxruntime_without_cuda_is_refused_on_the_gpu():
    with pytest.raises(DeviceError, match="onnxruntime-gpu"):
        Stylizer("7", device="cuda", backend="onnxruntime")


@pytest.fixture
def gpu_memory_cap():
    """Caps this process's GPU memory (a smaller GPU), and lifts the cap after the test."""
    total = torch.cuda.get_device_properties(0).total_memory

    def cap(size: int) -> None:
        torch.cuda.empty_cache()
        torch.cuda.set_per_process_memory_fraction(min(1.0, size / total))

    yield cap
    torch.cuda.set_per_process_memory_fraction(1.0)
    torch.cuda.empty_cache()


def test_a_batch_the_gpu_cannot_hold_runs_in_smaller_ones(gpu_memory_cap, caplog):
    caplog.set_level(logging.WARNING, logger="streamstyle")
    stylizer = Stylizer("7", device="cuda", backend="torch")
    frames = torch.rand(8, 3, 1080, 1920, device="cuda")
    alone = torch.cat([stylizer.stylize_tensor(frame[None]) for frame in frames])
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    held = torch.cuda.memory_allocated()
    stylizer.stylize_tensor(frames[:1])
    one_frame = torch.cuda.max_memory_allocated() - held
    gpu_memory_cap(held + 2 * alone.nbytes + int(2.5 * one_frame))  # the output's pieces and whole, two frames

    together = stylizer.stylize_tensor(frames)
    assert (together - alone).abs().max().item() < 4e-3  # a level of 255: fp16 kernels differ by batch size
    assert "has not the memory for batches of 8 frames at this size" in caplog.text
    caplog.clear()
    stylizer.stylize_tensor(frames)  # the next batch starts from the size that fitted
    assert "has not the memory" not in caplog.text


def test_a_frame_the_gpu_cannot_hold_is_one_line(tmp_path):
    """The CLI in a process whose GPU memory is capped below what one frame needs, beside the weights."""
    out = tmp_path / "painted.png"
    code = ("import sys, torch\n"
            "total = torch.cuda.get_device_properties(0).total_memory\n"
            "torch.cuda.set_per_process_memory_fraction(64 * 2**20 / total)\n"
            "from streamstyle.cli.main import main\n"
            "sys.argv[0] = 'streamstyle'\n"
            "main()\n")  # fmt: skip
    command = [sys.executable, "-c", code, "image", str(PHOTOS[0]), str(out), "--device", "cuda", "--backend", "torch"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=STARTUP_S)
    one_line_error(result, "cuda", "has not the memory to paint one", "--max-size")
    assert not out.exists()


def test_training_resumed_on_the_gpu_keeps_adams_step_counts_on_the_cpu(tmp_path):
    """Where Adam keeps them: on the GPU, every step would wait for them (the GPU notes)."""
    model = tmp_path / "scream.pt"
    runtime = resolve_runtime("cuda", "fp32")
    vgg = load_vgg19(runtime)
    for steps, resume in ((2, False), (4, True)):
        train(SCREAM, PHOTOS_FOLDER, model, vgg, runtime, TrainSettings(steps=steps, batch_size=1, image_size=64),
              resume=resume)  # fmt: skip
    saved = torch.load(model, weights_only=True)  # each tensor on the device it was saved from
    assert saved["step"] == 4
    steps = [state["step"] for state in saved["optimizer"]["state"].values()]
    assert steps and all(step.device.type == "cpu" for step in steps)
