"""One configuration model for every way in: the `file`, `webcam` and `stream` commands build a PipelineConfig
from their options, pipeline files (TOML, `streamstyle run`) from their tables, both through `pipeline_config`,
which checks every key and value and fills in the defaults that suit the kind of job.

A pipeline file has the sections below; every key is optional except `source.input` and `output.targets`:

    [source]   input, format, size, fps, read_timeout, strict
    [style]    style, model, strength, preserve_color, style_dir
    [runtime]  device, precision, batch_size, compile
    [size]     max_size, scale, output_size
    [temporal] mode, smooth, flow_size
    [encoder]  codec, crf, preset, pix_fmt, threads, tune, bitrate, gop
    [output]   targets, stats_json, keyframe_seconds, audio, save_dir, overlay, overwrite
    [cluster]  segments, address, workers (a file job in segments on a Ray cluster)
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from streamstyle.core.errors import ConfigError, StreamstyleError
from streamstyle.core.settings import (
    BACKENDS,
    BATCH_SIZE,
    CAMERA_FPS,
    KEYFRAME_SECONDS,
    PRECISIONS,
    READ_TIMEOUT,
    STRENGTH,
    WORKERS,
    EncoderSettings,
    SizeSettings,
    TemporalSettings,
    check_frame_size,
)
from streamstyle.io.urls import is_file_target, is_url

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from streamstyle.processing.runtime import Runtime
    from streamstyle.processing.stylizer import Stylizer

WINDOW = "window"  # the output target that means the live preview window


@dataclass(frozen=True)
class SourceConfig:
    input: str  # a video file, a stream URL, a camera index or device, or with `format` any FFmpeg input
    format: str | None = None  # FFmpeg demuxer: lavfi, x11grab, v4l2...
    size: tuple[int, int] | None = None  # ask the camera for this resolution
    fps: float | None = None  # ask the camera for this frame rate
    read_timeout: float = 5.0  # seconds without a frame before a live input counts as lost
    strict: bool = False  # file: an input that ends early or has corrupt packets is an error, not a warning

    def __post_init__(self):
        check_frame_size("size", self.size)
        CAMERA_FPS.check("fps", self.fps)
        READ_TIMEOUT.check("read_timeout", self.read_timeout)


@dataclass(frozen=True)
class StyleConfig:
    style: str = "7"  # built-in index, blend (3:0.5,12:0.5), painting file, or blend of paintings
    model: str | None = None  # magenta or dumoulin26; default follows the style
    strength: float = 1.0
    preserve_color: bool = False
    style_dir: str | None = None  # window: paintings to cycle through with ] and [

    def __post_init__(self):
        STRENGTH.check("strength", self.strength)

    def stylizer(self, runtime: RuntimeConfig) -> Stylizer:
        # The model loads only when a job asks for it: the command line checks its options without torch.
        from streamstyle.processing.stylizer import Stylizer

        return Stylizer(self.style, self.model, self.strength, self.preserve_color, runtime=runtime.resolve())


@dataclass(frozen=True)
class RuntimeConfig:
    device: str = "auto"
    precision: str = "auto"
    batch_size: int | None = None  # files only; default: 8 on CUDA, 1 on CPU
    compile: bool = False  # torch.compile the model: ~30 s once per frame size, then faster frames
    backend: str = "auto"  # the engine: auto, torch, onnxruntime, openvino or tensorrt

    def __post_init__(self):
        BATCH_SIZE.check("batch_size", self.batch_size)
        for key, value, choices in (("precision", self.precision, PRECISIONS), ("backend", self.backend, BACKENDS)):
            if value != "auto" and value not in choices:
                raise ConfigError(f"unknown {key} {value!r}; use auto, {', '.join(choices)}")

    def resolve(self) -> Runtime:
        from streamstyle.processing.runtime import resolve_runtime

        return resolve_runtime(self.device, self.precision, compiled=self.compile, backend=self.backend)


@dataclass(frozen=True)
class OutputConfig:
    targets: tuple[str, ...] = ()  # files, stream URLs (rtsp://, rtmp://, udp://, .m3u8), or "window"
    stats_json: str | None = None  # stream: keep this file updated with fps, drops, latency, reconnects
    keyframe_seconds: float = 1.0  # stream: seconds between keyframes
    audio: bool = True  # keep the source's audio: files every stream as it is, live jobs the first as AAC
    save_dir: str = "."  # window: snapshots and recordings go here
    overlay: bool = True  # window: show fps, latency and style over the picture
    overwrite: bool = False  # replace an existing output file even if it is not of the kind written

    def __post_init__(self):
        KEYFRAME_SECONDS.check("keyframe_seconds", self.keyframe_seconds)


@dataclass(frozen=True)
class ClusterConfig:
    segments: str | None = None  # file: "auto" or a number: cut the input into segments stylized on Ray and joined
    address: str | None = None  # the Ray cluster, HOST:PORT or auto; None: RAY_ADDRESS if set, else one started here
    workers: int | None = None  # across the cluster; None: one per node with all its cores, or one per GPU

    def __post_init__(self):
        counted = self.segments is not None and self.segments.isdigit() and int(self.segments) >= 1
        if self.segments not in (None, "auto") and not counted:
            raise ConfigError(f"segments must be auto or a number of segments (1 or more), got {self.segments!r}")
        WORKERS.check("workers", self.workers)
        if self.segments is None and (self.address or self.workers):
            raise ConfigError("address and workers go with segments (a file job on Ray)")

    @property
    def segment_count(self) -> int | None:
        """The number of segments asked for; None for auto (and for a job not in segments)."""
        return int(self.segments) if self.segments and self.segments.isdigit() else None


@dataclass(frozen=True)
class PipelineConfig:
    kind: str  # file (every frame, audio kept), window (live preview) or stream (live restream)
    source: SourceConfig
    style: StyleConfig
    runtime: RuntimeConfig
    size: SizeSettings
    temporal: TemporalSettings
    encoder: EncoderSettings
    output: OutputConfig
    cluster: ClusterConfig = ClusterConfig()


SECTIONS: dict[str, type] = {
    "source": SourceConfig,
    "style": StyleConfig,
    "runtime": RuntimeConfig,
    "size": SizeSettings,
    "temporal": TemporalSettings,
    "encoder": EncoderSettings,
    "output": OutputConfig,
    "cluster": ClusterConfig,
}
SectionT = TypeVar("SectionT", bound="DataclassInstance")
# Where the user says nothing, live jobs get cheap smoothing, and a restream a steady bitrate with no lookahead.
_LIVE_TEMPORAL = {"mode": "ema", "smooth": 0.6}
_KIND_DEFAULTS = {
    "file": {},
    "window": {"temporal": _LIVE_TEMPORAL},
    "stream": {"temporal": _LIVE_TEMPORAL, "encoder": {"tune": "zerolatency", "bitrate": 2_000_000}},
}


def job_kind(source: SourceConfig, targets: tuple[str, ...]) -> str:
    if WINDOW in targets:
        return "window"
    from_file = source.format is None and not is_url(source.input) and not source.input.isdigit() \
        and not source.input.startswith("/dev/")  # fmt: skip
    if from_file and all(is_file_target(t) for t in targets):
        return "file"
    return "stream"


def _type_name(hint: object) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    options = [h for h in typing.get_args(hint) if h is not type(None)] or [hint]
    if typing.get_origin(options[0]) is tuple:
        inner = typing.get_args(options[0])
        return "a size like \"1280x720\"" if inner == (int, int) else "a list of strings"
    return " or ".join(names.get(option, str(option)) for option in options)


def _convert(value: object, hint: object) -> object:
    """`value` as the annotated type, or ValueError."""
    options = [h for h in typing.get_args(hint) if h is not type(None)] if _is_optional(hint) else [hint]
    if value is None and _is_optional(hint):
        return None
    for option in options:
        if typing.get_origin(option) is tuple:
            inner = typing.get_args(option)
            if inner == (int, int):
                return parse_size(value)
            if isinstance(value, str):
                return (value,)
            if isinstance(value, list) and all(isinstance(v, str) for v in value):
                return tuple(value)
        elif (isinstance(value, bool) and option is bool) or (_is_int(value) and option is int):
            return value
        elif option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        elif option is str and (isinstance(value, str) or _is_int(value)):
            return str(value)  # style = 7, input = 0: numbers that name things
    raise ValueError


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_optional(hint: object) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def parse_size(value: object) -> tuple[int, int]:
    """(width, height) from [1280, 720] or "1280x720"; the sides' range is the settings' to check."""
    if isinstance(value, list) and len(value) == 2 and all(_is_int(v) for v in value):
        return value[0], value[1]
    parts = value.lower().split("x") if isinstance(value, str) else []
    if len(parts) != 2 or not all(part.isdigit() for part in parts):
        raise ValueError
    return int(parts[0]), int(parts[1])


def _section(cls: type[SectionT], values: dict, defaults: dict, origin: str) -> SectionT:
    name = next(key for key, section in SECTIONS.items() if section is cls)
    hints = typing.get_type_hints(cls)
    allowed = [field.name for field in dataclasses.fields(cls)]
    converted = dict(defaults)
    for key, value in values.items():
        if key not in allowed:
            raise ConfigError(f"{origin}: [{name}] has no key {key!r}; allowed: {', '.join(allowed)}")
        try:
            converted[key] = _convert(value, hints[key])
        except ValueError:
            raise ConfigError(f"{origin}: [{name}] {key} must be {_type_name(hints[key])}, got {value!r}") from None
    try:
        return cls(**converted)
    except TypeError:
        missing = [f.name for f in dataclasses.fields(cls) if f.name not in converted
                   and f.default is dataclasses.MISSING]  # fmt: skip
        raise ConfigError(f"{origin}: [{name}] needs {', '.join(missing)}") from None
    except StreamstyleError as error:
        raise ConfigError(f"{origin}: [{name}] {error}") from None


def pipeline_config(sections: dict[str, dict], origin: str, kind: str | None = None) -> PipelineConfig:
    """Check `sections` ({"source": {"input": ...}, ...}) and build the configuration; `origin` (a file name, or
    "command line") starts every error message. The kind of job follows from source and targets unless given
    (`stream` plays a file to files live, paced, to several outputs)."""
    for name, values in sections.items():
        if name not in SECTIONS:
            raise ConfigError(f"{origin}: unknown section [{name}]; allowed: {', '.join(SECTIONS)}")
        if not isinstance(values, dict):
            raise ConfigError(f"{origin}: {name} must be a [{name}] table")
    source = _section(SourceConfig, sections.get("source", {}), {}, origin)
    output = _section(OutputConfig, sections.get("output", {}), {}, origin)
    if not output.targets:
        raise ConfigError(f'{origin}: [output] needs targets, e.g. targets = ["out.mp4"]')
    kind = kind or job_kind(source, output.targets)
    if kind == "window" and len(output.targets) > 1:
        raise ConfigError(f"{origin}: [output] the window cannot be combined with other targets (record with r)")
    if kind == "file" and len(output.targets) > 1:
        raise ConfigError(f"{origin}: [output] a file job writes one file; for several outputs stream it live")
    def section(cls: type[SectionT], name: str) -> SectionT:
        return _section(cls, sections.get(name, {}), _KIND_DEFAULTS[kind].get(name, {}), origin)

    encoder = section(EncoderSettings, "encoder")
    # PyAV knows which encoders this FFmpeg has; loaded here, once a command runs, never for --help. A window's
    # OpenCV must load before PyAV (see apps.jobs), and its recordings use this encoder too.
    if kind == WINDOW:
        import cv2  # noqa: F401

    from streamstyle.io.media import check_encoder

    try:
        check_encoder(encoder)
    except ConfigError as error:
        raise ConfigError(f"{origin}: [encoder] {error}") from None
    cluster = section(ClusterConfig, "cluster")
    if cluster.segments and kind != "file":
        raise ConfigError(f"{origin}: [cluster] segments are for file jobs, not a {kind} job")
    return PipelineConfig(kind, source, section(StyleConfig, "style"), section(RuntimeConfig, "runtime"),
                          section(SizeSettings, "size"), section(TemporalSettings, "temporal"), encoder,
                          output, cluster)  # fmt: skip


def apply_override(sections: dict[str, dict], assignment: str, origin: str = "--set") -> None:
    """`section.key=value` (value in TOML syntax; a bare word is a string) into `sections`, in place."""
    path, sep, text = assignment.partition("=")
    name, dot, key = path.strip().partition(".")
    if not sep or not dot or not key:
        raise ConfigError(f"{origin} {assignment!r}: use section.key=value, e.g. temporal.smooth=0.5")
    try:
        value = tomllib.loads(f"value = {text.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    sections.setdefault(name, {})[key] = value


def load_pipeline(path: str | Path, overrides: Sequence[str] = ()) -> PipelineConfig:
    """Read a pipeline file and apply `section.key=value` overrides to it."""
    path = Path(path)
    try:
        sections = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"pipeline file not found: {path}") from None
    except OSError as error:  # a folder, no permission
        raise ConfigError(f"cannot read pipeline file {path}: {error.strerror or error}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: not valid TOML ({error})") from None
    for assignment in overrides:
        apply_override(sections, assignment)
    return pipeline_config(sections, str(path))
