"""`streamstyle stream` between real RTSP servers on 127.0.0.1: a publisher sends a picture, the restreamer
stylizes it and publishes it, a reader takes it back; then the publisher dies and returns, and the output server
stops and returns. Every wait is bounded."""

from __future__ import annotations

import itertools
import re
import threading
import time
from typing import NamedTuple

import av
import numpy as np
import pytest

from streamstyle.io.images import read_image

from .conftest import SAMPLES, STARTUP_S, run_cli, wait_for_count, wait_until
from .media import difference, live_model_output, sort_decoded
from .restreamer import Restreamer
from .rtsp.proxy import FreezingProxy
from .rtsp.server import OPEN_S, READER_OPTIONS, Publisher, RtspRelay, relay_unavailable

pytestmark = [pytest.mark.slow, pytest.mark.network,
              pytest.mark.skipif(relay_unavailable() is not None, reason=str(relay_unavailable()))]  # fmt: skip

PHOTO = SAMPLES / "photos" / "skimage_coffee.png"  # 600x400, sent as a steady stream of one picture
FPS = 10
MAX_SIZE = 128
OPTIONS = ("--style", "7", "--max-size", str(MAX_SIZE), "--temporal", "off", "--read-timeout", "2")
PUBLISHING_S = 3600.0  # longer than any test here, which ends its publishers itself


CLOCK_JUMP_S = 1.0  # a step in one track's stamps this large is a change of clock, not a late frame
ONE_CLOCK_WITHIN_S = 120.0  # RTCP sender reports come every few seconds: both tracks are on them long before


Sound = tuple[float, float, float]  # the time, length and peak of one sound frame


def read_on_one_clock(container: av.container.InputContainer, seconds: float) -> tuple[list[float], list[Sound]]:
    """`seconds` of pictures and the sound read with them, both stamped on the sender's clock.

    FFmpeg's RTSP reader stamps each track from its own first packet until that track's first RTCP sender report,
    then restamps it on the sender's wallclock: one track can be on each clock for a while. Every such jump starts
    the reading over, and it ends only once the sound falls among the pictures, so both tracks share one clock."""
    pictures: list[float] = []
    sound: list[Sound] = []
    deadline = time.monotonic() + ONE_CLOCK_WITHIN_S
    for packet in container.demux():
        before = latest_stamps(pictures, sound)
        sort_decoded(packet, pictures, sound)
        after = latest_stamps(pictures, sound)
        if any(then is not None and abs(now - then) > CLOCK_JUMP_S for then, now in zip(before, after, strict=True)):
            pictures.clear()
            sound.clear()
        heard_among_them = any(pictures[0] <= at < pictures[-1] for at, *_ in sound) if pictures else False
        if heard_among_them and pictures[-1] - pictures[0] >= seconds:
            return pictures, sound
        assert time.monotonic() < deadline, f"no {seconds} s with sound on one clock: {pictures[-5:]}, {sound[-5:]}"
    raise AssertionError(f"the stream ended before {seconds} s of pictures with sound on one clock")


def latest_stamps(pictures: list[float], sound: list[Sound]) -> tuple[float | None, float | None]:
    return (pictures[-1] if pictures else None), (sound[-1][0] if sound else None)


class Picture(NamedTuple):
    arrival: float  # time.monotonic() when it was read
    session: int  # which connection of the reader it came on
    key: bool  # a keyframe
    image: np.ndarray


class Reader:
    """Reads an RTSP stream in a thread until closed, reopening it when it ends; keeps every picture."""

    def __init__(self, url: str):
        self.url, self.pictures = url, []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for session in itertools.count():
            try:
                with av.open(self.url, options=READER_OPTIONS, timeout=(OPEN_S, 3.0)) as container:
                    for frame in container.decode(video=0):
                        image = frame.to_ndarray(format="rgb24")
                        self.pictures.append(Picture(time.monotonic(), session, frame.key_frame, image))
                        if self._closed.is_set():
                            return
            except av.error.FFmpegError:
                pass  # not published yet, or gone: listen again
            if self._closed.wait(0.2):
                return

    def since(self, moment: float) -> list[Picture]:
        return [picture for picture in self.pictures if picture.arrival >= moment]

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self._closed.set()
        self._thread.join(timeout=10)


def keyframe_intervals(pictures: list[Picture]) -> list[int]:
    """Pictures from each keyframe to the next, on each connection: the runs read whole."""
    intervals = []
    for _, run in itertools.groupby(pictures, key=lambda picture: picture.session):
        keys = [index for index, picture in enumerate(run) if picture.key]
        intervals += [b - a for a, b in itertools.pairwise(keys)]
    return intervals


@pytest.fixture(scope="module")
def photo():
    return read_image(PHOTO)


@pytest.fixture(scope="module")
def stylized(photo):
    return live_model_output(photo, "7", MAX_SIZE)


def test_restream_publishes_every_frame_stylized_and_closes_cleanly(tmp_path, photo, stylized):
    recording = tmp_path / "recording.mp4"
    with RtspRelay(paths=("in", "out")) as relay, \
            Publisher(relay.publish_url("in"), clip=PHOTO, seconds=PUBLISHING_S, barcode=False, fps=FPS), \
            Restreamer(tmp_path, relay.read_url("in"), relay.publish_url("out"), "--out", str(recording),
                       options=OPTIONS) as app:  # fmt: skip
        app.wait_for_count(lambda s: s["frames_out"], 10, "the first stylized frames")
        with Reader(relay.read_url("out")) as reader:
            wait_for_count(lambda: len(reader.pictures), 40, "pictures read back from the output")
            # The steady state: the app's figures before and after 30 more pictures were read.
            before = app.stats()
            wait_for_count(lambda: len(reader.pictures), len(reader.pictures) + 30, "30 more pictures")
            after = app.stats()
        assert app.stop() == 0, app.log
        final = app.stats()
    # Stylized: the model's picture, through two H.264 encodes; far from the photo itself.
    for picture in reader.pictures[-5:]:
        assert difference(picture.image, stylized) < 6
        assert difference(picture.image, photo) > 20
    # Every frame that came in went out, or was dropped for a newer one while the model was busy (and counted so): at
    # each snapshot a few are in flight (the newest-frame slot, the model, the queue to the outputs, an output's slot).
    came_in, dropped = after["frames_in"] - before["frames_in"], after["dropped"] - before["dropped"]
    went_out = after["frames_out"] - before["frames_out"]
    assert went_out > 0 and abs(came_in - dropped - went_out) <= 4, (before, after)
    # Nothing lost on the way to the reader: the encoder starts a keyframe every `gop` pictures (one second of the
    # input), so between two keyframes read there are always that many.
    intervals = keyframe_intervals(reader.pictures)
    assert len(intervals) >= 2 and len(set(intervals)) == 1, intervals
    assert after["latency_ms_median"] is not None and after["latency_ms_median"] > 0
    # SIGTERM closed the recording properly: every picture written is in it, no temporary left.
    with av.open(str(recording)) as container:
        assert sum(1 for _ in container.decode(video=0)) == final["outputs"][1]["frames"], final
    assert not list(tmp_path.glob(".*partial*"))
    print(f"added latency (decode to sent), median {after['latency_ms_median']} ms, p95 {after['latency_ms_p95']}")


def test_input_publisher_killed_and_back_the_output_goes_on(tmp_path):
    recording = tmp_path / "recording.mkv"
    with RtspRelay(paths=(), av_paths=("in", "out")) as relay, \
            Restreamer(tmp_path, relay.read_url("in"), relay.publish_url("out"), "--out", str(recording),
                       options=OPTIONS) as app:  # fmt: skip
        first = Publisher(relay.publish_url("in"), clip=PHOTO, seconds=PUBLISHING_S, barcode=False, fps=FPS,
                          audio=True).start()  # fmt: skip
        app.wait_for_count(lambda s: s["frames_out"], 10, "the first stylized frames")
        with Reader(relay.read_url("out")) as reader:
            wait_for_count(lambda: len(reader.pictures), 5, "the output to be readable")
            first.kill()
            lost = time.monotonic()
            wait_until(lambda: "lost" in app.log, 60, "the input loss to be noticed")
            # Meanwhile the output repeats the last picture (5 times a second, as the machine allows): viewers keep a
            # session and a picture. Every repeat the app counted reached the reader.
            repeats = app.stats()["outputs"][0]["repeats"]
            app.wait_for_count(lambda s: s["outputs"][0]["repeats"], repeats + 10, "10 repeated pictures")
            assert len(reader.since(lost)) >= 10 - 2  # the last ones may still be on their way
        frames_before = app.stats()["frames_in"]
        with Publisher(relay.publish_url("in"), clip=PHOTO, seconds=PUBLISHING_S, barcode=False, fps=FPS, audio=True):
            stats = app.wait_for_stats(lambda s: s["reconnects_in"] >= 1 and s["frames_in"] > frames_before + 20,
                                       STARTUP_S, "the input to come back")  # fmt: skip
            assert app.stop() == 0
    assert "reconnected" in app.log
    assert stats["outputs"][0]["repeats"] > 0
    # The sound track ran on without a gap: silence while the input was away (the muxer did not hold the repeated
    # pictures back waiting for sound, or the reader above would have had none), and the tone again after.
    with av.open(str(recording)) as container:
        sound = [(float(chunk.pts * chunk.time_base), np.abs(chunk.to_ndarray()).max())
                 for chunk in container.decode(audio=0)]  # fmt: skip
    assert max(after[0] - before[0] for before, after in itertools.pairwise(sound)) < 0.1
    loud = "".join("1" if level > 0.1 else "0" for _, level in sound)  # AAC frames of 1024 samples: 47 a second
    # The longest quiet stretch between two stretches of tone is the input's absence. On a busy machine the tone may
    # have short holes besides: the relay stamps sound as it forwards it, and where its stamps jump by more than the
    # writer's slack (150 ms) the track follows them.
    away = max(re.finditer(r"(?<=1)0+(?=1)", loud), key=lambda quiet: len(quiet.group()), default=None)
    assert away and len(away.group()) >= 40, loud
    assert loud[: away.start()].count("1") >= 20 and loud[away.end() :].count("1") >= 40, loud


def test_output_server_gone_and_back_publishing_resumes(tmp_path):
    with RtspRelay(paths=("in",)) as source_relay, RtspRelay(paths=("out",)) as sink_relay, \
            Publisher(source_relay.publish_url("in"), clip=PHOTO, seconds=PUBLISHING_S, barcode=False, fps=FPS), \
            Restreamer(tmp_path, source_relay.read_url("in"), sink_relay.publish_url("out"), options=OPTIONS) \
            as app:  # fmt: skip
        app.wait_for_count(lambda s: s["frames_out"], 10, "the first stylized frames")
        sink_relay.stop()
        wait_until(lambda: "retrying" in app.log, 60, "the lost output to be noticed")
        frames_in = app.stats()["frames_in"]
        sink_relay.start()
        stats = app.wait_for_stats(lambda s: s["outputs"][0]["reconnects"] >= 1, STARTUP_S, "publishing to resume")
        assert stats["frames_in"] > frames_in  # the input went on meanwhile
        with Reader(sink_relay.read_url("out")) as reader:
            wait_for_count(lambda: len(reader.pictures), 10, "pictures from the restarted server")
        assert app.stop() == 0
    assert app.log.count("publishing") >= 2


def test_a_frozen_output_server_holds_neither_the_other_outputs_nor_the_stop(tmp_path):
    """A server that hangs with its connection open takes nothing more, and FFmpeg's writes to it wait for ever: the
    output counts as down, the recording goes on, and SIGTERM still ends the restream with the recording complete."""
    recording = tmp_path / "recording.mkv"
    with RtspRelay(paths=("in", "out")) as relay, FreezingProxy(relay.port) as proxy, \
            Publisher(relay.publish_url("in"), clip=PHOTO, seconds=PUBLISHING_S, barcode=False, fps=FPS), \
            Restreamer(tmp_path, relay.read_url("in"), f"rtsp://127.0.0.1:{proxy.port}/out", "--out", str(recording),
                       options=OPTIONS) as app:  # fmt: skip
        app.wait_for_count(lambda s: s["outputs"][0]["frames"], 10, "the first frames published")
        proxy.freeze()
        stalled = app.wait_for_stats(lambda s: s["outputs"][0]["stalled"], STARTUP_S, "the output to stall")
        assert not stalled["outputs"][0]["connected"] and stalled["outputs"][1]["connected"]
        app.wait_for_count(lambda s: s["outputs"][1]["frames"], stalled["outputs"][1]["frames"] + 10,
                           "the recording to go on")  # fmt: skip
        assert app.stop() == 0
    assert "left unfinished" in app.log
    with av.open(str(recording)) as container:
        assert sum(1 for _ in container.decode(video=0)) >= app.stats()["outputs"][1]["frames"]


def test_restream_carries_the_inputs_audio_from_rtsp_to_rtsp(tmp_path):
    with RtspRelay(paths=(), av_paths=("in", "out")) as relay, \
            Publisher(relay.publish_url("in"), clip=PHOTO, seconds=PUBLISHING_S, barcode=False, fps=FPS,
                      audio=True), \
            Restreamer(tmp_path, relay.read_url("in"), relay.publish_url("out"), options=OPTIONS) as app:  # fmt: skip
        app.wait_for_count(lambda s: s["frames_out"], 10, "the first stylized frames")
        with av.open(relay.read_url("out"), options=READER_OPTIONS, timeout=(STARTUP_S, 10)) as container:
            # The relay's av path takes exactly H.264 then AAC: a publisher without the audio is refused.
            assert [stream.codec_context.name for stream in container.streams] == ["h264", "aac"]
            pictures, sound = read_on_one_clock(container, seconds=4)
        assert app.stop() == 0, app.log
        assert app.stop() == 0, app.log
    # They came with as much of the publisher's tone: the app writes one unbroken track. It sends the sound that came
    # with a picture after it, and the relay stamps what it forwards as it comes, so at each end of the span the sound
    # may be off by as much as the longest gap between two pictures; the writer lets its track drift by up to its
    # slack (150 ms) before following the stamps.
    span, gap = pictures[-1] - pictures[0], max(b - a for a, b in itertools.pairwise(pictures))
    heard = sum(length for at, length, _ in sound if pictures[0] <= at < pictures[-1])
    assert span >= 4 and heard == pytest.approx(span, abs=2 * gap + 0.15), (heard, gap, pictures)
    assert max(peak for _, _, peak in sound) > 0.2  # the tone, not silence


def test_missing_source_file_is_one_line_and_status_2(tmp_path):
    result = run_cli("stream", tmp_path / "nope.mp4", tmp_path / "out.mp4", "--style", "7")
    assert result.returncode == 2
    assert result.stderr.strip() == f"streamstyle: error: source not found: {tmp_path / 'nope.mp4'}"
