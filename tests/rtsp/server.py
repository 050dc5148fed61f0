"""Run the RTSP relay and a clip publisher as subprocesses, so tests exercise real RTSP sessions on loopback.

The relay needs Debian's /usr/bin/python3 with GStreamer's RTSP server (see relay.py); `relay_unavailable()`
says why it cannot run, for pytest.skip. The publisher is a subprocess too, so a test can SIGKILL it mid-stream.
Every wait here is bounded, and every process is killed on exit.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Self

import av

from ..conftest import STARTUP_S
from .publish import DEFAULT_CLIP, read_stamp

REPO = Path(__file__).resolve().parents[2]
RELAY_SCRIPT = Path(__file__).with_name("relay.py")
SYSTEM_PYTHON = "/usr/bin/python3"
# Low-delay reader options: without nobuffer/low_delay the first frames arrive in a burst about 1 s late.
READER_OPTIONS = {"rtsp_transport": "tcp", "fflags": "nobuffer", "flags": "low_delay"}
# Opening a reader waits for the relay to have the first frames of every track, then probes until a keyframe:
# 3-4 s on an idle machine (measured), and a keyframe may be seconds apart when a busy machine publishes slowly.
OPEN_S = 30.0
_PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstRtspServer', '1.0');"
    "from gi.repository import Gst, GstRtspServer; Gst.init(None);"
    "missing = [e for e in ('h264parse', 'rtph264depay', 'rtph264pay', 'rtpmp4gdepay', 'rtpmp4gpay', 'aacparse',"
    " 'appsrc', 'appsink')"
    " if Gst.ElementFactory.find(e) is None];"
    "assert not missing, 'missing GStreamer elements: ' + ', '.join(missing)"
)


@functools.cache
def relay_unavailable() -> str | None:
    """Why the relay cannot run here (a reason for pytest.skip), or None when it can."""
    if not Path(SYSTEM_PYTHON).exists():
        return f"{SYSTEM_PYTHON} not found"
    try:
        probe = subprocess.run([SYSTEM_PYTHON, "-c", _PROBE], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "probing GStreamer timed out"
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["?"])[-1]
        return (
            f"RTSP relay needs {SYSTEM_PYTHON} with gi + GstRtspServer ({last}); apt-get install python3-gi "
            "gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad"
        )
    return None


class _Lines:
    """Collects a subprocess's stdout lines in a thread, so waiting for one of them can time out."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._pump, args=(process,), daemon=True)
        self._thread.start()

    def _pump(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.lines.append("")  # EOF marker: the process closed stdout
            self._changed.notify_all()

    def wait_for(self, prefix: str, timeout: float) -> str | None:
        """The first line starting with `prefix`; None if stdout closed or `timeout` s passed without one."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((line for line in self.lines if line and line.startswith(prefix)), None)
                remaining = deadline - time.monotonic()
                if found is not None or (self.lines and self.lines[-1] == "") or remaining <= 0:
                    return found
                self._changed.wait(remaining)


def _end(process: subprocess.Popen[str], sig: signal.Signals, grace: float) -> int:
    """Send `sig`, then SIGKILL if the process has not exited after `grace` s; returns its exit status."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            return process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait(5)


class RtspRelay:
    """The GStreamer relay on 127.0.0.1: publish to /NAME, read from /NAME/out.

    `paths` carry H.264 only, `av_paths` H.264 then AAC; a publisher whose tracks do not match is refused.

    `port=0` picks a free port at the first start(); stop() then start() reuses it, like a server restart.
    """

    def __init__(
        self,
        paths: Iterable[str] = ("in",),
        port: int = 0,
        av_paths: Iterable[str] = (),
        start_timeout: float = STARTUP_S,
    ) -> None:
        self.paths, self.av_paths = tuple(paths), tuple(av_paths)
        self.port = port
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[str] | None = None
        self._lines: _Lines | None = None

    @property
    def output(self) -> list[str]:
        """stdout lines of the current (or last) relay process: RTSP_RELAY_PUBLISHER path=in, ..."""
        return list(self._lines.lines) if self._lines else []

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def publish_url(self, path: str = "in") -> str:
        return f"rtsp://127.0.0.1:{self.port}/{path}"

    def read_url(self, path: str = "in") -> str:
        return f"rtsp://127.0.0.1:{self.port}/{path}/out"

    def start(self) -> Self:
        """Start the relay and wait for it to listen; a restart binds the port it had before."""
        if self.running:
            raise RuntimeError("relay already running")
        command = [SYSTEM_PYTHON, str(RELAY_SCRIPT), "--port", str(self.port), "--exit-on-stdin-eof"]
        for path in self.paths:
            command += ["--path", path]
        for path in self.av_paths:
            command += ["--av-path", path]
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self._lines = _Lines(self._process)
        line = self._lines.wait_for("RTSP_RELAY_LISTENING port=", self.start_timeout)
        if line is None:
            self.stop()
            raise RuntimeError(f"RTSP relay did not start within {self.start_timeout} s: {self.output}")
        self.port = int(line.rpartition("=")[2])
        return self

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM (SIGKILL after `grace` s); returns the exit status, None if it was not started."""
        if self._process is None:
            return None
        return _end(self._process, signal.SIGTERM, grace)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class Publisher:
    """`python -m tests.rtsp.publish` in a subprocess: a clip looped in real time to an RTSP URL.

    stop() ends it cleanly (RTSP TEARDOWN); kill() is SIGKILL, an abrupt loss of the publisher mid-stream.
    Frames carry their index as a barcode (publish.stamp) unless `barcode=False`; `audio=True` adds an AAC tone
    track, which only an `av_paths` relay path accepts (a video-only path refuses it: ANNOUNCE 415). `fps` sends
    at that rate instead of the clip's: a still image becomes a steady stream of one picture.
    """

    def __init__(
        self,
        url: str,
        clip: Path = DEFAULT_CLIP,
        seconds: float = 10.0,
        barcode: bool = True,
        audio: bool = False,
        transport: str = "tcp",
        fps: float | None = None,
    ) -> None:
        self.command = [sys.executable, "-m", "tests.rtsp.publish", url, "--clip", str(clip)]
        self.command += ["--seconds", str(seconds), "--transport", transport]
        if fps:
            self.command += ["--fps", str(fps)]
        if not barcode:
            self.command.append("--no-barcode")
        if audio:
            self.command.append("--audio")
        self._process: subprocess.Popen[str] | None = None
        self._lines: _Lines | None = None

    def start(self, started_timeout: float = STARTUP_S) -> Self:
        """Start publishing and wait until the first frame is sent, i.e. the relay has the session."""
        self._process = subprocess.Popen(self.command, cwd=REPO, stdout=subprocess.PIPE, text=True)
        self._lines = _Lines(self._process)
        if self._lines.wait_for("PUBLISH_STARTED", started_timeout) is None:
            self.kill()
            raise RuntimeError(f"publisher ended or sent nothing within {started_timeout} s: {self._lines.lines}")
        return self

    def wait(self, timeout: float) -> tuple[int, str]:
        """(frames sent, error name or 'none') once it ends by itself, e.g. after `seconds` or a relay failure."""
        assert self._lines is not None
        line = self._lines.wait_for("PUBLISH_DONE", timeout)
        if line is None:
            raise TimeoutError(f"publisher still running after {timeout} s, or killed: {self._lines.lines}")
        fields = dict(field.split("=", 1) for field in line.split()[1:])
        return int(fields["frames"]), fields["error"]

    def stop(self, grace: float = 5.0) -> tuple[int, str]:
        """End it cleanly with SIGTERM (it tears the RTSP session down); returns what wait() returns."""
        assert self._process is not None
        _end(self._process, signal.SIGTERM, grace)
        return self.wait(0)

    def kill(self) -> None:
        """SIGKILL: the relay and its readers see the publisher vanish without a TEARDOWN."""
        if self._process is not None:
            _end(self._process, signal.SIGKILL, 5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.kill()


def iter_stamps(url: str, open_s: float = OPEN_S, read_s: float = 3.0, limit_s: float = 60.0) -> Iterator[int]:
    """Barcode index of each frame read from `url`, until EOF (publisher or relay gone) or `limit_s` s."""
    deadline = time.monotonic() + limit_s
    with av.open(url, options=READER_OPTIONS, timeout=(open_s, read_s)) as container:
        for frame in container.decode(video=0):
            yield read_stamp(frame.to_ndarray(format="rgb24"))
            if time.monotonic() > deadline:
                return


def read_stamps(url: str, frames: int, open_s: float = OPEN_S, read_s: float = 3.0, limit_s: float = 60.0) -> list[int]:
    """Barcode indices of up to `frames` frames read from `url` (fewer on EOF or after `limit_s` s)."""
    with contextlib.closing(iter_stamps(url, open_s, read_s, limit_s)) as stamps:
        return list(itertools.islice(stamps, frames))
