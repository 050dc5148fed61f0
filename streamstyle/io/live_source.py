"""Live video in and out: cameras and network streams as sources that survive stalls and drop-outs, and a
writer that encodes live frames into a file or publishes them to a server.

Live frames carry their capture time: Frame.pts is milliseconds on the source's capture clock (time base
1/1000). Writers re-base it to start at zero, so frames dropped to keep up leave the timing of the rest true.
A source's audio, when asked for, comes out beside the frames as AudioChunks on the same clock; it never passes
through the model, so it is never dropped and reaches the writers ahead of the pictures it belongs with."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

import av

from streamstyle.core.errors import InputError
from streamstyle.core.frames import CAPTURE_TIME_BASE, Frame
from streamstyle.io.live_audio import AUDIO_BACKLOG, AudioChunk, AudioFormat
from streamstyle.io.media import describe_error, upright_rgb
from streamstyle.io.urls import NETWORK_SCHEMES

# Low-delay demuxing: no input buffering, no waiting to fill a probe window before the first frame.
_LOW_DELAY_OPTIONS = {"fflags": "nobuffer", "flags": "low_delay"}

log = logging.getLogger("streamstyle")


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
        self.rate = 30.0  # the source's frame rate once open, where it says
        # Set on_audio to receive the source's first audio track; audio_format says what it is, once open.
        self.on_audio: Callable[[AudioChunk], None] | None = None
        self.audio_format: AudioFormat | None = None

    def capture_time(self, frame: Frame) -> float:
        """The time.monotonic() at which the frame was captured."""
        assert frame.pts is not None, "live frames carry their capture time"
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
                # Only the video stream and the audio one are demuxed: no subtitles come out.
                decoded = cast("list[av.VideoFrame | av.AudioFrame]", packet.decode())
            except av.error.InvalidDataError:
                continue  # a damaged packet on the wire: skip it, the stream goes on
            for frame in decoded:
                source_ms = (
                    float(frame.pts * frame.time_base) * 1000 if frame.pts is not None and frame.time_base else None
                )
                if isinstance(frame, av.AudioFrame):  # from the audio stream
                    if source_ms is not None and frame.samples:
                        for chunk in clock.audio(frame, source_ms):
                            assert self.on_audio is not None, "audio is demuxed only for an on_audio"
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
                        assert self.on_audio is not None, "audio is demuxed only for an on_audio"
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
        assert self.offset_ms is not None, "audio waits for the first picture"
        return AudioChunk.of(frame, source_ms + self.offset_ms)


