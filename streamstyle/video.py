"""Video files in and out with PyAV: the decode source, the stylize stage, the encode sink, and `stylize_file`
which chains them. The output is a drop-in replacement for the input: every frame once, in order, with its
own timestamp; audio copied packet for packet; container metadata kept."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import av
import numpy as np

from .errors import InputError, OutputError
from .images import partial_path
from .pipeline import Chain
from .runtime import Runtime
from .stages import Frame, SizeSettings, TemporalSettings, motion_stage, smooth_stage, stylize_stage
from .stylizer import Stylizer

_DEFAULT_CRF = {"libx264": 18, "libx265": 20, "libvpx-vp9": 31}


@dataclass
class AudioPacket:
    """An audio packet to copy as it is (passthrough), or a decoded chunk to re-encode."""

    stream_index: int
    packet: av.Packet | None = None
    frame: av.AudioFrame | None = None


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


def beside_model(encoder: EncoderSettings, runtime: Runtime) -> EncoderSettings:
    """Codec threads for running next to the model: on the CPU, the model's threads already fill the cores;
    extra codec threads only preempt them, and every op of the model waits for its slowest thread. One thread
    each keeps decode and encode off the model's back."""
    if runtime.device.type == "cpu" and not encoder.threads:
        return replace(encoder, threads=1)
    return encoder


@dataclass
class FileReport:
    output: Path
    frames: int
    seconds: float
    stage_seconds: dict[str, float]
    corrupt_packets: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0


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


def colorspace_for(tagged: int | None, height: int) -> str | int:
    """The tagged colour space, or for untagged video what players assume: BT.709 for HD, BT.601 below it."""
    if tagged not in (2, None):  # 2: unspecified
        return tagged
    return "itu709" if height >= 720 else "itu601"


def encodable_picture(image: np.ndarray, pix_fmt: str, colorspace: int | None, color_range: int) -> av.VideoFrame:
    """An RGB image as a VideoFrame in the encoder's pixel format, converted with the matrix the output is tagged
    with (or the one players assume for its size)."""
    matrix = colorspace_for(colorspace, image.shape[0])
    picture = av.VideoFrame.from_ndarray(image, format="rgb24")
    return picture.reformat(
        format=pix_fmt, src_colorspace=matrix, dst_colorspace=matrix, dst_color_range=color_range
    )


def upright_rgb(frame: av.VideoFrame) -> np.ndarray:
    """The frame as [H,W,3] RGB in its display orientation (the container's rotation applied)."""
    rgb = frame.to_ndarray(
        format="rgb24",
        src_colorspace=colorspace_for(frame.colorspace, frame.height),
        src_color_range=frame.color_range or None,
    )
    turns = round(frame.rotation / 90) % 4 if frame.rotation else 0
    return np.ascontiguousarray(np.rot90(rgb, k=turns)) if turns else rgb


class FileSource:
    """Demuxes and decodes a file: video frames (every one, in order) and audio packets, in file order.
    A packet the decoder rejects is skipped and counted, not fatal."""

    def __init__(self, container: av.container.InputContainer, reencode_audio: set[int], threads: int = 0,
                 audio: bool = True) -> None:  # fmt: skip
        self.container = container
        self.video = container.streams.video[0]
        self.video.thread_type = "AUTO"
        self.video.thread_count = threads
        self.audio = list(container.streams.audio) if audio else []
        self.reencode_audio = reencode_audio
        self.corrupt_packets = 0

    def __iter__(self) -> Iterator[Frame | AudioPacket]:
        try:
            yield from self._read()
        except av.error.FFmpegError as error:
            raise InputError(f"reading {self.container.name} failed: {error.strerror or error}") from None

    def _read(self) -> Iterator[Frame | AudioPacket]:
        index = 0
        next_pts = None
        for packet in self.container.demux(self.video, *self.audio):
            if packet.stream.type == "audio":
                if packet.stream.index in self.reencode_audio:
                    for frame in self._decode(packet):
                        yield AudioPacket(packet.stream.index, frame=frame)
                elif packet.dts is not None:  # the final flush packet is not data
                    yield AudioPacket(packet.stream.index, packet=packet)
                continue
            # The video flush packet (dts None) must be decoded too: it releases the last frames.
            for frame in self._decode(packet):
                pts = frame.pts if frame.pts is not None else next_pts
                duration = frame.duration or 0
                next_pts = None if pts is None else pts + duration
                yield Frame(index, upright_rgb(frame), pts, duration, frame.time_base or self.video.time_base)
                index += 1

    def _decode(self, packet: av.Packet) -> list:
        try:
            return packet.decode()
        except av.error.InvalidDataError:
            self.corrupt_packets += 1
            return []


class FileSink:
    """Encodes frames and muxes them with the audio into a file written under a temporary name, renamed into
    place only once complete. The video size is taken from the first frame (it is upright by then). Every audio
    stream of the source goes along, unless `audio` is False."""

    def __init__(self, output: Path, source: av.container.InputContainer, encoder: EncoderSettings,
                 audio: bool = True) -> None:  # fmt: skip
        self.output = output
        self.partial = partial_path(output)
        self.notes: list[str] = []
        self.frames = 0
        try:
            self.partial.touch()  # PyAV opens the file only at the first packet: find out now
            self.container = av.open(str(self.partial), "w")
        except (av.error.FFmpegError, ValueError, OSError) as error:
            self.partial.unlink(missing_ok=True)
            raise OutputError(f"cannot write {output}: {getattr(error, 'strerror', None) or error}") from None
        try:
            self._add_streams(source, encoder, audio)
        except BaseException:
            self.discard()
            raise

    def _add_streams(self, source: av.container.InputContainer, encoder: EncoderSettings, audio: bool) -> None:
        in_video = source.streams.video[0]
        self.container.metadata.update(source.metadata)
        if encoder.codec not in self.container.supported_codecs:
            raise OutputError(f"{self.output.suffix} files cannot hold {encoder.codec} video")
        try:
            video = self.container.add_stream(encoder.codec, rate=in_video.average_rate or in_video.guessed_rate)
        except (av.error.FFmpegError, ValueError) as error:
            raise OutputError(f"video codec {encoder.codec!r} is not available: {error}") from None
        video.pix_fmt = encoder.pix_fmt
        # The input's time base keeps every timestamp exact, variable frame rate included.
        video.time_base = in_video.time_base
        video.codec_context.time_base = in_video.time_base
        video.options = encoder.options()
        video.codec_context.thread_count = encoder.threads
        context = in_video.codec_context
        self.color_range = context.color_range or 1  # 1: limited ("tv"), the norm for video
        self.colorspace = context.colorspace if context.colorspace not in (2, None) else None
        video.codec_context.color_range = self.color_range
        for attribute in ("colorspace", "color_primaries", "color_trc"):
            value = getattr(context, attribute)
            if value not in (2, None):
                setattr(video.codec_context, attribute, value)
        video.metadata.update({k: v for k, v in in_video.metadata.items() if k in ("language", "title")})
        self.video = video
        self.audio: dict[int, av.stream.Stream] = {}
        self.reencode: set[int] = set()
        for stream in source.streams.audio if audio else ():
            if stream.codec_context.name in self.container.supported_codecs:
                self.audio[stream.index] = self.container.add_stream_from_template(stream)
            else:
                codec = "aac" if "aac" in self.container.supported_codecs else self.container.default_audio_codec
                self.audio[stream.index] = self.container.add_stream(codec, rate=stream.rate)
                self.audio[stream.index].layout = _named_layout(stream.codec_context.layout)
                self.reencode.add(stream.index)
                self.notes.append(
                    f"audio stream {stream.index} ({stream.codec_context.name}) cannot go in "
                    f"{self.output.suffix} files as it is: re-encoded to {codec}"
                )
            self.audio[stream.index].metadata.update(stream.metadata)
        self._resamplers: dict[int, av.AudioResampler] = {}
        # Audio that arrives before the first frame waits: nothing is muxed before the video size is known.
        self._early_audio: list[AudioPacket] | None = []

    def _encode_video(self, frame: Frame) -> None:
        if self._early_audio is not None:
            self.video.height, self.video.width = frame.image.shape[:2]
            early, self._early_audio = self._early_audio, None
            for item in early:
                self._encode_audio(item)
        picture = encodable_picture(frame.image, self.video.pix_fmt, self.colorspace, self.color_range)
        picture.pts = frame.pts
        picture.time_base = frame.time_base
        if frame.duration:
            picture.duration = frame.duration
        self.container.mux(self.video.encode(picture))
        self.frames += 1

    def _encode_audio(self, item: AudioPacket) -> None:
        if self._early_audio is not None:
            self._early_audio.append(item)
            return
        stream = self.audio[item.stream_index]
        if item.packet is not None:
            item.packet.stream = stream
            self.container.mux(item.packet)
            return
        if item.stream_index not in self._resamplers:
            context = stream.codec_context
            self._resamplers[item.stream_index] = av.AudioResampler(
                format=context.format, layout=context.layout, rate=context.sample_rate, frame_size=context.frame_size
            )
        for chunk in self._resamplers[item.stream_index].resample(item.frame):
            chunk.pts = None
            self.container.mux(stream.encode(chunk))

    def __call__(self, items: Iterator[object]) -> None:
        try:
            for item in items:
                if isinstance(item, Frame):
                    self._encode_video(item)
                else:
                    self._encode_audio(item)
            if self.frames == 0:
                return  # nothing decoded: the caller reports it, and no header was ever written
            self.container.mux(self.video.encode(None))
            for index, resampler in self._resamplers.items():
                for chunk in resampler.resample(None):
                    self.container.mux(self.audio[index].encode(chunk))
                self.container.mux(self.audio[index].encode(None))
            self.container.close()
        except av.error.FFmpegError as error:
            raise OutputError(f"encoding {self.output} failed: {error}") from None

    def commit(self) -> None:
        self.partial.replace(self.output)

    def discard(self) -> None:
        with contextlib.suppress(av.error.FFmpegError, OSError, ValueError):
            self.container.close()  # a broken container is what we are discarding
        self.partial.unlink(missing_ok=True)


def check_paths(source: str | os.PathLike, output: str | os.PathLike) -> tuple[Path, Path]:
    """Fail early, before any model loads, on paths that cannot work."""
    source, output = Path(source), Path(output)
    if not source.exists():
        raise InputError(f"input not found: {source}")
    if output.exists() and output.resolve() == source.resolve():
        raise OutputError(f"output {output} would overwrite its input")
    if output.is_dir():
        raise OutputError(f"output {output} is a folder; give a file name such as {output / source.name}")
    if not output.parent.is_dir():
        raise OutputError(f"output folder does not exist: {output.parent}")
    if not os.access(output.parent, os.W_OK):
        raise OutputError(f"output folder is not writable: {output.parent}")
    return source, output


def stylize_file(
    source: str | os.PathLike,
    output: str | os.PathLike,
    stylizer: Stylizer,
    batch_size: int | None = None,
    sizes: SizeSettings | None = None,
    encoder: EncoderSettings | None = None,
    temporal: TemporalSettings | None = None,
    on_progress: Callable[[int, int | None], None] | None = None,
    audio: bool = True,
) -> FileReport:
    """Stylize a video file into `output`, keeping timestamps, audio (unless `audio` is False) and metadata.
    on_progress(frames_done, frames_total_or_None) is called from this thread about 10 times a second. Temporal
    smoothing is flow-guided by default."""
    source, output = check_paths(source, output)
    sizes = sizes or SizeSettings()
    encoder = encoder or EncoderSettings()
    temporal = temporal or TemporalSettings()
    encoder = beside_model(encoder, stylizer.runtime)
    with open_video(source) as container:
        sink = FileSink(output, container, encoder, audio)
        file_source = FileSource(container, sink.reencode, threads=encoder.threads, audio=audio)
        batch_size = batch_size or stylizer.runtime.default_batch_size
        notes = list(sink.notes)
        stages = [("model", stylize_stage(lambda: stylizer, batch_size, sizes, encoder.pix_fmt, notes))]
        if temporal.mode != "off":
            # Motion is measured on the input frames in a stage of its own, overlapping the model.
            stages.insert(0, ("motion", motion_stage(temporal)))
            stages.append(("smooth", smooth_stage(temporal)))
        chain = Chain(file_source, stages, sink)
        total = container.streams.video[0].frames or _estimate_frames(container)
        start = time.perf_counter()
        try:
            chain.run(lambda: on_progress(sink.frames, total) if on_progress else None)
            if sink.frames == 0:
                raise InputError(f"no video frame could be decoded from {source} (corrupt or truncated)")
        except BaseException:
            sink.discard()
            raise
        sink.commit()
    seconds = time.perf_counter() - start
    busy = {timer.name: timer.busy for timer in chain.timers}
    if file_source.corrupt_packets:
        notes.append(f"skipped {file_source.corrupt_packets} corrupt video packet(s)")
    stage_seconds = {"decode": busy.pop("source"), **busy}
    stage_seconds["encode"] = stage_seconds.pop("sink")
    return FileReport(
        output,
        sink.frames,
        seconds,
        stage_seconds,
        file_source.corrupt_packets,
        notes,
    )


# FFmpeg's default layout for each channel count, for files that leave theirs unspecified ("2 channels").
_DEFAULT_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "4.0", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}


def _named_layout(layout: av.AudioLayout) -> str:
    if layout.name.endswith("channels"):
        return _DEFAULT_LAYOUTS.get(layout.nb_channels, "stereo")
    return layout.name


def _estimate_frames(container: av.container.InputContainer) -> int | None:
    video = container.streams.video[0]
    rate = video.average_rate or video.guessed_rate
    if container.duration and rate:
        return round(container.duration / av.time_base * rate)
    return None
