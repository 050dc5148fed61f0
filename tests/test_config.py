"""Pipeline files: the shipped ones load, wrong keys and values are named, overrides apply, and a file pipeline
runs end to end through `streamstyle run`."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from streamstyle.apps.config import load_pipeline, pipeline_config
from streamstyle.cli.main import cli
from streamstyle.core.errors import ConfigError

from .conftest import REPO
from .media import audio_digest, video_timestamps

PIPELINES = REPO / "pipelines"


@pytest.mark.parametrize(
    ("name", "kind"),
    [("file_transcode", "file"), ("webcam_preview", "window"), ("rtsp_restream", "stream"),
     ("restream_and_record", "stream")],
)  # fmt: skip
def test_shipped_pipelines_load(name, kind):
    config = load_pipeline(PIPELINES / f"{name}.toml")
    assert config.kind == kind
    if kind != "file":
        assert config.temporal.mode == "ema"  # live default where the file says nothing else


def write(tmp_path, text: str):
    path = tmp_path / "p.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[source]\ninput = "a.mp4"\n[output]\ntargets = ["b.mp4"]\n[temporal]\nsmoothing = 0.5\n',
         "[temporal] has no key 'smoothing'; allowed: mode, smooth, flow_size"),
        ('[source]\ninput = "a.mp4"\n[output]\ntargets = ["b.mp4"]\n[temporal]\nsmooth = "high"\n',
         "[temporal] smooth must be a number, got 'high'"),
        ('[source]\ninput = "a.mp4"\n[output]\ntargets = ["b.mp4"]\n[temporal]\nmode = "blur"\n',
         "[temporal] unknown temporal mode 'blur'; use one of flow, ema, off"),
        ('[source]\ninput = "a.mp4"\n[output]\ntargets = ["b.mp4"]\n[runtime]\nbackend = "vulkan"\n',
         "[runtime] unknown backend 'vulkan'; use auto, torch, onnxruntime, openvino, tensorrt"),
        ('[source]\ninput = "a.mp4"\n[output]\ntargets = ["b.mp4"]\n[runtime]\nprecision = "fp8"\n',
         "[runtime] unknown precision 'fp8'; use auto, fp32, fp16, bf16"),
        ('[source]\ninput = "a.mp4"\n[output]\ntargets = ["b.mp4"]\n[size]\noutput_size = "big"\n',
         "[size] output_size must be a size like \"1280x720\", got 'big'"),
        ('[source]\ninput = "a.mp4"\n[outputs]\ntargets = ["b.mp4"]\n',
         "unknown section [outputs]; allowed: source, style, runtime, size, temporal, encoder, output, cluster"),
        ('[source]\ninput = "a.mp4"\n[output]\ntargets = ["b.mp4"]\n[cluster]\nsegments = 0\n',
         "[cluster] segments must be auto or a number of segments (1 or more), got '0'"),
        ('[source]\ninput = "a.mp4"\n[output]\ntargets = ["b.mp4"]\n[cluster]\naddress = "auto"\n',
         "[cluster] address and workers go with segments (a file job on Ray)"),
        ('[source]\ninput = "rtsp://cam/1"\n[output]\ntargets = ["rtsp://relay/1"]\n[cluster]\nsegments = "auto"\n',
         "[cluster] segments are for file jobs, not a stream job"),
        ('[source]\ninput = "a.mp4"\n', '[output] needs targets, e.g. targets = ["out.mp4"]'),
        ('[output]\ntargets = ["b.mp4"]\n', "[source] needs input"),
        ('[source]\ninput = "a.mp4"\n[output]\ntargets = ["window", "b.mp4"]\n',
         "[output] the window cannot be combined with other targets"),
        ("[source\n", "not valid TOML"),
    ],
)  # fmt: skip
def test_wrong_keys_and_values_name_the_file_the_key_and_what_is_allowed(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_pipeline(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)


def test_overrides_take_toml_values_and_bare_words(tmp_path):
    overrides = ["temporal.smooth=0.5", "style.style=3", "output.targets=out/x.mkv", "size.max_size=96"]
    config = load_pipeline(PIPELINES / "file_transcode.toml", overrides)
    assert (config.temporal.smooth, config.style.style, config.output.targets, config.size.max_size) == (
        0.5, "3", ("out/x.mkv",), 96)  # fmt: skip
    with pytest.raises(ConfigError, match=r"--set 'smooth=1': use section.key=value"):
        load_pipeline(PIPELINES / "file_transcode.toml", ["smooth=1"])


def test_a_file_job_in_segments_is_a_setting_of_the_file_too(tmp_path):
    path = write(tmp_path, '[source]\ninput = "a.mp4"\n[output]\ntargets = ["b.mp4"]\n[cluster]\nsegments = 4\n'
                           'address = "10.0.0.2:6379"\nworkers = 8\n')  # fmt: skip
    cluster = load_pipeline(path).cluster
    assert (cluster.segment_count, cluster.address, cluster.workers) == (4, "10.0.0.2:6379", 8)
    assert load_pipeline(path, ["cluster.segments=auto"]).cluster.segment_count is None


def test_command_line_and_file_build_the_same_config():
    from_file = load_pipeline(PIPELINES / "file_transcode.toml")
    from_options = pipeline_config(
        {"source": {"input": "samples/clips/bigbuckbunny_2s.mp4"},
         "style": {"style": "samples/paintings/hokusai_great_wave.png"}, "size": {"max_size": 480},
         "output": {"targets": ["out/bunny_hokusai.mp4"]}},
        "command line",
    )  # fmt: skip
    assert from_options == from_file  # the file spells out the defaults the commands use


def test_run_a_file_pipeline_with_overrides_keeps_frames_and_audio(tmp_path):
    out = tmp_path / "bunny.mp4"
    args = ["run", str(PIPELINES / "file_transcode.toml"), "--set", f"output.targets={out}", "--set",
            "size.max_size=96", "--set", "temporal.mode=ema", "--set", "style.style=7", "--quiet"]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    source = REPO / "samples" / "clips" / "bigbuckbunny_2s.mp4"
    assert video_timestamps(out) == video_timestamps(source)
    assert audio_digest(out) == audio_digest(source)


def test_run_with_a_bad_file_is_one_line_and_status_2(tmp_path):
    path = write(tmp_path, '[source]\ninput = "a.mp4"\n[output]\ntargets = ["b.mp4"]\n[style]\nstrenght = 1\n')
    result = CliRunner().invoke(cli, ["run", str(path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"streamstyle: error: {path}: [style] has no key 'strenght'; allowed: style, model, strength, "
        "preserve_color, style_dir"
    ]
