"""The stages between a source and a sink: motion analysis on the input frames, the style network, and
temporal smoothing of its output. Each is a function from an iterator of items to an iterator of items (see
chain.py); items that are not Frames (audio) pass through in order."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import cv2
import numpy as np
import torch

from streamstyle.core.frames import Frame, Item, Motion
from streamstyle.core.settings import SizeSettings, TemporalSettings
from streamstyle.processing.chain import Stage
from streamstyle.processing.stylizer import Stylizer
from streamstyle.processing.temporal import blend_with_history, is_scene_cut, resize_flow, to_grey, tracked_motion, warp
from streamstyle.processing.tensors import frames_to_tensor, tensor_to_frames


def resized(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """An RGB image at (height, width): area averaging to shrink (antialiased, and 10x cheaper on uint8 than
    resampling the float tensor, time the model thread does not have), bicubic to enlarge."""
    height, width = shape
    if image.shape[:2] == shape:
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC)


def stylize_stage(choose: Callable[[], Stylizer], batch_size: int, sizes: SizeSettings | Callable[[], SizeSettings]
                  ) -> Stage:  # fmt: skip
    """Batches frames through the network at the inference size and returns them at that size, with the output
    size (the requested one, or the input's) for the sinks to scale to. Other items keep their place among the
    frames. `choose` gives the stylizer for each batch (live, keys change it), and `sizes`, when a function, the
    sizes (live over WebRTC, the size follows the machine)."""

    # The content's own style input (magenta with strength < 1) comes from the first frames and then stays:
    # recomputed per frame, it would make the style itself flicker.
    reference: torch.Tensor | None = None
    referenced: Stylizer | None = None

    def run_batch(pending: list[Item]) -> Iterator[Item]:
        nonlocal reference, referenced
        frames = [item for item in pending if isinstance(item, Frame)]
        if frames:
            stylizer, chosen = choose(), sizes() if callable(sizes) else sizes
            height, width = frames[0].image.shape[:2]
            infer_shape = chosen.inference_shape(height, width)
            out_shape = (chosen.output_size[1], chosen.output_size[0]) if chosen.output_size else (height, width)
            batch = frames_to_tensor(np.stack([resized(f.image, infer_shape) for f in frames]), stylizer.runtime.device)
            if stylizer is not referenced:
                reference, referenced = stylizer.content_reference(batch), stylizer
            if stylizer.runtime.compiled and len(frames) < batch_size:
                # A shorter batch (a video's last) would make torch.compile compile again (22 s at 720p on a GPU):
                # filled up with its last frame, it reuses the graph, and the fill is dropped.
                batch = torch.cat([batch, batch[-1:].expand(batch_size - len(frames), -1, -1, -1)])
            styled = stylizer.stylize_tensor(batch, reference)[: len(frames)]
            for frame, image in zip(frames, tensor_to_frames(styled), strict=True):
                frame.image = image
                frame.output_shape = out_shape if image.shape[:2] != out_shape else None
        yield from pending

    def stage(items: Iterator[Item]) -> Iterator[Item]:
        pending: list[Item] = []
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

    def stage(items: Iterator[Item]) -> Iterator[Item]:
        previous: np.ndarray | None = None
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

    def stage(items: Iterator[Item]) -> Iterator[Item]:
        previous: np.ndarray | None = None
        for item in items:
            if isinstance(item, Frame):
                motion = item.motion
                if previous is not None and previous.shape == item.image.shape and motion and not motion.cut:
                    if settings.mode == "ema":
                        item.image = cv2.addWeighted(previous, settings.smooth, item.image, 1.0 - settings.smooth, 0.0)
                    elif settings.mode == "flow":
                        assert motion.flow is not None and motion.mask is not None, "flow mode measures both"
                        height, width = item.image.shape[:2]
                        warped = warp(previous, resize_flow(motion.flow, height, width))
                        mask = cv2.resize(motion.mask, (width, height), interpolation=cv2.INTER_LINEAR)
                        item.image = blend_with_history(item.image, warped, mask, settings.smooth)
                previous = item.image
            yield item

    return stage


def chain_stages(choose: Callable[[], Stylizer], sizes: SizeSettings | Callable[[], SizeSettings],
                 temporal: TemporalSettings, *, live: bool, batch_size: int = 1,
                 enabled: Callable[[], bool] = _always) -> list[tuple[str, Stage]]:  # fmt: skip
    """The stages between a source and a sink. A file measures motion on the input frames in a stage of its own
    before the model, overlapping it. A live chain puts the model first, so it always takes the newest frame
    rather than one that waited for motion analysis (which then runs on the frames' originals), one frame per
    call, for latency. `enabled` switches smoothing on and off while it runs."""
    model = ("model", stylize_stage(choose, 1 if live else batch_size, sizes))
    if temporal.mode == "off":
        return [model]
    motion, smooth = ("motion", motion_stage(temporal, enabled)), ("smooth", smooth_stage(temporal))
    return [model, motion, smooth] if live else [motion, model, smooth]
