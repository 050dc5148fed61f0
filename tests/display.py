"""A real X display for window tests: Xvfb, screenshots taken with FFmpeg's x11grab, keys sent with xdotool."""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest

SCREEN = (1280, 720)


def require_display_tools() -> None:
    missing = [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"window tests need {' and '.join(missing)} (apt-get install xvfb xdotool; .ci/run does)")


@contextlib.contextmanager
def virtual_display() -> Iterator[str]:
    """An Xvfb server on a free display number, e.g. ':3'; stopped on exit."""
    require_display_tools()
    read_end, write_end = os.pipe()
    width, height = SCREEN
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
        pass_fds=(write_end,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 15)
        if not ready:
            raise RuntimeError("Xvfb did not start within 15 s")
        yield ":" + os.read(read_end, 64).decode().strip()
    finally:
        os.close(read_end)
        server.terminate()
        server.wait(timeout=10)


_GRAB = """
import sys, av
display, width, height = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
options = {"video_size": f"{width}x{height}", "draw_mouse": "0"}
with av.open(f"{display}.0+0,0", format="x11grab", options=options) as grab:
    sys.stdout.buffer.write(next(grab.decode(video=0)).to_ndarray(format="rgb24").tobytes())
"""


def screenshot(display: str, width: int, height: int) -> np.ndarray:
    """The top-left width x height of the screen as RGB (there is no window manager: windows open at 0,0).
    Grabbed by FFmpeg's x11grab in a process of its own: its libxcb and the one OpenCV bundles clash in one
    process (a segfault, seen in the full test run)."""
    grab = subprocess.run([sys.executable, "-c", _GRAB, display, str(width), str(height)], capture_output=True,
                          timeout=120, check=True)  # fmt: skip
    return np.frombuffer(grab.stdout, np.uint8).reshape(height, width, 3)


def find_window(display: str, window_name: str = "streamstyle") -> str | None:
    """The X id of the window with this title, or None while there is none."""
    env = {**os.environ, "DISPLAY": display}
    found = subprocess.run(["xdotool", "search", "--name", f"^{window_name}$"], env=env, capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    return next(iter(found.stdout.split()), None)


def send_key(display: str, key: str, window_name: str = "streamstyle") -> None:
    env = {**os.environ, "DISPLAY": display}
    window = find_window(display, window_name)
    # xdotool complains on stderr that the X server has no focused window (there is no window manager): harmless.
    subprocess.run(["xdotool", "key", "--window", window, key], env=env, check=True, timeout=60, capture_output=True)
