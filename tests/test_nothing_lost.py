"""Nothing lost, nothing half-written: no output is ever an input or replaces what it should not, two runs on one
output keep both results, a signal unwinds every command like Ctrl-C, a restream with no working output stops,
and a damaged input is said plainly. Real files, a real FIFO and device, real second processes, real signals."""

import contextlib
import hashlib
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import pytest

from streamstyle.core.errors import OutputError
from streamstyle.core.files import JSON_FILE, AtomicFile, claim_output, one_process_at_a_time
from streamstyle.io.media import VIDEO_FILE
from tests.conftest import STARTUP_S, one_line_error, run_cli, run_cli_without_model, takes_ctrl_c, wait_until
from tests.media import write_moving_clip

SMALL = ("--style", "7", "--max-size", "32", "--temporal", "off")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def frames_in(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".partial" in p.name)


@pytest.fixture
def clip(tmp_path) -> Path:
    path = tmp_path / "v" / "clip.mp4"
    path.parent.mkdir()
    write_moving_clip(path, 20)
    return path


# --- 1. an output is never an input, nor a file of another kind unless asked ------------------------------------


def test_an_output_is_never_an_input_however_it_is_named(tmp_path, clip):
    (tmp_path / "link.mp4").symlink_to(clip)
    os.link(clip, tmp_path / "hard.mp4")
    for name in (clip, tmp_path / "v" / ".." / "v" / "clip.mp4", tmp_path / "link.mp4", tmp_path / "hard.mp4"):
        with pytest.raises(OutputError, match="would overwrite its input"):
            claim_output(name, [clip], VIDEO_FILE)
        with pytest.raises(OutputError, match="would overwrite its input"):
            claim_output(name, [clip], VIDEO_FILE, overwrite=True)  # not even when asked


def test_an_existing_file_of_another_kind_is_replaced_only_when_asked(tmp_path, clip):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    with pytest.raises(OutputError, match="exists and is not a JSON file; pass --overwrite"):
        claim_output(notes, kind=JSON_FILE)
    with pytest.raises(OutputError, match="exists and is not a video file"):
        claim_output(notes, [clip], VIDEO_FILE)
    assert claim_output(notes, kind=JSON_FILE, overwrite=True) == notes
    stats = tmp_path / "stats.json"
    stats.write_text('{"frames_in": 3}')
    empty = tmp_path / "empty.mp4"
    empty.touch()  # what mktemp or touch leaves: nothing to lose
    assert claim_output(stats, kind=JSON_FILE) == stats
    assert claim_output(empty, [clip], VIDEO_FILE) == empty
    assert claim_output(clip, [], VIDEO_FILE) == clip  # a video over a video: the usual re-run


def test_stream_refuses_to_write_over_its_input_or_other_kinds_of_file(tmp_path, clip):
    """The cases that once replaced a 20 s input with a recording, an input video with JSON, and a text file with
    stats: refused before anything starts, every file as it was."""
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    before = {path: digest(path) for path in (clip, notes)}
    cases = [
        ((clip, clip), "would overwrite its input"),
        ((clip, "--out", tmp_path / "v" / ".." / "v" / "clip.mp4"), "would overwrite its input"),
        ((clip, tmp_path / "out.mp4", "--stats-json", clip), "would overwrite its input"),
        ((clip, tmp_path / "out.mp4", "--stats-json", notes), "exists and is not a JSON file"),
        ((clip, notes), "exists and is not a video file"),
        ((clip, tmp_path / "a.mp4", "--out", tmp_path / "v" / ".." / "a.mp4"), "are the same file"),
    ]
    for args, message in cases:
        result = run_cli_without_model("stream", *args, "--style", "7")
        assert message in one_line_error(result) and result.stdout == "torch loaded: False\n"
    assert {path: digest(path) for path in before} == before
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []


@pytest.mark.slow
def test_file_replaces_a_file_of_another_kind_only_with_overwrite(tmp_path, clip):
    out = tmp_path / "out.mp4"
    out.write_text("not a video")
    refused = run_cli_without_model("file", clip, out, *SMALL)
    assert "pass --overwrite" in one_line_error(refused) and refused.stdout == "torch loaded: False\n"
    assert out.read_text() == "not a video"
    done = run_cli("file", clip, out, *SMALL, "--overwrite", "--quiet")
    assert done.returncode == 0, done.stderr
    assert frames_in(out) == 20


def test_bench_train_and_sheet_outputs_claim_their_paths_too(tmp_path, clip):
    painting = tmp_path / "painting.png"
    painting.write_bytes((Path(__file__).parent.parent / "samples" / "paintings").glob("*.jpg").__next__().read_bytes())
    assert "would overwrite its input" in one_line_error(
        run_cli("train", "--style", painting, "--content", clip, "--out", painting, "--steps", "1")
    )
    assert "is not a JSON file" in one_line_error(run_cli("bench", "--json", clip, "--sizes", "360p"))
    assert frames_in(clip) == 20
    before = digest(painting)
    assert "would overwrite its input" in one_line_error(run_cli("styles", "--sheet", painting, "-o", painting))
    assert digest(painting) == before


# --- 2. two runs writing one output --------------------------------------------------------------------------------


def test_a_commit_never_replaces_what_another_writer_completed_meanwhile(tmp_path):
    out = tmp_path / "out.txt"
    first, second = AtomicFile(out), AtomicFile(out)
    assert first.partial != second.partial  # each writer its own temporary name
    first.partial.write_text("first")
    second.partial.write_text("second")
    first.commit()
    with pytest.raises(OutputError, match="written by another run while this one worked; this run's result is"):
        second.commit()
    kept = [p for p in tmp_path.iterdir() if p.name not in ("out.txt",)]
    assert out.read_text() == "first" and [p.read_text() for p in kept] == ["second"]
    assert leftovers(tmp_path) == []


FIFO_FRAMES = 100  # enough that half of them open the input


@contextlib.contextmanager
def file_job_mid_input(folder: Path, out: Path) -> Iterator[tuple[subprocess.Popen, Callable[[], None]]]:
    """`streamstyle file` reading a FIFO of which the test has written half: the job is surely mid-file, with its
    output started, until the test calls the second thing yielded, which writes the rest and ends the input. The job
    is killed if it still runs when the block ends."""
    clip = folder / "clip.ts"
    write_moving_clip(clip, FIFO_FRAMES, format="mpegts")
    data = clip.read_bytes()
    fifo = folder / "fifo.ts"
    os.mkfifo(fifo)
    job = subprocess.Popen([sys.executable, "-m", "streamstyle.cli", "file", str(fifo), str(out), *SMALL, "--quiet"],
                           stderr=subprocess.PIPE, text=True, preexec_fn=takes_ctrl_c)  # fmt: skip
    try:
        with fifo.open("wb") as pipe:
            pipe.write(data[: len(data) // 2])
            pipe.flush()
            wait_until(lambda: leftovers(out.parent), STARTUP_S, "the job to start writing")

            def end_input() -> None:
                pipe.write(data[len(data) // 2 :])
                pipe.close()

            yield job, end_input
    finally:
        job.kill()


@pytest.mark.slow
def test_two_runs_writing_one_output_keep_both_results(tmp_path, clip):
    """Run B is mid-job while run A writes the same output from start to end. A's file stays; B's result is kept
    beside it, and said."""
    out = tmp_path / "out.mp4"
    with file_job_mid_input(tmp_path, out) as (b, end_input):
        a = run_cli("file", clip, out, *SMALL, "--quiet")
        assert a.returncode == 0, a.stderr
        end_input()
        _, errors = b.communicate(timeout=STARTUP_S)
    assert frames_in(out) == 20  # run A's
    assert b.returncode == 2 and "written by another run while this one worked" in errors, errors
    (kept,) = [p for p in tmp_path.iterdir() if p.name.startswith("out.") and p.name != "out.mp4"]
    assert frames_in(kept) == FIFO_FRAMES and kept.name in errors  # run B's, whole
    assert leftovers(tmp_path) == []


# --- 3. Ctrl-C, SIGTERM and SIGHUP -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_stops_a_file_job_like_ctrl_c_and_leaves_nothing(tmp_path, signum):
    """Held mid-input, the job is surely running when the signal comes, however busy the machine."""
    out = tmp_path / "out.mp4"
    with file_job_mid_input(tmp_path, out) as (job, _):
        job.send_signal(signum)
        _, errors = job.communicate(timeout=STARTUP_S)
    assert job.returncode == 128 + signum, errors
    said = "interrupted" if signum == signal.SIGINT else f"stopped by {signum.name}"
    assert said in errors and "Traceback" not in errors, errors
    assert not out.exists() and leftovers(tmp_path) == []


# --- 4. special output paths ---------------------------------------------------------------------------------------


def test_pipes_and_devices_are_refused_and_left_as_they_are(tmp_path, clip):
    fifo = tmp_path / "out.mp4"
    os.mkfifo(fifo)
    device = tmp_path / "null.mp4"
    os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # the null device, made here
    for output, kind in ((fifo, "named pipe"), (device, "character device")):
        assert kind in one_line_error(run_cli("file", clip, output, *SMALL))
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and stat.S_ISCHR(device.lstat().st_mode)
    assert leftovers(tmp_path) == []


@pytest.mark.slow
def test_a_symlinked_output_writes_its_target_and_stays_a_link(tmp_path, clip):
    target = tmp_path / "videos" / "out.mp4"
    target.parent.mkdir()
    link = tmp_path / "out.mp4"
    link.symlink_to(target)  # dangling until the job writes it
    done = run_cli("file", clip, link, *SMALL, "--quiet")
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and frames_in(target) == 20
    assert leftovers(tmp_path) == leftovers(target.parent) == []


# --- 5. a restream with no working output --------------------------------------------------------------------------


def test_stream_to_a_missing_folder_is_refused_before_it_starts(tmp_path, clip):
    assert "output folder does not exist" in one_line_error(
        run_cli("stream", clip, tmp_path / "no" / "out.mp4", "--style", "7")
    )


@pytest.mark.slow
def test_stream_whose_every_output_fails_exits_2_with_the_reason(tmp_path, clip):
    """An extension FFmpeg has no muxer for fails only when the first frame opens the output: the restream then has
    nothing left to write to, and stops."""
    result = run_cli("stream", clip, tmp_path / "out.nonsense", "--style", "7", "--max-size", "32")
    last = result.stderr.strip().splitlines()[-1]  # after the restream's own log lines
    assert result.returncode == 2 and last.startswith("streamstyle: error: no output could be written"), result.stderr
    assert "out.nonsense" in last and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == [clip.parent]


# --- 9. a damaged input --------------------------------------------------------------------------------------------


@pytest.fixture
def truncated(tmp_path) -> Path:
    """250 frames with the index at the start (as web uploads are), cut to 30%: the container still announces 250."""
    whole = tmp_path / "whole.mp4"
    write_moving_clip(whole, 250, options={"movflags": "faststart"})
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.3)])
    return cut


@pytest.mark.slow
def test_a_truncated_input_is_said_plainly_even_when_quiet_and_strict_makes_it_an_error(tmp_path, truncated):
    out = tmp_path / "out.mp4"
    for quiet in ((), ("--quiet",)):
        done = run_cli("file", truncated, out, *SMALL, *quiet)
        assert done.returncode == 0, done.stderr
        written = frames_in(out)
        assert 0 < written < 250
        assert f"the input ended early: {written} of the 250 frames its container announced" in done.stderr
    strict = run_cli("file", truncated, tmp_path / "strict.mp4", *SMALL, "--strict", "--quiet")
    assert "ended early" in one_line_error(strict) and "--strict" in strict.stderr
    assert not (tmp_path / "strict.mp4").exists() and leftovers(tmp_path) == []


@pytest.mark.slow
def test_the_python_report_says_the_input_ended_early(tmp_path, truncated):
    import streamstyle
    from streamstyle.core.errors import InputError

    stylizer = streamstyle.Stylizer("7", device="cpu")
    report = streamstyle.stylize_file(truncated, tmp_path / "out.mp4", stylizer,
                                      sizes=streamstyle.SizeSettings(max_size=32))  # fmt: skip
    assert report.frames_announced == 250 and report.frames < 250
    assert report.damage and "ended early" in report.damage
    with pytest.raises(InputError, match="ended early"):
        streamstyle.stylize_file(truncated, tmp_path / "strict.mp4", stylizer, strict=True)
    assert not (tmp_path / "strict.mp4").exists()
    whole = tmp_path / "whole.mp4"
    assert streamstyle.stylize_file(whole, tmp_path / "w.mp4", stylizer, strict=True).damage is None


def test_one_process_at_a_time_holds_another_process_until_the_first_lets_go(tmp_path):
    """What keeps cluster workers on one machine from compiling into OpenVINO's cache folder side by side."""
    lock = tmp_path / "compiling.lock"
    enter = "import pathlib, sys\nwith one_process_at_a_time(pathlib.Path(sys.argv[1])):\n    print('in', flush=True)"
    code = f"from streamstyle.core.files import one_process_at_a_time\n{enter}"
    with one_process_at_a_time(lock):
        other = subprocess.Popen([sys.executable, "-c", code, str(lock)], stdout=subprocess.PIPE, text=True)
        # However fast or slow the machine, it cannot get in while the lock is held here.
        with pytest.raises(subprocess.TimeoutExpired):
            other.wait(timeout=3)
    assert other.communicate(timeout=STARTUP_S)[0] == "in\n" and other.returncode == 0
