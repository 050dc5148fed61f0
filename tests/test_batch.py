"""`streamstyle batch` on a real Ray cluster of two nodes on 127.0.0.1 (and on the Ray instance the command starts
itself): outputs like `file`'s, a bad file among good ones, a worker killed mid-file, the driver interrupted and
run again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import av
import pytest

from .cluster import ENV, RayCluster
from .conftest import SAMPLES, STARTUP_S, free_port, one_line_error, run_cli, takes_ctrl_c, wait_until
from .media import audio_digest, video_timestamps, write_audio_first_clip

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

CLIPS = SAMPLES / "clips"
SMALL = ("--style", "7", "--max-size", "32", "--temporal", "off", "--quiet")


def manifest_of(folder: Path) -> dict:
    return json.loads((folder / "streamstyle-batch.json").read_text())


def left_behind(folder: Path) -> list[str]:
    """Temporary files of unfinished writers."""
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name)


@pytest.fixture(scope="module")
def cluster():
    with RayCluster(nodes=2, cpus=1) as running:
        yield running


def test_a_batch_of_three_clips_is_spread_over_both_nodes_and_each_output_is_like_files(tmp_path, cluster):
    toned = tmp_path / "bikes_tone.mkv"
    write_audio_first_clip(toned, CLIPS / "bikes.mp4", "aac", seconds=1.0)
    inputs = [CLIPS / "bigbuckbunny_2s.mp4", toned, CLIPS / "city_2s.mpg"]
    out = tmp_path / "out"
    out.mkdir()
    done = run_cli("batch", *inputs, "--out-dir", out, "--address", cluster.address, "--workers", "2", *SMALL,
                   env=ENV)  # fmt: skip
    assert done.returncode == 0, done.stderr
    for source in inputs:
        output = out / f"{source.stem}.mp4"
        assert video_timestamps(output) == video_timestamps(source), source.name  # every frame once, in time
        with av.open(str(source)) as container:
            has_audio = bool(container.streams.audio)
        if has_audio:
            assert audio_digest(output) == audio_digest(source), source.name  # the sound copied as it was
    manifest = manifest_of(out)
    assert manifest["counts"] == {"done": 3, "skipped": 0, "failed": 0}
    # Two workers, one per node, each given a file at once: both nodes worked.
    assert len(manifest["per_node"]) == 2, manifest["per_node"]
    assert left_behind(out) == []

    again = run_cli("batch", *inputs, "--out-dir", out, "--address", cluster.address, *SMALL, env=ENV)
    assert again.returncode == 0, again.stderr
    assert manifest_of(out)["counts"] == {"done": 0, "skipped": 3, "failed": 0}


def test_a_bad_file_is_reported_and_the_others_are_done_on_a_ray_of_its_own(tmp_path, cluster):
    bad = tmp_path / "notes.mp4"
    bad.write_text("not a video")
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli("batch", CLIPS / "city_2s.mpg", bad, "--out-dir", out, *SMALL, env=ENV)
    assert result.returncode == 2, result.stderr
    assert "notes.mp4" in result.stderr and "1 of 2 file(s) failed" in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr
    manifest = manifest_of(out)
    # A Ray of its own, on this machine, even with the module's cluster running here (which ray.init would join).
    assert manifest["cluster"]["address"].startswith("this machine (") and manifest["cluster"]["nodes"] == 1
    files = {Path(entry["input"]).name: entry for entry in manifest["files"]}
    assert files["notes.mp4"]["status"] == "failed" and "not a readable video" in files["notes.mp4"]["error"]
    assert files["city_2s.mpg"]["status"] == "done"
    assert video_timestamps(out / "city_2s.mp4") == video_timestamps(CLIPS / "city_2s.mpg")
    assert sorted(p.name for p in out.iterdir()) == ["city_2s.mp4", "streamstyle-batch.json"]


def batch_job(inputs: list[Path], out: Path, address: str) -> subprocess.Popen:
    """The command with one worker, started once the workers of earlier tests are gone (the test finds its worker by
    its process title)."""
    wait_until(lambda: not worker_pids(), 60, "the workers of earlier tests to be gone")
    return subprocess.Popen([sys.executable, "-m", "streamstyle.cli", "batch", *map(str, inputs), "--out-dir",
                             str(out), "--address", address, "--workers", "1", *SMALL],
                            stderr=subprocess.PIPE, text=True, env=ENV, preexec_fn=takes_ctrl_c)  # fmt: skip


def worker_pids() -> list[int]:
    found = subprocess.run(["pgrep", "-f", "ray::StyleWorker"], capture_output=True, text=True)
    return [int(pid) for pid in found.stdout.split()]


def test_a_worker_killed_mid_file_is_replaced_and_the_output_is_whole(tmp_path, cluster):
    out = tmp_path / "out"
    out.mkdir()
    source = CLIPS / "bikes.mp4"
    job = batch_job([source], out, cluster.address)
    try:
        wait_until(lambda: left_behind(out), STARTUP_S, "the worker to start writing")
        (pid,) = worker_pids()
        os.kill(pid, signal.SIGKILL)
        _, errors = job.communicate(timeout=2 * STARTUP_S)
    finally:
        job.kill()
    assert job.returncode == 0, errors
    assert pid not in worker_pids()
    assert video_timestamps(out / "bikes.mp4") == video_timestamps(source)
    assert manifest_of(out)["counts"]["done"] == 1 and left_behind(out) == []


def test_the_driver_interrupted_leaves_nothing_half_written_and_a_rerun_finishes(tmp_path, cluster):
    out = tmp_path / "out"
    out.mkdir()
    inputs = [CLIPS / "city_2s.mpg", CLIPS / "bikes.mp4"]  # one worker: city first, then bikes
    job = batch_job(inputs, out, cluster.address)
    try:
        wait_until(lambda: (out / "city_2s.mp4").exists() and left_behind(out), STARTUP_S, "the second file")
        job.send_signal(signal.SIGINT)
        _, errors = job.communicate(timeout=STARTUP_S)
    finally:
        job.kill()
    assert job.returncode == 130 and "interrupted" in errors and "Traceback" not in errors, errors
    wait_until(lambda: not worker_pids(), 60, "the workers to be gone")
    assert sorted(p.name for p in out.iterdir()) == ["city_2s.mp4"]  # done whole, or not there at all
    before = (out / "city_2s.mp4").stat().st_mtime_ns

    rerun = run_cli("batch", *inputs, "--out-dir", out, "--address", cluster.address, *SMALL, env=ENV)
    assert rerun.returncode == 0, rerun.stderr
    assert manifest_of(out)["counts"] == {"done": 1, "skipped": 1, "failed": 0}
    assert (out / "city_2s.mp4").stat().st_mtime_ns == before  # reused, not redone
    assert video_timestamps(out / "bikes.mp4") == video_timestamps(CLIPS / "bikes.mp4")


def test_a_cluster_that_is_not_there_is_one_line_and_nothing_is_written(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli("batch", CLIPS / "city_2s.mpg", "--out-dir", out, "--address", f"127.0.0.1:{free_port()}",
                     *SMALL, env=ENV)  # fmt: skip
    one_line_error(result, "cannot reach the Ray cluster at 127.0.0.1:")
    assert list(out.iterdir()) == []
