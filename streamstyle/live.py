"""Live video in and out: cameras and network streams as sources that survive stalls and drop-outs, and a
writer that encodes live frames into a file or publishes them to a server.

Live frames carry their capture time: Frame.pts is milliseconds on the source's capture clock (time base
1/1000). Writers re-base it to start at zero, so frames dropped to keep up leave the timing of the rest true.
A source's audio, when asked for, comes out beside the frames as AudioChunks on the same clock; it never passes
through the model, so it is never dropped and reaches the writers ahead of the pictures it belongs with."""

from __future__ import annotations

import collections
import contextlib
import logging
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from urllib.parse import urlsplit

import av
import numpy as np

from .errors import InputError, OutputError
from .images import partial_path
from .stages import Frame
from .video import EncoderSettings, encodable_picture, upright_rgb

CAPTURE_TIME_BASE = Fraction(1, 1000)
NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "rtp", "srt")
# Low-delay demuxing: no input buffering, no waiting to fill a probe window before the first frame.
_LOW_DELAY_OPTIONS = {"fflags": "nobuffer", "flags": "low_delay"}
# The muxer each kind of live target needs when the URL alone does not say it.
_TARGET_FORMATS = {"rtsp": "rtsp", "rtsps": "rtsp", "rtmp": "flv", "rtmps": "flv", "udp": "mpegts", "tcp": "mpegts",
                   "srt": "mpegts"}  # fmt: skip

log = logging.getLogger("streamstyle")


def median_and_p95(values: list[float]) -> tuple[float, float] | None:
    """The figures live latency is reported with; None for no values."""
    if not values:
        return None
    p95 = statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]
    return statistics.median(values), p95


def describe_error(error: BaseException) -> str:
    """An FFmpeg or OS error in a few words, for one log line."""
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


def is_url(target: str) -> bool:
    return urlsplit(target).scheme in NETWORK_SCHEMES


@dataclass(frozen=True)
class LiveInput:
    """What to open for live frames: an FFmpeg URL, device or file, with its demuxer and options."""

    url: str
    format: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    paced: bool = False  # a file: deliver its frames at their own pace, as a camera would
    timeout: tuple[float, float] | None = None  # seconds to open, and to wait for each read (network only)

    @property
    def label(self) -> str:
        return f"{self.format}:{self.url}" if self.format == "lavfi" else self.url


def live_input(spec: str, format: str | None = None, size: tuple[int, int] | None = None, fps: float | None = None,
               timeout: tuple[float, float] = (10.0, 5.0)) -> LiveInput:  # fmt: skip
    """A camera index (0 is /dev/video0), a device path, a network URL, a file, or, with `format` (lavfi, x11grab,
    v4l2...), any FFmpeg input. size and fps are requested from cameras."""
    if spec.isdigit():
        spec = f"/dev/video{spec}"
    if format is None and spec.startswith("/dev/video"):
        format = "v4l2"
    if format in ("v4l2", "video4linux2"):
        if not Path(spec).exists():
            raise InputError(f"no camera at {spec}")
        options = {}
        if size:
            options["video_size"] = f"{size[0]}x{size[1]}"
        if fps:
            options["framerate"] = f"{fps:g}"
        return LiveInput(spec, format, options)
    scheme = urlsplit(spec).scheme
    if scheme in NETWORK_SCHEMES:
        options = dict(_LOW_DELAY_OPTIONS)
        if scheme in ("rtsp", "rtsps"):
            options["rtsp_transport"] = "tcp"  # UDP loses packets, and with them whole frames, on real networks
        return LiveInput(spec, format, options, timeout=timeout)
    if format is None:
        if not Path(spec).is_file():
            raise InputError(f"source not found: {spec}")
        return LiveInput(spec, paced=True)
    return LiveInput(spec, format)


@dataclass(frozen=True)
class AudioChunk:
    """Decoded source audio, read by every output's thread, so never changed: the samples as
    av.AudioFrame.to_ndarray gives them (channels x length when planar, 1 x length*channels when packed), their
    length per channel, and the capture-clock time of the first sample in milliseconds."""

    samples: np.ndarray
    format: str
    layout: str
    rate: int
    capture_ms: float
    length: int

    @classmethod
    def of(cls, frame: av.AudioFrame, capture_ms: float) -> AudioChunk:
        return cls(frame.to_ndarray(), frame.format.name, frame.layout.name, frame.sample_rate, capture_ms,
                   frame.samples)  # fmt: skip

    @property
    def kind(self) -> tuple[str, str, int]:
        return self.format, self.layout, self.rate

    def frame(self, pts: int) -> av.AudioFrame:
        """A new AudioFrame of these samples at `pts` in 1/rate units (each writer stamps its own)."""
        frame = av.AudioFrame.from_ndarray(self.samples, format=self.format, layout=self.layout)
        frame.sample_rate, frame.pts, frame.time_base = self.rate, pts, Fraction(1, self.rate)
        return frame

    def after(self, skip: int) -> AudioChunk:
        """This chunk without its first `skip` samples."""
        columns = skip * (self.samples.shape[1] // self.length)
        return AudioChunk(self.samples[:, columns:], self.format, self.layout, self.rate,
                          self.capture_ms + skip * 1000 / self.rate, self.length - skip)  # fmt: skip

    def silence(self, length: int, capture_ms: float) -> AudioChunk:
        """`length` samples of silence in this chunk's format (unsigned 8-bit rests at 128), at capture_ms."""
        shape = (self.samples.shape[0], length * (self.samples.shape[1] // self.length))
        rest = 128 if self.samples.dtype == np.uint8 else 0
        return AudioChunk(np.full(shape, rest, self.samples.dtype), self.format, self.layout, self.rate, capture_ms,
                          length)  # fmt: skip


@dataclass(frozen=True)
class AudioFormat:
    """What a writer's audio track is opened for: the source's sample rate, and mono or stereo."""

    rate: int
    layout: str


# Decoded audio a live consumer holds while it cannot write yet (no picture, an output connecting): about 5 s of
# AAC frames. Older chunks give way.
AUDIO_BACKLOG = 256
# Source timestamps that jump this far from the capture clock (a restarted camera, a looped file) re-anchor it.
_CLOCK_JUMP_MS = 1000.0


@dataclass(frozen=True)
class Reconnect:
    """How a lost source is retried: up to `attempts` failures in a row (None: for ever), waiting longer each
    time, from first_delay up to max_delay seconds."""

    attempts: int | None = 5
    first_delay: float = 0.5
    max_delay: float = 8.0

    def delay(self, failures: int) -> float:
        return min(self.first_delay * 2 ** (failures - 1), self.max_delay)

    def gives_up(self, failures: int) -> bool:
        return self.attempts is not None and failures > self.attempts


class LiveSource:
    """Frames of a camera or stream as they arrive. A source that stalls (no frame within the read timeout),
    ends or fails is reopened with backoff, every change said in one line through `notify`; a paced file simply
    ends. Gives up with an InputError after `reconnect.attempts` failures in a row."""

    def __init__(self, source: LiveInput, reconnect: Reconnect | None = None,
                 notify: Callable[[str], None] = log.warning) -> None:  # fmt: skip
        self.input = source
        self.reconnect = reconnect or Reconnect()
        self.notify = notify
        self.stop_event = threading.Event()
        self.epoch = time.monotonic()
        self.frames = 0
        self.reconnects = 0
        self.corrupt_packets = 0
        self.rate = 30.0  # the source's frame rate once open, where it says
        # Set on_audio to receive the source's first audio track; audio_format says what it is, once open.
        self.on_audio: Callable[[AudioChunk], None] | None = None
        self.audio_format: AudioFormat | None = None

    def capture_time(self, frame: Frame) -> float:
        """The time.monotonic() at which the frame was captured."""
        return self.epoch + float(frame.pts * frame.time_base)

    def __iter__(self) -> Iterator[Frame]:
        failures = 0
        while not self.stop_event.is_set():
            try:
                container = self._open()
            except (av.error.FFmpegError, OSError) as error:
                failures += 1
                self._wait_or_give_up(failures, f"cannot open ({describe_error(error)})")
                continue
            if self.frames:
                self.reconnects += 1
                self.notify(f"{self.input.label}: reconnected")
            delivered = self.frames
            try:
                yield from self._frames(container)
                reason = "ended"
            except av.error.ExitError:
                reason = f"no frame for {self.input.timeout[1]:g} s" if self.input.timeout else "stalled"
            except av.error.FFmpegError as error:
                reason = describe_error(error)
            finally:
                container.close()
            if self.input.paced and reason == "ended":
                return
            failures = 0 if self.frames > delivered else failures + 1
            self._wait_or_give_up(max(failures, 1), f"lost ({reason})")

    def _wait_or_give_up(self, failures: int, what: str) -> None:
        if self.reconnect.gives_up(failures):
            raise InputError(f"{self.input.label}: {what}; gave up after {failures} attempts")
        delay = self.reconnect.delay(failures)
        self.notify(f"{self.input.label}: {what}; retrying in {delay:.1f} s")
        self.stop_event.wait(delay)

    def _open(self) -> av.container.InputContainer:
        container = av.open(self.input.url, format=self.input.format, options=self.input.options,
                            timeout=self.input.timeout)  # fmt: skip
        if not container.streams.video:
            container.close()
            raise InputError(f"{self.input.label} has no video")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        if rate and 1 <= rate <= 240:
            self.rate = float(rate)
        # Per connection: a source that comes back without its audio gives writers made from now on none to wait for.
        self.audio_format = None
        if self.on_audio and container.streams.audio:
            audio = container.streams.audio[0].codec_context
            # Stereo (or mono) whatever the source: what live services and players take, and every AAC encoder.
            self.audio_format = AudioFormat(audio.sample_rate, "mono" if audio.channels == 1 else "stereo")
        return container

    def _frames(self, container: av.container.InputContainer) -> Iterator[Frame]:
        video = container.streams.video[0]
        # Slice threads only: frame threads hold frames back, one per thread, which is latency.
        video.thread_type = "SLICE"
        audio = container.streams.audio[0] if self.audio_format else None
        clock = SourceClock()
        pace_origin: float | None = None
        for packet in container.demux(video, audio) if audio else container.demux(video):
            try:
                decoded = packet.decode()
            except av.error.InvalidDataError:
                self.corrupt_packets += 1  # a damaged packet on the wire: skip it, the stream goes on
                continue
            for frame in decoded:
                timed = frame.pts is not None and frame.time_base
                source_ms = float(frame.pts * frame.time_base) * 1000 if timed else None
                if packet.stream is audio:
                    if source_ms is not None and frame.samples:
                        for chunk in clock.audio(frame, source_ms):
                            self.on_audio(chunk)
                    continue
                now = time.monotonic()
                if self.input.paced and source_ms is not None:
                    pace_origin = now - source_ms / 1000 if pace_origin is None else pace_origin
                    if self.stop_event.wait(max(0.0, pace_origin + source_ms / 1000 - now)):
                        return
                    now = time.monotonic()
                capture_ms = (now - self.epoch) * 1000
                if source_ms is not None:
                    for chunk in clock.picture(capture_ms, source_ms):
                        self.on_audio(chunk)
                image = upright_rgb(frame)
                yield Frame(self.frames, image, round(capture_ms), 0, CAPTURE_TIME_BASE)
                self.frames += 1


class SourceClock:
    """Puts one connection's audio on the capture clock. Pictures are stamped on arrival; audio follows the
    source's own timestamps, anchored to the pictures, so the two stay in step however packets arrive: the anchor
    is the least-delayed picture so far (capture time minus source time), re-set when the source's timestamps jump.
    Audio decoded before the first picture waits for the anchor."""

    def __init__(self) -> None:
        self.offset_ms: float | None = None
        self._waiting: collections.deque[tuple[av.AudioFrame, float]] = collections.deque(maxlen=AUDIO_BACKLOG)

    def picture(self, capture_ms: float, source_ms: float) -> list[AudioChunk]:
        """Take a picture's times into the anchor; returns the audio that waited for it."""
        offset = capture_ms - source_ms
        if self.offset_ms is None or offset < self.offset_ms or offset - self.offset_ms > _CLOCK_JUMP_MS:
            self.offset_ms = offset
        waiting = [self._chunk(frame, source_ms) for frame, source_ms in self._waiting]
        self._waiting.clear()
        return waiting

    def audio(self, frame: av.AudioFrame, source_ms: float) -> list[AudioChunk]:
        if self.offset_ms is None:
            self._waiting.append((frame, source_ms))
            return []
        return [self._chunk(frame, source_ms)]

    def _chunk(self, frame: av.AudioFrame, source_ms: float) -> AudioChunk:
        return AudioChunk.of(frame, source_ms + self.offset_ms)


def target_format(target: str) -> str | None:
    """The muxer for a live output: rtsp for rtsp://, flv for rtmp://, mpegts for udp://, hls for .m3u8;
    None lets FFmpeg choose from a file's extension."""
    if target.endswith(".m3u8"):
        return "hls"
    return _TARGET_FORMATS.get(urlsplit(target).scheme)


def is_file_target(target: str) -> bool:
    """A recording file, as opposed to a stream URL or an HLS playlist (which is written segment by segment)."""
    return not is_url(target) and target_format(target) != "hls"


# Audio timestamps that wobble by less than this around an unbroken track are taken as unbroken: a relay that
# stamps packets on arrival sends a burst of audio frames with one time. Beyond it the track follows them.
_AUDIO_SLACK_MS = 150
# Samples the AAC encoder puts before the first it is given: its first packet is stamped that much earlier.
_AAC_DELAY = 1024
# With sound and pictures, the muxer holds packets of one until the other catches up: by default up to 10 s, a
# frozen picture for viewers whenever the source's audio pauses. Half a second bounds that.
_INTERLEAVING = {"max_interleave_delta": "500000"}
_MUXER_OPTIONS = {
    "rtsp": {"rtsp_transport": "tcp"},
    "hls": {"hls_time": "2", "hls_list_size": "6", "hls_flags": "delete_segments+independent_segments"},
    "mpegts": {"flush_packets": "1"},
}


class LiveWriter:
    """Encodes live frames into a file (written under a temporary name, renamed when closed) or publishes them
    to a URL. The encoder opens at the first frame, which gives the size; timestamps are capture times re-based
    to zero. A publisher connects at the first frame too, so a missing server shows up as an OutputError there.
    With `audio`, an AAC track carries the AudioChunks given to write_audio, from the first frame's time on."""

    def __init__(self, target: str | Path, encoder: EncoderSettings, rate: float = 30.0, format: str | None = None,
                 audio: AudioFormat | None = None) -> None:  # fmt: skip
        self.target = str(target)
        self.encoder = encoder
        self.rate = rate
        self.format = format or target_format(self.target)
        self.path = Path(self.target) if is_file_target(self.target) else None
        self.audio = audio
        self.frames = 0
        self.audio_skipped = 0  # chunks of another rate or layout than the track's (the source changed)
        self._container: av.container.OutputContainer | None = None
        self._stream = None
        self._audio_stream = None
        self._last_audio: AudioChunk | None = None  # the kind of audio this track takes, and silence's template
        self._next_audio_pts = 0
        self._first_pts: int | None = None
        self._last_pts = -1

    @property
    def _open_target(self) -> str:
        if self.path is None:
            return self.target
        return str(partial_path(self.path))

    def _open(self, height: int, width: int) -> None:
        try:
            options = _INTERLEAVING | _MUXER_OPTIONS.get(self.format, {})
            container = av.open(self._open_target, "w", format=self.format, options=options)
        except (av.error.FFmpegError, OSError, ValueError) as error:
            raise OutputError(f"cannot write {self.target}: {describe_error(error)}") from None
        try:
            stream = container.add_stream(self.encoder.codec, rate=Fraction(self.rate).limit_denominator(1001))
        except (av.error.FFmpegError, ValueError) as error:
            container.close()
            raise OutputError(f"video codec {self.encoder.codec!r} is not available: {error}") from None
        stream.width, stream.height, stream.pix_fmt = width, height, self.encoder.pix_fmt
        stream.time_base = stream.codec_context.time_base = CAPTURE_TIME_BASE
        stream.options = self.encoder.options()
        stream.codec_context.thread_count = self.encoder.threads
        stream.codec_context.color_range = 1  # limited, what players expect of video
        if self.audio:
            # AAC: every live muxer here (RTSP, FLV, MPEG-TS, HLS, MP4, MKV) takes it, whatever the source sent.
            self._audio_stream = container.add_stream("aac", rate=self.audio.rate)
            self._audio_stream.layout = self.audio.layout
            self._audio_stream.time_base = Fraction(1, self.audio.rate)
            # The track begins one encoder delay after the first picture, so no packet is stamped before it (FLV
            # refuses a packet earlier than the first one it wrote, and RTMP is FLV).
            self._next_audio_pts = _AAC_DELAY
        self._container, self._stream = container, stream

    def write(self, frame: Frame) -> None:
        height, width = frame.image.shape[:2]
        if self._container is None:
            self._open(height - height % 2, width - width % 2)
        image = frame.image[: self._stream.height, : self._stream.width]
        if self._first_pts is None:
            self._first_pts = frame.pts
        # Two frames captured within the same millisecond still need rising timestamps.
        pts = max(frame.pts - self._first_pts, self._last_pts + 1)
        picture = encodable_picture(image, self._stream.pix_fmt, None, 1)
        picture.pts, picture.time_base = pts, CAPTURE_TIME_BASE
        self._mux(self._stream.encode(picture))
        self._last_pts = pts
        self.frames += 1

    def write_audio(self, chunk: AudioChunk) -> None:
        """Encode source audio onto the pictures' timeline, as one unbroken track: audio from before the track
        begins (one encoder delay after the first picture) is left out, and a gap (the source was away, or its
        sound began later) is filled with silence."""
        if self._audio_stream is None or self._first_pts is None:
            return
        known = self._last_audio or chunk
        if chunk.kind != known.kind or chunk.rate != self.audio.rate:
            self.audio_skipped += 1
            return
        pts = round((chunk.capture_ms - self._first_pts) * chunk.rate / 1000)
        if self._last_audio is not None and abs(pts - self._next_audio_pts) <= _AUDIO_SLACK_MS * chunk.rate / 1000:
            pts = self._next_audio_pts
        # Beyond the slack, what overlaps audio already written (before the first picture, or across a re-anchored
        # clock) is cut, not shifted: a shift would put the sound behind the pictures from then on.
        overlap = self._next_audio_pts - pts
        if overlap >= chunk.length:
            return
        if overlap > 0:
            chunk = chunk.after(overlap)
        elif overlap < 0:
            self._encode_audio(chunk.silence(-overlap, self._audio_ms(self._next_audio_pts, chunk.rate)))
        self._encode_audio(chunk)

    def fill_silence(self, until_ms: float) -> None:
        """Silence up to `until_ms` on the capture clock, while the source sends none (it is away): players keep
        their audio clock running, and the muxer need not hold the pictures back waiting for sound."""
        if self._last_audio is None:
            return
        rate = self._last_audio.rate
        missing = round((until_ms - self._first_pts) * rate / 1000) - self._next_audio_pts
        if missing > 0:
            self._encode_audio(self._last_audio.silence(missing, self._audio_ms(self._next_audio_pts, rate)))

    def _audio_ms(self, pts: int, rate: int) -> float:
        """The capture-clock time of audio sample `pts` of this output."""
        return self._first_pts + pts * 1000 / rate

    def _encode_audio(self, chunk: AudioChunk) -> None:
        """Encode a chunk that starts where the track has got to."""
        self._mux(self._audio_stream.encode(chunk.frame(self._next_audio_pts)))
        self._next_audio_pts += chunk.length
        self._last_audio = chunk

    def _mux(self, packets: list[av.Packet]) -> None:
        try:
            self._container.mux(packets)
        except (av.error.FFmpegError, OSError) as error:
            raise OutputError(f"writing {self.target} failed: {describe_error(error)}") from None

    def close(self) -> None:
        """Flush the encoder and finish the file (renamed into place) or the stream."""
        if self._container is None:
            return
        try:
            self._mux(self._stream.encode(None))
            if self._audio_stream is not None:
                self._mux(self._audio_stream.encode(None))
            self._container.close()
        finally:
            self._container = None
        if self.path is not None:
            Path(self._open_target).replace(self.path)

    def discard(self) -> None:
        """Drop the connection or the unfinished file, after an error."""
        if self._container is not None:
            with contextlib.suppress(av.error.FFmpegError, OSError, ValueError):
                self._container.close()  # broken already: that is why it is discarded
            self._container = None
        if self.path is not None:
            Path(self._open_target).unlink(missing_ok=True)
