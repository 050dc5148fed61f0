"""Settings for every stage and job, as frozen dataclasses: sizes, smoothing, encoder, optimisation and training.
The command line and pipeline files fill the same ones; each checks its own values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from streamstyle.core.errors import ConfigError

NumberT = TypeVar("NumberT", int, float)


@dataclass(frozen=True)
class Bounds(Generic[NumberT]):
    """The values a numeric setting may take, both ends included (None: no limit). Each setting's range is written
    once, here: the settings check themselves with it, and the command line types its options with it."""

    low: NumberT | None = None
    high: NumberT | None = None

    def holds(self, value: float) -> bool:
        """Whether `value` lies within; NaN never does."""
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    def check(self, key: str, value: float | None) -> None:
        """A ConfigError naming `key` and the range when `value` (None: not given) lies outside it."""
        if value is not None and not self.holds(value):
            raise ConfigError(f"{key} must be {self}, got {value:g}")

    def __str__(self) -> str:
        if self.high is None:
            return f"at least {self.low:g}"
        if self.low is None:
            return f"at most {self.high:g}"
        return f"between {self.low:g} and {self.high:g}"


# The engines that run the style networks, and the precisions they compute in; `auto` picks per machine
# (processing/runtime.py).
BACKENDS = ("torch", "onnxruntime", "openvino", "tensorrt")
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
LEAST_INFERENCE_SIDE = 8  # the model never runs on a smaller picture
# Live over WebRTC: the inference size the adaptation shrinks to at the least.
SMALLEST_LIVE_SIDE = 128
MAX_SIZE = Bounds(LEAST_INFERENCE_SIDE)
SCALE = Bounds(0.05, 4.0)
# A side of a frame the user asks for: H.264 and HEVC allow at most about 16,900 pixels (their highest levels).
FRAME_SIDE = Bounds(8, 16384)
SMOOTH = Bounds(0.0, 1.0)
FLOW_SIZE = Bounds(16)  # the flow is worked out on 16 pixels a side at the least anyway (processing/temporal.py)
CRF = Bounds(0, 63)  # x264 and x265 take up to 51, VP9 63
CODEC_THREADS = Bounds(0)  # 0: the codec decides
BITRATE = Bounds(10_000)  # bits per second; less is too little for any video
GOP = Bounds(1)  # frames
STRENGTH = Bounds(0.0, 1.0)
BATCH_SIZE = Bounds(1)
WORKERS = Bounds(1)  # of a job on Ray, across its cluster
CAMERA_FPS: Bounds[float] = Bounds(1, 240)
READ_TIMEOUT = Bounds(0.5, 60)  # seconds
KEYFRAME_SECONDS = Bounds(0.1, 10)


def check_frame_size(key: str, size: tuple[int, int] | None) -> None:
    """A ConfigError naming `key` when a (width, height) has a side outside FRAME_SIDE."""
    if size is not None and not all(FRAME_SIDE.holds(side) for side in size):
        raise ConfigError(f"{key} must have sides {FRAME_SIDE} pixels, got {size[0]}x{size[1]}")


@dataclass(frozen=True)
class SizeSettings:
    max_size: int | None = None  # inference: longer side at most this
    scale: float | None = None  # inference: this fraction of the input size
    output_size: tuple[int, int] | None = None  # (width, height) of the output; default: the input's

    def __post_init__(self):
        MAX_SIZE.check("max_size", self.max_size)
        SCALE.check("scale", self.scale)
        check_frame_size("output_size", self.output_size)

    def inference_shape(self, height: int, width: int) -> tuple[int, int]:
        factor = self.scale or 1.0
        if self.max_size and max(height, width) * factor > self.max_size:
            factor = self.max_size / max(height, width)
        return max(LEAST_INFERENCE_SIDE, round(height * factor)), max(LEAST_INFERENCE_SIDE, round(width * factor))


TEMPORAL_MODES = ("flow", "ema", "off")


@dataclass(frozen=True)
class TemporalSettings:
    """flow: blend with the previous output warped along the input's optical flow, where it is reliable;
    ema: blend with the previous output as it is (cheap, for live use); off: every frame on its own."""

    mode: str = "flow"
    smooth: float = 0.75  # weight of the history, in [0, 1]
    flow_size: int = 320  # longer side of the frames the flow is computed on

    def __post_init__(self):
        if self.mode not in TEMPORAL_MODES:
            raise ConfigError(f"unknown temporal mode {self.mode!r}; use one of {', '.join(TEMPORAL_MODES)}")
        SMOOTH.check("smooth", self.smooth)
        FLOW_SIZE.check("flow_size", self.flow_size)


_DEFAULT_CRF = {"libx264": 18, "libx265": 20, "libvpx-vp9": 31}
# x264's and x265's veryfast (the encoder shares the CPU with the model); NVENC's presets run p1 (fastest) to p7.
_DEFAULT_PRESET = {"libx264": "veryfast", "libx265": "veryfast", "h264_nvenc": "p4", "hevc_nvenc": "p4"}
# x264 and x265 name their presets alike, and say a wrong one on stderr themselves before FFmpeg can: checked here.
_X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                 "placebo")  # fmt: skip


@dataclass(frozen=True)
class EncoderSettings:
    codec: str = "libx264"
    crf: int | None = None  # None: the codec's default in _DEFAULT_CRF
    preset: str | None = None  # None: the codec's default in _DEFAULT_PRESET, filled in
    pix_fmt: str = "yuv420p"
    threads: int = 0  # 0: the codec decides
    tune: str | None = None  # x264/x265 --tune: zerolatency for live output
    bitrate: int | None = None  # bits per second; replaces constant quality (live output needs a steady rate)
    gop: int | None = None  # frames between keyframes; short for live, so viewers can join quickly

    def __post_init__(self):
        CRF.check("crf", self.crf)
        if self.preset is None:
            object.__setattr__(self, "preset", _DEFAULT_PRESET.get(self.codec))  # frozen: set once, as made
        if self.preset and self.codec in ("libx264", "libx265") and self.preset not in _X26X_PRESETS:
            raise ConfigError(f"preset {self.preset!r}: {self.codec} takes {', '.join(_X26X_PRESETS)}")
        CODEC_THREADS.check("threads", self.threads)
        BITRATE.check("bitrate", self.bitrate)
        GOP.check("gop", self.gop)

    def options(self) -> dict[str, str]:
        options = {}
        crf = self.crf if self.crf is not None else _DEFAULT_CRF.get(self.codec)
        if self.bitrate:
            options["b"] = str(self.bitrate)
            options["maxrate"] = str(self.bitrate)
            options["bufsize"] = str(self.bitrate)  # one second of buffer: rate spikes stay small for live
        elif crf is not None:
            options["crf"] = str(crf)
        if self.gop:
            options["g"] = str(self.gop)
            options["bf"] = "0"  # B-frames wait for later frames: latency
        if self.tune and self.codec in ("libx264", "libx265"):
            options["tune"] = self.tune
        if self.codec == "libx265":
            options["x265-params"] = "log-level=error"  # x265 prints its banner and statistics on stderr itself
        if self.codec == "libvpx-vp9" and not self.bitrate:
            options["b"] = "0"  # constant quality mode
            options["row-mt"] = "1"
        elif self.preset and self.codec in _DEFAULT_PRESET:
            options["preset"] = self.preset
        return options


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 2000
    batch_size: int = 4
    image_size: int = 256  # square crops of this side
    learning_rate: float = 1e-3
    content_weight: float = 1.0
    style_weight: float = 30.0
    tv_weight: float = 1e-2
    checkpoint_every: int = 200
    seed: int = 0
    temporal_weight: float = 0.0  # the loss on neighbouring video frames; 0: trained on single pictures only

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1 or self.image_size < 32:
            raise ConfigError("--steps and --batch-size must be at least 1, --image-size at least 32")


OPTIMIZE_MAX_SIZE = 512  # minutes on a CPU at this size; the default for stills by optimisation


OPTIMIZERS = ("lbfgs", "adam")


INITS = ("content", "noise")


@dataclass(frozen=True)
class OptimizeSettings:
    steps: int = 150  # optimiser steps at each scale
    optimizer: str = "lbfgs"
    content_weight: float = 1.0
    style_weight: float = 30.0
    tv_weight: float = 1e-2
    init: str = "content"  # start from the photo, or from noise
    scales: int = 2  # coarse-to-fine levels, each twice the size of the one before
    learning_rate: float = 0.02  # Adam only, on [0,1] pixels

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; use {' or '.join(OPTIMIZERS)}")
        if self.init not in INITS:
            raise ConfigError(f"unknown init {self.init!r}; use {' or '.join(INITS)}")
        if self.steps < 1 or self.scales < 1:
            raise ConfigError("--steps and --scales must be at least 1")


DEFAULT_MAX_SIZE = 1024
