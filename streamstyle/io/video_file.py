"""Video files in and out with PyAV: the decode source and the encode sink. The sink's file is a drop-in
replacement for the source's: every frame once, in order, with its own timestamp; audio copied packet for packet;
container metadata kept."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import av
from av.audio.stream import AudioStream
from av.video.stream import VideoStream

from streamstyle.core.errors import InputError, OutputError
from streamstyle.core.files import AtomicFile, claim_output
from streamstyle.core.frames import AudioPacket, Frame
from streamstyle.core.roles import Sink
from streamstyle.core.settings import EncoderSettings
from streamstyle.io.media import (
    VIDEO_FILE,
    check_encoder,
    encodable_picture,
    encodable_shape,
    is_tagged,
    named_layout,
    upright_rgb,
)


class FileSource:
    """Demuxes and decodes a file: video frames (every one, in order) and audio packets, in file order; with
    `video` False, the audio alone. A packet the decoder rejects is skipped and counted, not fatal."""

    def __init__(self, container: av.container.InputContainer, reencode_audio: set[int], threads: int = 0,
                 audio: bool = True, video: bool = True) -> None:  # fmt: skip
        self.container = container
        self.video = container.streams.video[0]
        self.video.thread_type = "AUTO"
        self.video.thread_count = threads
        self.audio = list(container.streams.audio) if audio else []
        self.streams = [self.video, *self.audio] if video else self.audio
        self.reencode_audio = reencode_audio
        self.corrupt: list[int | None] = []  # the timestamp of each packet the decoder rejected

    def __iter__(self) -> Iterator[Frame | AudioPacket]:
        try:
            yield from self._read()
        except av.error.FFmpegError as error:
            raise InputError(f"reading {self.container.name} failed: {error.strerror or error}") from None

    def _read(self) -> Iterator[Frame | AudioPacket]:
        index = 0
        next_pts = None
        if not self.streams:
            return  # (demux of no stream named demuxes them all)
        for packet in self.container.demux(*self.streams):
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
                time_base = frame.time_base or self.video.time_base
                assert time_base is not None, "a demuxed stream always has a time base"
                yield Frame(index, upright_rgb(frame), pts, duration, time_base)
                index += 1

    def _decode(self, packet: av.Packet) -> list:
        try:
            return packet.decode()
        except av.error.InvalidDataError:
            self.corrupt.append(packet.pts)
            return []

    @property
    def corrupt_packets(self) -> int:
        return len(self.corrupt)


class FileSink(Sink[AudioPacket]):
    """Encodes frames and muxes them with the audio into a file written under a temporary name, renamed into
    place only once complete. The video size is taken from the first frame (it is upright by then). Every audio
    stream of the source goes along, unless `audio` is False. Formats with subsampled chroma need even sizes:
    an odd-sized picture loses its last row or column (said in `notes`).

    Given `copy_video`, a stream of video already encoded, the sink takes that video's packets as they are
    (write_packet) instead of frames to encode: the source's audio and metadata with video made elsewhere."""

    def __init__(self, output: Path, source: av.container.InputContainer, encoder: EncoderSettings,
                 audio: bool = True, copy_video: VideoStream | None = None) -> None:  # fmt: skip
        self.output = output
        self.copying = copy_video is not None
        self.file = AtomicFile(output)
        self.notes: list[str] = []
        self.frames = 0
        try:
            self.file.partial.touch()  # PyAV opens the file only at the first packet: find out now
            self.container = av.open(str(self.file.partial), "w")
        except (av.error.FFmpegError, ValueError, OSError) as error:
            self.file.discard()
            raise OutputError(f"cannot write {output}: {getattr(error, 'strerror', None) or error}") from None
        try:
            self.container.metadata.update(source.metadata)
            if copy_video is None:
                self._add_video(source.streams.video[0], encoder)
            else:
                self.video = self.container.add_stream_from_template(copy_video)
            self.video.metadata.update({k: v for k, v in source.streams.video[0].metadata.items()
                                        if k in ("language", "title")})  # fmt: skip
            self._add_audio(source, audio)
        except BaseException:
            self.discard()
            raise
        # Audio that arrives before the first frame waits: nothing is muxed before the video size is known.
        self._early_audio: list[AudioPacket] | None = [] if copy_video is None else None

    def _add_video(self, in_video: VideoStream, encoder: EncoderSettings) -> None:
        check_encoder(encoder)
        if encoder.codec not in self.container.supported_codecs:
            raise OutputError(f"{self.output.suffix} files cannot hold {encoder.codec} video")
        try:
            # The stubs cannot tell a video codec from a name given at run time; encoder.codec names one.
            video = cast(
                VideoStream,
                self.container.add_stream(encoder.codec, rate=in_video.average_rate or in_video.guessed_rate),
            )
        except (av.error.FFmpegError, ValueError) as error:
            raise OutputError(f"video codec {encoder.codec!r} is not available: {error}") from None
        video.pix_fmt = encoder.pix_fmt
        # The input's time base keeps every timestamp exact, variable frame rate included.
        time_base = in_video.time_base
        assert time_base is not None, "a demuxed stream always has a time base"
        video.time_base = time_base
        video.codec_context.time_base = time_base
        video.codec_context.options = encoder.options()
        video.codec_context.thread_count = encoder.threads
        context = in_video.codec_context
        self.color_range = context.color_range or 1  # 1: limited ("tv"), the norm for video
        self.colorspace = context.colorspace if is_tagged(context.colorspace) else None
        video.codec_context.color_range = self.color_range
        for attribute in ("colorspace", "color_primaries", "color_trc"):
            value = getattr(context, attribute)
            if is_tagged(value):
                setattr(video.codec_context, attribute, value)
        self.video = video

    def _add_audio(self, source: av.container.InputContainer, audio: bool) -> None:
        self.audio: dict[int, AudioStream] = {}
        self.reencode: set[int] = set()
        for stream in source.streams.audio if audio else ():
            if stream.codec_context.name in self.container.supported_codecs:
                self.audio[stream.index] = self.container.add_stream_from_template(stream)
            else:
                codec = "aac" if "aac" in self.container.supported_codecs else self.container.default_audio_codec
                self.audio[stream.index] = cast(AudioStream, self.container.add_stream(codec, rate=stream.rate))
                self.audio[stream.index].layout = named_layout(stream.codec_context.layout)
                self.reencode.add(stream.index)
                self.notes.append(
                    f"audio stream {stream.index} ({stream.codec_context.name}) cannot go in "
                    f"{self.output.suffix} files as it is: re-encoded to {codec}"
                )
            self.audio[stream.index].metadata.update(stream.metadata)
        self._resamplers: dict[int, av.AudioResampler] = {}

    def write(self, frame: Frame) -> None:
        if self._early_audio is not None:
            self._open_video(*frame.shape)
            early, self._early_audio = self._early_audio, None
            for item in early:
                self.write_audio(item)
        shape = (self.video.height, self.video.width)
        picture = encodable_picture(frame.image, shape, self._pix_fmt, self.colorspace, self.color_range)
        picture.pts = frame.pts
        picture.time_base = frame.time_base
        if frame.duration:
            picture.duration = frame.duration
        try:
            packets = self.video.encode(picture)  # the first opens the encoder
        except av.error.FFmpegError as error:
            raise OutputError(f"encoding {self.output} failed: {error}") from None
        self._mux(packets)
        self.frames += 1

    def write_packet(self, packet: av.Packet) -> None:
        """A packet of the `copy_video` stream, as it is."""
        packet.stream = self.video
        self._mux(packet)
        self.frames += 1

    @property
    def _pix_fmt(self) -> str:
        pix_fmt = self.video.pix_fmt
        assert pix_fmt is not None, "set from the encoder settings in _add_streams"
        return pix_fmt

    def _open_video(self, height: int, width: int) -> None:
        self.video.height, self.video.width = encodable_shape(height, width, self._pix_fmt)
        if (self.video.height, self.video.width) != (height, width):
            self.notes.append(f"{self._pix_fmt} needs even sizes: {width}x{height} is written as "
                              f"{self.video.width}x{self.video.height}")  # fmt: skip

    def _mux(self, packets: av.Packet | list[av.Packet]) -> None:
        try:
            self.container.mux(packets)
        except av.error.FFmpegError as error:
            raise OutputError(f"encoding {self.output} failed: {error}") from None

    def write_audio(self, item: AudioPacket) -> None:
        if self._early_audio is not None:
            self._early_audio.append(item)
            return
        stream = self.audio[item.stream_index]
        if item.packet is not None:
            item.packet.stream = stream
            self._mux(item.packet)
            return
        if item.stream_index not in self._resamplers:
            context = stream.codec_context
            self._resamplers[item.stream_index] = av.AudioResampler(
                format=context.format, layout=context.layout, rate=context.sample_rate, frame_size=context.frame_size
            )
        for chunk in self._resamplers[item.stream_index].resample(item.frame):
            chunk.pts = None
            self._mux(stream.encode(chunk))

    def close(self) -> None:
        """Flush the encoders and put the file in place. A sink that got no frame has nothing to put there: no
        header was ever written, and the caller says why."""
        if self.frames == 0:
            self.discard()
            return
        if not self.copying:
            self._mux(self.video.encode(None))
        for index, resampler in self._resamplers.items():
            for chunk in resampler.resample(None):
                self._mux(self.audio[index].encode(chunk))
            self._mux(self.audio[index].encode(None))
        try:
            self.container.close()
        except av.error.FFmpegError as error:
            self.discard()
            raise OutputError(f"encoding {self.output} failed: {error}") from None
        self.file.commit()

    def discard(self) -> None:
        with contextlib.suppress(av.error.FFmpegError, OSError, ValueError):
            self.container.close()  # a broken container is what we are discarding
        self.file.discard()


def check_paths(source: str | os.PathLike, output: str | os.PathLike, overwrite: bool = False) -> tuple[Path, Path]:
    """Fail early, before any model loads, on paths that cannot work (see `claim_output`)."""
    source = Path(source)
    if not source.exists():
        raise InputError(f"input not found: {source}")
    if Path(output).is_dir():
        raise OutputError(f"output {output} is a folder; give a file name such as {Path(output) / source.name}")
    claim_output(output, [source], VIDEO_FILE, overwrite)
    return source, Path(output)
