"""Training a fixed-style network (Johnson et al. 2016): a TransformerNet learns to paint any photo in one style
by minimising the same perceptual losses the optimisation uses (VGG19 content at relu4_2, Gram matrices at
relu1_1 to relu5_1, total variation), over random crops of content images or video frames.

The checkpoint file is the model: network weights, optimiser state, the step reached and the settings, so a run
stopped at any point resumes exactly where it was."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from .errors import InputError, StyleSpecError
from .images import (
    IMAGE_SUFFIXES,
    fit_within,
    frames_to_tensor,
    partial_path,
    read_image,
    tensor_to_frames,
    write_image,
)
from .models.johnson import TransformerNet
from .models.vgg import CONTENT_LAYERS, VGG19Features
from .optimize import Losses, perceptual_losses, style_targets
from .runtime import Runtime

CHECKPOINT_KIND = "streamstyle-transformer-net"
_VIDEO_FRAMES = 200  # at most this many frames are taken from a content video, evenly spread


@dataclass(frozen=True)
class TrainSettings:
    steps: int = 2000
    batch_size: int = 4
    image_size: int = 256  # square crops of this side
    learning_rate: float = 1e-3
    content_weight: float = 1.0
    style_weight: float = 30.0
    tv_weight: float = 1e-2
    checkpoint_every: int = 200
    seed: int = 0

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1 or self.image_size < 32:
            raise StyleSpecError("--steps and --batch-size must be at least 1, --image-size at least 32")


def content_pool(source: Path, image_size: int) -> list[np.ndarray]:
    """Training content: every image of a folder, or frames of a video, each with its shorter side at least
    `image_size` (so square crops fit) and its longer side no more than twice that."""
    if source.is_dir():
        images = [read_image(p) for p in sorted(source.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    elif source.is_file():
        from .evaluation import read_frames

        frames = list(read_frames(source))
        images = frames[:: max(1, len(frames) // _VIDEO_FRAMES)]
    else:
        raise InputError(f"content not found: {source}")
    if not images:
        raise InputError(f"no images or frames in {source}")
    pool = []
    for image in images:
        image = fit_within(image, image_size * 2)
        if min(image.shape[:2]) < image_size:
            image = _scaled(image, image_size / min(image.shape[:2]))
        pool.append(image)
    return pool


def _scaled(image: np.ndarray, scale: float) -> np.ndarray:
    height, width = image.shape[:2]
    return cv2.resize(image, (math.ceil(width * scale), math.ceil(height * scale)), interpolation=cv2.INTER_CUBIC)


def random_crops(pool: list[np.ndarray], count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    crops = []
    for index in rng.integers(0, len(pool), count):
        image = pool[index]
        top = rng.integers(0, image.shape[0] - size + 1)
        left = rng.integers(0, image.shape[1] - size + 1)
        crops.append(image[top : top + size, left : left + size])
    return np.stack(crops)


def load_checkpoint(path: Path, runtime: Runtime) -> dict:
    try:
        checkpoint = torch.load(path, map_location=runtime.device, weights_only=True)
    except (OSError, RuntimeError, ValueError) as error:
        raise InputError(f"not a readable model file: {path} ({error})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("kind") != CHECKPOINT_KIND:
        raise InputError(f"{path} is not a streamstyle training checkpoint")
    return checkpoint


def train(style_path: Path, content: Path, output: Path, vgg: VGG19Features, runtime: Runtime,
          settings: TrainSettings | None = None, resume: bool = False, sample: np.ndarray | None = None,
          on_step: Callable[[int, Losses], None] | None = None) -> Path:  # fmt: skip
    """Train (or with `resume`, continue training) a TransformerNet for the style of `style_path` on crops of
    `content`, saving the checkpoint to `output` every `checkpoint_every` steps and at the end, and, when a
    `sample` picture is given, its stylization beside the output (NAME.stepN.png) at each checkpoint."""
    settings = settings or TrainSettings()
    device = runtime.device
    network = TransformerNet().to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=settings.learning_rate)
    step = 0
    if resume and output.exists():
        checkpoint = load_checkpoint(output, runtime)
        network.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        step = checkpoint["step"]
    torch.manual_seed(settings.seed + step)
    rng = np.random.default_rng(settings.seed + step)
    pool = content_pool(content, settings.image_size)
    painting = frames_to_tensor(fit_within(read_image(style_path), settings.image_size * 2)[None], device)
    grams = style_targets(vgg, [(painting, 1.0)])
    weights = (settings.content_weight, settings.style_weight, settings.tv_weight)
    network.train()
    while step < settings.steps:
        batch = frames_to_tensor(random_crops(pool, settings.batch_size, settings.image_size, rng), device)
        with torch.no_grad():
            content_features = vgg(batch, CONTENT_LAYERS)
        loss, losses = perceptual_losses(network(batch), content_features, grams, vgg, weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if on_step:
            on_step(step, losses)
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            _save(output, network, optimizer, step, settings, style_path)
            if sample is not None:
                write_image(_paint(network, sample, device), output.with_name(f"{output.stem}.step{step:05d}.png"))
    return output


def _paint(network: TransformerNet, image: np.ndarray, device: torch.device) -> np.ndarray:
    network.eval()
    with torch.no_grad():
        height, width = image.shape[:2]
        padded = frames_to_tensor(image[None, : height - height % 4, : width - width % 4], device)
        painted = tensor_to_frames(network(padded))[0]
    network.train()
    return painted


def _save(output: Path, network: TransformerNet, optimizer: torch.optim.Optimizer, step: int,
          settings: TrainSettings, style_path: Path) -> None:  # fmt: skip
    partial = partial_path(output)
    torch.save({"kind": CHECKPOINT_KIND, "model": network.state_dict(), "optimizer": optimizer.state_dict(),
                "step": step, "settings": dataclasses.asdict(settings), "style": str(style_path)}, partial)  # fmt: skip
    partial.replace(output)  # a crash mid-save leaves the previous checkpoint whole
