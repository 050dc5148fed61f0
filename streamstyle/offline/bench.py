"""`streamstyle bench`: how fast the model alone and the whole file pipeline run on this machine, at the video
sizes people use. Model-only is milliseconds per frame of the network in the batches files run in (one frame on
a CPU, 8 on CUDA; median of several calls);
end-to-end is decode, model, smoothing and encode of a real clip scaled to that size, in frames per second."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from streamstyle.apps.file_job import stylize_file
from streamstyle.core.settings import EncoderSettings, SizeSettings, TemporalSettings
from streamstyle.io.media import upright_rgb
from streamstyle.processing.stylizer import Stylizer
from streamstyle.processing.tensors import frames_to_tensor

SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "clips" / "bigbuckbunny_2s.mp4"


@dataclass
class BenchRow:
    size: str
    width: int
    height: int
    model_ms: float  # per frame, median over calls of a batch as files run them
    model_fps: float
    end_to_end_fps: float  # median over runs
    frames: int
    temporal: str

    @property
    def share_of_model(self) -> float:
        """End-to-end fps as a fraction of model-only fps: what decode, smoothing and encode cost on top."""
        return self.end_to_end_fps / self.model_fps


def scaled_clip(source: Path, size: tuple[int, int], frames: int, path: Path) -> Path:
    """The first `frames` frames of `source` scaled to `size` (x264 ultrafast at high quality): the input of an
    end-to-end run at that size."""
    width, height = size
    with av.open(str(source)) as reader, av.open(str(path), "w") as writer:
        rate = reader.streams.video[0].average_rate or Fraction(25)
        stream = writer.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "12"}
        for index, frame in enumerate(reader.decode(video=0)):
            if index == frames:
                break
            image: np.ndarray = cv2.resize(upright_rgb(frame), size, interpolation=cv2.INTER_AREA)
            writer.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        writer.mux(stream.encode(None))
    return path


def model_milliseconds(stylizer: Stylizer, size: tuple[int, int], calls: int) -> float:
    """Per frame, in batches of the size files run in (8 on CUDA, 1 on a CPU), already on the device."""
    width, height = size
    frames = stylizer.runtime.default_batch_size
    images = np.random.default_rng(0).integers(0, 256, (frames, height, width, 3), dtype=np.uint8)
    batch = frames_to_tensor(images, stylizer.runtime.device)
    timings = []
    with torch.inference_mode():
        for call in range(calls + 1):
            start = time.perf_counter()
            stylizer.stylize_tensor(batch)
            if stylizer.runtime.device.type == "cuda":
                torch.cuda.synchronize(stylizer.runtime.device)  # the default device may be another GPU
            if call:  # the first call sets up kernels for this size
                timings.append((time.perf_counter() - start) * 1000 / frames)
    return statistics.median(timings)


def run_bench(stylizer: Stylizer, sizes: list[str], frames: int = 24, runs: int = 2, calls: int = 5,
              temporal: TemporalSettings | None = None, source: Path = SAMPLE,
              on_row: Callable[[BenchRow], None] | None = None) -> list[BenchRow]:  # fmt: skip
    temporal = temporal or TemporalSettings()
    rows = []
    with tempfile.TemporaryDirectory(prefix="streamstyle-bench-") as folder:
        for name in sizes:
            size = SIZES[name]
            clip = scaled_clip(source, size, frames, Path(folder) / f"{name}.mp4")
            model_ms = model_milliseconds(stylizer, size, calls)
            fps = []
            for run in range(runs):
                report = stylize_file(clip, Path(folder) / f"out{run}.mp4", stylizer, temporal=temporal,
                                      sizes=SizeSettings(), encoder=EncoderSettings())  # fmt: skip
                fps.append(report.fps)
            row = BenchRow(name, *size, round(model_ms, 1), round(1000 / model_ms, 2),
                           round(statistics.median(fps), 2), report.frames, temporal.mode)  # fmt: skip
            rows.append(row)
            if on_row:
                on_row(row)
    return rows
