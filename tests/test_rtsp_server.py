"""The RTSP test infrastructure itself: a real relay on 127.0.0.1 fed by a real publisher, read back with PyAV.

These pin down the behaviour that RTSP input/output tests rely on: frames arrive complete and in order, a
vanished publisher or relay ends a reader with EOF (not a hang), and the relay restarts on the same port.
"""

import itertools
import threading

import av
import pytest

from .conftest import STARTUP_S, wait_for_count
from .rtsp.publish import read_stamp
from .rtsp.server import READER_OPTIONS, Publisher, RtspRelay, iter_stamps, read_stamps, relay_unavailable

pytestmark = [pytest.mark.slow, pytest.mark.network,
              pytest.mark.skipif(relay_unavailable() is not None, reason=str(relay_unavailable()))]  # fmt: skip
# How long a reader waits for a frame before it gives up with an error: far longer than a busy relay takes to end its
# readers' streams, so a reader that ended within it ended with EOF.
READ_S = 30.0


def assert_in_order(stamps: list[int], at_least: int) -> None:
    assert len(stamps) >= at_least, stamps
    assert [b - a for a, b in itertools.pairwise(stamps)] == [1] * (len(stamps) - 1), stamps


def read_in_thread(url: str) -> tuple[threading.Thread, list[int], list[BaseException]]:
    """Read frames until the stream ends, in a thread, so the test can break the stream meanwhile."""
    stamps: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for stamp in iter_stamps(url, read_s=READ_S, limit_s=STARTUP_S):
                stamps.append(stamp)
        except av.error.FFmpegError as error:
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, stamps, errors


def test_relay_delivers_every_frame_in_order() -> None:
    # Publishing for longer than reading takes: a busy machine may take seconds to open the stream.
    with RtspRelay(paths=("in", "cam2")) as relay, Publisher(relay.publish_url("cam2"), seconds=60):
        # A reader joins at a keyframe (every second): probing eats the first GOP it sees under fflags=nobuffer.
        stamps = read_stamps(relay.read_url("cam2"), frames=40)
        assert_in_order(stamps, 40)
        assert stamps[0] % 25 == 0  # g = fps = 25 for bikes.mp4


def test_killed_publisher_ends_reader_with_eof() -> None:
    with RtspRelay() as relay, Publisher(relay.publish_url(), seconds=20) as publisher:
        thread, stamps, errors = read_in_thread(relay.read_url())
        wait_for_count(lambda: len(stamps), 10, "frames read")
        publisher.kill()
        thread.join(READ_S + 10)
        assert not thread.is_alive(), "reader still blocked after the publisher was killed"
        assert errors == []
        assert_in_order(stamps, 10)
        assert any(line.startswith("RTSP_RELAY_PUBLISHER_GONE path=in") for line in relay.output)


def test_relay_restarts_on_same_port() -> None:
    with RtspRelay() as relay:
        port = relay.port
        with Publisher(relay.publish_url(), seconds=20) as publisher:
            thread, stamps, errors = read_in_thread(relay.read_url())
            wait_for_count(lambda: len(stamps), 10, "frames read")
            assert relay.stop() == 0
            thread.join(READ_S + 10)
            assert not thread.is_alive() and errors == [], "a stopped relay should end its readers with EOF"
            frames, error = publisher.wait(60)
            assert error == "BrokenPipeError" and frames > 10
        with pytest.raises(av.error.ConnectionRefusedError):
            av.open(relay.read_url(), options=READER_OPTIONS, timeout=(2, 2))
        relay.start()
        assert relay.port == port
        with Publisher(relay.publish_url(), seconds=8) as publisher:
            assert_in_order(read_stamps(relay.read_url(), frames=25), 25)
            assert publisher.wait(60) == (200, "none")


def test_av_path_relays_audio_too() -> None:
    with RtspRelay(paths=(), av_paths=("av",)) as relay, Publisher(relay.publish_url("av"), seconds=60, audio=True):
        with av.open(relay.read_url("av"), options=READER_OPTIONS, timeout=(30, READ_S)) as container:
            assert [stream.codec_context.name for stream in container.streams] == ["h264", "aac"]
            stamps: list[int] = []
            audio_samples = 0
            for packet in container.demux():
                for frame in packet.decode():
                    if isinstance(frame, av.VideoFrame):
                        stamps.append(read_stamp(frame.to_ndarray(format="rgb24")))
                    else:
                        audio_samples += frame.samples
                if len(stamps) >= 25:
                    break
        assert_in_order(stamps, 25)
        assert audio_samples >= 48000 // 2
