"""The screen a window opens on, asked of the X server before OpenCV is."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

from streamstyle.core.errors import DisplayError

_CONNECTIONS: dict[str, int] = {}  # display → the connection kept open (see screen_size)


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
    connection = _CONNECTIONS.get(display) or xlib.XOpenDisplay(display.encode())
    if not connection:
        raise DisplayError(f"cannot open display {display}: no X server answers there")
    screen = xlib.XDefaultScreen(connection)
    # The connection stays open for the life of the process: an X server with no client left resets itself
    # (Xvfb, as xvfb-run starts it, does), and while it resets OpenCV's own connection, coming right after this
    # one, fails and aborts the process.
    _CONNECTIONS[display] = connection
    return xlib.XDisplayWidth(connection, screen), xlib.XDisplayHeight(connection, screen)
