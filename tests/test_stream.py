"""`streamstyle stream` between real RTSP servers on 127.0.0.1: a publisher sends a picture, the restreamer
stylizes it and publishes it, a reader takes it back; then the publisher dies and returns, and the output server
stops and returns. Every wait is bounded."""

from __future__ import annotations

import itertools
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest

from streamstyle.io.images import read_image

from .conftest import SAMPLES, wait_until
from .media import difference, live_model_output
from .rtsp.server import READER_OPTIONS, Publisher, RtspRelay, relay_unavailable

pytestmark = pytest.mark.skipif(relay_unavailable() is not None, reason=str(relay_unavailable()))

PHOTO = SAMPLES / "photos" / "skimage_coffee.png"  # 600x400, sent as a steady stream of one picture
FPS = 10
MAX_SIZE = 128


class Restreamer:
    """`streamstyle stream` in a subprocess, its log in a file and its stats in a JSON file."""

    def __init__(self, tmp_path: Path, source: str, *outputs: str, extra: tuple[str, ...] = ()):
        self.log_path, self.stats_path = tmp_path / "stream.log", tmp_path / "stats.json"
        command = [sys.executable, "-m", "streamstyle.cli", "stream", source, *outputs, "--style", "7",
                   "--max-size", str(MAX_SIZE), "--temporal", "off", "--read-timeout", "2",
                   "--stats-json", str(self.stats_path), *extra]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.log_path.open("w"))

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def stats(self) -> dict:
        try:
            return json.loads(self.stats_path.read_text())
        except FileNotFoundError:
            return {}

    def wait_for_stats(self, condition, seconds: float, what: str) -> dict:
        return wait_until(lambda: (s := self.stats()) and condition(s) and s, seconds, f"{what}; log:\n{self.log}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.process.kill()
        self.process.wait()


class Reader:
    """Reads an RTSP stream in a thread, reopening it when it ends, keeping (arrival time, pts in s or None,
    frame)."""

    def __init__(self, url: str, seconds: float):
        self.url, self.frames, self.deadline = url, [], time.monotonic() + seconds
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while time.monotonic() < self.deadline:
            try:
                with av.open(self.url, options=READER_OPTIONS, timeout=(5.0, 3.0)) as container:
                    for frame in container.decode(video=0):
                        pts = float(frame.pts * frame.time_base) if frame.pts is not None else None
                        self.frames.append((time.monotonic(), pts, frame.to_ndarray(format="rgb24")))
                        if time.monotonic() > self.deadline:
                            return
            except av.error.FFmpegError:
                time.sleep(0.2)

    def since(self, moment: float) -> list:
        return [frame for frame in self.frames if frame[0] >= moment]


@pytest.fixture(scope="module")
def photo():
    return read_image(PHOTO)


@pytest.fixture(scope="module")
def stylized(photo):
    return live_model_output(photo, "7", MAX_SIZE)


def test_restream_publishes_every_frame_stylized_and_closes_cleanly(tmp_path, photo, stylized):
    recording = tmp_path / "recording.mp4"
    with RtspRelay(paths=("in", "out")) as relay, \
            Publisher(relay.publish_url("in"), clip=PHOTO, seconds=90, barcode=False, fps=FPS), \
            Restreamer(tmp_path, relay.read_url("in"), relay.publish_url("out"), "--out", str(recording)) as app:
        app.wait_for_stats(lambda s: s["frames_out"] >= 10, 60, "the first stylized frames")
        reader = Reader(relay.read_url("out"), seconds=40)
        wait_until(lambda: len(reader.frames) >= 40, 40, "40 frames read back from the output")
        before = app.stats()
        steady = reader.frames[-30:]
        time.sleep(1)
        after = app.stats()
        assert app.stop() == 0, app.log
    # Stylized: the model's picture, through two H.264 encodes; far from the photo itself.
    for _, _, image in steady[-5:]:
        assert difference(image, stylized) < 6
        assert difference(image, photo) > 20
    # No loss in steady state. The model kept up: nothing dropped for a newer frame, everything read went out.
    assert after["dropped"] == before["dropped"]
    assert after["frames_out"] >= after["frames_in"] - 1
    # And nothing lost on the way to the reader: 30 consecutive frames span 29 frame intervals of capture time
    # (a lost frame adds one); single steps jitter with the input's arrival times.
    span = steady[-1][1] - steady[0][1]
    assert abs(span - 29 / FPS) < 0.5 / FPS, [b[1] - a[1] for a, b in itertools.pairwise(steady)]
    assert before["latency_ms_median"] is not None and before["latency_ms_median"] > 0
    # SIGTERM closed the recording properly: a complete, playable file, no temporary left.
    with av.open(str(recording)) as container:
        assert sum(1 for _ in container.decode(video=0)) >= 40
    assert not list(tmp_path.glob(".*partial*"))
    print(f"added latency (decode to sent), median {before['latency_ms_median']} ms, p95 {before['latency_ms_p95']}")


def test_input_publisher_killed_and_back_the_output_goes_on(tmp_path):
    recording = tmp_path / "recording.mkv"
    with RtspRelay(paths=(), av_paths=("in", "out")) as relay, \
            Restreamer(tmp_path, relay.read_url("in"), relay.publish_url("out"), "--out", str(recording)) \
            as app:  # fmt: skip
        first = Publisher(relay.publish_url("in"), clip=PHOTO, seconds=90, barcode=False, fps=FPS, audio=True).start()
        app.wait_for_stats(lambda s: s["frames_out"] >= 10, 60, "the first stylized frames")
        reader = Reader(relay.read_url("out"), seconds=60)
        wait_until(lambda: len(reader.frames) >= 5, 30, "the output to be readable")
        first.kill()
        lost = time.monotonic()
        wait_until(lambda: "lost" in app.log, 15, "the input loss to be noticed")
        time.sleep(3)
        # Meanwhile the output repeated the last picture, 5 times a second: viewers keep a session and a picture.
        assert len(reader.since(lost + 1)) >= 6
        frames_before = app.stats()["frames_in"]
        with Publisher(relay.publish_url("in"), clip=PHOTO, seconds=90, barcode=False, fps=FPS, audio=True):
            stats = app.wait_for_stats(lambda s: s["reconnects_in"] >= 1 and s["frames_in"] > frames_before + 20,
                                       40, "the input to come back")  # fmt: skip
            assert app.stop() == 0
    assert "reconnected" in app.log
    assert stats["outputs"][0]["repeats"] > 0
    # The sound track ran on without a gap: silence while the input was away (the muxer did not hold the repeated
    # pictures back waiting for sound, or the reader above would have had none), and the tone again after.
    with av.open(str(recording)) as container:
        sound = [(float(chunk.pts * chunk.time_base), np.abs(chunk.to_ndarray()).max())
                 for chunk in container.decode(audio=0)]  # fmt: skip
    assert max(after[0] - before[0] for before, after in itertools.pairwise(sound)) < 0.1
    loud = "".join("1" if level > 0.1 else "0" for _, level in sound)
    assert re.fullmatch(r"0*1{20,}0{40,}1{40,}0*", loud), loud  # AAC frames of 1024 samples: 47 a second


def test_output_server_gone_and_back_publishing_resumes(tmp_path):
    with RtspRelay(paths=("in",)) as source_relay, RtspRelay(paths=("out",)) as sink_relay, \
            Publisher(source_relay.publish_url("in"), clip=PHOTO, seconds=90, barcode=False, fps=FPS), \
            Restreamer(tmp_path, source_relay.read_url("in"), sink_relay.publish_url("out")) as app:  # fmt: skip
        app.wait_for_stats(lambda s: s["frames_out"] >= 10, 60, "the first stylized frames")
        sink_relay.stop()
        wait_until(lambda: "retrying" in app.log, 15, "the lost output to be noticed")
        frames_in = app.stats()["frames_in"]
        sink_relay.start()
        stats = app.wait_for_stats(lambda s: s["outputs"][0]["reconnects"] >= 1, 40, "publishing to resume")
        assert stats["frames_in"] > frames_in  # the input went on meanwhile
        reader = Reader(sink_relay.read_url("out"), seconds=30)
        wait_until(lambda: len(reader.frames) >= 10, 30, "frames from the restarted server")
        assert app.stop() == 0
    assert app.log.count("publishing") >= 2


def test_restream_carries_the_inputs_audio_from_rtsp_to_rtsp(tmp_path):
    with RtspRelay(paths=(), av_paths=("in", "out")) as relay, \
            Publisher(relay.publish_url("in"), clip=PHOTO, seconds=90, barcode=False, fps=FPS, audio=True), \
            Restreamer(tmp_path, relay.read_url("in"), relay.publish_url("out")) as app:  # fmt: skip
        app.wait_for_stats(lambda s: s["frames_out"] >= 10, 60, "the first stylized frames")
        with av.open(relay.read_url("out"), options=READER_OPTIONS, timeout=(5, 3)) as container:
            # The relay's av path takes exactly H.264 then AAC: a publisher without the audio is refused.
            assert [stream.codec_context.name for stream in container.streams] == ["h264", "aac"]
            pictures, sound = [], []
            for packet in container.demux():
                for frame in packet.decode():
                    (pictures if isinstance(frame, av.VideoFrame) else sound).append(frame)
                if len(pictures) >= 4 * FPS:
                    break
        assert app.stop() == 0, app.log
    # Four seconds of pictures came with about four seconds of the publisher's tone.
    heard = sum(frame.samples for frame in sound) / sound[0].sample_rate
    assert heard == pytest.approx(len(pictures) / FPS, abs=0.6)
    assert max(abs(frame.to_ndarray()).max() for frame in sound) > 0.2  # the tone, not silence


def test_missing_source_file_is_one_line_and_status_2(tmp_path):
    command = ["stream", str(tmp_path / "nope.mp4"), str(tmp_path / "out.mp4"), "--style", "7"]
    result = subprocess.run([sys.executable, "-m", "streamstyle.cli", *command], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == f"streamstyle: error: source not found: {tmp_path / 'nope.mp4'}"
