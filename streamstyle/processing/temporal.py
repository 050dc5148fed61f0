"""Temporal consistency: optical flow between input frames, warping, occlusion masks, scene cuts, and the warping
error of Lai et al. 2018 ("Learning blind video temporal consistency") that measures flicker.

Flow fields are [H,W,2] float32 arrays of (dx, dy) in pixels: flow[y, x] says where pixel (x, y) of the first
image is found in the second. Images are [H,W,C] arrays; masks [H,W] float32 in [0,1] (1: reliable)."""

from __future__ import annotations

import math
from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F

# Forward-backward consistency thresholds of Sundaram et al. 2010, as used by Ruder et al. 2016 for video style.
_CONSISTENCY_RELATIVE = 0.01
_CONSISTENCY_ABSOLUTE = 0.5
# A pixel whose warped input differs from the real one by more than this (on 0..255 grey) is not trusted.
# Strict on purpose: blending where the flow is only roughly right leaves ghosts and measured flicker.
_WARPED_CONTENT_TOLERANCE = 12.0
# How far (0..255) history may pull a pixel away from its new stylization.
_HISTORY_LIMIT = (48, 48, 48, 0)
# Below this share of reliably tracked pixels, a frame does not follow from the one before (as after a cut).
_LEAST_TRACKED_SHARE = 0.2
# Mean absolute grey difference (0..255) between frames, after motion compensation fails, that marks a cut.
_SCENE_CUT_DIFFERENCE = 40.0
# DIS refuses images under 12 pixels a side and crashes the process on some short, wide ones (40x12 and 100x8 in
# OpenCV 5.0); every size tried with both sides at least this worked.
_DIS_LEAST_SIDE = 16


def to_grey(image: np.ndarray, longer_side: int | None = None) -> np.ndarray:
    """uint8 grey version of an RGB image, optionally shrunk so its longer side is at most `longer_side`."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    height, width = grey.shape
    if longer_side and max(height, width) > longer_side:
        scale = longer_side / max(height, width)
        grey = cv2.resize(grey, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    return grey


def dis_flow(first: np.ndarray, second: np.ndarray, preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM) -> np.ndarray:
    """Dense flow from grey image `first` to `second` (DIS, Kroeger et al. 2016), at any size: images smaller
    than DIS takes are enlarged for it, and their flow brought back to their size."""
    height, width = first.shape[:2]
    enlarge = _DIS_LEAST_SIDE / min(height, width)
    if enlarge > 1:
        size = (math.ceil(width * enlarge), math.ceil(height * enlarge))
        first, second = (cv2.resize(image, size, interpolation=cv2.INTER_LINEAR) for image in (first, second))
        return resize_flow(dis_flow(first, second, preset), height, width)
    # The stubs make calc's flow argument required; None lets OpenCV allocate it.
    return cv2.DISOpticalFlow.create(preset).calc(first, second, None)  # type: ignore[call-overload]


@lru_cache(maxsize=4)
def _pixel_grid(height: int, width: int) -> np.ndarray:
    """[H,W,2] float32 (x, y) of every pixel, read-only. Cached: every frame of a video has the same few sizes,
    and building it took 5 ms of a 720p frame."""
    grid = np.dstack(np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32)))
    grid.flags.writeable = False
    return grid


def flow_targets(flow: np.ndarray) -> np.ndarray:
    """[H,W,2] (x, y) where each pixel's flow lands."""
    return cv2.add(_pixel_grid(*flow.shape[:2]), flow)


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample `image` at each pixel's flow target: with flow from frame A to frame B and `image` aligned with
    B, the result is aligned with A."""
    # Older stubs make map2 required (newer ones do not); None is how OpenCV takes a map1 that holds both coordinates.
    return cv2.remap(image, flow_targets(flow), None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # type: ignore[call-overload, unused-ignore]


def warp_tensor(images: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """`warp` for a batch of tensors, differentiable (for training): images [B,C,H,W] sampled bilinearly at each
    pixel's flow target, flow [B,H,W,2] in pixels; the nearest border pixel where a target falls outside."""
    height, width = flow.shape[1:3]
    rows, columns = torch.meshgrid(torch.arange(height, device=flow.device), torch.arange(width, device=flow.device),
                                   indexing="ij")  # fmt: skip
    targets = flow + torch.stack((columns, rows), dim=-1)
    # grid_sample wants targets on [-1, 1], the corner pixels' centres at the ends.
    grid = targets * torch.tensor([2 / max(width - 1, 1), 2 / max(height - 1, 1)], device=flow.device) - 1
    return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="border", align_corners=True)


def resize_flow(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """A flow field resampled to another size, its vectors scaled with it."""
    scale = np.array([width / flow.shape[1], height / flow.shape[0]], np.float32)
    # Scaled while small: the same field (interpolation is linear), 3x faster at 720p.
    return cv2.resize(flow * scale, (width, height), interpolation=cv2.INTER_LINEAR)


def consistency_mask(flow: np.ndarray, reverse: np.ndarray) -> np.ndarray:
    """1 where following `flow` and then `reverse` comes back to the start (visible in both frames), 0 where it
    does not (occluded, disoccluded or a flow failure)."""
    reverse_at_target = warp(reverse, flow)
    round_trip = flow + reverse_at_target
    error = (round_trip**2).sum(axis=2)
    bound = _CONSISTENCY_RELATIVE * ((flow**2).sum(axis=2) + (reverse_at_target**2).sum(axis=2)) + _CONSISTENCY_ABSOLUTE
    return (error <= bound).astype(np.float32)


def inside_frame_mask(flow: np.ndarray) -> np.ndarray:
    """1 where a pixel's flow target lies inside the frame, 0 where it falls off the edge: content that has just
    entered the picture (in a pan, a whole band along one side). `warp` gives such pixels the nearest border
    pixel instead, which is other content than theirs, and the tests on the grey input cannot tell when both are
    plain (a car's white side): blended in, that unrelated history trails into the picture with the motion."""
    height, width = flow.shape[:2]
    targets = flow_targets(flow)
    target_x, target_y = targets[..., 0], targets[..., 1]
    inside = (target_x >= 0) & (target_x <= width - 1) & (target_y >= 0) & (target_y <= height - 1)
    return inside.astype(np.float32)


def reliable_motion(first: np.ndarray, second: np.ndarray, flow: np.ndarray, reverse: np.ndarray) -> np.ndarray:
    """Mask of pixels of `first` whose content is really found at their flow target in `second`: inside the
    frame, consistent forward and backward, and with the warped content matching."""
    mask = consistency_mask(flow, reverse) * inside_frame_mask(flow)
    difference = np.abs(warp(second, flow).astype(np.float32) - first.astype(np.float32))
    mask[difference > _WARPED_CONTENT_TOLERANCE] = 0.0
    return mask


def tracked_motion(previous: np.ndarray, current: np.ndarray, least_tracked: float = _LEAST_TRACKED_SHARE
                   ) -> tuple[np.ndarray, np.ndarray] | None:  # fmt: skip
    """How grey frame `current` follows from `previous`: the flow from current back to previous and the mask of
    current's pixels reliably found there. None where it does not follow: a scene cut, or fewer than
    `least_tracked` of the pixels tracked (a flash, a failed flow)."""
    backward = dis_flow(current, previous)
    if is_scene_cut(previous, current, backward):
        return None
    mask = reliable_motion(current, previous, backward, dis_flow(previous, current))
    if mask.mean() < least_tracked:
        return None
    return backward, mask


def is_scene_cut(previous: np.ndarray, current: np.ndarray, flow: np.ndarray | None = None) -> bool:
    """A hard cut: the frames differ a lot even after following the motion between them."""
    aligned = warp(previous, flow) if flow is not None else previous
    return float(np.abs(aligned.astype(np.float32) - current.astype(np.float32)).mean()) > _SCENE_CUT_DIFFERENCE


def blend_with_history(stylized: np.ndarray, warped_previous: np.ndarray, mask: np.ndarray, smooth: float
                       ) -> np.ndarray:  # fmt: skip
    """out = stylized + clamp(mask·a·(warped_previous − stylized), ±limit), on uint8 RGB: the blend
    mask·(a·warped_previous + (1−a)·stylized) + (1−mask)·stylized, except that history may move a pixel at most
    `limit` levels from the new stylization. Shimmer is smaller than that and is smoothed whole; a trail left
    by a flow error is larger, so it cannot feed itself frame after frame into a ghost."""
    weight = smooth * mask
    blended = cv2.blendLinear(warped_previous, stylized, weight, 1.0 - weight)
    # Saturating uint8 arithmetic: 8x faster than the same clamp in float32 numpy at 720p. OpenCV takes a scalar
    # (a tuple) for the second operand, which the stubs leave out.
    lowest, highest = cv2.subtract(stylized, _HISTORY_LIMIT), cv2.add(stylized, _HISTORY_LIMIT)  # type: ignore[call-overload]
    return cv2.min(cv2.max(blended, lowest), highest)


def pair_warping_error(output: np.ndarray, next_output: np.ndarray, flow: np.ndarray, mask: np.ndarray) -> float:
    """Lai et al.'s E_warp for one pair: mean over reliable pixels of the squared RGB difference on [0,1] between
    output_t and output_{t+1} warped back to t."""
    warped = warp(next_output, flow).astype(np.float32) / 255.0
    squared = ((output.astype(np.float32) / 255.0 - warped) ** 2).sum(axis=2)
    return float((squared * mask).sum() / max(mask.sum(), 1.0))
