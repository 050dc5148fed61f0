"""Live over WebRTC (aiortc): a client's camera comes in, goes through the live chain and goes back on the same
connection.

Latency first. The event loop only hands each decoded frame to the chain's source, which keeps the newest and
drops (and counts) the rest; the network runs in the chain's threads, never on the event loop; every picture goes
back stamped with its input's timestamp; and the inference size follows what the machine delivers, shrinking
while a frame takes longer than the camera's frame interval and growing back when there is room. Style,
strength and smoothing change mid-call over a data channel; sound, when sent, comes back held for the pictures'
way through the server (see DelayedAudio), so that the two leave in step."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
from aiortc import MediaStreamTrack, RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import VIDEO_TIME_BASE, MediaStreamError

from streamstyle.apps.web.choices import style_by_name
from streamstyle.core.errors import ConfigError, StreamstyleError
from streamstyle.core.frames import Frame, Item
from streamstyle.core.roles import Sink
from streamstyle.core.settings import SMALLEST_LIVE_SIDE, SizeSettings, TemporalSettings
from streamstyle.core.stats import median_and_p95
from streamstyle.engines.graphs import SIDE_MULTIPLE
from streamstyle.processing.chain import Chain, NewestSlot
from streamstyle.processing.runtime import Runtime
from streamstyle.processing.stages import chain_stages
from streamstyle.processing.stylizer import Stylizer, check_strength

log = logging.getLogger(__name__)

STATS_EVERY_S = 1.0
ADAPT_EVERY_S = 1.0
LATENCY_WINDOW = 60  # frames the latency figures are taken over
ARRIVALS_KEPT = 64  # frames whose arrival is remembered: more than are ever between the camera and the sender
# aiortc's receiver hands on a chunk of sound when the fourth chunk after it comes off the wire (its jitter buffer's
# prefetch), and a picture when the first packet of the next picture comes.
SOUND_PREFETCH = 4


def adapt_size(size: int, delivered: float, latency: float, frame_interval: float, smallest: int, largest: int
               ) -> int:  # fmt: skip
    """The next inference size (longer side), from the share of the camera's frames that went out over the last
    second (`delivered`) and the latency of the last ones. A network's cost grows with the pixels, the square of
    the side: under 90% delivered shrinks the side by the square root of the share (and 5% more, to settle below
    it); all delivered with a latency under half the frame interval (room to spare) grows it by 10%. A multiple of
    4, within bounds."""
    if delivered < 0.9:
        wanted = size * math.sqrt(delivered) * 0.95
    elif latency < 0.5 * frame_interval:
        wanted = size * 1.1
    else:
        return size
    return max(smallest, min(largest, int(wanted) // SIDE_MULTIPLE * SIDE_MULTIPLE))


@dataclass(frozen=True)
class LiveOptions:
    style: str = "7"
    strength: float = 1.0
    smoothing: bool = True

    def changed(self, message: object) -> LiveOptions:
        """These options with a client's changes ({"style": "12", "strength": 0.5, "smoothing": false}) applied;
        a ConfigError names what is wrong."""
        if not isinstance(message, dict) or not message:
            raise ConfigError('send a JSON object such as {"style": "7", "strength": 0.8, "smoothing": true}')
        unknown = set(message) - {"style", "strength", "smoothing"}
        if unknown:
            raise ConfigError(f"unknown setting {sorted(unknown)[0]!r}; use style, strength or smoothing")
        style = message.get("style", self.style)
        strength = message.get("strength", self.strength)
        smoothing = message.get("smoothing", self.smoothing)
        if not isinstance(style, str | int) or isinstance(style, bool):
            raise ConfigError("style is a string: a built-in style number or a painting's name")
        if not isinstance(strength, int | float) or isinstance(strength, bool):
            raise ConfigError("strength is a number from 0 to 1")
        check_strength(float(strength))
        if not isinstance(smoothing, bool):
            raise ConfigError("smoothing is true or false")
        return LiveOptions(str(style), float(strength), smoothing)


class CameraSource:
    """The client's frames: put by the event loop as they are decoded, taken by the chain's source thread, the
    newest first (a frame not taken before the next one arrives is dropped, and counted)."""

    def __init__(self) -> None:
        self.slot: NewestSlot[tuple[av.VideoFrame, float] | None] = NewestSlot()
        self.frames = 0
        # Written by the chain's source thread only; read (one lookup at a time) by the event loop.
        self._arrivals: dict[int | None, float] = {}
        self.closed = threading.Event()

    def put(self, frame: av.VideoFrame | None) -> None:
        if frame is not None:
            self.frames += 1
        self.slot.put(None if frame is None else (frame, time.monotonic()))

    def __iter__(self) -> Iterator[Item]:
        for index in itertools.count():
            try:
                taken = self.slot.get(timeout=0.5)
            except queue.Empty:
                if self.closed.is_set():
                    return
                continue
            if taken is None:
                return
            frame, arrived = taken
            self._arrivals[frame.pts] = arrived
            if len(self._arrivals) > ARRIVALS_KEPT:
                del self._arrivals[next(iter(self._arrivals))]
            yield Frame(index, frame.to_ndarray(format="rgb24"), frame.pts, 0, frame.time_base or VIDEO_TIME_BASE)

    def arrival_of(self, pts: int | None) -> float | None:
        return self._arrivals.get(pts)


class StylizedTrack(MediaStreamTrack):
    """The pictures going back: the newest the chain finished, each with its input's timestamp. Their latency is
    taken from their arrival to when the sender asks for the next picture, which it does once it has encoded this
    one and put it on the wire: the encoder's time counts, and it is most of a picture's way out when the cores
    are short."""

    kind = "video"

    def __init__(self, arrival_of: Callable[[int | None], float | None]) -> None:
        super().__init__()
        self.arrival_of = arrival_of
        self.latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._newest: av.VideoFrame | None = None
        self._sending_since: float | None = None  # the arrival of the picture the sender is encoding
        self._ended = False
        self._ready = asyncio.Event()

    def offer(self, frame: av.VideoFrame | None) -> None:
        """On the event loop: the next picture to send (None: no more)."""
        if frame is None:
            self._ended = True
        else:
            self._newest = frame
        self._ready.set()

    async def recv(self) -> av.VideoFrame:
        if self._sending_since is not None:
            self.latencies.append(time.monotonic() - self._sending_since)
        await self._ready.wait()
        self._ready.clear()
        if self._ended or self._newest is None:
            self.stop()
            raise MediaStreamError
        frame, self._newest = self._newest, None
        self._sending_since = self.arrival_of(frame.pts)
        return frame


class TrackSink(Sink[object]):
    """The chain's end: each picture to the event loop for the outgoing track."""

    def __init__(self, loop: asyncio.AbstractEventLoop, track: StylizedTrack) -> None:
        self.loop, self.track = loop, track
        self.frames = 0

    def write(self, frame: Frame) -> None:
        picture = av.VideoFrame.from_ndarray(frame.image, format="rgb24")
        picture.pts, picture.time_base = frame.pts, frame.time_base
        self.frames += 1
        self.loop.call_soon_threadsafe(self.track.offer, picture)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.track.offer, None)


class DelayedAudio(MediaStreamTrack):
    """The client's sound sent back, each chunk held for the pictures' way through the server, counted from when
    it came off the wire, so that sound and pictures leave as they came. aiortc hands on a chunk SOUND_PREFETCH
    chunks late (80 ms), a picture one camera frame late: a chunk came off the wire when the chunk that many before
    it was handed on, and `delay` is the pictures' latency and their frame interval. (Held from then, not from
    when it is asked for: the delay never adds up.)"""

    kind = "audio"

    def __init__(self, track: MediaStreamTrack, delay: Callable[[], float]) -> None:
        super().__init__()
        self.delay = delay
        self._chunks: asyncio.Queue[tuple[av.AudioFrame | None, float]] = asyncio.Queue()
        self._reader = asyncio.ensure_future(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        handed_on: deque[float] = deque(maxlen=SOUND_PREFETCH + 1)
        try:
            while True:
                chunk = await track.recv()
                assert isinstance(chunk, av.AudioFrame), "an audio track gives audio frames"
                handed_on.append(time.monotonic())
                self._chunks.put_nowait((chunk, handed_on[0]))
        except MediaStreamError:
            self._chunks.put_nowait((None, time.monotonic()))

    async def recv(self) -> av.AudioFrame:
        chunk, off_the_wire = await self._chunks.get()
        if chunk is None:
            self.stop()
            raise MediaStreamError
        wait = off_the_wire + self.delay() - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        return chunk

    def stop(self) -> None:
        self._reader.cancel()
        super().stop()


class LiveSession:
    """One client's call: its peer connection, its chain and the settings it chose."""

    def __init__(self, make_stylizer: Callable[[LiveOptions], Stylizer], stylizer: Stylizer, options: LiveOptions,
                 largest: int, adapt: bool = True) -> None:  # fmt: skip
        self.make_stylizer, self.stylizer, self.options = make_stylizer, stylizer, options
        self.largest, self.adapt = largest, adapt
        self.size = largest
        self.peer = RTCPeerConnection(RTCConfiguration(iceServers=[]))  # no STUN: nothing leaves for elsewhere
        self.source = CameraSource()
        self.track = StylizedTrack(self.source.arrival_of)
        self.sink: TrackSink | None = None
        self.chain: Chain | None = None
        self.frame_interval = 1 / 30
        self.ended = asyncio.Event()
        self._last_pts: int | None = None
        self._tasks: set[asyncio.Task] = set()
        self._weighed = (time.monotonic(), 0, 0)  # when the size was last weighed; frames in and out then

    def spawn(self, work: Coroutine[object, object, None]) -> None:
        """Run `work` on the event loop, holding on to its task until it ends."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def sizes(self) -> SizeSettings:
        """The model stage's sizes for its next frame: once a second the size is weighed again (adapt_size)."""
        now = time.monotonic()
        if self.adapt and self.sink and self.track.latencies and now - self._weighed[0] >= ADAPT_EVERY_S:
            came = self.source.frames - self._weighed[1]
            went = self.sink.frames - self._weighed[2]
            latency = median_and_p95(list(self.track.latencies)[-10:])
            if came > 0 and latency:
                self.size = adapt_size(self.size, went / came, latency[0], self.frame_interval, SMALLEST_LIVE_SIDE,
                                       self.largest)  # fmt: skip
            self._weighed = (now, self.source.frames, self.sink.frames)
        return SizeSettings(max_size=self.size)

    def stats(self) -> dict[str, object]:
        figures = median_and_p95([seconds * 1000 for seconds in list(self.track.latencies)])
        return {"type": "stats", "frames_in": self.source.frames, "frames_out": self.sink.frames if self.sink else 0,
                "dropped": self.source.slot.dropped + (self.chain.newest.dropped if self.chain and self.chain.newest
                                                       else 0),
                "latency_ms_median": round(figures[0], 1) if figures else None,
                "latency_ms_p95": round(figures[1], 1) if figures else None, "size": self.size,
                "style": self.options.style, "strength": self.options.strength,
                "smoothing": self.options.smoothing}  # fmt: skip

    def latency(self) -> float:
        figures = median_and_p95(list(self.track.latencies))
        return figures[0] if figures else 0.0

    async def answer(self, offer: RTCSessionDescription, temporal: TemporalSettings) -> RTCSessionDescription:
        loop = asyncio.get_running_loop()

        @self.peer.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                self.peer.addTrack(self.track)
                self.spawn(self._read(track))
            else:
                self.peer.addTrack(DelayedAudio(track, lambda: self.latency() + self.frame_interval))

        @self.peer.on("datachannel")
        def on_channel(channel: RTCDataChannel) -> None:
            channel.on("message", lambda message: self.spawn(self._change(channel, message)))
            self.spawn(self._report(channel))

        @self.peer.on("connectionstatechange")
        async def on_state() -> None:
            if self.peer.connectionState in ("failed", "closed"):
                await self.close()

        await self.peer.setRemoteDescription(offer)
        if not any(receiver.track and receiver.track.kind == "video" for receiver in self.peer.getReceivers()):
            raise ConfigError("the offer has no video track: send the camera")
        self.sink = TrackSink(loop, self.track)
        stages = chain_stages(lambda: self.stylizer, self.sizes, temporal, live=True,
                              enabled=lambda: self.options.smoothing)  # fmt: skip
        self.chain = Chain(self.source, stages, self.sink, queue_size=1, live=True)
        threading.Thread(target=self._run_chain, args=(loop,), name="streamstyle-webrtc", daemon=True).start()
        await self.peer.setLocalDescription(await self.peer.createAnswer())
        return self.peer.localDescription

    def _run_chain(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self.chain is not None and self.sink is not None
        try:
            with self.sink:
                self.chain.run()
        except Exception:  # a failure of this call ends it (the client sees the call close), not the server
            log.exception("a live session failed")
            asyncio.run_coroutine_threadsafe(self.close(), loop)

    async def _read(self, track: MediaStreamTrack) -> None:
        """Every decoded frame of the client's camera to the chain's source, as it comes."""
        try:
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.VideoFrame), "a video track gives pictures"
                stamp, base = frame.pts, frame.time_base
                if stamp is not None and base and self._last_pts is not None and stamp > self._last_pts:
                    interval = float((stamp - self._last_pts) * base)
                    weight = 0.1 if self.source.frames > 1 else 1.0  # the first interval replaces the guess
                    self.frame_interval = (1 - weight) * self.frame_interval + weight * interval
                self._last_pts = stamp
                self.source.put(frame)
        except MediaStreamError:
            self.source.put(None)

    async def _change(self, channel: RTCDataChannel, message: object) -> None:
        try:
            try:
                options = self.options.changed(json.loads(message) if isinstance(message, str) else None)
            except json.JSONDecodeError:
                raise ConfigError('a message is JSON, e.g. {"style": "12"}') from None
            if (options.style, options.strength) != (self.options.style, self.options.strength):
                # A painting's style vector is a network run: off the event loop.
                self.stylizer = await asyncio.get_running_loop().run_in_executor(None, self.make_stylizer, options)
            self.options = options
            channel.send(json.dumps({"type": "settings", "style": options.style, "strength": options.strength,
                                     "smoothing": options.smoothing}))  # fmt: skip
        except StreamstyleError as error:
            channel.send(json.dumps({"type": "error", "error": str(error)}))

    async def _report(self, channel: RTCDataChannel) -> None:
        while channel.readyState in ("connecting", "open") and not self.ended.is_set():
            if channel.readyState == "open":
                channel.send(json.dumps(self.stats()))
            await asyncio.sleep(STATS_EVERY_S)

    async def close(self) -> None:
        if self.ended.is_set():
            return
        self.ended.set()
        self.source.put(None)
        self.source.closed.set()
        if self.chain:
            self.chain.stop_event.set()
        await self.peer.close()


class CallsFull(StreamstyleError):
    """Every live session this server takes is in use."""


class LiveCalls:
    """The server's live sessions: at most `limit` at once, each on the shared runtime."""

    def __init__(self, runtime: Runtime, paintings: dict[str, Path], largest: int, limit: int,
                 temporal: TemporalSettings, adapt: bool = True) -> None:  # fmt: skip
        self.runtime, self.paintings, self.largest, self.limit = runtime, paintings, largest, limit
        self.temporal, self.adapt = temporal, adapt
        self.sessions: set[LiveSession] = set()

    def make_stylizer(self, options: LiveOptions) -> Stylizer:
        return Stylizer(style_by_name(options.style, self.paintings), strength=options.strength, runtime=self.runtime)

    async def answer(self, offer: dict[str, object]) -> dict[str, str]:
        """The answer to a client's offer ({"sdp", "type": "offer", "style", "strength"}); a ConfigError or a
        StyleSpecError says what is wrong with it."""
        if not isinstance(offer.get("sdp"), str) or offer.get("type") != "offer":
            raise ConfigError('an offer is {"sdp": "...", "type": "offer", "style": "7", "strength": 1.0}')
        if len(self.sessions) >= self.limit:
            raise CallsFull(f"this server takes {self.limit} live sessions at once, all in use; try again later")
        chosen = {key: offer[key] for key in ("style", "strength", "smoothing") if key in offer}
        options = LiveOptions().changed(chosen) if chosen else LiveOptions()
        # A painting's style vector is a network run: off the event loop.
        stylizer = await asyncio.get_running_loop().run_in_executor(None, self.make_stylizer, options)
        session = LiveSession(self.make_stylizer, stylizer, options, self.largest, self.adapt)
        self.sessions.add(session)
        try:
            description = RTCSessionDescription(sdp=str(offer["sdp"]), type="offer")
            answer = await session.answer(description, self.temporal)
        except Exception as error:
            await session.close()
            self.sessions.discard(session)
            if isinstance(error, StreamstyleError):
                raise
            raise ConfigError(f"the offer could not be answered: {error}") from None
        session.spawn(self._forget(session))
        return {"sdp": answer.sdp, "type": answer.type}

    async def _forget(self, session: LiveSession) -> None:
        await session.ended.wait()
        self.sessions.discard(session)

    async def close(self) -> None:
        await asyncio.gather(*(session.close() for session in list(self.sessions)))
