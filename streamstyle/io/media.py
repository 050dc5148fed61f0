"""PyAV helpers every reader and writer of video shares: opening a file, colour conversion both ways, the
display rotation, and the size rules of pixel formats."""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np

from streamstyle.core.errors import ConfigError, InputError
from streamstyle.core.files import FileKind
from streamstyle.core.settings import EncoderSettings

# Chroma subsampled formats need even frame sizes.
_EVEN_SIZE_FORMATS = ("yuv420p", "yuvj420p", "yuv422p", "nv12", "yuv420p10le", "yuv422p10le")


def encodable_shape(height: int, width: int, pix_fmt: str) -> tuple[int, int]:
    """(height, width) made even where the pixel format needs it: the picture loses its last row or column, or
    where a side is a single pixel, with nothing to lose, that pixel is doubled."""
    if pix_fmt in _EVEN_SIZE_FORMATS:
        return max(2, height - height % 2), max(2, width - width % 2)
    return height, width


def _holds_media(path: Path) -> bool:
    try:
        with av.open(str(path)) as container:
            return bool(container.streams)
    except (av.error.FFmpegError, OSError, ValueError):
        return False


VIDEO_FILE = FileKind("a video file", _holds_media)


def open_video(path: str | os.PathLike) -> av.container.InputContainer:
    """Open a media file that has a video stream, or raise an InputError that says what is wrong with it."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir():
        raise InputError(f"input is a folder, not a video file: {path}")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as error:
        raise InputError(f"not a readable video file: {path} ({error.strerror or error})") from None
    if not container.streams.video:
        container.close()
        raise InputError(f"no video stream in {path}")
    return container


# FFmpeg's value for a colour space, primaries or transfer that the file leaves unspecified.
_UNSPECIFIED = 2


def is_tagged(colour: int | None) -> bool:
    """Whether a colour space, primaries or transfer characteristic is given, rather than left to players."""
    return colour not in (_UNSPECIFIED, None)


def colorspace_for(tagged: int | None, height: int) -> str | int:
    """The tagged colour space, or for untagged video what players assume: BT.709 for HD, BT.601 below it."""
    if tagged is not None and is_tagged(tagged):
        return tagged
    return "itu709" if height >= 720 else "itu601"


def encodable_picture(image: np.ndarray, shape: tuple[int, int], pix_fmt: str, colorspace: int | None,
                       color_range: int) -> av.VideoFrame:  # fmt: skip
    """An RGB image as a VideoFrame in the encoder's pixel format at `shape` (height, width: the stream's,
    encodable), converted with the matrix the output is tagged with (or the one players assume for its size).
    An image a pixel larger loses its last row or column (see encodable_shape); one of any other size is scaled
    in the same swscale pass as the colour conversion: from 640x360 to 1280x720 that pass costs 2.6 ms, against
    6 ms for OpenCV's bicubic and then 4.4 ms to convert."""
    height, width = shape
    if 0 <= image.shape[0] - height <= 1 and 0 <= image.shape[1] - width <= 1:
        image = image[:height, :width]
    shrinking = height * width < image.shape[0] * image.shape[1]
    matrix = colorspace_for(colorspace, height)
    picture = av.VideoFrame.from_ndarray(image, format="rgb24")
    return picture.reformat(
        width=width, height=height, format=pix_fmt, src_colorspace=matrix, dst_colorspace=matrix,
        dst_color_range=color_range, interpolation="AREA" if shrinking else "BICUBIC",
    )  # fmt: skip


def upright_rgb(frame: av.VideoFrame) -> np.ndarray:
    """The frame as [H,W,3] RGB in its display orientation (the container's rotation applied)."""
    rgb = frame.to_ndarray(
        format="rgb24",
        src_colorspace=colorspace_for(frame.colorspace, frame.height),
        src_color_range=frame.color_range or None,
    )
    turns = round(frame.rotation / 90) % 4 if frame.rotation else 0
    return np.ascontiguousarray(np.rot90(rgb, k=turns)) if turns else rgb


# FFmpeg's default layout for each channel count, for files that leave theirs unspecified ("2 channels").
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def named_layout(layout: av.AudioLayout) -> str:
    if layout.name.endswith("channels"):
        return _DEFAULT_LAYOUTS.get(layout.nb_channels, "stereo")
    return layout.name


def describe_error(error: BaseException) -> str:
    """An FFmpeg or OS error in a few words, for one log line."""
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def read_frames(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """Every frame of a video file as upright [H,W,3] uint8 RGB."""
    with open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield upright_rgb(frame)


_COMMON_ENCODERS = "libx264, libx265 or libvpx-vp9"  # suggested in place of a codec that will not do


def check_encoder(settings: EncoderSettings) -> None:
    """A ConfigError naming the value unless this FFmpeg has the video encoder of `settings`, taking pictures in
    its pixel format and starting with its options here (a preset it knows; a hardware encoder's device and
    driver): found before any model loads, rather than as the encoder fails to open on the first frame."""
    codec, pix_fmt = settings.codec, settings.pix_fmt
    try:
        encoder = av.Codec(codec, "w")
    except av.codec.codec.UnknownCodecError:
        raise ConfigError(f"codec {codec!r}: FFmpeg has no such encoder (try {_COMMON_ENCODERS})") from None
    if encoder.type != "video":
        raise ConfigError(f"codec {codec!r} encodes {encoder.type}, not video (try {_COMMON_ENCODERS})")
    try:
        av.VideoFormat(pix_fmt)
    except ValueError:
        raise ConfigError(f"pix_fmt {pix_fmt!r}: FFmpeg has no such pixel format (try yuv420p)") from None
    formats = [video_format.name for video_format in encoder.video_formats or ()]  # none listed: any (rawvideo)
    if formats and pix_fmt not in formats:
        raise ConfigError(f"pix_fmt {pix_fmt!r}: {codec} takes {', '.join(formats)}")
    trial = cast(av.VideoCodecContext, av.CodecContext.create(encoder))
    trial.width, trial.height, trial.pix_fmt, trial.time_base = 256, 256, pix_fmt, Fraction(1, 25)
    options = settings.options()
    trial.options = options
    try:
        trial.open()
    except av.error.FFmpegError as error:
        given = ", ".join(f"{name}={value}" for name, value in options.items())
        raise ConfigError(f"codec {codec!r} does not start here with {given or 'its defaults'} "
                          f"({describe_error(error)}): check --preset, or a hardware encoder's device and "
                          "driver") from None  # fmt: skip
