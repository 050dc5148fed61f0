"""Decoded live audio as every output's thread reads it, and the backlog each writer keeps of it."""

from __future__ import annotations

import collections
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from streamstyle.core.roles import Sink


@dataclass(frozen=True)
class AudioChunk:
    """Decoded source audio, read by every output's thread, so never changed: the samples as
    av.AudioFrame.to_ndarray gives them (channels x length when planar, 1 x length*channels when packed), their
    length per channel, and the capture-clock time of the first sample in milliseconds."""

    samples: np.ndarray
    format: str
    layout: str
    rate: int
    capture_ms: float
    length: int

    @classmethod
    def of(cls, frame: av.AudioFrame, capture_ms: float) -> AudioChunk:
        return cls(frame.to_ndarray(), frame.format.name, frame.layout.name, frame.sample_rate, capture_ms,
                   frame.samples)  # fmt: skip

    @property
    def kind(self) -> tuple[str, str, int]:
        return self.format, self.layout, self.rate

    def frame(self, pts: int) -> av.AudioFrame:
        """A new AudioFrame of these samples at `pts` in 1/rate units (each writer stamps its own)."""
        frame = av.AudioFrame.from_ndarray(self.samples, format=self.format, layout=self.layout)
        frame.sample_rate, frame.pts, frame.time_base = self.rate, pts, Fraction(1, self.rate)
        return frame

    def after(self, skip: int) -> AudioChunk:
        """This chunk without its first `skip` samples."""
        columns = skip * (self.samples.shape[1] // self.length)
        return AudioChunk(self.samples[:, columns:], self.format, self.layout, self.rate,
                          self.capture_ms + skip * 1000 / self.rate, self.length - skip)  # fmt: skip

    def silence(self, length: int, capture_ms: float) -> AudioChunk:
        """`length` samples of silence in this chunk's format (unsigned 8-bit rests at 128), at capture_ms."""
        shape = (self.samples.shape[0], length * (self.samples.shape[1] // self.length))
        rest = 128 if self.samples.dtype == np.uint8 else 0
        return AudioChunk(np.full(shape, rest, self.samples.dtype), self.format, self.layout, self.rate, capture_ms,
                          length)  # fmt: skip


@dataclass(frozen=True)
class AudioFormat:
    """What a writer's audio track is opened for: the source's sample rate, and mono or stereo."""

    rate: int
    layout: str


# Decoded audio a live consumer holds while it cannot write yet (no picture, an output connecting): about 5 s of
# AAC frames. Older chunks give way.
AUDIO_BACKLOG = 256


class AudioBacklog:
    """Source audio held for one writer until its next picture is written: the sound arrives ahead of the
    pictures it goes with (the model holds them back), and the writer may not be open yet. Past AUDIO_BACKLOG
    chunks the oldest give way."""

    def __init__(self) -> None:
        self._chunks: collections.deque[AudioChunk] = collections.deque(maxlen=AUDIO_BACKLOG)

    def append(self, chunk: AudioChunk) -> None:
        self._chunks.append(chunk)

    def write_into(self, sink: Sink[AudioChunk]) -> None:
        while self._chunks:
            sink.write_audio(self._chunks.popleft())
