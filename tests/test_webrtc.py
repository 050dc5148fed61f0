"""Live over WebRTC against `streamstyle serve`, with real aiortc clients on 127.0.0.1: the camera comes back
stylized with its timestamps, settings change mid-call, a slow model drops frames instead of delaying them, three
calls at once, the token, and bad offers answered clearly while the server goes on."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import av
import numpy as np
import pytest
from aiortc.contrib.media import MediaPlayer

from streamstyle.core.stats import median_and_p95
from streamstyle.engines.fidelity import psnr
from streamstyle.io.images import read_image
from streamstyle.processing.stages import resized
from streamstyle.processing.stylizer import Stylizer

from .conftest import SAMPLES, STARTUP_S
from .web.browser import PageServer
from .web.rtc import (
    CLOCK,
    Call,
    StillCamera,
    ToneMicrophone,
    beep_latencies,
    picture_latencies,
    post_offer,
    sound_behind,
    start_call,
)

pytestmark = [pytest.mark.slow, pytest.mark.network]

FPS = 10
# The server's pipeline holds a frame in the source, the chain's newest slot, the model, the smoothing and the sink
# at most: more than that between frames in and frames out (and not dropped) would be a queue.
IN_FLIGHT = 6
STALL_S = 60.0  # a wait fails when nothing comes back for this long (STARTUP_S until the first picture)


@pytest.fixture(scope="module")
def camera() -> np.ndarray:
    picture = read_image(SAMPLES / "photos" / "skimage_chelsea.png")
    return np.ascontiguousarray(resized(picture, (212, 320)))


@pytest.fixture(scope="module")
def server():
    with PageServer() as running:
        yield running


async def until(count: Callable[[], int], target: int, what: str) -> None:
    """Wait until `count()` reaches `target`; fail only when it stands still for STALL_S (STARTUP_S at first)."""
    reached, patience = count(), STARTUP_S
    deadline = time.monotonic() + patience
    while count() < target:
        if count() > reached:
            reached, deadline = count(), time.monotonic() + STALL_S
        assert time.monotonic() < deadline, f"waiting for {what}: stuck at {reached} of {target}"
        await asyncio.sleep(0.1)


def painted(camera: np.ndarray, style: str, shape: tuple[int, int]) -> np.ndarray:
    """The Python package's picture of the camera at the size the server ran it."""
    return Stylizer(style, device="cpu", precision="fp32", backend="torch")(resized(camera, shape))


def test_the_camera_comes_back_stylized_with_its_timestamps_and_settings_change_mid_call(server, camera):
    async def scenario() -> Call:
        call = await start_call(server.origin, StillCamera(camera, FPS), style="7", smoothing=False)
        try:
            await until(lambda: len(call.pictures), 8, "stylized pictures")
            last = call.pictures[-1].image
            assert psnr(last, painted(camera, "7", last.shape[:2])) > psnr(last, resized(camera, last.shape[:2])) + 5
            call.send({"style": "1"})
            await until(lambda: int(any(m.get("style") == "1" for m in call.messages if m["type"] == "settings")), 1,
                        "the server to take the new style")  # fmt: skip
            changed = len(call.pictures)
            await until(lambda: len(call.pictures), changed + 5, "pictures in the new style")
            last = call.pictures[-1].image
            assert psnr(last, painted(camera, "1", last.shape[:2])) > psnr(last, painted(camera, "7", last.shape[:2]))
            # Settings that do not hold are answered on the channel, and the call goes on.
            for wrong, said in [
                ({"style": "../../etc/passwd"}, "unknown style '../../etc/passwd'"),
                ({"strength": 3}, "strength must be"),
                ({"speed": 2}, "unknown setting 'speed'"),
            ]:
                call.send(wrong)
                await until(lambda s=said: int(any(s in m.get("error", "") for m in call.messages)), 1, str(wrong))
            going = len(call.pictures)
            await until(lambda: len(call.pictures), going + 3, "pictures after the refused settings")
        finally:
            await call.close()
        return call

    call = asyncio.run(scenario())
    # Each picture carries the timestamp of the camera frame it came from: steps of whole frame intervals.
    steps = np.diff([picture.pts for picture in call.pictures])
    assert (steps > 0).all() and (steps % (CLOCK // FPS) == 0).all(), steps


def test_a_clip_played_by_aiortcs_media_player_comes_back_stylized(server):
    clip = SAMPLES / "clips" / "bikes.mp4"

    async def scenario() -> Call:
        player = MediaPlayer(str(clip))
        assert player.video is not None
        call = await start_call(server.origin, player.video, style="7", smoothing=False)
        try:
            await until(lambda: len(call.pictures), 10, "stylized pictures of the clip")
        finally:
            await call.close()
            player.video.stop()
        return call

    call = asyncio.run(scenario())
    # What comes back is the clip painted: nearer the clip's first frame painted than that frame itself.
    with av.open(str(clip)) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")
    last = call.pictures[-1].image
    unpainted = psnr(last, resized(first, last.shape[:2]))
    assert unpainted < 20 and psnr(last, painted(first, "7", last.shape[:2])) > unpainted


def test_sound_sent_with_the_camera_comes_back(server, camera):
    async def scenario() -> Call:
        call = await start_call(server.origin, StillCamera(camera, FPS), microphone=ToneMicrophone(), style="7")
        try:
            await until(lambda: len(call.pictures), 5, "stylized pictures")
            await until(lambda: sum(level > 0.1 for level in call.sound_levels), 150, "3 s of the tone back")
            assert isinstance(call.microphone, ToneMicrophone)
            sent, back, latency = call.microphone.sent, len(call.sound_levels), call.last("stats")
        finally:
            await call.close()
        assert latency is not None
        # The sound is held for the pictures' latency and no more: what is not back yet is that latency's worth
        # of 20 ms chunks (and a second for the network and the codecs), not a delay that grows.
        held = (latency["latency_ms_p95"] or 0) / 1000 + 1.0
        assert back >= sent - held / 0.02, (sent, back, latency)
        return call

    call = asyncio.run(scenario())
    assert max(call.sound_levels) < 0.5  # the tone, not noise: sent at 0.3 of full scale, RMS 0.21


def test_the_sound_leaves_in_step_with_the_pictures():
    """A beep every 2 s and a counter painted into each picture, both timed from when they came off the wire: the
    server holds the sound for the pictures' way through it, so a beep leaves with the pictures of its moment.
    Allowed (EBU R37): the sound 40 ms ahead or 60 ms behind, beyond the spread of the pictures' own latency. A
    camera of 5 pictures a second: aiortc holds each 200 ms on the way in, which the sound must wait for too."""
    coffee = np.ascontiguousarray(resized(read_image(SAMPLES / "photos" / "skimage_coffee.png"), (360, 640)))

    async def scenario(origin: str) -> Call:
        call = await start_call(origin, StillCamera(coffee, 5, counter=True), microphone=ToneMicrophone(beeps=2.0),
                                style="7", strength=0.0, smoothing=False)  # fmt: skip
        try:
            await until(lambda: len(beep_latencies(call, off_the_wire=True)), 4, "four beeps back")
        finally:
            await call.close()
        return call

    # At strength 0 the photo comes back with its counter; at one size the counter reads back from every picture.
    with PageServer("--live-size", "480", "--fixed-size") as fixed:
        call = asyncio.run(scenario(fixed.origin))
    latency = median_and_p95(picture_latencies(call, off_the_wire=True))
    behind = sound_behind([call], off_the_wire=True)
    assert latency is not None and behind is not None
    spread = latency[1] - latency[0]
    assert -40 - spread < behind < 60 + spread, (behind, latency)


async def figures_at(origin: str, camera: np.ndarray, fps: float) -> dict:
    """The server's figures after 30 pictures came back from a call at `fps`."""
    call = await start_call(origin, StillCamera(camera, fps), style="7")
    try:
        await until(lambda: len(call.pictures), 30, "stylized pictures")
        await until(lambda: len([m for m in call.messages if m["type"] == "stats"]), 3, "the server's figures")
        stats = call.last("stats")
        assert stats is not None
        return stats
    finally:
        await call.close()


def test_a_model_slower_than_the_camera_drops_frames_instead_of_delaying_them(camera):
    # 60 pictures a second at 640x424, the network kept at that size: more than a CPU paints, whichever it is.
    picture = np.ascontiguousarray(resized(camera, (424, 640)))
    with PageServer("--live-size", "640", "--fixed-size") as fixed:
        stats = asyncio.run(figures_at(fixed.origin, picture, 60))
    waiting = stats["frames_in"] - stats["frames_out"] - stats["dropped"]
    assert 0 <= waiting <= IN_FLIGHT, stats  # nothing queues behind the model
    assert stats["dropped"] > 0 and stats["size"] == 640, stats  # it could not keep up, and dropped frames
    assert stats["latency_ms_p95"] < 5000, stats  # rather than fall seconds behind


def test_the_live_size_shrinks_to_hold_the_cameras_rate(server, camera):
    picture = np.ascontiguousarray(resized(camera, (424, 640)))
    stats = asyncio.run(figures_at(server.origin, picture, 60))
    assert stats["size"] < 480, stats  # from --live-size, as a CPU cannot paint 60 pictures a second at 480 px


def test_three_calls_at_once_and_a_fourth_is_told_to_wait(camera):
    async def scenario(origin: str) -> list[Call]:
        starting = (start_call(origin, StillCamera(camera, FPS), style=style) for style in ("7", "1", "12"))
        calls = await asyncio.gather(*starting)
        try:
            await asyncio.gather(*(until(lambda c=c: len(c.pictures), 5, "pictures on each call") for c in calls))
            status, answer = await post_offer(origin + "offer", {"sdp": "v=0", "type": "offer"})
            assert (status, answer) == (503, {"error": "this server takes 3 live sessions at once, all in use; "
                                                       "try again later"})  # fmt: skip
        finally:
            await asyncio.gather(*(call.close() for call in calls))
        return calls

    with PageServer("--max-sessions", "3") as running:
        calls = asyncio.run(scenario(running.origin))
    assert all(len(call.pictures) >= 5 for call in calls)


def test_offers_without_the_token_are_refused_and_paintings_are_chosen_by_name(camera):
    hokusai = SAMPLES / "paintings" / "hokusai_great_wave.png"

    async def scenario(origin: str) -> np.ndarray:
        status, answer = await post_offer(origin + "offer", {"sdp": "v=0", "type": "offer"})
        assert (status, answer) == (401, "this server needs its token: open the URL it printed when it started\n")
        still = StillCamera(camera, FPS)
        call = await start_call(origin, still, token="s3cret", style=hokusai.stem, smoothing=False)
        try:
            await until(lambda: len(call.pictures), 3, "pictures with the token")
        finally:
            await call.close()
        return call.pictures[-1].image

    with PageServer("--token", "s3cret", "--paintings", str(hokusai.parent)) as guarded:
        last = asyncio.run(scenario(guarded.origin))
    assert psnr(last, painted(camera, str(hokusai), last.shape[:2])) > psnr(last, painted(camera, "7", last.shape[:2]))


def test_bad_offers_get_a_clear_error_and_the_server_goes_on(server, camera):
    async def scenario() -> None:
        url = server.origin + "offer"
        for offer, said in [
            ([1, 2], "the offer is a JSON object"),
            ({"type": "offer"}, 'an offer is {"sdp": "...", "type": "offer", "style": "7", "strength": 1.0}'),
            ({"sdp": "v=0", "type": "offer", "style": "/etc/passwd"}, "unknown style '/etc/passwd': use a built-in "
             "style number (0-25) or a painting: none on this server"),
            ({"sdp": "v=0", "type": "offer", "strength": -1}, "strength must be"),
            ({"sdp": "not an SDP", "type": "offer"}, "the offer has no video track: send the camera"),
        ]:  # fmt: skip
            status, answer = await post_offer(url, offer)
            assert status == 400 and isinstance(answer, dict) and answer["error"].startswith(said), (offer, answer)
        call = await start_call(server.origin, StillCamera(camera, FPS), style="7")
        try:
            await until(lambda: len(call.pictures), 3, "pictures after the bad offers")
        finally:
            await call.close()

    asyncio.run(scenario())
