"""Training a fixed-style network (Johnson et al. 2016): a TransformerNet learns to paint any photo in one style
by minimising the same perceptual losses the optimisation uses (VGG19 content at relu4_2, Gram matrices at
relu1_1 to relu5_1, total variation), over random crops of content images or video frames. Optionally, for
steadier video, a temporal loss (Ruder et al. 2016, Huang et al. 2017) on pairs of neighbouring frames: the
stylized second frame should match the stylized first one carried along the motion between them.

The checkpoint file is the model: network weights, optimiser state, the step reached and the settings, so a run
stopped at any point resumes exactly where it was."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
import torch

from streamstyle.core.errors import InputError
from streamstyle.core.settings import TrainSettings
from streamstyle.io.images import IMAGE_SUFFIXES, fit_within, read_image, write_image
from streamstyle.io.media import open_video, read_frames
from streamstyle.models.checkpoints import load_checkpoint, save_checkpoint
from streamstyle.models.johnson import TransformerNet
from streamstyle.models.vgg import CONTENT_LAYERS, VGG19Features
from streamstyle.offline.optimize import Losses, enlarged_to_smallest_side, perceptual_losses, style_targets
from streamstyle.processing.runtime import Runtime
from streamstyle.processing.temporal import inside_frame_mask, to_grey, tracked_motion, warp_tensor
from streamstyle.processing.tensors import frames_to_tensor, tensor_to_frames

_LEAST_RELIABLE_SHARE = 0.25  # of a pair's pixels, for the pair to be trained on
_VIDEO_FRAMES = 200  # at most this many frames (or pairs of frames) are taken from a content video, evenly spread


class FramePair(NamedTuple):
    """Neighbouring frames of a video and the motion between them: for every pixel of `second`, where its
    content is in `first` (flow [H,W,2], pixels) and whether that is reliable (mask [H,W]: seen in both frames,
    the flow consistent both ways)."""

    first: np.ndarray
    second: np.ndarray
    flow: np.ndarray
    mask: np.ndarray


def content_pool(source: Path, image_size: int) -> list[np.ndarray]:
    """Training content: every image of a folder, or frames spread over a video, each at the training size."""
    if source.is_dir():
        images = [read_image(p) for p in sorted(source.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    elif source.is_file():
        images = [first for first, in spread_frames(source, _VIDEO_FRAMES, run=1)]
    else:
        raise InputError(f"content not found: {source}")
    if not images:
        raise InputError(f"no images or frames in {source}")
    return [_training_size(image, image_size) for image in images]


def frame_pairs(video: Path, image_size: int) -> list[FramePair]:
    """Pairs of neighbouring frames spread over a video, at the training size, with the motion from the second
    back to the first. Pairs where the second frame does not follow from the first (a cut, a flash, a failed
    flow; stricter than smoothing: a quarter of the pixels must be tracked) are left out."""
    if not video.is_file():
        raise InputError(f"the temporal loss needs a video as --content (pairs of neighbouring frames): {video}")
    pairs = []
    for first, second in spread_frames(video, _VIDEO_FRAMES, run=2):
        first, second = _training_size(first, image_size), _training_size(second, image_size)
        tracked = tracked_motion(to_grey(first), to_grey(second), _LEAST_RELIABLE_SHARE)
        if tracked is not None:
            pairs.append(FramePair(first, second, *tracked))
    if not pairs:
        raise InputError(f"no two neighbouring frames of {video} show the same scene")
    return pairs


def spread_frames(video: Path, count: int, run: int) -> list[list[np.ndarray]]:
    """Up to `count` runs of `run` consecutive frames, evenly spread over a video: decoded in one pass that keeps
    only those frames (a long video would not fit in memory)."""

    with open_video(video) as container:
        total = sum(1 for packet in container.demux(container.streams.video[0]) if packet.size)
    starts = np.unique(np.linspace(0, max(total - run, 0), min(count, max(total - run + 1, 1))).round().astype(int))
    wanted = {start + offset for start in starts for offset in range(run)}
    frames = {index: frame for index, frame in enumerate(read_frames(video)) if index in wanted}
    return [[frames[start + offset] for offset in range(run)] for start in starts
            if all(start + offset in frames for offset in range(run))]  # fmt: skip


def _training_size(image: np.ndarray, image_size: int) -> np.ndarray:
    """Shorter side at least `image_size` (so square crops fit), longer side no more than twice that."""
    image = fit_within(image, image_size * 2)
    if min(image.shape[:2]) < image_size:
        image = _scaled(image, image_size / min(image.shape[:2]))
    return image


def _scaled(image: np.ndarray, scale: float) -> np.ndarray:
    height, width = image.shape[:2]
    return cv2.resize(image, (math.ceil(width * scale), math.ceil(height * scale)), interpolation=cv2.INTER_CUBIC)


def random_crops(pool: Sequence[tuple[np.ndarray, ...]], count: int, size: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, ...]:  # fmt: skip
    """`count` square crops at random places of random entries of `pool`. An entry is a tuple of arrays of one
    height and width (a picture; or two frames, their flow and mask), all cropped at the same place; the result
    stacks the crops array by array."""
    crops = []
    for index in rng.integers(0, len(pool), count):
        arrays = pool[index]
        top = rng.integers(0, arrays[0].shape[0] - size + 1)
        left = rng.integers(0, arrays[0].shape[1] - size + 1)
        crops.append([array[top : top + size, left : left + size] for array in arrays])
    return tuple(np.stack(arrays) for arrays in zip(*crops, strict=True))


def temporal_loss(first: torch.Tensor, second: torch.Tensor, flow: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared difference (on 0..255, the VGG losses' range) between stylized second frames [B,3,H,W] and
    the stylized first frames carried along the flow [B,H,W,2] from second to first, over the pixels `mask`
    [B,H,W] marks reliable."""
    carried = warp_tensor(first, flow)
    squared = ((second - carried) * 255.0).square().sum(dim=1)
    return (squared * mask).sum() / (mask.sum() * 3).clamp(min=1.0)


def train(style_path: Path, content: Path, output: Path, vgg: VGG19Features, runtime: Runtime,
          settings: TrainSettings | None = None, resume: bool = False, sample: np.ndarray | None = None,
          on_step: Callable[[int, Losses], None] | None = None) -> Path:  # fmt: skip
    """Train (or with `resume`, continue training) a TransformerNet for the style of `style_path` on crops of
    `content`, saving the checkpoint to `output` every `checkpoint_every` steps and at the end, and, when a
    `sample` picture is given, its stylization beside the output (NAME.stepN.png) at each checkpoint."""
    settings = settings or TrainSettings()
    device = runtime.device
    torch.manual_seed(settings.seed)  # the initial weights
    network = TransformerNet().to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=settings.learning_rate)
    step = 0
    if resume and output.exists():
        # Read onto the CPU: the parameters and Adam's moments are copied onto the network's device as they load,
        # and Adam's step counts stay on the CPU, where Adam keeps them (on a GPU each step would wait on them).
        checkpoint = load_checkpoint(output, torch.device("cpu"))
        network.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        step = checkpoint["step"]
    rng = np.random.default_rng(settings.seed + step)
    if settings.temporal_weight:
        pool: Sequence[tuple[np.ndarray, ...]] = frame_pairs(content, settings.image_size)
    else:
        pool = [(image,) for image in content_pool(content, settings.image_size)]
    painting = frames_to_tensor(fit_within(read_image(style_path), settings.image_size * 2)[None], device)
    painting = enlarged_to_smallest_side(painting)  # VGG19's deepest style layer needs 16 pixels a side
    grams = style_targets(vgg, [(painting, 1.0)])
    weights = (settings.content_weight, settings.style_weight, settings.tv_weight)
    network.train()
    while step < settings.steps:
        crops = random_crops(pool, settings.batch_size, settings.image_size, rng)
        pictures = np.concatenate(crops[:2])  # the pictures; or the first frames, then the second frames
        batch = frames_to_tensor(pictures, device)
        with torch.no_grad():
            content_features = vgg(batch, CONTENT_LAYERS)
        painted = network(batch)
        loss, losses = perceptual_losses(painted, content_features, grams, vgg, weights)
        if settings.temporal_weight:
            first, second = painted.chunk(2)
            flows, masks = crops[2], crops[3] * np.stack([inside_frame_mask(flow) for flow in crops[2]])
            temporal = settings.temporal_weight * temporal_loss(
                first, second, torch.from_numpy(flows).to(device), torch.from_numpy(masks).to(device))
            loss = loss + temporal
            losses.temporal = temporal.item()
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
    save_checkpoint(output, {"model": network.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                             "settings": dataclasses.asdict(settings), "style": str(style_path)})  # fmt: skip
