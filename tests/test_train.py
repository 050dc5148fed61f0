"""Training a fixed-style network on tiny data: the loss falls, checkpoints resume at the step they were saved,
videos serve as content, and `streamstyle train` writes the model and its sample pictures."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from streamstyle.cli import cli
from streamstyle.errors import InputError
from streamstyle.stylizer import load_vgg19
from streamstyle.train import TrainSettings, content_pool, load_checkpoint, train

from .conftest import SAMPLES

PHOTOS = SAMPLES / "photos"
SCREAM = SAMPLES / "paintings" / "munch_the_scream.jpg"


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


def test_checkpoint_resumes_at_the_step_it_was_saved(vgg, cpu, tmp_path):
    model = tmp_path / "m.pt"
    settings = TrainSettings(steps=6, batch_size=1, image_size=64, checkpoint_every=3)
    train(SCREAM, PHOTOS, model, vgg, cpu, settings)
    saved = load_checkpoint(model, cpu)
    assert saved["step"] == 6 and saved["settings"]["image_size"] == 64
    steps: list[int] = []
    train(SCREAM, PHOTOS, model, vgg, cpu, TrainSettings(steps=9, batch_size=1, image_size=64, checkpoint_every=3),
          resume=True, on_step=lambda step, losses: steps.append(step))  # fmt: skip
    assert steps == [7, 8, 9]
    resumed = load_checkpoint(model, cpu)
    assert resumed["step"] == 9
    changed = [not torch.equal(saved["model"][k], resumed["model"][k]) for k in saved["model"]]
    assert any(changed)  # it went on learning from the saved weights


def test_video_frames_serve_as_content():
    frames = content_pool(SAMPLES / "clips" / "bikes.mp4", 64)
    assert 100 <= len(frames) <= 250 and min(frames[0].shape[:2]) >= 64


def test_a_file_that_is_not_a_checkpoint_is_refused(cpu, tmp_path):
    bogus = tmp_path / "x.pt"
    torch.save({"weights": 1}, bogus)
    with pytest.raises(InputError, match="is not a streamstyle training checkpoint"):
        load_checkpoint(bogus, cpu)


def test_train_command_writes_the_model_and_sample_pictures(tmp_path):
    args = ["train", "--style", str(SCREAM), "--content", str(PHOTOS), "--out", str(tmp_path / "scream.pt"),
            "--steps", "4", "--batch-size", "1", "--image-size", "64", "--checkpoint-every", "2",
            "--sample", str(PHOTOS / "skimage_chelsea.png"), "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scream.pt", "scream.step00002.png", "scream.step00004.png"]


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
    result = CliRunner().invoke(cli, ["file", str(SAMPLES / "clips" / "bigbuckbunny_2s.mp4"), str(out), "--model",
                                      str(tmp_path / "missing.pt")])  # fmt: skip
    assert result.exit_code == 2 and "model file not found" in result.output
