"""Live frames (and their sound) encoded to a file, or published to a URL."""

from __future__ import annotations

import contextlib
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
from av.audio.stream import AudioStream
from av.video.stream import VideoStream

from streamstyle.core.errors import OutputError
from streamstyle.core.files import AtomicFile, FileKind
from streamstyle.core.frames import CAPTURE_TIME_BASE, Frame
from streamstyle.core.roles import Sink
from streamstyle.core.settings import EncoderSettings
from streamstyle.io.live_audio import AudioChunk, AudioFormat
from streamstyle.io.media import describe_error, encodable_picture, encodable_shape
from streamstyle.io.urls import is_file_target, target_format

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


def _holds_playlist(path: Path) -> bool:
    try:
        with path.open("rb") as playlist:
            return playlist.read(7) == b"#EXTM3U"
    except OSError:
        return False


PLAYLIST_FILE = FileKind("an HLS playlist", _holds_playlist)


class LiveWriter(Sink[AudioChunk]):
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
        self.file = AtomicFile(self.target) if is_file_target(self.target) else None
        self.audio = audio
        self.frames = 0
        self.audio_skipped = 0  # chunks of another rate or layout than the track's (the source changed)
        self._container: av.container.OutputContainer | None = None
        self._stream: VideoStream | None = None
        self._audio_stream: AudioStream | None = None
        self._last_audio: AudioChunk | None = None  # the kind of audio this track takes, and silence's template
        self._next_audio_pts = 0
        self._first_pts: int | None = None
        self._last_pts = -1

    def _open(self, height: int, width: int) -> None:
        try:
            options = _INTERLEAVING | (_MUXER_OPTIONS.get(self.format, {}) if self.format else {})
            target = str(self.file.partial) if self.file else self.target
            container = av.open(target, "w", format=self.format, options=options)
        except (av.error.FFmpegError, OSError, ValueError) as error:
            raise OutputError(f"cannot write {self.target}: {describe_error(error)}") from None
        try:
            # The stubs cannot tell a video codec from a name given at run time; encoder.codec names one.
            stream = cast(
                VideoStream,
                container.add_stream(self.encoder.codec, rate=Fraction(self.rate).limit_denominator(1001)),
            )
        except (av.error.FFmpegError, ValueError) as error:
            container.close()
            raise OutputError(f"video codec {self.encoder.codec!r} is not available: {error}") from None
        stream.width, stream.height, stream.pix_fmt = width, height, self.encoder.pix_fmt
        stream.time_base = stream.codec_context.time_base = CAPTURE_TIME_BASE
        stream.codec_context.options = self.encoder.options()
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
        assert frame.pts is not None, "live frames carry their capture time"
        if self._container is None:
            self._open(*encodable_shape(*frame.shape, self.encoder.pix_fmt))
        stream = self._stream
        assert stream is not None and stream.pix_fmt is not None, "set in _open"
        if self._first_pts is None:
            self._first_pts = frame.pts
        # Two frames captured within the same millisecond still need rising timestamps.
        pts = max(frame.pts - self._first_pts, self._last_pts + 1)
        picture = encodable_picture(frame.image, (stream.height, stream.width), stream.pix_fmt, None, 1)
        picture.pts, picture.time_base = pts, CAPTURE_TIME_BASE
        self._mux(stream.encode(picture))
        self._last_pts = pts
        self.frames += 1

    def write_audio(self, chunk: AudioChunk) -> None:
        """Encode source audio onto the pictures' timeline, as one unbroken track: audio from before the track
        begins (one encoder delay after the first picture) is left out, and a gap (the source was away, or its
        sound began later) is filled with silence."""
        if self._audio_stream is None or self._first_pts is None:
            return
        assert self.audio is not None, "the track is opened only for it"
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
        assert self._first_pts is not None, "audio is written only after the first picture"
        rate = self._last_audio.rate
        missing = round((until_ms - self._first_pts) * rate / 1000) - self._next_audio_pts
        if missing > 0:
            self._encode_audio(self._last_audio.silence(missing, self._audio_ms(self._next_audio_pts, rate)))

    def _audio_ms(self, pts: int, rate: int) -> float:
        """The capture-clock time of audio sample `pts` of this output."""
        assert self._first_pts is not None, "audio is written only after the first picture"
        return self._first_pts + pts * 1000 / rate

    def _encode_audio(self, chunk: AudioChunk) -> None:
        """Encode a chunk that starts where the track has got to."""
        assert self._audio_stream is not None, "chunks come only once the track is open"
        self._mux(self._audio_stream.encode(chunk.frame(self._next_audio_pts)))
        self._next_audio_pts += chunk.length
        self._last_audio = chunk

    def _mux(self, packets: list[av.Packet]) -> None:
        assert self._container is not None, "packets come only while open"
        try:
            self._container.mux(packets)
        except (av.error.FFmpegError, OSError) as error:
            raise OutputError(f"writing {self.target} failed: {describe_error(error)}") from None

    def close(self) -> None:
        """Flush the encoder and finish the file (renamed into place) or the stream."""
        if self._container is None:
            return
        assert self._stream is not None, "opened with the container"
        try:
            self._mux(self._stream.encode(None))
            if self._audio_stream is not None:
                self._mux(self._audio_stream.encode(None))
            self._container.close()
        finally:
            self._container = None
        if self.file is not None:
            self.file.commit()

    def discard(self) -> None:
        """Drop the connection or the unfinished file, after an error."""
        if self._container is not None:
            with contextlib.suppress(av.error.FFmpegError, OSError, ValueError):
                self._container.close()  # broken already: that is why it is discarded
            self._container = None
        if self.file is not None:
            self.file.discard()
