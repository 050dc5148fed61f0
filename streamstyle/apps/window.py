"""`streamstyle webcam`: a live window with the stylized feed, and keys to play with it.

The chain is source → model → [motion → smooth] → sink, live: the model always takes the newest captured frame
(older ones are dropped, never queued), and the window shows each result as soon as it is ready. OpenCV's
window lives in the caller's thread; the chain runs beside it."""

from __future__ import annotations

import collections
import contextlib
import queue
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from streamstyle.apps.display import screen_size
from streamstyle.apps.style_deck import StyleDeck
from streamstyle.core.errors import OutputError
from streamstyle.core.frames import Frame
from streamstyle.core.roles import Sink
from streamstyle.core.settings import EncoderSettings, SizeSettings, TemporalSettings
from streamstyle.core.stats import median_and_p95
from streamstyle.io.images import write_image
from streamstyle.io.live_audio import AudioBacklog, AudioChunk
from streamstyle.io.live_source import LiveSource
from streamstyle.io.live_writer import LiveWriter
from streamstyle.processing.chain import Chain, NewestSlot
from streamstyle.processing.stages import chain_stages, resized

WINDOW = "streamstyle"
_ESCAPE = 27
_STRENGTH_STEP = 0.1
# The window may take at most this share of the screen; larger frames are shown scaled down.
_SCREEN_SHARE = 0.9


@dataclass
class WindowReport:
    shown: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)  # capture to display, per shown frame
    dropped: int = 0  # captured frames skipped because the model was busy with a newer one's predecessor
    reconnects: int = 0

    def summary(self) -> str:
        line = f"shown {self.shown} frames in {self.seconds:.1f} s ({self.shown / max(self.seconds, 1e-9):.1f} fps)"
        latency = median_and_p95(self.latencies_ms)
        if latency:
            line += f"; latency capture to display: median {latency[0]:.0f} ms, p95 {latency[1]:.0f} ms"
        return line + f"; dropped {self.dropped} stale frames; reconnects {self.reconnects}"


class LiveWindow(Sink[AudioChunk]):
    """The live preview: runs the chain beside OpenCV's window loop and answers the keys. It is its chain's sink:
    each frame goes to the window's thread and, while recording, to the recording. Import this module (or cv2)
    before PyAV in a process that opens it: with PyAV's libxcb loaded first, OpenCV's window never opens."""

    def __init__(self, source: LiveSource, deck: StyleDeck, *, sizes: SizeSettings, temporal: TemporalSettings,
                 save_dir: Path, encoder: EncoderSettings, overlay: bool = True, audio: bool = True,
                 notify: Callable[[str], None] = print) -> None:  # fmt: skip
        self.source = source
        self.deck = deck
        self.sizes = sizes
        self.temporal = temporal
        self.save_dir = save_dir
        self.encoder = encoder
        self.overlay = overlay
        self.notify = notify
        self.smoothing = temporal.mode != "off"
        self.split = False
        self.recording = False
        self.report = WindowReport()
        self._results: NewestSlot[Frame] = NewestSlot()
        self._recorder: LiveWriter | None = None
        # The source's audio, for recordings: it comes ahead of the pictures, so a little is kept while idle.
        self._audio = AudioBacklog()
        if audio:
            source.on_audio = self.write_audio
        self._saved = 0
        self._shown_at: collections.deque[float] = collections.deque(maxlen=30)
        self._errors: list[BaseException] = []
        stages = chain_stages(deck.current, sizes, temporal, live=True, enabled=lambda: self.smoothing)
        self.chain = Chain(source, stages, self, queue_size=1, live=True)

    def write(self, frame: Frame) -> None:
        self._record(frame)
        self._results.put(frame)

    def write_audio(self, audio: AudioChunk) -> None:
        self._audio.append(audio)

    def close(self) -> None:
        """Finish the recording, if one is running."""
        self._stop_recording()

    def _record(self, frame: Frame) -> None:
        """Opens, feeds and closes the recording in the sink's thread, as the keys ask."""
        try:
            if self.recording and self._recorder is None:
                self._recorder = LiveWriter(self._new_path(".mp4"), self.encoder, audio=self.source.audio_format)
                self.notify(f"recording to {self._recorder.target}")
            elif not self.recording and self._recorder is not None:
                self._stop_recording()
            if self._recorder is not None:
                self._recorder.write(frame)
                self._audio.write_into(self._recorder)
        except OutputError as error:
            self.notify(f"recording stopped: {error}")
            if self._recorder is not None:
                self._recorder.discard()
            self._recorder, self.recording = None, False

    def _stop_recording(self) -> None:
        recorder, self._recorder = self._recorder, None
        if recorder is None:
            return
        recorder.close()
        self.notify(f"saved {recorder.target} ({recorder.frames} frames)")

    def _new_path(self, suffix: str) -> Path:
        """A name no file has yet: another window saving into the same folder in the same second is not lost."""
        while True:
            self._saved += 1
            path = self.save_dir / f"streamstyle-{time.strftime('%Y%m%d-%H%M%S')}-{self._saved:03d}{suffix}"
            if not path.exists():
                return path

    def _run_chain(self) -> None:
        try:
            self.chain.run()
        except BaseException as error:  # re-raised in the window's thread
            self._errors.append(error)

    def run(self) -> WindowReport:
        width, height = screen_size()
        self._screen = int(width * _SCREEN_SHARE), int(height * _SCREEN_SHARE)
        self.source.notify = self.notify
        runner = threading.Thread(target=self._run_chain, name="streamstyle-chain", daemon=True)
        cv2.namedWindow(WINDOW, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
        start = time.monotonic()
        runner.start()
        try:
            self._loop(runner)
        except KeyboardInterrupt:
            self.notify("interrupted: closing")  # Ctrl-C in the terminal quits like q does
        finally:
            self.chain.stop_event.set()
            self.source.stop_event.set()
            runner.join(timeout=15)
            with contextlib.suppress(cv2.error):
                cv2.destroyAllWindows()
            self.close()
        self.report.seconds = time.monotonic() - start
        self.report.dropped = self.chain.newest.dropped if self.chain.newest else 0
        self.report.reconnects = self.source.reconnects
        if self._errors:
            raise self._errors[0]
        return self.report

    def _loop(self, runner: threading.Thread) -> None:
        while runner.is_alive():
            try:
                frame = self._results.get(timeout=0.01)
            except queue.Empty:
                frame = None
            if frame is not None:
                cv2.imshow(WINDOW, self._compose(frame))
            key = cv2.waitKey(1)
            if frame is not None:
                shown = time.monotonic()
                self._shown_at.append(shown)
                self.report.latencies_ms.append((shown - self.source.capture_time(frame)) * 1000)
                self.report.shown += 1
                self._last = frame
            if key != -1 and not self._on_key(key & 0xFF):
                return
            if self.deck.failure:
                failure, self.deck.failure = self.deck.failure, None
                self.notify(f"style not changed: {failure}")
            if self.report.shown and cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
                return  # the window was closed

    def _compose(self, frame: Frame) -> np.ndarray:
        """The picture at its output size, or less where the screen is smaller, beside the input when split: each
        scaled once, straight from the size it comes at."""
        height, width = frame.shape
        panes = 2 if self.split else 1
        scale = min(1.0, self._screen[0] / (width * panes), self._screen[1] / height)
        shape = (round(height * scale), round(width * scale))
        image = resized(frame.image, shape)
        if self.split:
            image = np.concatenate([resized(frame.original, shape), image], axis=1)
        shown = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if self.overlay:
            self._draw_overlay(shown)
        return shown

    def _draw_overlay(self, image: np.ndarray) -> None:
        fps = (len(self._shown_at) - 1) / (self._shown_at[-1] - self._shown_at[0]) if len(self._shown_at) > 2 else 0
        latency = statistics.median(self.report.latencies_ms[-30:]) if self.report.latencies_ms else 0.0
        smoothing = self.temporal.mode if self.smoothing else "off"
        loading = "  (loading)" if self.deck.loading else ""
        lines = [f"{self.deck.label}  strength {self.deck.strength:.1f}{loading}",
                 f"{fps:.1f} fps  latency {latency:.0f} ms  smoothing {smoothing}"]  # fmt: skip
        if self.recording:
            lines.append("REC")
        # Text on a darkened band, readable over any picture.
        band = image[: 12 + 22 * len(lines)]
        band[:] = band // 2
        for row, text in enumerate(lines):
            colour = (64, 64, 255) if text == "REC" else (255, 255, 255)
            cv2.putText(image, text, (10, 24 + 22 * row), cv2.FONT_HERSHEY_SIMPLEX, 0.55, colour, 1, cv2.LINE_AA)

    def _on_key(self, key: int) -> bool:
        """Act on a key; False means quit."""
        character = chr(key)
        if key == _ESCAPE or character == "q":
            return False
        if character in "np":
            self.deck.step_builtin(1 if character == "n" else -1)
            self.notify(f"style: {self.deck.label}")
        elif character in "][":
            if self.deck.step_painting(1 if character == "]" else -1):
                self.notify(f"style: {self.deck.label}")
            else:
                self.notify("no paintings to cycle through: give --style-dir FOLDER")
        elif character in "+=-_":
            self.deck.step_strength(_STRENGTH_STEP if character in "+=" else -_STRENGTH_STEP)
            self.notify(f"strength: {self.deck.strength:.1f}")
        elif character == "t":
            self.smoothing = not self.smoothing and self.temporal.mode != "off"
            self.notify(f"smoothing: {self.temporal.mode if self.smoothing else 'off'}")
        elif character == "v":
            self.split = not self.split
        elif character == "o":
            self.overlay = not self.overlay
        elif character == "c" and self.report.shown:
            path = self._new_path(".png")
            write_image(resized(self._last.image, self._last.shape), path)
            self.notify(f"saved {path}")
        elif character == "r":
            self.recording = not self.recording
        return True
