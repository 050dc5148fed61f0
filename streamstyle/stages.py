"""The stages between a source and a sink: motion analysis on the input frames, the style network, and
temporal smoothing of its output. Each is a function from an iterator of items to an iterator of items (see
pipeline.py); items that are not Frames pass through in order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from .errors import StyleSpecError
from .images import frames_to_tensor, tensor_to_frames
from .pipeline import Stage
from .stylizer import Stylizer
from .temporal import blend_with_history, is_scene_cut, resize_flow, to_grey, tracked_motion, warp


@dataclass
class Motion:
    """How a frame relates to the one before it, measured on the input frames at a reduced size."""

    cut: bool  # no usable history: first frame, scene cut, size change
    flow: np.ndarray | None = None  # from this frame to the previous one
    mask: np.ndarray | None = None  # 1 where the previous frame's content is reliably found along the flow


@dataclass
class Frame:
    """One decoded picture, upright, as RGB, with the timing it had in the input."""

    index: int
    image: np.ndarray  # [H,W,3] uint8 RGB
    pts: int | None
    duration: int
    time_base: Fraction
    motion: Motion | None = None
    original: np.ndarray | None = None  # the input as decoded, kept when stages replace `image`

    def __post_init__(self):
        if self.original is None:
            self.original = self.image


@dataclass(frozen=True)
class SizeSettings:
    max_size: int | None = None  # inference: longer side at most this
    scale: float | None = None  # inference: this fraction of the input size
    output_size: tuple[int, int] | None = None  # (width, height) of the output; default: the input's

    def inference_shape(self, height: int, width: int) -> tuple[int, int]:
        factor = self.scale or 1.0
        if self.max_size and max(height, width) * factor > self.max_size:
            factor = self.max_size / max(height, width)
        return max(8, round(height * factor)), max(8, round(width * factor))


# Chroma subsampled formats need even frame sizes.
# Chroma subsampled formats need even frame sizes.
_EVEN_SIZE_FORMATS = ("yuv420p", "yuvj420p", "yuv422p", "nv12", "yuv420p10le", "yuv422p10le")


def output_shape(height: int, width: int, sizes: SizeSettings, pix_fmt: str) -> tuple[int, int]:
    """(height, width) of the encoded frames: the requested or input size, made even where the format needs."""
    if sizes.output_size:
        width, height = sizes.output_size
    if pix_fmt in _EVEN_SIZE_FORMATS:
        height, width = height - height % 2, width - width % 2
    return height, width


def resized(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An RGB image at (height, width): area averaging to shrink (antialiased, and 10x cheaper on uint8 than
    resampling the float tensor, time the model thread does not have), bicubic to enlarge."""
    height, width = shape
    if image.shape[:2] == shape:
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def stylize_stage(choose: Callable[[], Stylizer], batch_size: int, sizes: SizeSettings, pix_fmt: str,
                  notes: list[str]) -> Stage:  # fmt: skip
    """Batches frames through the network at the inference size and returns them at the output size. Other
    items keep their place among the frames. `choose` gives the stylizer for each batch (live, keys change it)."""

    # The content's own style input (magenta with strength < 1) comes from the first frames and then stays:
    # recomputed per frame, it would make the style itself flicker.
    reference: torch.Tensor | None = None
    referenced: Stylizer | None = None
    noted = False

    def run_batch(pending: list) -> Iterator[object]:
        nonlocal reference, referenced, noted
        frames = [item for item in pending if isinstance(item, Frame)]
        if frames:
            stylizer = choose()
            height, width = frames[0].image.shape[:2]
            infer_shape = sizes.inference_shape(height, width)
            out_shape = output_shape(height, width, sizes, pix_fmt)
            batch = frames_to_tensor(np.stack([resized(f.image, infer_shape) for f in frames]), stylizer.runtime.device)
            if stylizer is not referenced:
                reference, referenced = stylizer.content_reference(batch), stylizer
            styled = stylizer.stylize_tensor(batch, reference)
            if out_shape != (height, width) and not sizes.output_size and not noted:
                written = f"{out_shape[1]}x{out_shape[0]}"
                notes.append(f"{pix_fmt} needs even sizes: {width}x{height} is written as {written}")
                noted = True
            if tuple(styled.shape[2:]) != out_shape:
                if infer_shape == (height, width) and out_shape == (height - height % 2, width - width % 2):
                    styled = styled[:, :, : out_shape[0], : out_shape[1]]  # odd size made even: crop, don't resample
                else:
                    styled = F.interpolate(styled, size=out_shape, mode="bicubic", align_corners=False)
            for frame, image in zip(frames, tensor_to_frames(styled), strict=True):
                frame.image = image
        yield from pending

    def stage(items: Iterator[object]) -> Iterator[object]:
        pending: list = []
        frames: list[Frame] = []
        with torch.inference_mode():
            for item in items:
                # A change of frame size mid-stream closes the batch: a batch has one size.
                if isinstance(item, Frame) and frames and frames[0].image.shape != item.image.shape:
                    yield from run_batch(pending)
                    pending, frames = [], []
                pending.append(item)
                if isinstance(item, Frame):
                    frames.append(item)
                    if len(frames) == batch_size:
                        yield from run_batch(pending)
                        pending, frames = [], []
            yield from run_batch(pending)

    return stage


TEMPORAL_MODES = ("flow", "ema", "off")


@dataclass(frozen=True)
class TemporalSettings:
    """flow: blend with the previous output warped along the input's optical flow, where it is reliable;
    ema: blend with the previous output as it is (cheap, for live use); off: every frame on its own."""

    mode: str = "flow"
    smooth: float = 0.75  # weight of the history, in [0, 1]
    flow_size: int = 320  # longer side of the frames the flow is computed on

    def __post_init__(self):
        if self.mode not in TEMPORAL_MODES:
            raise StyleSpecError(f"unknown temporal mode {self.mode!r}; use one of {', '.join(TEMPORAL_MODES)}")
        if not 0.0 <= self.smooth <= 1.0:
            raise StyleSpecError(f"--smooth must be between 0 and 1, got {self.smooth}")


def _always() -> bool:
    return True


def motion_stage(settings: TemporalSettings, enabled: Callable[[], bool] = _always) -> Stage:
    """Attaches a Motion to every frame: scene cuts for ema, and flow with its reliability mask for flow. While
    `enabled()` is false (smoothing switched off live) no motion is measured and every frame starts afresh."""

    def analyse(previous: np.ndarray | None, current: np.ndarray) -> Motion:
        if previous is None or previous.shape != current.shape:
            return Motion(cut=True)
        if settings.mode != "flow":
            return Motion(cut=is_scene_cut(previous, current))
        tracked = tracked_motion(previous, current)
        if tracked is None:
            return Motion(cut=True)
        return Motion(cut=False, flow=tracked[0], mask=tracked[1])

    def stage(items: Iterator[object]) -> Iterator[object]:
        previous = None
        for item in items:
            if isinstance(item, Frame) and not enabled():
                item.motion, previous = Motion(cut=True), None
            elif isinstance(item, Frame):
                grey = to_grey(item.original, settings.flow_size)
                item.motion = analyse(previous, grey)
                previous = grey
            yield item

    return stage


def smooth_stage(settings: TemporalSettings) -> Stage:
    """Blends each stylized frame with the previous output (warped along the flow in flow mode); a cut starts
    afresh, so nothing of the last shot bleeds into the next."""

    def stage(items: Iterator[object]) -> Iterator[object]:
        previous = None
        for item in items:
            if isinstance(item, Frame):
                motion = item.motion
                usable = previous is not None and previous.shape == item.image.shape and motion and not motion.cut
                if usable and settings.mode == "ema":
                    item.image = cv2.addWeighted(previous, settings.smooth, item.image, 1.0 - settings.smooth, 0.0)
                elif usable and settings.mode == "flow":
                    height, width = item.image.shape[:2]
                    warped = warp(previous, resize_flow(motion.flow, height, width))
                    mask = cv2.resize(motion.mask, (width, height), interpolation=cv2.INTER_LINEAR)
                    item.image = blend_with_history(item.image, warped, mask, settings.smooth)
                previous = item.image
            yield item

    return stage


def live_stages(choose: Callable[[], Stylizer], sizes: SizeSettings, temporal: TemporalSettings,
                enabled: Callable[[], bool] = _always) -> list[tuple[str, Stage]]:  # fmt: skip
    """The stages of a live chain: the model first, so it always takes the newest frame rather than one that
    waited for motion analysis (which then runs on the frames' originals); one frame per call, for latency.
    `enabled` switches smoothing on and off while it runs."""
    stages = [("model", stylize_stage(choose, 1, sizes, "rgb24", []))]
    if temporal.mode != "off":
        stages += [("motion", motion_stage(temporal, enabled)), ("smooth", smooth_stage(temporal))]
    return stages
