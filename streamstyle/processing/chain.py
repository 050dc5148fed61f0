"""A chain of stages, each in its own thread, joined by bounded queues: decode, inference and encode overlap,
and memory stays bounded whatever the length of the input.

A stage is a function from an iterator of items to an iterator of items. Items a stage does not handle (audio
packets) it passes on in order. The sink takes the frames with write and the audio with write_audio; its
caller opens and closes it, knowing whether the run succeeded. The first error in any stage stops the whole chain
and is re-raised by `Chain.run`; Ctrl-C in the caller's thread stops every step and propagates.

A live chain (camera, stream) hands the source's items to the first stage through a NewestSlot instead: the
source never waits, and the first stage always takes the newest item, so latency stays bounded by dropping
stale frames. Files never drop a frame."""

from __future__ import annotations

import contextlib
import functools
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from streamstyle.core.frames import Frame, Item
from streamstyle.core.roles import Sink, Source

Stage = Callable[[Iterator[Item]], Iterator[Item]]
T = TypeVar("T")
_END = object()
_EMPTY = object()
_POLL_SECONDS = 0.1


class _EndedSteps:
    """The steps that have ended, as their threads report it, for the caller's thread to wake on at once (a job ends
    with its last step, not at the next look). It waits on a threading.Event, whose wait takes what is left of its
    timeout after a signal handler; CPython 3.11's SimpleQueue.get(timeout) waits for ever once a handler outlasts
    it (a SIGTERM that prints: the restream never ended)."""

    def __init__(self) -> None:
        self._steps: queue.SimpleQueue[threading.Thread] = queue.SimpleQueue()
        self._news = threading.Event()

    def report(self, step: threading.Thread) -> None:
        self._steps.put(step)
        self._news.set()

    def within(self, seconds: float) -> list[threading.Thread]:
        """Those reported since the last look, waiting at most `seconds` for one."""
        self._news.wait(seconds)
        self._news.clear()  # before the steps are taken: a report that comes now wakes the next wait
        steps = []
        with contextlib.suppress(queue.Empty):
            while True:
                steps.append(self._steps.get_nowait())
        return steps


class Stopped(Exception):
    """Raised inside a step when another step failed or the caller was interrupted: unwinds it quietly."""


class NewestSlot(Generic[T]):
    """A one-item queue whose put never waits: an item not yet taken is replaced by the newer one (and counted
    as dropped). Has the put/get(timeout) of queue.Queue that Chain uses."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._item: T | object = _EMPTY
        self.dropped = 0

    def put(self, item: T, timeout: float | None = None) -> None:
        with self._ready:
            if self._item is not _EMPTY:
                self.dropped += 1
            self._item = item
            self._ready.notify()

    def get(self, timeout: float | None = None) -> T:
        with self._ready:
            if not self._ready.wait_for(lambda: self._item is not _EMPTY, timeout):
                raise queue.Empty
            item, self._item = self._item, _EMPTY
            return cast(T, item)


@dataclass
class StageTimer:
    """Seconds a stage spent working, not waiting on its neighbours."""

    name: str
    busy: float = 0.0


@dataclass
class Chain:
    """source → stages... → sink, every step in a thread of its own."""

    source: Source[Item]
    stages: list[tuple[str, Stage]]
    sink: Sink[Any]
    queue_size: int = 8
    live: bool = False  # the source's items go through a NewestSlot: stale ones are dropped
    stop_event: threading.Event = field(default_factory=threading.Event)
    timers: list[StageTimer] = field(default_factory=list)
    newest: NewestSlot | None = None
    _errors: list[BaseException] = field(default_factory=list)

    def _receive(self, inbox: queue.Queue, timer: StageTimer) -> Iterator[object]:
        while True:
            waited = time.perf_counter()
            while True:
                if self.stop_event.is_set():
                    raise Stopped
                try:
                    item = inbox.get(timeout=_POLL_SECONDS)
                    break
                except queue.Empty:
                    continue
            timer.busy -= time.perf_counter() - waited
            if item is _END:
                return
            yield item

    def _send(self, outbox: queue.Queue, item: object, timer: StageTimer) -> None:
        waited = time.perf_counter()
        while True:
            if self.stop_event.is_set():
                raise Stopped  # a step downstream failed: stop producing
            try:
                outbox.put(item, timeout=_POLL_SECONDS)
                break
            except queue.Full:
                continue
        timer.busy -= time.perf_counter() - waited

    def _staged(self, stage: Stage, inbox: queue.Queue, timer: StageTimer) -> Iterator[Item]:
        return stage(cast(Iterator[Item], self._receive(inbox, timer)))

    def _deliver(self, items: Iterator[Item]) -> None:
        for item in items:
            if isinstance(item, Frame):
                self.sink.write(item)
            else:
                self.sink.write_audio(item)

    def _run_step(self, gate: threading.Barrier, ended: _EndedSteps, timer: StageTimer,
                  produce: Callable[[], Iterator[object]], consume: Callable[[Iterator[object]], None] | None,
                  outbox: queue.Queue | None) -> None:  # fmt: skip
        try:
            try:
                gate.wait()
            except threading.BrokenBarrierError:
                return  # the caller was interrupted while it started the steps: this one must not begin
            self._work(timer, produce, consume, outbox)
        finally:
            ended.report(threading.current_thread())

    def _work(self, timer: StageTimer, produce: Callable[[], Iterator[object]],
              consume: Callable[[Iterator[object]], None] | None, outbox: queue.Queue | None) -> None:  # fmt: skip
        start = time.perf_counter()
        try:
            if consume is not None:
                consume(iter(produce()))
            else:
                assert outbox is not None, "a step that does not consume its items sends them on"
                for item in produce():
                    self._send(outbox, item, timer)
                self._send(outbox, _END, timer)
        except Stopped:
            pass
        except BaseException as error:  # handed to the caller of run()
            self._errors.append(error)
            self.stop_event.set()
        finally:
            timer.busy += time.perf_counter() - start

    def run(self, on_tick: Callable[[], None] | None = None) -> None:
        """Run to the end of the source; on_tick is called in the caller's thread about 10 times a second.

        Interrupted (Ctrl-C, or any exception in this thread), it stops every step and returns only once none of
        them uses the source or the sink any more, or after 10 s, so its caller can close them."""
        names = ["source", *[name for name, _ in self.stages], "sink"]
        self.timers = [StageTimer(name) for name in names]
        queues: list = [queue.Queue(maxsize=self.queue_size) for _ in range(len(self.stages) + 1)]
        if self.live:
            queues[0] = self.newest = NewestSlot()
        # (timer, produce, consume, outbox) of each step, in order
        steps: list[tuple[StageTimer, Callable[[], Iterator[Any]], Callable[[Iterator[Any]], None] | None, Any]] = [
            (self.timers[0], lambda: iter(self.source), None, queues[0])
        ]
        for index, (_, stage) in enumerate(self.stages):
            inbox, timer = queues[index], self.timers[index + 1]
            steps.append((timer, functools.partial(self._staged, stage, inbox, timer), None, queues[index + 1]))
        sink_timer = self.timers[-1]
        steps.append((sink_timer, lambda: self._receive(queues[-1], sink_timer), self._deliver, None))
        # Every step waits at this gate until all are started: a Ctrl-C can come while this thread starts them, and
        # a step started then, not yet joinable, must not begin once the caller may be closing the source and sink.
        gate = threading.Barrier(len(steps) + 1)
        # Each step reports here when it is done. Waiting on Thread.join instead is unsafe: a Ctrl-C that lands
        # inside it marks a running thread as ended (CPython 3.11's bpo-45274 handling), and run() would return
        # under it.
        ended = _EndedSteps()
        threads = [threading.Thread(target=self._run_step, args=(gate, ended, *step), name=f"streamstyle-{name}",
                                    daemon=True) for name, step in zip(names, steps, strict=True)]  # fmt: skip
        started: list[threading.Thread] = []
        done: set[threading.Thread] = set()
        try:
            for thread in threads:
                thread.start()
                started.append(thread)
            gate.wait()
            while len(done) < len(threads):
                done.update(ended.within(_POLL_SECONDS))
                if on_tick:
                    on_tick()
        except BaseException as error:
            gate.abort()
            self.stop_event.set()
            deadline = time.monotonic() + 10
            while not done.issuperset(started) and time.monotonic() < deadline:
                done.update(ended.within(_POLL_SECONDS))
            if isinstance(error, RuntimeError) and isinstance(error.__context__, KeyboardInterrupt):
                # threading's locks are not safe against an exception raised inside them: a Ctrl-C that lands in
                # Thread.start() can come out as RuntimeError("release unlocked lock"). The caller must see a Ctrl-C.
                raise error.__context__ from None
            raise
        if self._errors:
            raise self._errors[0]
