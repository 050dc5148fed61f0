"""`streamstyle stream`: read a live stream, stylize it, and publish it to one or more outputs, riding out
network trouble on either side.

Input stalls or drops: the source reconnects with backoff (for ever, by default). Meanwhile every output repeats
the last frame it sent, a few times a second with true timestamps, so servers and viewers keep the session and see
a still picture; live frames take over as soon as the source is back.
An output's server goes away: that output retries publishing with backoff, from a fresh encoder (so it starts on
a keyframe); the input, the model and the other outputs go on. A file output that fails stops alone."""

from __future__ import annotations

import collections
import dataclasses
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from streamstyle.core.errors import OutputError
from streamstyle.core.files import write_json
from streamstyle.core.frames import Frame
from streamstyle.core.roles import Sink
from streamstyle.core.settings import EncoderSettings, SizeSettings, TemporalSettings
from streamstyle.core.stats import median_and_p95
from streamstyle.io.live_audio import AudioBacklog, AudioChunk
from streamstyle.io.live_source import LiveSource, Reconnect
from streamstyle.io.live_writer import LiveWriter
from streamstyle.io.urls import is_file_target, is_url
from streamstyle.processing.chain import Chain, NewestSlot
from streamstyle.processing.stages import chain_stages
from streamstyle.processing.stylizer import Stylizer

# With no new frame for this long, an output repeats its last one, at this rate.
_HOLD_AFTER_SECONDS = 0.5
_HOLD_RATE = 5.0
# A write that takes longer means the server takes nothing more: the output counts as down.
_STALL_SECONDS = 5.0
# How long closing an output may take (flushing the encoder, the file's index, the stream's teardown).
_CLOSE_SECONDS = 10.0


class Output(Sink[AudioChunk]):
    """One target, fed from a thread of its own through a NewestSlot, so a slow or reconnecting output never holds
    up the model or the other outputs. Source audio waits in a short backlog and is written after each picture:
    it arrives ahead of the pictures it belongs with, which the model holds back."""

    def __init__(self, target: str, encoder: EncoderSettings, gop_seconds: float, source: LiveSource,
                 reconnect: Reconnect, notify: Callable[[str], None]) -> None:  # fmt: skip
        self.target = target
        self.encoder = encoder
        self.gop_seconds = gop_seconds
        self.source = source
        self.reconnect = reconnect
        self.notify = notify
        self.frames = 0
        self.repeats = 0
        self.reconnects = 0
        self.failed: str | None = None  # why a file output could not be written: it stays stopped
        self.latencies_ms: collections.deque[float] = collections.deque(maxlen=300)
        self._slot: NewestSlot[Frame] = NewestSlot()
        self._audio = AudioBacklog()
        self._stop = threading.Event()
        self._writer: LiveWriter | None = None
        self._failures = 0
        self._retry_at = 0.0
        self._writing_since: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"streamstyle-out-{target}", daemon=True)

    @property
    def connected(self) -> bool:
        return self._writer is not None and self._writer.frames > 0 and not self.stalled

    @property
    def stalled(self) -> bool:
        """A write has hung for _STALL_SECONDS: the server is there but takes nothing (FFmpeg's writes have no
        timeout)."""
        since = self._writing_since
        return since is not None and time.monotonic() - since > _STALL_SECONDS

    def start(self) -> None:
        self._thread.start()

    def write(self, frame: Frame) -> None:
        self._slot.put(frame)

    def write_audio(self, audio: AudioChunk) -> None:
        self._audio.append(audio)

    def close(self) -> None:
        """Stop, and finish the file or the stream properly (a recording is complete and playable). The output's
        own thread finishes it: a write or a close that hangs (a server that takes nothing more) holds only that
        thread, which is left behind after _CLOSE_SECONDS."""
        self._stop.set()
        self._thread.join(timeout=_CLOSE_SECONDS)
        if self._thread.is_alive():
            self.notify(f"{self.target}: still writing {_CLOSE_SECONDS:g} s after the stop; left unfinished")

    def _run(self) -> None:
        try:
            self._write_until_stopped()
        finally:
            self._finish()

    def _finish(self) -> None:
        if self._writer is None:
            return
        try:
            self._writer.close()
        except OutputError as error:
            self.notify(f"{self.target}: {error}")
            self._writer.discard()

    def _write_until_stopped(self) -> None:
        last: Frame | None = None
        last_live = last_sent = time.monotonic()
        while not self._stop.is_set():
            try:
                frame, repeated = self._slot.get(timeout=1 / _HOLD_RATE / 2), False
                last_live = time.monotonic()
            except queue.Empty:
                now = time.monotonic()
                if last is None or now - last_live < _HOLD_AFTER_SECONDS or now - last_sent < 1 / _HOLD_RATE:
                    continue
                # The input is away: the last picture again, stamped now.
                frame, repeated = dataclasses.replace(last, pts=round((now - self.source.epoch) * 1000)), True
                self.repeats += 1
            self._writing_since = time.monotonic()
            self._write(frame, repeated)
            self._writing_since = None
            last, last_sent = frame, time.monotonic()

    def _write(self, frame: Frame, repeated: bool) -> None:
        if self.failed or time.monotonic() < self._retry_at:
            return
        try:
            if self._writer is None:
                # The keyframe interval in frames follows the source's rate, known by the first frame.
                gop = max(1, round(self.source.rate * self.gop_seconds))
                self._writer = LiveWriter(self.target, dataclasses.replace(self.encoder, gop=gop), self.source.rate,
                                          audio=self.source.audio_format)  # fmt: skip
            self._writer.write(frame)
            skipped = self._writer.audio_skipped
            self._audio.write_into(self._writer)
            if repeated and frame.pts is not None:  # a repeat is stamped when it is made
                self._writer.fill_silence(frame.pts)
            if self._writer.audio_skipped and not skipped:
                self.notify(f"{self.target}: the input's audio changed rate or channels; left out until this "
                            "output reconnects")  # fmt: skip
        except OutputError as error:
            if self._writer is not None:
                self._writer.discard()
                self._writer = None
            if is_file_target(self.target):
                self.failed = str(error)
                self.notify(f"{self.target}: {error}; this output stops")
                return
            self._failures += 1
            delay = self.reconnect.delay(self._failures)
            self._retry_at = time.monotonic() + delay
            self.notify(f"{self.target}: {error}; retrying in {delay:.1f} s")
            return
        if self._writer.frames == 1:
            if self._failures:
                self.reconnects += 1
            self._failures = 0
            sound = f", with the input's audio ({self._writer.audio.layout})" if self._writer.audio else ""
            self.notify(f"{self.target}: {'publishing' if is_url(self.target) else 'writing'}{sound}")
        self.frames += 1
        if not repeated:
            self.latencies_ms.append((time.monotonic() - self.source.capture_time(frame)) * 1000)


class Fanout(Sink[AudioChunk]):
    """Every frame and every chunk of sound to each output."""

    def __init__(self, outputs: list[Output]) -> None:
        self.outputs = outputs

    def write(self, frame: Frame) -> None:
        for output in self.outputs:
            output.write(frame)

    def write_audio(self, audio: AudioChunk) -> None:
        for output in self.outputs:
            output.write_audio(audio)

    def close(self) -> None:
        for output in self.outputs:
            output.close()


@dataclass
class StreamStats:
    """What `--stats-json` holds and the status line shows; rates over the last interval."""

    uptime_s: float = 0.0
    frames_in: int = 0
    frames_out: int = 0
    fps_in: float = 0.0
    fps_out: float = 0.0
    dropped: int = 0  # captured frames skipped for a newer one while the model was busy
    latency_ms_median: float | None = None  # capture (decoded) to sent, per live frame
    latency_ms_p95: float | None = None
    reconnects_in: int = 0
    outputs: list[dict] = dataclasses.field(default_factory=list)

    def line(self) -> str:
        latency = f"{self.latency_ms_median:.0f} ms" if self.latency_ms_median is not None else "-"
        away = sum(1 for output in self.outputs if not output["connected"])
        return (f"in {self.fps_in:4.1f} fps  out {self.fps_out:4.1f} fps  dropped {self.dropped}  added latency "
                f"{latency}  reconnects in {self.reconnects_in} out {sum(o['reconnects'] for o in self.outputs)}"
                + (f"  outputs down {away}" if away else ""))  # fmt: skip


class Restream:
    """source → model → [motion → smooth] → outputs, live: the model takes the newest frame, each output runs
    on its own. With `audio`, the source's audio goes straight to every output, re-encoded as AAC. `run` returns
    when the source ends (a file) or `stop` is set."""

    def __init__(self, source: LiveSource, stylizer: Stylizer, targets: list[str], sizes: SizeSettings,
                 temporal: TemporalSettings, encoder: EncoderSettings, gop_seconds: float = 1.0,
                 reconnect: Reconnect | None = None, notify: Callable[[str], None] = print,
                 audio: bool = True) -> None:  # fmt: skip
        self.source = source
        reconnect = reconnect or Reconnect(attempts=None)
        self.outputs = [Output(t, encoder, gop_seconds, source, reconnect, notify) for t in targets]
        self.fanout = Fanout(self.outputs)
        if audio:
            source.on_audio = self.fanout.write_audio
        stages = chain_stages(lambda: stylizer, sizes, temporal, live=True)
        self.chain = Chain(source, stages, self.fanout, queue_size=1, live=True)
        self._started = time.monotonic()
        self._last: tuple[float, int, int] = (self._started, 0, 0)

    def stats(self) -> StreamStats:
        now = time.monotonic()
        frames_out = max((output.frames - output.repeats for output in self.outputs), default=0)
        then, frames_in_then, frames_out_then = self._last
        elapsed = max(now - then, 1e-9)
        self._last = (now, self.source.frames, frames_out)
        latencies = [ms for output in self.outputs for ms in list(output.latencies_ms)[-50:]]
        latency = median_and_p95(latencies)
        return StreamStats(
            uptime_s=round(now - self._started, 2),
            frames_in=self.source.frames,
            frames_out=frames_out,
            fps_in=round((self.source.frames - frames_in_then) / elapsed, 2),
            fps_out=round((frames_out - frames_out_then) / elapsed, 2),
            dropped=self.chain.newest.dropped if self.chain.newest else 0,
            latency_ms_median=round(latency[0], 1) if latency else None,
            latency_ms_p95=round(latency[1], 1) if latency else None,
            reconnects_in=self.source.reconnects,
            outputs=[
                {"target": o.target, "connected": o.connected, "stalled": o.stalled, "frames": o.frames,
                 "repeats": o.repeats, "reconnects": o.reconnects, "failed": o.failed is not None}
                for o in self.outputs
            ],
        )  # fmt: skip

    def run(self, stop: threading.Event, on_stats: Callable[[StreamStats], None], every: float = 1.0) -> StreamStats:
        for output in self.outputs:
            output.start()
        next_report = time.monotonic() + every

        def tick() -> None:
            nonlocal next_report
            if stop.is_set() or all(output.failed for output in self.outputs):
                self.chain.stop_event.set()
                self.source.stop_event.set()
            if time.monotonic() >= next_report:
                next_report += every
                on_stats(self.stats())

        with self.fanout:
            self.chain.run(tick)
        if all(output.failed for output in self.outputs):
            raise OutputError("no output could be written: " + "; ".join(str(o.failed) for o in self.outputs))
        return self.stats()


def write_stats_json(stats: StreamStats, path: Path) -> None:
    write_json(path, dataclasses.asdict(stats))
