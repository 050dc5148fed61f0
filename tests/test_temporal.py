"""Temporal smoothing and the flicker metric, on the sample clips."""

from fractions import Fraction
from itertools import islice

import numpy as np
import pytest
import torch

import streamstyle
from streamstyle.cli.main import cli
from streamstyle.core.frames import Frame
from streamstyle.core.settings import SizeSettings, TemporalSettings
from streamstyle.io.media import read_frames
from streamstyle.offline.evaluation import evaluate_files, mean_difference, warping_error
from streamstyle.processing.stages import motion_stage, resized, smooth_stage, stylize_stage
from streamstyle.processing.temporal import consistency_mask, reliable_motion, resize_flow, warp

from .conftest import SAMPLES

BIKES = SAMPLES / "clips" / "bikes.mp4"
CITY = SAMPLES / "clips" / "city_2s.mpg"
BIKES_CUTS = [30, 76, 137, 187, 242]  # first frames of new shots, by eye


@pytest.fixture(scope="module")
def bikes_frames():
    return list(read_frames(BIKES))


def frames_of(images):
    return [Frame(i, image.copy(), i, 1, Fraction(1, 25)) for i, image in enumerate(images)]


def run_stages(images, stylizer, temporal: TemporalSettings, max_size=128):
    items = iter(frames_of(images))
    if temporal.mode != "off":
        items = motion_stage(temporal)(items)
    items = stylize_stage(lambda: stylizer, 4, SizeSettings(max_size=max_size))(items)
    if temporal.mode != "off":
        items = smooth_stage(temporal)(items)
    return [resized(frame.image, frame.shape) for frame in items]  # as a sink gives it


def test_warp_follows_the_flow():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)
    shifted = np.roll(image, 3, axis=1)  # content moved 3 px right
    flow = np.zeros((40, 60, 2), np.float32)
    flow[..., 0] = 3.0  # pixel x of `image` is found at x + 3 in `shifted`
    assert np.array_equal(warp(shifted, flow)[:, :50], image[:, :50])
    assert resize_flow(flow, 80, 120)[..., 0].mean() == pytest.approx(6.0)


def test_consistency_mask_accepts_round_trips_and_rejects_contradictions():
    forward = np.full((20, 30, 2), (2.0, 1.0), np.float32)
    assert consistency_mask(forward, -forward)[5:15, 5:25].min() == 1.0
    assert consistency_mask(forward, forward)[5:15, 5:25].max() == 0.0


def test_content_entering_the_frame_has_no_history_even_where_the_input_is_plain():
    # A pan down over a plain white surface: the top 4 rows of the current frame come from outside the previous
    # one. Warping repeats the border there, which matches in grey and round-trips, so only the frame edge can
    # tell (on the bikes clip this history trailed as a pale band above a car window).
    current = previous = np.full((30, 40), 200, np.uint8)
    backward = np.full((30, 40, 2), (0.0, -4.0), np.float32)
    mask = reliable_motion(current, previous, backward, -backward)
    assert mask[:4].max() == 0.0
    assert mask[4:].min() == 1.0


def test_scene_cuts_of_the_bikes_clip_are_found(bikes_frames):
    frames = list(motion_stage(TemporalSettings("flow"))(iter(frames_of(bikes_frames))))
    cuts = [frame.index for frame in frames if frame.motion.cut]
    assert cuts[0] == 0
    for cut in BIKES_CUTS:
        assert cut in cuts
    assert len(cuts) <= len(BIKES_CUTS) + 4  # fast pans may reset too, but rarely


def test_flow_smoothing_halves_flicker_without_drifting_from_the_style(bikes_frames):
    stylizer = streamstyle.Stylizer("7", device="cpu")
    shot = bikes_frames[137:187]  # one shot: a street pan
    per_frame = run_stages(shot, stylizer, TemporalSettings("off"))
    smoothed = run_stages(shot, stylizer, TemporalSettings("flow"))
    before = warping_error(shot, per_frame).warping_error
    after = warping_error(shot, smoothed).warping_error
    assert after <= 0.5 * before
    assert mean_difference(smoothed, per_frame) < 0.05


def test_history_resets_at_a_cut_so_nothing_of_the_last_shot_remains(bikes_frames):
    stylizer = streamstyle.Stylizer("7", device="cpu")
    clip = bikes_frames[25:35]  # the cut at 30 is index 5 here
    per_frame = run_stages(clip, stylizer, TemporalSettings("off"))
    for mode in ("flow", "ema"):
        smoothed = run_stages(clip, stylizer, TemporalSettings(mode))
        assert not np.array_equal(smoothed[4], per_frame[4])  # smoothing was active before the cut
        assert np.array_equal(smoothed[5], per_frame[5])  # and the new shot starts clean


def test_strength_below_one_uses_the_first_frames_content_vector_for_every_frame(bikes_frames):
    painting = SAMPLES / "paintings" / "munch_the_scream.jpg"
    # torch fp32, where a batch of two paints each frame as one alone does (within a level): what is tested is the
    # style input, not an engine's rounding.
    stylizer = streamstyle.Stylizer(str(painting), strength=0.5, device="cpu", backend="torch")
    images = [bikes_frames[0][:128, :192], bikes_frames[100][:128, :192]]
    outputs = run_stages(images, stylizer, TemporalSettings("off"), max_size=None)
    first, second = (torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255 for image in images)
    reference = stylizer.content_reference(first)
    with_reference = (stylizer.stylize_tensor(second, reference) * 255).round().byte()[0].permute(1, 2, 0).numpy()
    per_frame = (stylizer.stylize_tensor(second) * 255).round().byte()[0].permute(1, 2, 0).numpy()
    assert np.abs(outputs[1].astype(int) - with_reference.astype(int)).max() <= 1
    assert np.abs(outputs[1].astype(int) - per_frame.astype(int)).mean() > 0.5


def test_eval_temporal_reports_warping_error_and_faithfulness(tmp_path):
    stylizer = streamstyle.Stylizer("7", device="cpu")
    outputs = {}
    for mode in ("off", "flow"):
        outputs[mode] = tmp_path / f"{mode}.mp4"
        streamstyle.stylize_file(
            CITY, outputs[mode], stylizer, sizes=SizeSettings(max_size=160), temporal=TemporalSettings(mode)
        )
    flow = evaluate_files(CITY, outputs["flow"], outputs["off"])
    off = evaluate_files(CITY, outputs["off"])
    assert flow.warping_error < off.warping_error
    assert 0 < flow.faithfulness < 0.05 and off.faithfulness is None
    assert flow.pairs == 36 and flow.cuts == 0

    from click.testing import CliRunner

    result = CliRunner().invoke(
        cli, ["eval-temporal", str(CITY), str(outputs["flow"]), "--reference", str(outputs["off"])]
    )
    assert result.exit_code == 0, result.output
    assert "warping error" in result.output and "faithfulness" in result.output
    assert f"{flow.warping_error:.5f}" in result.output


def test_metric_rates_the_input_itself_steadier_than_any_stylization():
    inputs = list(islice(read_frames(CITY), 12))
    noisy = [np.clip(f.astype(int) + np.random.default_rng(i).integers(-20, 20, f.shape), 0, 255).astype(np.uint8)
             for i, f in enumerate(inputs)]  # fmt: skip
    assert warping_error(inputs, inputs).warping_error < warping_error(inputs, noisy).warping_error / 5
