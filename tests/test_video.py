"""`streamstyle file` and `stylize_file` on real clips: every frame once with its timestamp, audio untouched."""

import os

import numpy as np
import pytest

import streamstyle
from streamstyle.core.errors import InputError, OutputError
from streamstyle.core.settings import SizeSettings

from .conftest import SAMPLES, run_cli
from .media import (
    audio_digest,
    first_frame,
    video_timestamps,
    write_audio_first_clip,
    write_full_range_clip,
    write_rotated_clip,
    write_tone,
    write_vfr_clip,
)

# Whole clips through the model, many in a subprocess as users run them.
pytestmark = [pytest.mark.slow]

CLIPS = SAMPLES / "clips"
BUNNY = CLIPS / "bigbuckbunny_2s.mp4"  # H.264 720p + AAC 5.1
CITY = CLIPS / "city_2s.mpg"  # MPEG-2 program stream, 720x405 (odd height)
BIKES = CLIPS / "bikes.mp4"  # several hard scene cuts, 250 frames
SMALL = SizeSettings(max_size=96)  # small inference keeps the suite fast; the pipeline is what is tested


@pytest.fixture(scope="module")
def stylizer():
    return streamstyle.Stylizer("7", device="cpu")


def test_bunny_keeps_every_frame_timestamp_and_the_51_audio_bit_for_bit(tmp_path, stylizer):
    out = tmp_path / "bunny.mp4"
    report = streamstyle.stylize_file(BUNNY, out, stylizer, sizes=SMALL)
    assert video_timestamps(out) == video_timestamps(BUNNY)
    assert report.frames == 50
    assert audio_digest(out) == audio_digest(BUNNY)
    import av

    with av.open(str(out)) as result, av.open(str(BUNNY)) as original:
        assert result.streams.audio[0].codec_context.channels == 6
        assert result.streams.video[0].width == 1280 and result.streams.video[0].height == 720
        assert abs(result.duration - original.duration) <= 1_000_000 / 25  # within one frame
    # The pictures are stylized, not copied.
    assert np.abs(first_frame(out, 10).astype(int) - first_frame(BUNNY, 10).astype(int)).mean() > 20
    assert not list(tmp_path.glob(".*partial*"))


def test_mpeg2_program_stream_with_odd_height_becomes_even_mp4(tmp_path, stylizer):
    out = tmp_path / "city.mp4"
    report = streamstyle.stylize_file(CITY, out, stylizer, sizes=SMALL)
    assert video_timestamps(out) == video_timestamps(CITY)
    assert first_frame(out).shape == (404, 720, 3)
    assert any("even" in note for note in report.notes)


def test_scene_cut_clip_keeps_all_frames_in_order(tmp_path, stylizer):
    out = tmp_path / "bikes.mkv"
    report = streamstyle.stylize_file(BIKES, out, stylizer, batch_size=3, sizes=SMALL)
    stamps = video_timestamps(out)
    assert stamps == video_timestamps(BIKES)
    assert stamps == sorted(stamps) and len(stamps) == report.frames == 250
    assert set(report.stage_seconds) == {"decode", "motion", "model", "smooth", "encode"}


def test_variable_frame_rate_timestamps_survive_exactly(tmp_path, stylizer):
    source = tmp_path / "vfr.mp4"
    pts_ms = [0, 33, 66, 150, 170, 400, 433, 466, 1000, 1010, 1020, 1500]
    write_vfr_clip(source, pts_ms)
    out = tmp_path / "vfr_out.mp4"
    streamstyle.stylize_file(source, out, stylizer)
    assert [round(float(t) * 1000) for t in video_timestamps(out)] == pts_ms


def test_audio_first_layout_and_audio_the_container_rejects(tmp_path, stylizer):
    source = tmp_path / "audio_first.mkv"
    write_audio_first_clip(source, BIKES, "pcm_u8")
    out = tmp_path / "out.mp4"
    report = streamstyle.stylize_file(source, out, stylizer, sizes=SMALL)
    assert report.frames == len(video_timestamps(source)) == 50
    assert any("re-encoded to aac" in note for note in report.notes)
    import av

    with av.open(str(out)) as result:
        audio = result.streams.audio[0]
        assert audio.codec_context.name == "aac" and audio.codec_context.layout.name == "mono"
        # All 2 s of sound, plus at most the AAC encoder's one frame of priming.
        assert 0 <= float(audio.duration * audio.time_base) - 2.0 <= 1024 / 8000 + 0.01


def test_output_size_and_batches_keep_frame_count(tmp_path):
    stylizer = streamstyle.Stylizer(str(SAMPLES / "paintings" / "munch_the_scream.jpg"), device="cpu")
    out = tmp_path / "small.mp4"
    report = streamstyle.stylize_file(
        BUNNY, out, stylizer, batch_size=4, sizes=SizeSettings(scale=0.1, output_size=(320, 180))
    )
    assert report.frames == 50
    assert first_frame(out).shape == (180, 320, 3)


def test_corrupt_packets_mid_file_are_skipped_and_counted(tmp_path, stylizer):
    data = bytearray(BIKES.read_bytes())
    rng = np.random.default_rng(1)
    for start in (len(data) // 3, len(data) // 2, 2 * len(data) // 3):
        data[start : start + 3000] = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    source = tmp_path / "corrupt.mp4"
    source.write_bytes(bytes(data))
    report = streamstyle.stylize_file(source, tmp_path / "out.mp4", stylizer, sizes=SMALL)
    assert report.corrupt_packets > 0
    assert report.damage and "skipped" in report.damage and "corrupt" in report.damage
    assert 200 < report.frames < 250


def test_api_errors_are_streamstyle_errors(tmp_path, stylizer):
    with pytest.raises(InputError, match="input not found"):
        streamstyle.stylize_file(tmp_path / "none.mp4", tmp_path / "out.mp4", stylizer)
    with pytest.raises(OutputError, match="overwrite its input"):
        streamstyle.stylize_file(BIKES, BIKES, stylizer)


def make_bad_inputs(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(BIKES.read_bytes()[: BIKES.stat().st_size // 2])
    write_tone(tmp_path / "tone.wav", "pcm_s16le")
    return {"text": text, "truncated": truncated, "audio": tmp_path / "tone.wav"}


@pytest.mark.parametrize(
    ("source", "output", "message"),
    [
        ("{tmp}/missing.mp4", "{out}/o.mp4", "input not found"),
        ("{text}", "{out}/o.mp4", "not a readable video file"),
        ("{truncated}", "{out}/o.mp4", "not a readable video file"),
        ("{audio}", "{out}/o.mp4", "no video stream"),
        ("{bikes}", "/proc/streamstyle_out.mp4", "cannot write"),
        ("{bikes}", "{bikes}", "would overwrite its input"),
        ("{bikes}", "{out}/no/dir/o.mp4", "output folder does not exist"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_leaves_nothing(tmp_path, source, output, message):
    inputs = make_bad_inputs(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    names = {"tmp": tmp_path, "out": out_dir, "bikes": BIKES, **inputs}
    result = run_cli("file", source.format(**names), output.format(**names), "--style", "7", "--quiet")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("streamstyle: error:") and message in lines[0], result.stderr
    assert list(out_dir.iterdir()) == []


def test_cli_prints_a_summary_of_where_time_went(tmp_path):
    out = tmp_path / "city.mp4"
    result = run_cli("file", CITY, out, "--style", "7", "--max-size", "96", env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "37 frames" in result.stderr
    for stage in ("decode", "model", "encode"):
        assert stage in result.stderr
    assert out.exists()


def test_no_audio_writes_the_pictures_alone(tmp_path):
    out = tmp_path / "silent.mp4"
    result = run_cli("file", BUNNY, out, "--style", "7", "--max-size", "64", "--temporal", "off", "--no-audio")
    assert result.returncode == 0, result.stderr
    import av

    with av.open(str(out)) as container:
        assert [stream.type for stream in container.streams] == ["video"]
    assert len(video_timestamps(out)) == len(video_timestamps(BUNNY))


def test_rotated_phone_video_comes_out_upright(tmp_path):
    source = tmp_path / "portrait.mp4"
    write_rotated_clip(source)
    import av

    with av.open(str(source)) as container:
        assert next(container.decode(video=0)).rotation == -90
    out = tmp_path / "out.mp4"
    # Strength 0 on the 26-style net returns the input, so the pixels show where the red corner went.
    streamstyle.stylize_file(source, out, streamstyle.Stylizer("7", strength=0.0, device="cpu"))
    frame = first_frame(out)
    assert frame.shape == (128, 64, 3)
    top_right, top_left = frame[4:28, 40:60].mean(axis=(0, 1)), frame[4:28, 4:24].mean(axis=(0, 1))
    assert top_right[0] > 150 and top_right[1] < 80  # red, turned clockwise into the top-right corner
    assert top_left[0] < 80


def decoded_rgb(path):
    import av

    from streamstyle.io.media import upright_rgb

    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return upright_rgb(frame), container.streams.video[0].codec_context.color_range


def test_full_range_video_keeps_its_levels_and_range_tag(tmp_path):
    source = tmp_path / "full.mp4"
    write_full_range_clip(source)
    rgb_in, range_in = decoded_rgb(source)
    assert range_in == 2 and rgb_in.min() < 8 and rgb_in.max() > 247  # really full range
    out = tmp_path / "out.mp4"
    streamstyle.stylize_file(source, out, streamstyle.Stylizer("7", strength=0.0, device="cpu"))
    rgb_out, range_out = decoded_rgb(out)
    assert range_out == 2
    # Treating full range as limited (or the reverse) would stretch or squash the ramp by ~16 levels at the ends.
    assert np.abs(rgb_out.astype(int) - rgb_in.astype(int)).mean() < 3
    assert rgb_out.min() < 8 and rgb_out.max() > 247


def test_webm_vp9_output_reencodes_aac_to_opus_and_says_so(tmp_path, stylizer):
    out = tmp_path / "bunny.webm"
    report = streamstyle.stylize_file(
        BUNNY,
        out,
        stylizer,
        sizes=SizeSettings(max_size=96, output_size=(320, 180)),
        encoder=streamstyle.EncoderSettings(codec="libvpx-vp9"),
    )
    assert report.frames == 50
    assert any("re-encoded to opus" in note or "re-encoded to libopus" in note for note in report.notes), report.notes
    import av

    with av.open(str(out)) as result:
        assert result.streams.video[0].codec_context.name == "vp9"
        assert result.streams.audio[0].codec_context.name in ("opus", "libopus")
    assert len(video_timestamps(out)) == 50
