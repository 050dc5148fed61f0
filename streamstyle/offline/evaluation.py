"""Measuring flicker: the warping error of Lai et al. 2018 between consecutive output frames along the input's
optical flow, and how far smoothing moved the output from the per-frame stylization (faithfulness)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, replace
from itertools import pairwise

import cv2
import numpy as np

from streamstyle.core.errors import InputError
from streamstyle.io.media import read_frames
from streamstyle.processing.temporal import (
    consistency_mask,
    dis_flow,
    is_scene_cut,
    pair_warping_error,
    resize_flow,
    to_grey,
)

# Flow for the metric is computed with the longer side at most this (then scaled to the output size).
METRIC_FLOW_SIZE = 640


@dataclass(frozen=True)
class TemporalReport:
    warping_error: float  # mean over frame pairs; lower is steadier
    pairs: int  # frame pairs measured
    cuts: int  # pairs skipped as scene cuts
    faithfulness: float | None = None  # mean |output - reference| on [0,1]; lower stays closer to per-frame


def warping_error(inputs: Iterable[np.ndarray], outputs: Iterable[np.ndarray]) -> TemporalReport:
    """Mean warping error of `outputs` along the motion of `inputs` (RGB frames, in order), skipping cuts."""
    errors, cuts = [], 0
    for (input_a, output_a), (input_b, output_b) in pairwise(zip(inputs, outputs, strict=False)):
        height, width = output_a.shape[:2]
        grey_a, grey_b = to_grey(input_a, METRIC_FLOW_SIZE), to_grey(input_b, METRIC_FLOW_SIZE)
        # DIS: its warping error on the input itself (the metric's floor) is 0.0008 on the bikes clip, against
        # 0.003 with Farnebäck's method.
        flow = dis_flow(grey_a, grey_b)
        if is_scene_cut(grey_b, grey_a, flow):
            cuts += 1
            continue
        # Occlusions by forward-backward consistency alone, as Lai et al. (after Ruder et al.): the metric
        # must not share the smoother's stricter content test.
        mask = consistency_mask(flow, dis_flow(grey_b, grey_a))
        mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
        errors.append(pair_warping_error(output_a, output_b, resize_flow(flow, height, width), mask))
    if not errors:
        raise InputError("no pair of consecutive frames to measure (fewer than 2 frames, or only cuts)")
    return TemporalReport(float(np.mean(errors)), len(errors), cuts)


def mean_difference(frames: Iterable[np.ndarray], references: Iterable[np.ndarray]) -> float:
    """Mean absolute difference on [0,1] between two sequences of RGB frames."""
    differences = [
        np.abs(a.astype(np.float32) - b.astype(np.float32)).mean() / 255.0
        for a, b in zip(frames, references, strict=False)
    ]
    return float(np.mean(differences))


def evaluate_files(source: str | os.PathLike, output: str | os.PathLike,
                   reference: str | os.PathLike | None = None) -> TemporalReport:  # fmt: skip
    """The warping error of a stylized video against its input and, with the per-frame stylization as
    `reference`, its faithfulness."""
    report = warping_error(read_frames(source), read_frames(output))
    if reference is None:
        return report
    return replace(report, faithfulness=mean_difference(read_frames(output), read_frames(reference)))
