"""The stage chain itself: order, overlap and failure."""

import itertools
import signal
import threading
import time
from fractions import Fraction

import numpy as np
import pytest

from streamstyle.core.frames import Frame
from streamstyle.core.roles import Sink
from streamstyle.processing.chain import Chain


class Collect(Sink):
    """Keeps what reaches the sink, pictures and the rest (audio) apart."""

    def __init__(self, on_item=None):
        self.frames, self.audio = [], []
        self.on_item = on_item or (lambda: None)

    def write(self, frame):
        self.on_item()
        self.frames.append(frame)

    def write_audio(self, audio):
        self.on_item()
        self.audio.append(audio)

    def close(self):
        pass


def frame(index: int) -> Frame:
    return Frame(index, np.zeros((2, 2, 3), np.uint8), index, 1, Fraction(1, 25))


def test_items_arrive_in_order_through_every_stage_and_audio_keeps_its_place():
    sink = Collect()
    stages = [("double", lambda items: (2 * i for i in items)), ("inc", lambda items: (i + 1 for i in items))]
    chain = Chain(range(500), stages, sink, queue_size=4)
    chain.run()
    assert sink.audio == [2 * i + 1 for i in range(500)]
    assert [timer.name for timer in chain.timers] == ["source", "double", "inc", "sink"]

    sink = Collect()
    items = [frame(0), "sound 0", frame(1), "sound 1"]
    Chain(items, [("pass", lambda items: items)], sink).run()
    assert [f.index for f in sink.frames] == [0, 1] and sink.audio == ["sound 0", "sound 1"]


def test_run_returns_when_its_steps_end_not_at_its_next_look():
    """run() looked for ended steps every 0.1 s, sleeping between looks, so every job (a short clip, each
    segment of a film on a cluster) ended up to 0.1 s after its last frame was written, 0.1 s at the least for a
    chain of a few items. It wakes when a step ends now: the median of 5 runs stays under that step even on a
    busy machine, where ending three threads takes milliseconds."""
    seconds = []
    for _ in range(5):
        start = time.perf_counter()
        Chain([frame(0), frame(1)], [("pass", lambda items: items)], Collect()).run()
        seconds.append(time.perf_counter() - start)
    assert sorted(seconds)[2] < 0.1, f"run() took {sorted(seconds)[2] * 1000:.0f} ms after 2 frames (median of 5)"


def test_stages_run_concurrently():
    # The stage (at its second item) and the sink (at its first) each wait inside their work until the other is
    # inside its own too: that only ends if they overlap (in sequence the barrier times out and the chain fails).
    together = threading.Barrier(2, timeout=60)

    def meet(items):
        for item in items:
            if item == 1:
                together.wait()
            yield item

    sink = Collect(on_item=lambda: len(sink.audio) == 0 and together.wait())
    Chain(range(40), [("a", meet)], sink, queue_size=2).run()
    assert sink.audio == list(range(40))


def test_a_failing_sink_stops_the_source_and_the_error_reaches_the_caller():
    produced = itertools.count()
    source = (next(produced) for _ in range(10**7))

    def fail_at_twenty():
        if len(sink.audio) == 20:
            raise ValueError("disk full")

    sink = Collect(on_item=fail_at_twenty)
    with pytest.raises(ValueError, match="disk full"):
        Chain(source, [("pass", lambda items: items)], sink, queue_size=4).run()
    assert next(produced) < 100  # the source stopped soon after, it did not run to its end
    assert not [t for t in threading.enumerate() if t.name.startswith("streamstyle-")]


class Watched(Sink):
    """A source that runs for `seconds` (far past the interrupt) and a sink, noting every use after the chain's
    run() has returned."""

    def __init__(self, seconds: float):
        self.ends = time.monotonic() + seconds
        self.returned = False
        self.late: list[str] = []

    def __iter__(self):
        for index in itertools.count():
            if time.monotonic() > self.ends:
                return
            self._use("source")
            yield index

    def _use(self, role):
        if self.returned:
            self.late.append(role)

    def write(self, frame):
        self._use("sink")

    def write_audio(self, audio):
        self._use("sink")

    def close(self):
        pass


def test_ctrl_c_at_any_moment_of_run_leaves_no_step_using_the_source_or_sink():
    """Its caller closes the source and sink as soon as run() is interrupted (a file job frees the input's and the
    output's codecs): a step still using them then would use freed memory. The interrupt here comes at random
    moments of the first milliseconds, where run() starts its threads, and later."""

    fired = threading.Event()

    def interrupt(*_):
        fired.set()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    random = np.random.default_rng(0)
    lost = 0
    try:
        for delay in random.uniform(0.0, 0.004, size=100):
            fired.clear()
            watched = Watched(seconds=10)
            chain = Chain(watched, [("pass", lambda items: items)], watched, queue_size=2)
            try:
                signal.setitimer(signal.ITIMER_REAL, delay)
                chain.run()
            except KeyboardInterrupt:
                pass
            else:
                # The source ran to its end: the interrupt fired but never reached run(), seen once in a loaded
                # run (with the endless source this test had, the round never ended). Likely Python's: it drops an
                # exception raised while it runs a finalizer, a Ctrl-C too.
                assert fired.is_set(), f"the interrupt {delay * 1000:.2f} ms in never came"
                lost += 1
            watched.returned = True
            time.sleep(0.002)
            chain.stop_event.set()  # a step the chain left running stops, so the next round starts clean
            assert watched.late == [], f"used after run() was interrupted {delay * 1000:.2f} ms in"
        assert lost <= 5, f"{lost} of 100 interrupts were lost"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_signal_handler_slower_than_the_wait_for_the_steps_does_not_freeze_run():
    """A restream stops on SIGTERM through on_tick, which its handler asks to; the handler prints, which on a busy
    machine can outlast what is left of run()'s 0.1 s wait for its steps. CPython 3.11's SimpleQueue.get then waits
    on with a negative timeout, which is for ever: the restream did not end (seen in a loaded run)."""
    signals = 3  # any that lands inside the wait is enough to freeze it
    handled = 0

    def slow_handler(*_):
        nonlocal handled
        time.sleep(0.3)
        handled += 1

    def signal_the_waiting_main_thread() -> None:
        for _ in range(signals):
            time.sleep(0.2)
            signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)

    def source():
        for index in itertools.count():
            time.sleep(0.001)
            yield frame(index)

    chain = Chain(source(), [("pass", lambda items: items)], Collect(), queue_size=2)
    rescued = threading.Event()

    def rescue() -> None:  # a frozen wait ends when a step does: the test then fails instead of hanging
        rescued.set()
        chain.stop_event.set()

    def on_tick() -> None:
        if handled == signals:
            chain.stop_event.set()

    previous = signal.signal(signal.SIGUSR1, slow_handler)
    signaller, watchdog = threading.Thread(target=signal_the_waiting_main_thread), threading.Timer(60, rescue)
    try:
        watchdog.start()
        signaller.start()
        chain.run(on_tick)
    finally:
        watchdog.cancel()
        signaller.join()
        signal.signal(signal.SIGUSR1, previous)
    assert not rescued.is_set(), "run() still waited for its steps 60 s after the signal handlers returned"
