"""A WebRTC client for the tests and the latency benchmark: aiortc on 127.0.0.1, sending a still picture as a
camera at a steady rate, and keeping what comes back: every picture with its timestamp and arrival, and the
server's messages on the data channel."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from fractions import Fraction

import aiohttp
import av
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

from streamstyle.apps.web.live import SOUND_PREFETCH
from streamstyle.core.stats import median_and_p95
from streamstyle.processing.stages import resized

from ..rtsp.publish import read_stamp, stamp

CLOCK = 90000  # WebRTC's video clock: the timestamps of the pictures sent and received
TIME_BASE = Fraction(1, CLOCK)
HEARD = 0.05  # RMS of a chunk that holds a beep (sent at 0.21), not the codec's noise


class StillCamera(MediaStreamTrack):
    """A camera that shows `picture` at `fps` in real time, each frame stamped index * CLOCK / fps; with
    `counter`, its index is painted into it too (tests.rtsp.publish.stamp), and `sent_at` keeps when."""

    kind = "video"

    def __init__(self, picture: np.ndarray, fps: float, counter: bool = False) -> None:
        super().__init__()
        self.picture, self.fps, self.counter = picture, fps, counter
        self.sent = 0
        self.sent_at: dict[int, float] = {}
        self._start: float | None = None

    async def recv(self) -> av.VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self.sent / self.fps - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        picture = self.picture
        if self.counter:
            picture = picture.copy()
            stamp(picture, self.sent)
        frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
        frame.pts, frame.time_base = round(self.sent * CLOCK / self.fps), TIME_BASE
        self.sent_at[self.sent] = time.monotonic()
        self.sent += 1
        return frame


class ToneMicrophone(MediaStreamTrack):
    """A microphone that plays a 440 Hz tone in real time, 20 ms a chunk, 48 kHz mono; with `beeps`, only in
    the first 0.1 s of every `beeps` seconds, `beeps_sent` keeping when each began."""

    kind = "audio"
    RATE, CHUNK = 48000, 960
    BEEP_S = 0.1

    def __init__(self, beeps: float | None = None) -> None:
        super().__init__()
        self.sent = 0
        self.beeps = beeps
        self.beeps_sent: list[float] = []
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self.sent * self.CHUNK / self.RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        samples = np.arange(self.sent * self.CHUNK, (self.sent + 1) * self.CHUNK) / self.RATE
        tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * samples)).astype(np.int16)
        if self.beeps:
            chunk = self.sent % round(self.beeps * self.RATE / self.CHUNK)  # of this beep's period
            if chunk == 0:
                self.beeps_sent.append(time.monotonic())
            elif chunk * self.CHUNK / self.RATE >= self.BEEP_S:
                tone[:] = 0
        chunk = av.AudioFrame.from_ndarray(tone[None], format="s16", layout="mono")
        chunk.sample_rate, chunk.pts, chunk.time_base = self.RATE, self.sent * self.CHUNK, Fraction(1, self.RATE)
        self.sent += 1
        return chunk


@dataclass
class Received:
    image: np.ndarray
    pts: int
    arrival: float


@dataclass
class Call:
    """One call to a server: what came back, and the server's messages (stats, settings, errors)."""

    peer: RTCPeerConnection
    camera: MediaStreamTrack
    microphone: MediaStreamTrack | None = None
    pictures: list[Received] = field(default_factory=list)
    sound_levels: list[float] = field(default_factory=list)  # RMS of each chunk of sound back, 0-1
    sound_arrivals: list[float] = field(default_factory=list)  # when each came
    messages: list[dict] = field(default_factory=list)
    channel: object = None
    _tasks: set[asyncio.Task] = field(default_factory=set)

    def send(self, settings: dict) -> None:
        self.channel.send(json.dumps(settings))  # type: ignore[attr-defined]

    def last(self, kind: str) -> dict | None:
        return next((message for message in reversed(self.messages) if message.get("type") == kind), None)

    async def close(self) -> None:
        await self.peer.close()


def picture_latencies(call: Call, off_the_wire: bool = False) -> list[float]:
    """Milliseconds from sending each counter to receiving it back, for the pictures whose counter reads back (the
    camera's `counter` on, the server at strength 0); to its coming off the wire when `off_the_wire`: this client's
    aiortc hands on a picture when the next one comes, as the server's does (see live.DelayedAudio); a browser
    completes a picture at its last packet."""
    assert isinstance(call.camera, StillCamera) and call.camera.counter, "a camera that paints its counter"
    arrivals: list[float | None] = [picture.arrival for picture in call.pictures]
    if off_the_wire:
        arrivals = [None, *arrivals[:-1]]
    found = []
    for picture, arrival in zip(call.pictures, arrivals, strict=True):
        index = read_stamp(resized(picture.image, call.camera.picture.shape[:2]))
        sent = call.camera.sent_at.get(index)
        if sent is not None and arrival is not None and 0 <= arrival - sent < 10:
            found.append((arrival - sent) * 1000)
    return found


def beep_latencies(call: Call, off_the_wire: bool = False) -> list[float]:
    """Milliseconds from sending each beep's start to receiving it back; to its coming off the wire when
    `off_the_wire` (aiortc hands on a chunk SOUND_PREFETCH chunks late)."""
    microphone = call.microphone
    assert isinstance(microphone, ToneMicrophone) and microphone.beeps, "a microphone that beeps"
    arrivals: list[float | None] = list(call.sound_arrivals)
    if off_the_wire:
        arrivals = [*[None] * SOUND_PREFETCH, *arrivals[:-SOUND_PREFETCH]]
    found, levels = [], call.sound_levels
    for index, arrival in enumerate(arrivals):
        if arrival is not None and levels[index] > HEARD and (index == 0 or levels[index - 1] <= HEARD):
            before = [moment for moment in microphone.beeps_sent if moment <= arrival]
            if before and arrival - before[-1] < microphone.beeps:
                found.append((arrival - before[-1]) * 1000)
    return found


def sound_behind(calls: list[Call], off_the_wire: bool = False) -> float | None:
    """Milliseconds the sound runs behind the pictures (ahead, when negative): the beeps' median latency less the
    pictures'."""
    pictures = median_and_p95([ms for call in calls for ms in picture_latencies(call, off_the_wire)])
    sound = median_and_p95([ms for call in calls for ms in beep_latencies(call, off_the_wire)])
    return sound[0] - pictures[0] if sound and pictures else None


async def post_offer(url: str, offer: object, token: str | None = None) -> tuple[int, object]:
    """POST an offer; the status and the answer: its JSON, or its text when it is not JSON."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.post(url, json=offer, headers=headers) as response:
        text = await response.text()
    try:
        return response.status, json.loads(text)
    except json.JSONDecodeError:
        return response.status, text


async def start_call(origin: str, camera: MediaStreamTrack, token: str | None = None,
                     microphone: MediaStreamTrack | None = None, **settings: object) -> Call:  # fmt: skip
    """Offer `camera` (and `microphone`) to `origin`/offer with `settings` (style, strength, smoothing); the call
    runs until closed. An error answer raises AssertionError with the server's message."""
    peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    call = Call(peer, camera, microphone)
    peer.addTrack(camera)
    if microphone:
        peer.addTrack(microphone)
    call.channel = peer.createDataChannel("settings")
    call.channel.on("message", lambda message: call.messages.append(json.loads(message)))  # type: ignore[attr-defined]

    async def keep(track: MediaStreamTrack) -> None:
        try:
            while True:
                frame = await track.recv()
                if isinstance(frame, av.VideoFrame):
                    image = frame.to_ndarray(format="rgb24")
                    call.pictures.append(Received(image, frame.pts or 0, time.monotonic()))
                elif isinstance(frame, av.AudioFrame):
                    samples = frame.to_ndarray().astype(np.float32) / 32768
                    call.sound_levels.append(float(np.sqrt(np.mean(samples**2))))
                    call.sound_arrivals.append(time.monotonic())
        except MediaStreamError:
            pass

    @peer.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        task = asyncio.ensure_future(keep(track))
        call._tasks.add(task)

    await peer.setLocalDescription(await peer.createOffer())
    status, answer = await post_offer(origin + "offer", {"sdp": peer.localDescription.sdp, "type": "offer",
                                                         **settings}, token)  # fmt: skip
    if status != 200 or not isinstance(answer, dict):
        await peer.close()
        raise AssertionError(f"the server answered {status}: {answer}")
    await peer.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    return call
