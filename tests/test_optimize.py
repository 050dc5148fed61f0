"""Gatys et al. optimisation: the losses fall, the picture moves toward the painting's statistics, both optimisers
work, and `streamstyle image --method optimize` writes the picture and its intermediate steps."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from streamstyle.cli.main import cli
from streamstyle.core.settings import OptimizeSettings
from streamstyle.io.images import fit_within, read_image
from streamstyle.models.layers import gram_matrix
from streamstyle.offline.optimize import optimize_image, total_variation
from streamstyle.processing.stylizer import load_vgg19
from streamstyle.processing.tensors import frames_to_tensor

from .conftest import SAMPLES

# Minutes of optimisation on the CPU.
pytestmark = [pytest.mark.slow]

CHELSEA = SAMPLES / "photos" / "skimage_chelsea.png"
STARRY = SAMPLES / "paintings" / "vangogh_starry_night.jpg"


@pytest.fixture(scope="module")
def vgg(cpu):
    return load_vgg19(cpu)


def style_distance(vgg, image: np.ndarray, painting: np.ndarray) -> float:
    """Sum over style layers of the mean squared Gram difference: what the style loss measures."""
    with torch.no_grad():
        ours = vgg(frames_to_tensor(image[None], torch.device("cpu")))
        theirs = vgg(frames_to_tensor(painting[None], torch.device("cpu")))
    return sum(float(((gram_matrix(ours[k]) - gram_matrix(theirs[k])) ** 2).mean()) for k in ours if k != "relu4_2")


def test_total_variation_is_zero_on_flat_pictures_and_large_on_noise():
    flat = torch.full((1, 3, 16, 16), 0.5)
    noise = torch.rand((1, 3, 16, 16), generator=torch.Generator().manual_seed(0))
    assert float(total_variation(flat)) == 0.0
    assert float(total_variation(noise)) > 0.3


@pytest.mark.parametrize(("optimizer", "steps", "factor"), [("lbfgs", 30, 10.0), ("adam", 40, 2.0)])
def test_losses_fall_and_the_picture_takes_the_painting_statistics(vgg, optimizer, steps, factor):
    photo = fit_within(read_image(CHELSEA), 96)
    painting = fit_within(read_image(STARRY), 96)
    history = []
    settings = OptimizeSettings(steps=steps, optimizer=optimizer, scales=1, learning_rate=0.05)
    result = optimize_image(photo, [(painting, 1.0)], vgg, settings,
                            on_step=lambda scale, step, losses, render: history.append(losses))  # fmt: skip
    assert len(history) == steps
    first, last = history[0], history[-1]
    assert last.total < first.total / factor, (first, last)
    assert last.style < first.style / factor
    assert result.shape == photo.shape and result.dtype == np.uint8
    # Closer to the painting's style statistics than the photo was, yet still the photo's layout.
    assert style_distance(vgg, result, painting) < style_distance(vgg, photo, painting) / 2
    assert np.abs(result.astype(np.float32) - photo).mean() < 60


def test_image_command_optimizes_and_saves_intermediate_steps(tmp_path):
    out = tmp_path / "cat.png"
    args = ["image", str(CHELSEA), str(out), "--style", str(STARRY), "--method", "optimize", "--steps", "4",
            "--scales", "2", "--max-size", "64", "--save-every", "2", "--device", "cpu"]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert read_image(out).shape == (43, 64, 3)
    saved = sorted(p.name for p in tmp_path.iterdir() if p != out)
    assert saved == ["cat.scale1.step0002.png", "cat.scale1.step0004.png", "cat.scale2.step0002.png",
                     "cat.scale2.step0004.png"]  # fmt: skip


def test_optimize_needs_paintings_not_builtin_styles(tmp_path):
    result = CliRunner().invoke(cli, ["image", str(CHELSEA), str(tmp_path / "x.png"), "--style", "7", "--method",
                                      "optimize"])  # fmt: skip
    assert result.exit_code == 2
    assert result.output.strip() == (
        "streamstyle: error: --method optimize takes painting files as --style (a.jpg, or a.jpg:0.7,b.jpg:0.3)"
    )
