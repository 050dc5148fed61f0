"""A real X display for window tests: Xvfb, screenshots read from its framebuffer file, keys sent with xdotool."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

SCREEN = (1280, 720)
_FRAMEBUFFERS: dict[str, Path] = {}  # display name -> its screen as a file, for screenshot()


def require_display_tools() -> None:
    missing = [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"window tests need {' and '.join(missing)} (apt-get install xvfb xdotool; .ci/run does)")


@contextlib.contextmanager
def virtual_display() -> Iterator[str]:
    """An Xvfb server on a free display number, e.g. ':3'; stopped on exit. It never resets (an X server resets
    when its last client leaves, and refuses connections meanwhile): the tests' own xdotool calls come and go
    between the app's, as a desktop's clients never all do."""
    require_display_tools()
    read_end, write_end = os.pipe()
    width, height = SCREEN
    screen_folder = tempfile.TemporaryDirectory(prefix="xvfb-screen-")
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{width}x{height}x24", "-fbdir", screen_folder.name,
         "-nolisten", "tcp", "-noreset"],
        pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write_end)
    name = ""
    try:
        ready, _, _ = select.select([read_end], [], [], 15)
        if not ready:
            raise RuntimeError("Xvfb did not start within 15 s")
        name = ":" + os.read(read_end, 64).decode().strip()
        _FRAMEBUFFERS[name] = Path(screen_folder.name) / "Xvfb_screen0"
        yield name
    finally:
        _FRAMEBUFFERS.pop(name, None)
        os.close(read_end)
        server.terminate()
        server.wait(timeout=10)
        screen_folder.cleanup()


def screenshot(display: str, width: int, height: int) -> np.ndarray:
    """The top-left width x height of the screen as RGB (there is no window manager: windows open at 0,0), read
    from Xvfb's memory-mapped framebuffer: no X client, so nothing to clash with OpenCV's libxcb or to fail on X."""
    image = _framebuffer(_FRAMEBUFFERS[display])
    return np.ascontiguousarray(image[:height, :width])


def _framebuffer(path: Path) -> np.ndarray:
    """The screen in an XWD file (Xvfb -fbdir: 32 bits a pixel, least significant byte first, so B, G, R, unused).
    The pixels are the file's tail: the colour count in the header before them changes while a client installs a
    colormap, so an offset computed from it can be torn."""
    data = path.read_bytes()
    header = struct.unpack(">25I", data[:100])
    width, height, bytes_per_line = header[4], header[5], header[12]
    rows = np.frombuffer(data, np.uint8, height * bytes_per_line, len(data) - height * bytes_per_line)
    rows = rows.reshape(height, bytes_per_line)
    return rows[:, : width * 4].reshape(height, width, 4)[:, :, 2::-1]


def find_window(display: str, window_name: str = "streamstyle") -> str | None:
    """The X id of the window with this title, or None while there is none."""
    found = _xdotool(display, "search", "--name", f"^{window_name}$")
    return next(iter(found.stdout.split()), None)


def map_again(display: str, window_name: str = "streamstyle") -> None:
    """Unmap and map the window, as a window manager does when it takes a window over. OpenCV's Qt 5 can miss the
    MapNotify of its window on a bare X server (no window manager) while the CPU is saturated; it then never paints
    it (seen 1 launch in 4 beside four busy loops: the window there at 0,0 at its size, black, the app showing
    frames); a second map is one it sees."""
    window = find_window(display, window_name)
    if window:
        _xdotool(display, "windowunmap", "--sync", window, "windowmap", "--sync", window)


def send_key(display: str, key: str, window_name: str = "streamstyle") -> None:
    window = find_window(display, window_name)
    # xdotool complains on stderr that the X server has no focused window (there is no window manager): harmless.
    _xdotool(display, "key", "--window", window, key).check_returncode()


def _xdotool(display: str, *arguments: str) -> subprocess.CompletedProcess:
    """Run xdotool on this display, its output kept."""
    return subprocess.run(["xdotool", *arguments], env={**os.environ, "DISPLAY": display}, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
