"""Bad options and odd inputs (issue 18): pipeline files and --set are held to the same ranges as the command line,
encoders and pixel formats are checked before any model loads, all of it one line and exit status 2; videos of a
few pixels go through; --quiet prints nothing when all goes well."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner

from streamstyle.apps.config import SECTIONS, load_pipeline
from streamstyle.cli.main import cli
from streamstyle.core.errors import ConfigError
from streamstyle.processing.temporal import dis_flow

from .conftest import REPO, STARTUP_S, run_cli, run_cli_without_model

PIPELINES = REPO / "pipelines"


def write_clip(path: Path, size: tuple[int, int], pix_fmt: str = "yuv420p", frames: int = 4) -> None:
    """An H.264 clip of `size` (width, height) whose picture brightens and shifts from frame to frame."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for index in range(frames):
            image = np.full((height, width, 3), 40 + 30 * index, np.uint8)
            image[:, : (index + 1) * width // (frames + 1)] = (200, 80, 40)
            picture = av.VideoFrame.from_ndarray(image, format="rgb24")
            picture.pts = index
            container.mux(stream.encode(picture))
        container.mux(stream.encode(None))


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "small.mp4"
    write_clip(path, (64, 48))
    return path


def file_pipeline(tmp_path: Path, clip: Path, extra: str = "") -> Path:
    path = tmp_path / "job.toml"
    path.write_text(f'[source]\ninput = "{clip}"\n[output]\ntargets = ["{tmp_path / "out.mp4"}"]\n'
                    f'[style]\nstyle = "7"\n[size]\nmax_size = 64\n{extra}')  # fmt: skip
    return path


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("streamstyle: error: "), stderr
    return lines[0]


# Point 8: a value out of range for every number a pipeline file takes, with the range its error names.
OUT_OF_RANGE = [
    ("source", "size", '"4x4"', "size must have sides between 8 and 16384 pixels, got 4x4"),
    ("source", "fps", "0", "fps must be between 1 and 240, got 0"),
    ("source", "read_timeout", "0.1", "read_timeout must be between 0.5 and 60, got 0.1"),
    ("style", "strength", "1.5", "strength must be between 0 and 1, got 1.5"),
    ("runtime", "batch_size", "0", "batch_size must be at least 1, got 0"),
    ("runtime", "batch_size", "-3", "batch_size must be at least 1, got -3"),
    ("size", "max_size", "0", "max_size must be at least 8, got 0"),
    ("size", "scale", "0", "scale must be between 0.05 and 4, got 0"),
    ("size", "scale", "-1", "scale must be between 0.05 and 4, got -1"),
    ("size", "output_size", '"99999x99999"', "output_size must have sides between 8 and 16384 pixels, got 99999x99999"),
    ("temporal", "smooth", "nan", "smooth must be between 0 and 1, got nan"),
    ("temporal", "flow_size", "0", "flow_size must be at least 16, got 0"),
    ("encoder", "crf", "99", "crf must be between 0 and 63, got 99"),
    ("encoder", "threads", "-5", "threads must be at least 0, got -5"),
    ("encoder", "bitrate", "5000", "bitrate must be at least 10000, got 5000"),
    ("encoder", "gop", "0", "gop must be at least 1, got 0"),
    ("output", "keyframe_seconds", "0", "keyframe_seconds must be between 0.1 and 10, got 0"),
    ("cluster", "workers", "0", "workers must be at least 1, got 0"),
]  # fmt: skip


@pytest.mark.parametrize(("section", "key", "value", "message"), OUT_OF_RANGE)
def test_every_number_of_a_pipeline_file_is_held_to_its_range(tmp_path, clip, section, key, value, message):
    path = file_pipeline(tmp_path, clip)
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path, [f"{section}.{key}={value}"])
    assert str(caught.value) == f"{path}: [{section}] {message}"


def test_the_range_list_covers_every_numeric_key():
    def numeric(hint: object) -> bool:
        options = typing.get_args(hint) or (hint,)
        return any(option in (int, float) or typing.get_args(option) == (int, int) for option in options)

    numeric_keys = {(name, field.name) for name, section in SECTIONS.items()
                    for field in dataclasses.fields(section) if numeric(typing.get_type_hints(section)[field.name])}
    assert numeric_keys == {(section, key) for section, key, _, _ in OUT_OF_RANGE}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("extra", "overrides", "message"),
    [("[runtime]\nbatch_size = 0\n", [], "[runtime] batch_size must be at least 1, got 0"),
     ("", ["--set", "encoder.crf=99"], "[encoder] crf must be between 0 and 63, got 99")],
    ids=["in the file", "by --set"],
)  # fmt: skip
def test_run_refuses_a_value_out_of_range_in_one_line_and_writes_nothing(tmp_path, clip, extra, overrides, message):
    path = file_pipeline(tmp_path, clip, extra)
    result = run_cli("run", path, *overrides, "--quiet")
    assert result.returncode == 2, result.stderr
    assert one_error_line(result.stderr) == f"streamstyle: error: {path}: {message}"
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize(
    "args",
    [["file", "{clip}", "{out}", "--max-size", "4"], ["file", "{clip}", "{out}", "--crf", "99"],
     ["file", "{clip}", "{out}", "--scale", "0"], ["stream", "{clip}", "{out}", "--gop", "0"],
     ["stream", "{clip}", "{out}", "--bitrate", "5k"], ["file", "{clip}", "{out}", "--segments", "0"],
     ["file", "{clip}", "{out}", "--segments", "many"], ["file", "{clip}", "{out}", "--workers", "2"],
     ["file", "{clip}", "{out}", "--address", "auto"]],
    ids=lambda args: " ".join(args[3:]),
)  # fmt: skip
def test_an_option_out_of_range_is_one_line_that_names_it(tmp_path, clip, args):
    out = tmp_path / "out.mp4"
    result = CliRunner().invoke(cli, [arg.format(clip=clip, out=out) for arg in args])
    assert result.exit_code == 2
    assert f"Invalid value for '{args[3]}'" in one_error_line(result.stderr)
    assert not out.exists()


# Point 7: options that ended in a traceback (an encoder that does not start, a preset x264 does not know, too);
# each is refused naming the value, before any model loads.
@pytest.mark.parametrize(
    ("args", "message"),
    [(["file", "{clip}", "{out}", "--pix-fmt", "nonsense"],
      "command line: [encoder] pix_fmt 'nonsense': FFmpeg has no such pixel format"),
     (["file", "{clip}", "{out}", "--pix-fmt", "rgb48le"],
      "command line: [encoder] pix_fmt 'rgb48le': libx264 takes yuv420p, yuvj420p"),
     (["file", "{clip}", "{out}", "--codec", "aac"], "command line: [encoder] codec 'aac' encodes audio, not video"),
     (["file", "{clip}", "{out}", "--codec", "nonsense"],
      "command line: [encoder] codec 'nonsense': FFmpeg has no such encoder"),
     (["file", "{clip}", "{out}", "--output-size", "99999x99999"],
      "command line: [size] output_size must have sides between 8 and 16384 pixels, got 99999x99999"),
     (["stream", "{clip}", "{out}", "--codec", "aac"], "command line: [encoder] codec 'aac' encodes audio, not video"),
     (["stream", "{clip}", "{out}", "--output-size", "99999x99999"],
      "command line: [size] output_size must have sides between 8 and 16384 pixels, got 99999x99999"),
     (["file", "{clip}", "{out}", "--preset", "bogus"],
      "command line: [encoder] preset 'bogus': libx264 takes ultrafast, superfast, veryfast"),
     (["stream", "{clip}", "{out}", "--codec", "libx265", "--preset", "fastest"],
      "command line: [encoder] preset 'fastest': libx265 takes ultrafast"),
     pytest.param(["file", "{clip}", "{out}", "--codec", "h264_nvenc"],
                  "command line: [encoder] codec 'h264_nvenc' does not start here with preset=p4 (",
                  marks=pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="NVENC may start here")),
     (["run", "{tmp}"], "cannot read pipeline file {tmp}: Is a directory"),
     (["run", "{pipelines}/webcam_preview.toml", "--set", "encoder.codec=aac"],
      "{pipelines}/webcam_preview.toml: [encoder] codec 'aac' encodes audio, not video"),
     (["run", "{pipelines}/webcam_preview.toml", "--set", "encoder.preset=bogus"],
      "{pipelines}/webcam_preview.toml: [encoder] preset 'bogus': libx264 takes")],
    ids=lambda value: " ".join(arg for arg in value if "{" not in arg) if isinstance(value, list) else None,
)  # fmt: skip
def test_a_bad_codec_pixel_format_size_or_pipeline_file_is_one_line_before_any_model(tmp_path, clip, args, message):
    out = tmp_path / "out.mp4"
    names = {"clip": clip, "out": out, "tmp": tmp_path, "pipelines": PIPELINES}
    result = run_cli_without_model(*(arg.format(**names) for arg in args))
    assert result.returncode == 2, result.stderr
    assert one_error_line(result.stderr).startswith(f"streamstyle: error: {message.format(**names)}")
    assert result.stdout == "torch loaded: False\n"
    assert list(tmp_path.iterdir()) == []


# Point 7: videos smaller than optical flow takes, and a single pixel, which yuv420p cannot hold as it is.
@pytest.mark.parametrize(("width", "height"), [(1, 1), (10, 6), (40, 12), (100, 8), (320, 13)])
def test_optical_flow_is_worked_out_at_any_size(width, height):
    first = np.random.default_rng(0).integers(0, 256, (height, width), np.uint8)
    flow = dis_flow(first, np.roll(first, 1, axis=1))
    assert flow.shape == (height, width, 2) and np.isfinite(flow).all()


@pytest.mark.slow
@pytest.mark.parametrize("temporal", ["flow", "off"])
@pytest.mark.parametrize(
    ("size", "pix_fmt", "written"),
    [((8, 8), "yuv420p", (8, 8)), ((10, 6), "yuv420p", (10, 6)), ((1, 1), "yuv444p", (2, 2))],
    ids=["8x8", "10x6", "1x1"],
)  # fmt: skip
def test_a_video_of_a_few_pixels_is_stylized(tmp_path, size, pix_fmt, written, temporal):
    source, out = tmp_path / "tiny.mp4", tmp_path / "out.mp4"
    write_clip(source, size, pix_fmt)
    args = ["file", str(source), str(out), "--style", "7", "--temporal", temporal, "--device", "cpu", "--quiet"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with av.open(str(out)) as container:
        pictures = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(pictures) == 4
    assert all(picture.shape == (written[1], written[0], 3) for picture in pictures)


# Point 10: --quiet prints nothing, whatever the libraries would have said.
@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "codec", "written"),
    [("file", "libx265", "hevc"), ("run", "libx265", "hevc"), ("file", "libsvtav1", "av1")],
)  # fmt: skip
def test_quiet_with_an_encoder_that_prints_on_its_own_prints_nothing(tmp_path, clip, command, codec, written):
    out = tmp_path / "out.mp4"
    if command == "file":
        result = run_cli("file", clip, out, "--style", "7", "--max-size", "64", "--codec", codec, "--quiet")
    else:
        result = run_cli("run", file_pipeline(tmp_path, clip), "--set", f"encoder.codec={codec}", "--quiet")
    assert result.returncode == 0, result.stderr
    assert (result.stdout, result.stderr) == ("", "")
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.codec.canonical_name == written


@pytest.mark.parametrize(
    ("quiet", "printed"), [(True, ["an error"]), (False, ["a warning", "a log warning", "an error"])],
    ids=["quiet", "not quiet"],
)  # fmt: skip
def test_what_libraries_say_goes_through_logging_and_quiet_keeps_errors(quiet, printed):
    """warnings.warn (PIL's DecompressionBombWarning, torch's) and library loggers alike; a subprocess, as the
    logging set-up is the whole process's."""
    code = ("import logging, warnings\n"
            "from streamstyle.cli.progress import configure_logging\n"
            f"configure_logging(quiet={quiet})\n"
            "warnings.warn('a warning', stacklevel=1)\n"
            "logging.getLogger('PIL.Image').warning('a log warning')\n"
            "logging.getLogger('streamstyle').error('an error')\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=STARTUP_S)
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith(" ")]  # no source lines
    assert len(said) == len(printed), done.stderr
    assert all(text in line for text, line in zip(printed, said, strict=True)), done.stderr
