"""Settings for every stage and job, as frozen dataclasses: sizes, smoothing, encoder, optimisation and training.
The command line and pipeline files fill the same ones; each checks its own values."""

from __future__ import annotations

from dataclasses import dataclass

from streamstyle.core.errors import ConfigError


@dataclass(frozen=True)
class SizeSettings:
    max_size: int | None = None  # inference: longer side at most this
    scale: float | None = None  # inference: this fraction of the input size
    output_size: tuple[int, int] | None = None  # (width, height) of the output; default: the input's

    def inference_shape(self, height: int, width: int) -> tuple[int, int]:
        factor = self.scale or 1.0
        if self.max_size and max(height, width) * factor > self.max_size:
            factor = self.max_size / max(height, width)
        return max(8, round(height * factor)), max(8, round(width * factor))


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
        if not 0.0 <= self.smooth <= 1.0:
            raise ConfigError(f"--smooth must be between 0 and 1, got {self.smooth}")


_DEFAULT_CRF = {"libx264": 18, "libx265": 20, "libvpx-vp9": 31}


@dataclass(frozen=True)
class EncoderSettings:
    codec: str = "libx264"
    crf: int | None = None  # None: the codec's default in _DEFAULT_CRF
    preset: str | None = "veryfast"
    pix_fmt: str = "yuv420p"
    threads: int = 0  # 0: the codec decides
    tune: str | None = None  # x264/x265 --tune: zerolatency for live output
    bitrate: int | None = None  # bits per second; replaces constant quality (live output needs a steady rate)
    gop: int | None = None  # frames between keyframes; short for live, so viewers can join quickly

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
        if self.codec == "libvpx-vp9" and not self.bitrate:
            options["b"] = "0"  # constant quality mode
            options["row-mt"] = "1"
        elif self.preset and self.codec in ("libx264", "libx265", "h264_nvenc", "hevc_nvenc"):
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
