"""The stage chain itself: order, overlap and failure."""

import itertools
import threading
import time

import pytest

from streamstyle.pipeline import Chain


def test_items_arrive_in_order_through_every_stage():
    received = []
    stages = [("double", lambda items: (2 * i for i in items)), ("inc", lambda items: (i + 1 for i in items))]
    chain = Chain(range(500), stages, received.extend, queue_size=4)
    chain.run()
    assert received == [2 * i + 1 for i in range(500)]
    assert [timer.name for timer in chain.timers] == ["source", "double", "inc", "sink"]


def test_stages_run_concurrently():
    def slow(items):
        for item in items:
            time.sleep(0.02)
            yield item

    start = time.perf_counter()
    Chain(range(40), [("a", slow), ("b", slow)], lambda items: [time.sleep(0.02) for _ in items]).run()
    # Three steps of 20 ms for 40 items: 2.4 s in sequence, about 0.8 s when they overlap.
    assert time.perf_counter() - start < 1.8


def test_a_failing_sink_stops_the_source_and_the_error_reaches_the_caller():
    produced = itertools.count()
    source = (next(produced) for _ in range(10**7))

    def sink(items):
        for index, _ in enumerate(items):
            if index == 20:
                raise ValueError("disk full")

    with pytest.raises(ValueError, match="disk full"):
        Chain(source, [("pass", lambda items: items)], sink, queue_size=4).run()
    assert next(produced) < 100  # the source stopped soon after, it did not run to its end
    assert not [t for t in threading.enumerate() if t.name.startswith("streamstyle-")]
