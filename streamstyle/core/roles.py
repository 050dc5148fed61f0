"""One contract per role in a chain. A source is an iterable of frames (and, for files, the audio between them,
in file order). A sink is where frames end: a video file, a live output, a restream target, the window."""

from __future__ import annotations

import abc
from collections.abc import Iterator
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar

from streamstyle.core.frames import Frame

ItemT_co = TypeVar("ItemT_co", covariant=True)
AudioT = TypeVar("AudioT")


class Source(Protocol[ItemT_co]):
    def __iter__(self) -> Iterator[ItemT_co]: ...


class Sink(abc.ABC, Generic[AudioT]):
    """write(frame) takes the pictures in order and write_audio(audio) the sound that goes with them (a sink
    without sound leaves it out); close() finishes (a file complete and in place, a stream ended properly);
    discard() abandons, leaving nothing half-written. As a context manager: closed when the block ends normally,
    discarded when it raises."""

    @abc.abstractmethod
    def write(self, frame: Frame) -> None: ...

    def write_audio(self, audio: AudioT) -> None:
        pass

    @abc.abstractmethod
    def close(self) -> None: ...

    def discard(self) -> None:
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:  # fmt: skip
        if kind is None:
            self.close()
        else:
            self.discard()
