"""`streamstyle webcam` in a real window on a real X server (Xvfb), driven by a real-time paced FFmpeg source, with
keys sent by xdotool and the window read back by screen capture."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

from streamstyle.io.images import read_image

from .conftest import SAMPLES, STARTUP_S, reporting, takes_ctrl_c, wait_until
from .display import find_window, map_again, screenshot, send_key, virtual_display
from .media import difference, live_model_output
from .rtsp.server import Publisher, RtspRelay, relay_unavailable

CHELSEA = SAMPLES / "photos" / "skimage_chelsea.png"  # 451x300: an odd width on purpose
# The photo as a live camera: looped for ever, 10 frames a second, paced in real time by FFmpeg's realtime filter.
CAMERA = f"movie={CHELSEA}:loop=0,setpts=N/(10*TB),realtime"
# The same with a microphone: a 440 Hz tone, also in real time.
CAMERA_AND_MICROPHONE = f"{CAMERA}[out0];sine=frequency=440:sample_rate=48000,arealtime[out1]"
MAX_SIZE = 128
pytestmark = [pytest.mark.slow, pytest.mark.display]
# What the app must answer within once it runs (a key, closing, saving a recording): a bound for a hang, not a
# speed; a model step at MAX_SIZE takes milliseconds, closing a few seconds on a machine shared with CPU hogs.
REACTION_S = 90.0
# Screenshots (4 a second) without the expected picture before the window is mapped again (see map_again).
_MAP_AGAIN_EVERY = 40


@pytest.fixture(scope="module")
def display():
    with virtual_display() as name:
        yield name


def webcam(display: str | None, *args: str) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if key != "DISPLAY"}
    if display:
        env["DISPLAY"] = display
    command = [sys.executable, "-m", "streamstyle.cli", "webcam", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=takes_ctrl_c)  # fmt: skip


def wait_for_window(display: str, shown: Callable[[], bool], seconds: float, what: str) -> None:
    """Wait for `shown()`, mapping the window again every _MAP_AGAIN_EVERY tries that fail (see map_again)."""
    tries = 0

    def shown_or_mapped_again() -> bool:
        nonlocal tries
        if shown():
            return True
        tries += 1
        if tries % _MAP_AGAIN_EVERY == 0:
            map_again(display)
        return False

    wait_until(shown_or_mapped_again, seconds, what)


def wait_to_show(display: str, expected: np.ndarray, seconds: float, what: str, tolerance: float = 3.0) -> None:
    """Wait for the window to show `expected`; a timeout says how far the screen was from it, and whether a window
    was there at all, so that a failure on a busy machine tells a slow start from a wrong picture."""
    height, width = expected.shape[:2]
    differences: list[float] = []

    def shows() -> bool:
        differences.append(difference(screenshot(display, width, height), expected))
        return differences[-1] < tolerance

    try:
        wait_for_window(display, shows, seconds, what)
    except AssertionError as error:
        window = "a window open" if find_window(display) else "no window"
        raise AssertionError(f"{error}: {window}, last differences {[round(d, 1) for d in differences[-5:]]}, "
                             f"{len(differences)} screenshots") from None  # fmt: skip


def test_window_shows_the_stylized_feed_and_answers_the_keys(display, tmp_path):
    photo = read_image(CHELSEA)
    style7, style8 = live_model_output(photo, "7", MAX_SIZE), live_model_output(photo, "8", MAX_SIZE)
    assert difference(style7, photo) > 20 and difference(style8, style7) > 10  # the checks below can tell them apart
    app = webcam(display, "--source", CAMERA, "--source-format", "lavfi", "--style", "7", "--max-size", str(MAX_SIZE),
                 "--temporal", "off", "--no-overlay", "--save-dir", str(tmp_path))  # fmt: skip
    try:
        with reporting(app):
            wait_to_show(display, style7, STARTUP_S, "the window to show style 7")
            assert difference(screenshot(display, *photo.shape[1::-1]), photo) > 20

            send_key(display, "n")
            wait_to_show(display, style8, REACTION_S, "the n key to switch to style 8")

            send_key(display, "c")
            snapshot = wait_until(lambda: sorted(tmp_path.glob("streamstyle-*.png")), REACTION_S, "a snapshot")[0]
            assert difference(read_image(snapshot), style8) < 1.0

            frames = [frame.to_ndarray(format="rgb24") for frame in record(display, tmp_path)[0]]
            assert len(frames) >= 5
            assert frames[-1].shape == (300, 450, 3)  # x264 needs even sizes
            assert difference(frames[-1], style8[:, :450]) < 8  # the stylized frames, through the video encoder

            send_key(display, "v")
            side_by_side = np.concatenate([photo, style8], axis=1)
            wait_to_show(display, side_by_side, REACTION_S, "the split view")

            send_key(display, "q")
            _, errors = app.communicate(timeout=REACTION_S)
    finally:
        app.kill()
        app.wait()
    assert app.returncode == 0, errors
    latency = re.search(r"latency capture to display: median (\d+) ms", errors)
    assert latency, errors
    print(f"capture to display latency, median: {latency.group(1)} ms")


def record(display: str, folder: Path, seconds: float = 2.0) -> tuple[list[av.VideoFrame], list[av.AudioFrame]]:
    """Press r, wait, press r again; the pictures and sound of the recording saved into `folder`."""
    send_key(display, "r")
    wait_until(lambda: list(folder.glob(".*.partial.mp4")), REACTION_S, "the recording to start")
    time.sleep(seconds)
    send_key(display, "r")
    recording = wait_until(lambda: sorted(folder.glob("streamstyle-*.mp4")), REACTION_S, "the recording to be saved")[0]
    with av.open(str(recording)) as container:
        pictures = list(container.decode(video=0))
    with av.open(str(recording)) as container:
        sound = list(container.decode(audio=0)) if container.streams.audio else []
    return pictures, sound


def test_recording_keeps_the_sources_sound(display, tmp_path):
    app = webcam(display, "--source", CAMERA_AND_MICROPHONE, "--source-format", "lavfi", "--style", "7",
                 "--max-size", str(MAX_SIZE), "--temporal", "off", "--save-dir", str(tmp_path))  # fmt: skip
    try:
        with reporting(app):
            wait_until(lambda: find_window(display), STARTUP_S, "the window to open")
            pictures, sound = record(display, tmp_path)
            send_key(display, "q")
            _, printed = app.communicate(timeout=REACTION_S)
    finally:
        app.kill()
        app.wait()
    assert app.returncode == 0
    assert len(pictures) >= 2, printed
    # The microphone was recorded too, from the first picture to the last, and beyond it by the sound that came
    # in while the last picture was in the model: the capture-to-display latency the app measured (its p95).
    latency_s = float(re.search(r"p95 (\d+) ms", printed).group(1)) / 1000
    heard = sum(chunk.samples for chunk in sound) / 48000
    seen = float((pictures[-1].pts - pictures[0].pts) * pictures[0].time_base)
    assert seen - 0.05 < heard < seen + 0.3 + latency_s, (heard, seen, latency_s)
    assert max(np.abs(chunk.to_ndarray()).max() for chunk in sound) > 0.1


def test_no_display_is_one_line_and_status_2(tmp_path):
    app = webcam(None, "--source", str(CHELSEA), "--style", "7")
    _, errors = app.communicate(timeout=STARTUP_S)
    assert app.returncode == 2
    assert errors.strip().splitlines() == ["streamstyle: error: no display: DISPLAY is not set (run it in a desktop "
                                           "session, or under xvfb-run)"]  # fmt: skip


def test_display_nobody_serves_is_one_line_and_status_2():
    app = webcam(":987", "--source", str(CHELSEA), "--style", "7")
    _, errors = app.communicate(timeout=STARTUP_S)
    assert app.returncode == 2
    assert errors.strip() == "streamstyle: error: cannot open display :987: no X server answers there"


def test_missing_camera_is_one_line_and_status_2(display):
    app = webcam(display, "--camera", "7", "--style", "7")
    _, errors = app.communicate(timeout=STARTUP_S)
    assert app.returncode == 2
    assert errors.strip() == "streamstyle: error: no camera at /dev/video7"


@pytest.mark.skipif(relay_unavailable() is not None, reason=str(relay_unavailable()))
def test_camera_that_disappears_is_retried_then_the_window_closes(display):
    coffee = SAMPLES / "photos" / "skimage_coffee.png"
    # The camera sends until the relay stops, however long the app takes to show its first frames.
    seconds = STARTUP_S + REACTION_S
    with RtspRelay(paths=("cam",)) as relay, Publisher(relay.publish_url("cam"), clip=coffee, seconds=seconds,
                                                       barcode=False, fps=10):  # fmt: skip
        app = webcam(display, "--camera", relay.read_url("cam"), "--style", "7", "--max-size", str(MAX_SIZE),
                     "--no-overlay")  # fmt: skip
        try:
            with reporting(app):
                shown = lambda: screenshot(display, 600, 400).mean() > 20  # noqa: E731
                wait_for_window(display, shown, STARTUP_S, "the camera's first frames")
            relay.stop()  # the camera's server is gone: end of stream, then connections refused
            _, errors = app.communicate(timeout=REACTION_S)
        finally:
            app.kill()
            app.wait()
    assert app.returncode == 2, errors
    lines = errors.strip().splitlines()
    assert any("lost (ended); retrying in 0.5 s" in line for line in lines), errors
    assert any("cannot open" in line and "retrying" in line for line in lines), errors
    assert lines[-1].startswith(f"streamstyle: error: {relay.read_url('cam')}: cannot open") and "gave up" in lines[-1]


def test_ctrl_c_twice_closes_at_once_without_an_abort(display):
    """Two Ctrl-Cs close the window: the first as q does; a second one that comes while it closes (a terminal's
    process group can get two at once) stops the process at once with status 130, never with a C++ abort from
    threads still inside the model and the flow. Python folds two signals that come before it handles the first
    into one, so either ending is right; an abort never is."""
    style7 = live_model_output(read_image(CHELSEA), "7", MAX_SIZE)
    for _ in range(2):
        wait_until(lambda: find_window(display) is None, REACTION_S, "the last window to be gone")
        app = webcam(display, "--source", CAMERA, "--source-format", "lavfi", "--style", "7", "--max-size",
                     str(MAX_SIZE), "--temporal", "flow", "--no-overlay")  # fmt: skip
        try:
            with reporting(app):
                wait_to_show(display, style7, STARTUP_S, "the window to show the stylized feed")
            app.send_signal(signal.SIGINT)
            time.sleep(0.01)
            app.send_signal(signal.SIGINT)
            _, errors = app.communicate(timeout=REACTION_S)
        finally:
            app.kill()
        assert "terminate called" not in errors and "interrupted" in errors, errors
        last_line = errors.strip().splitlines()[-1]
        if app.returncode == 130:
            assert last_line == "streamstyle: interrupted"
        else:
            assert app.returncode == 0 and last_line.startswith("shown "), errors
