"""`streamstyle webcam`: a live window with the stylized feed, and keys to play with it.

The chain is source → model → [motion → smooth] → sink, live: the model always takes the newest captured frame
(older ones are dropped, never queued), and the window shows each result as soon as it is ready. OpenCV's
window lives in the caller's thread; the chain runs beside it."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import os
import queue
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .errors import DisplayError, InputError, OutputError
from .images import IMAGE_SUFFIXES, write_image
from .live import AUDIO_BACKLOG, AudioChunk, LiveSource, LiveWriter, median_and_p95
from .models.dumoulin import NUM_STYLES
from .pipeline import Chain, NewestSlot
from .stages import Frame, SizeSettings, TemporalSettings, live_stages
from .styles import BuiltinStyle, parse_style
from .stylizer import Stylizer
from .video import EncoderSettings

WINDOW = "streamstyle"
KEY_MAP = (
    ("n / p", "next / previous built-in style"),
    ("] / [", "next / previous painting from --style-dir"),
    ("+ / -", "more / less style (strength, steps of 0.1)"),
    ("t", "temporal smoothing on / off"),
    ("v", "split view: original | stylized"),
    ("o", "overlay (fps, latency, style) on / off"),
    ("c", "save a snapshot PNG of the stylized frame"),
    ("r", "start / stop recording (same encoder as `streamstyle file`)"),
    ("q / Esc", "quit; closing the window quits too"),
)
_ESCAPE = 27
_STRENGTH_STEP = 0.1
# The window may take at most this share of the screen; larger frames are shown scaled down.
_SCREEN_SHARE = 0.9


def key_help() -> str:
    return "\n".join(f"  {keys:<8} {action}" for keys, action in KEY_MAP)


def screen_size() -> tuple[int, int]:
    """(width, height) of the screen the window opens on. Raises DisplayError when there is none: OpenCV's
    window would abort the whole process there, which no Python code can catch."""
    if sys.platform in ("win32", "darwin"):
        return 1920, 1080  # the window system is always there; the size is only a bound for scaling
    display = os.environ.get("DISPLAY")
    if not display:
        raise DisplayError("no display: DISPLAY is not set (run it in a desktop session, or under xvfb-run)")
    library = ctypes.util.find_library("X11")
    if library is None:
        return 1920, 1080  # cannot ask the X server; OpenCV's own client library will
    xlib = ctypes.cdll.LoadLibrary(library)
    xlib.XOpenDisplay.restype = ctypes.c_void_p
    xlib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    xlib.XDefaultScreen.argtypes = xlib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    xlib.XDisplayWidth.argtypes = xlib.XDisplayHeight.argtypes = [ctypes.c_void_p, ctypes.c_int]
    connection = xlib.XOpenDisplay(display.encode())
    if not connection:
        raise DisplayError(f"cannot open display {display}: no X server answers there")
    screen = xlib.XDefaultScreen(connection)
    size = xlib.XDisplayWidth(connection, screen), xlib.XDisplayHeight(connection, screen)
    xlib.XCloseDisplay(connection)
    return size


class StyleDeck:
    """The styles the keys move through: the built-in ones and the paintings of --style-dir, at the strength the
    keys set. Each Stylizer is built when first asked for, in the model's thread, and kept."""

    def __init__(self, first: Stylizer, paintings: list[Path]):
        self.first = first
        self.paintings = paintings
        self.spec: str | None = None  # None: the first stylizer's style
        self.strength = first.strength
        self._built: dict[tuple[str | None, float], Stylizer] = {(None, first.strength): first}

    @property
    def label(self) -> str:
        return (self.first.style if self.spec is None else parse_style(self.spec)).label

    def current(self) -> Stylizer:
        key = (self.spec, self.strength)
        if key not in self._built:
            runtime = self.first.runtime
            style = self.first.style if self.spec is None else self.spec
            model = self.first.model.name if self.spec is None else None
            self._built[key] = Stylizer(style, model, self.strength, self.first.preserve_color, str(runtime.device),
                                        runtime.precision, runtime.channels_last, runtime.compiled)  # fmt: skip
        return self._built[key]

    def step_builtin(self, step: int) -> None:
        style = parse_style(self.spec) if self.spec is not None else self.first.style
        singles = [i for i, w in enumerate(style.weights) if w == 1.0] if isinstance(style, BuiltinStyle) else []
        index = (singles[0] + step) % NUM_STYLES if singles else 0
        self.spec = str(index)

    def step_painting(self, step: int) -> bool:
        if not self.paintings:
            return False
        names = [str(p) for p in self.paintings]
        index = names.index(self.spec) + step if self.spec in names else (0 if step > 0 else -1)
        self.spec = names[index % len(names)]
        return True

    def step_strength(self, step: float) -> None:
        self.strength = round(min(1.0, max(0.0, self.strength + step)), 2)


def paintings_in(folder: Path | None) -> list[Path]:
    if folder is None:
        return []
    if not folder.is_dir():
        raise InputError(f"--style-dir is not a folder: {folder}")
    paintings = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paintings:
        raise InputError(f"no images in --style-dir {folder}")
    return paintings


@dataclass
class WebcamReport:
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


class WebcamWindow:
    """The live preview: runs the chain beside OpenCV's window loop and answers the keys."""

    def __init__(self, source: LiveSource, deck: StyleDeck, sizes: SizeSettings, temporal: TemporalSettings,
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
        self.report = WebcamReport()
        self._results = NewestSlot()
        self._recorder: LiveWriter | None = None
        # The source's audio, for recordings: it comes ahead of the pictures, so a little is kept while idle.
        self._audio: collections.deque[AudioChunk] = collections.deque(maxlen=AUDIO_BACKLOG)
        if audio:
            source.on_audio = self._audio.append
        self._saved = 0
        self._shown_at: collections.deque[float] = collections.deque(maxlen=30)
        self._errors: list[BaseException] = []
        stages = live_stages(deck.current, sizes, temporal, lambda: self.smoothing)
        self.chain = Chain(source, stages, self._sink, queue_size=1, live=True)

    def _sink(self, items: Iterator[object]) -> None:
        for frame in items:
            self._record(frame)
            self._results.put(frame)

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
                while self._audio:
                    self._recorder.write_audio(self._audio.popleft())
        except OutputError as error:
            self.notify(f"recording stopped: {error}")
            if self._recorder is not None:
                self._recorder.discard()
            self._recorder, self.recording = None, False

    def _stop_recording(self) -> None:
        recorder, self._recorder = self._recorder, None
        recorder.close()
        self.notify(f"saved {recorder.target} ({recorder.frames} frames)")

    def _new_path(self, suffix: str) -> Path:
        self._saved += 1
        return self.save_dir / f"streamstyle-{time.strftime('%Y%m%d-%H%M%S')}-{self._saved:03d}{suffix}"

    def _run_chain(self) -> None:
        try:
            self.chain.run()
        except BaseException as error:  # re-raised in the window's thread
            self._errors.append(error)

    def run(self) -> WebcamReport:
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
            if self._recorder is not None:
                self._stop_recording()
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
            if self.report.shown and cv2.getWindowProperty(WINDOW, cv2.WND_PROP_VISIBLE) < 1:
                return  # the window was closed

    def _compose(self, frame: Frame) -> np.ndarray:
        image = frame.image
        if self.split:
            height, width = image.shape[:2]
            original = cv2.resize(frame.original, (width, height), interpolation=cv2.INTER_AREA)
            image = np.concatenate([original, image], axis=1)
        height, width = image.shape[:2]
        scale = min(1.0, self._screen[0] / width, self._screen[1] / height)
        if scale < 1.0:
            image = cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
        shown = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        if self.overlay:
            self._draw_overlay(shown)
        return shown

    def _draw_overlay(self, image: np.ndarray) -> None:
        fps = (len(self._shown_at) - 1) / (self._shown_at[-1] - self._shown_at[0]) if len(self._shown_at) > 2 else 0
        latency = statistics.median(self.report.latencies_ms[-30:]) if self.report.latencies_ms else 0.0
        smoothing = self.temporal.mode if self.smoothing else "off"
        lines = [f"{self.deck.label}  strength {self.deck.strength:.1f}",
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
            write_image(self._last.image, path)
            self.notify(f"saved {path}")
        elif character == "r":
            self.recording = not self.recording
        return True
