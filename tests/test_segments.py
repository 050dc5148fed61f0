"""`streamstyle file --segments` on a real Ray cluster of two nodes on 127.0.0.1: one clip cut at its keyframes,
stylized in pieces and joined, equal to the single-process output; flow smoothing that does not jump at the joins;
a worker killed mid-segment and the driver interrupted, then run again."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from streamstyle.apps.segments import plan_segments, read_timestamps
from streamstyle.core.errors import InputError
from streamstyle.offline.evaluation import warping_error

from .cluster import ENV, RayCluster
from .conftest import SAMPLES, STARTUP_S, one_line_error, reporting, run_cli, takes_ctrl_c, wait_until
from .media import audio_digest, video_timestamps, write_damaged_copy, write_even_gop_clip

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

# Lossless H.264 (x264 at constant quality 0) and one frame per model call: what the segments' workers make of a
# frame is what one process makes of it, and the comparison sees the model's pictures, not the encoder's.
EXACT = ("--max-size", "48", "--crf", "0", "--batch-size", "1")
STARRY = SAMPLES / "paintings" / "vangogh_starry_night.jpg"


@pytest.fixture(scope="module")
def cluster():
    with RayCluster(nodes=2, cpus=1) as running:
        yield running


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """Bikes at 160 px with a keyframe every 25 frames (ten places to cut) and a tone for sound."""
    path = tmp_path_factory.mktemp("clip") / "bikes_even_gop.mp4"
    write_even_gop_clip(path, SAMPLES / "clips" / "bikes.mp4", gop=25, width=160, tone_seconds=10.0)
    return path


def pictures(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def segmented(clip: Path, output: Path, address: str, *options: str) -> subprocess.CompletedProcess:
    return run_cli("file", clip, output, "--segments", "4", "--address", address, "--workers", "2", *options,
                   env=ENV, timeout=4 * STARTUP_S)  # fmt: skip


# A built-in style, and a painting at half strength: magenta then mixes it with the film's own style, which one
# process takes from the film's first frame, and so must every segment.
@pytest.mark.parametrize("style", [("--style", "7"), ("--style", str(STARRY), "--strength", "0.5")],
                         ids=["built-in", "painting-half-strength"])  # fmt: skip
def test_four_segments_without_smoothing_equal_the_single_process_output(tmp_path, cluster, clip, style):
    whole, joined = tmp_path / "whole.mp4", tmp_path / "joined.mp4"
    # The workers run on one core each (Ray tells a worker its cores in OMP_NUM_THREADS), and magenta's sums come
    # out a level apart here and there on another number of threads: so one process on one thread.
    alone = run_cli("file", clip, whole, *EXACT, *style, "--temporal", "off", "--quiet",
                    env=dict(os.environ, OMP_NUM_THREADS="1"))  # fmt: skip
    assert alone.returncode == 0, alone.stderr
    done = segmented(clip, joined, cluster.address, *EXACT, *style, "--temporal", "off")
    assert done.returncode == 0, done.stderr
    assert "4 segment(s) (0 from an earlier run) on 2 worker(s)" in done.stderr, done.stderr
    assert video_timestamps(joined) == video_timestamps(clip)  # every frame once, in order, at its time
    assert audio_digest(joined) == audio_digest(clip)  # the sound copied once, as it was
    for index, (one, other) in enumerate(zip(pictures(joined), pictures(whole), strict=True)):
        assert np.array_equal(one, other), f"frame {index} differs from the single-process output"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["joined.mp4", "whole.mp4"]  # the work folder is gone


def test_flow_smoothing_does_not_jump_at_the_joins(tmp_path, cluster, clip):
    joined = tmp_path / "joined.mp4"
    done = segmented(clip, joined, cluster.address, "--style", "7", "--max-size", "64", "--temporal", "flow",
                     "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    inputs, outputs = pictures(clip), pictures(joined)
    assert len(outputs) == len(inputs)
    errors = {index: pair_error(inputs[index : index + 2], outputs[index : index + 2])
              for index in range(len(inputs) - 1)}  # fmt: skip
    # The pairs across each join, where a segment that started afresh would show its unsmoothed first frame.
    lengths = [segment.frames for segment in plan_segments(*read_timestamps(clip), 4, 0)]
    joins = {int(end) - 1 for end in np.cumsum(lengths)[:-1]}
    assert len(joins) == 3 and all(errors[index] is not None for index in joins)
    at_joins = np.mean([errors[index] for index in joins])
    interior = np.mean([error for index, error in errors.items() if index not in joins and error is not None])
    # Measured on this clip: 0.40x with the warm-up, 1.93x with none (each segment starting afresh).
    assert at_joins <= 1.2 * interior, (at_joins, interior)


def pair_error(inputs: list[np.ndarray], outputs: list[np.ndarray]) -> float | None:
    """The warping error of two consecutive output frames; None across a scene cut, where none is measured."""
    try:
        return warping_error(inputs, outputs).warping_error
    except InputError:
        return None


def test_an_output_that_cannot_hold_the_video_is_refused_before_any_work(tmp_path, clip):
    result = run_cli("file", clip, tmp_path / "out.webm", "--segments", "2", "--style", "7", env=ENV)
    one_line_error(result, ".webm files cannot hold libx264 video")
    assert list(tmp_path.iterdir()) == []


def test_a_setting_the_workers_refuse_is_one_line_and_leaves_nothing(tmp_path, cluster, clip):
    # The network loads on the workers, not in the driver: a device their machines lack is found there.
    result = segmented(clip, tmp_path / "out.mp4", cluster.address, "--device", "cuda:99", "--quiet")
    one_line_error(result, "'cuda:99'")
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_input_is_said_as_the_file_job_says_it_and_refused_with_strict(tmp_path, cluster, clip):
    # Between keyframes, each in the warm-up of a later segment (with ema smoothing): decoded twice, counted once.
    damaged = tmp_path / "damaged.mp4"
    write_damaged_copy(damaged, clip, [37, 112, 187])
    options = ("--style", "7", "--max-size", "32", "--temporal", "ema", "--quiet")
    alone = run_cli("file", damaged, tmp_path / "whole.mp4", *options)
    joined = segmented(damaged, tmp_path / "joined.mp4", cluster.address, *options)
    assert alone.returncode == 0 and joined.returncode == 0, alone.stderr + joined.stderr
    counted = re.findall(r"skipped \d+ corrupt video packet\(s\)", alone.stderr)
    assert counted and counted == re.findall(r"skipped \d+ corrupt video packet\(s\)", joined.stderr), joined.stderr
    assert video_timestamps(tmp_path / "joined.mp4") == video_timestamps(tmp_path / "whole.mp4")  # the same lost
    strict = segmented(damaged, tmp_path / "strict.mp4", cluster.address, *options, "--strict")
    one_line_error(strict, counted[0], "(--strict)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.mp4", "joined.mp4", "whole.mp4"]


def test_a_pipeline_file_runs_in_segments_too(tmp_path, cluster, clip):
    output = tmp_path / "out.mp4"
    pipeline = tmp_path / "segments.toml"
    pipeline.write_text(f'[source]\ninput = "{clip}"\n[style]\nstyle = 7\n[size]\nmax_size = 32\n'
                        f'[temporal]\nmode = "off"\n[output]\ntargets = ["{output}"]\n'
                        f'[cluster]\nsegments = 3\naddress = "{cluster.address}"\nworkers = 2\n')  # fmt: skip
    done = run_cli("run", pipeline, env=ENV, timeout=4 * STARTUP_S)
    assert done.returncode == 0, done.stderr
    assert "3 segment(s) (0 from an earlier run) on 2 worker(s)" in done.stderr, done.stderr
    assert video_timestamps(output) == video_timestamps(clip)
    assert audio_digest(output) == audio_digest(clip)


def test_with_nothing_set_up_the_job_starts_a_ray_of_its_own_with_token_authentication(tmp_path, clip):
    # A user's environment: no Ray settings, no token yet.
    env = {name: value for name, value in os.environ.items() if not name.startswith("RAY_")}
    env["HOME"] = str(tmp_path / "home")
    output = tmp_path / "out.mp4"
    done = run_cli("file", clip, output, "--segments", "2", "--style", "7", "--max-size", "32", "--temporal", "off",
                   env=env, timeout=4 * STARTUP_S)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "started for this job): 1 node(s)" in done.stderr and "2 segment(s)" in done.stderr, done.stderr
    assert video_timestamps(output) == video_timestamps(clip)
    assert (tmp_path / "home" / ".ray" / "auth_token").is_file()  # Ray's servers take only this user's token


def worker_pids() -> list[int]:
    found = subprocess.run(["pgrep", "-f", "ray::StyleWorker"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """The clip four times over, 40 s: segments that take long enough for a test to act while they are made."""
    path = tmp_path_factory.mktemp("long_clip") / "bikes_four_times.mp4"
    write_even_gop_clip(path, SAMPLES / "clips" / "bikes.mp4", gop=25, width=160, tone_seconds=40.0, loops=4)
    return path


def test_a_killed_worker_and_an_interrupted_driver_lose_nothing_and_a_rerun_reuses_the_segments(tmp_path, cluster,
                                                                                                long_clip):  # fmt: skip
    output = tmp_path / "out.mp4"
    work = tmp_path / "out.mp4.segments"
    segments = 8
    options = ("--segments", str(segments), "--address", cluster.address, "--workers", "1", "--style", "7",
               "--max-size", "64", "--temporal", "ema")  # fmt: skip
    wait_until(lambda: not worker_pids(), 60, "the workers of earlier tests to be gone")
    job = subprocess.Popen([sys.executable, "-m", "streamstyle.cli", "file", str(long_clip), str(output), *options],
                           stderr=subprocess.PIPE, text=True, env=ENV, preexec_fn=takes_ctrl_c)  # fmt: skip
    finished = lambda: sorted(work.glob("segment-*.mp4"))  # noqa: E731
    started = lambda: list(work.glob(".segment-*.partial.mp4"))  # noqa: E731

    def folder() -> str:
        return f"; the work folder: {sorted(p.name for p in work.iterdir()) if work.exists() else 'gone'}"

    try:
        # The conditions hold from some moment on, however many segments went by between two looks: a fast machine
        # makes a segment between them.
        with reporting(job, folder):
            wait_until(lambda: finished() and started(), STARTUP_S, "a segment to finish and another to start", 0.05)
            (pid,) = worker_pids()
            before_kill = len(finished())
            os.kill(pid, signal.SIGKILL)  # mid-segment: it is tried again on a new worker
            wait_until(lambda: len(finished()) > before_kill, 2 * STARTUP_S, "a segment after the kill", 0.05)
        job.send_signal(signal.SIGINT)
        _, errors = job.communicate(timeout=STARTUP_S)
    finally:
        job.kill()
    assert job.returncode == 130 and "interrupted" in errors and "Traceback" not in errors, errors
    assert pid not in worker_pids()
    assert not output.exists() and not list(tmp_path.glob(".out.*"))  # nothing at the output, whole or half
    kept = [path.name for path in finished()]  # one worker: the first segments, in order
    assert before_kill < len(kept) < segments and not started(), kept
    assert kept == [f"segment-{index:05d}.mp4" for index in range(len(kept))], kept

    rerun = run_cli("file", long_clip, output, *options, env=ENV, timeout=4 * STARTUP_S)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{segments} segment(s) ({len(kept)} from an earlier run)" in rerun.stderr, rerun.stderr
    assert video_timestamps(output) == video_timestamps(long_clip)
    assert audio_digest(output) == audio_digest(long_clip)
    assert not work.exists()


def test_a_node_that_leaves_mid_job_has_its_segment_done_elsewhere(tmp_path, cluster, clip):
    # Last in this file: the second node of the cluster fails while its worker paints a segment.
    output = tmp_path / "out.mp4"
    wait_until(lambda: not worker_pids(), 60, "the workers of earlier tests to be gone")
    job = subprocess.Popen([sys.executable, "-m", "streamstyle.cli", "file", str(clip), str(output), "--segments", "6",
                            "--address", cluster.address, "--style", "7", "--max-size", "64", "--temporal", "ema"],
                           stderr=subprocess.PIPE, text=True, env=ENV)  # fmt: skip
    try:
        wait_until(cluster.newest_node_is_painting, STARTUP_S, "a segment at work on the second node")
        cluster.kill_newest_node()
        _, errors = job.communicate(timeout=4 * STARTUP_S)
    finally:
        job.kill()
    assert job.returncode == 0, errors
    assert "6 segment(s)" in errors and "on 2 worker(s)" in errors, errors
    assert video_timestamps(output) == video_timestamps(clip)
    assert audio_digest(output) == audio_digest(clip)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]
