"""What flows through a chain: decoded pictures with their timing and motion, and audio beside them."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import av


# Live frames are stamped with their capture time in milliseconds.
CAPTURE_TIME_BASE = Fraction(1, 1000)


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
    # The input as decoded, kept when stages replace `image`; __post_init__ makes it `image` when not given.
    original: np.ndarray = None  # type: ignore[assignment]
    # (height, width) the sinks give the picture, when not `image`'s own: the model stage leaves its output at the
    # size the network ran at, where smoothing is cheaper, and a sink scales it in the pass that converts it.
    output_shape: tuple[int, int] | None = None

    def __post_init__(self):
        if self.original is None:
            self.original = self.image

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the picture as the sinks give it."""
        return self.output_shape or (self.image.shape[0], self.image.shape[1])


@dataclass
class AudioPacket:
    """An audio packet to copy as it is (passthrough), or a decoded chunk to re-encode."""

    stream_index: int
    packet: av.Packet | None = None
    frame: av.AudioFrame | None = None


# What a chain carries: pictures, and for files the audio between them in file order.
Item = Frame | AudioPacket
