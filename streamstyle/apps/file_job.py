"""`stylize_file`: a video file through the chain source → [motion] → model → [smooth] → sink. The output is a
drop-in replacement for the input: every frame once, in order, with its own timestamp; audio copied packet for
packet; container metadata kept."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av

from streamstyle.core.errors import InputError
from streamstyle.core.settings import EncoderSettings, SizeSettings, TemporalSettings
from streamstyle.io.media import open_video
from streamstyle.io.video_file import FileSink, FileSource, check_paths
from streamstyle.processing.chain import Chain
from streamstyle.processing.runtime import share_cores_with_model
from streamstyle.processing.stages import chain_stages
from streamstyle.processing.stylizer import Stylizer


@dataclass
class FileReport:
    output: Path
    frames: int
    seconds: float
    stage_seconds: dict[str, float]
    corrupt_packets: int = 0
    notes: list[str] = field(default_factory=list)
    frames_announced: int | None = None  # by the input's container, where it says

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def damage(self) -> str | None:
        """What was wrong with the input, in words: it ended before the frames its container announced, or some
        packets could not be decoded. None for a whole input."""
        ended = (f"the input ended early: {self.frames} of the {self.frames_announced} frames its container "
                 "announced were decoded") if self.frames_announced and self.frames < self.frames_announced else None
        return "; ".join(filter(None, [ended, corrupt_words(self.corrupt_packets)])) or None


def corrupt_words(corrupt_packets: int) -> str | None:
    return f"skipped {corrupt_packets} corrupt video packet(s)" if corrupt_packets else None


def stylize_file(
    source: str | os.PathLike,
    output: str | os.PathLike,
    stylizer: Stylizer,
    *,
    batch_size: int | None = None,
    sizes: SizeSettings | None = None,
    encoder: EncoderSettings | None = None,
    temporal: TemporalSettings | None = None,
    on_progress: Callable[[int, int | None], None] | None = None,
    audio: bool = True,
    overwrite: bool = False,
    strict: bool = False,
) -> FileReport:
    """Stylize a video file into `output`, keeping timestamps, audio (unless `audio` is False) and metadata.
    on_progress(frames_done, frames_total_or_None) is called from this thread about 10 times a second. Temporal
    smoothing is flow-guided by default. A damaged input (truncated, corrupt packets) is said in the report's
    `damage`, or with `strict` is an InputError and nothing is written. An existing output that is not a video
    is replaced only with `overwrite`."""
    source, output = check_paths(source, output, overwrite)
    sizes = sizes or SizeSettings()
    encoder = encoder or EncoderSettings()
    temporal = temporal or TemporalSettings()
    encoder = share_cores_with_model(encoder, stylizer.runtime)
    with open_video(source) as container, FileSink(output, container, encoder, audio) as sink:
        file_source = FileSource(container, sink.reencode, threads=encoder.threads, audio=audio)
        stages = chain_stages(lambda: stylizer, sizes, temporal, live=False,
                              batch_size=batch_size or stylizer.runtime.default_batch_size)  # fmt: skip
        chain = Chain(file_source, stages, sink)
        announced = container.streams.video[0].frames or None
        total = announced or estimate_frames(container)
        start = time.perf_counter()
        chain.run(lambda: on_progress(sink.frames, total) if on_progress else None)
        if sink.frames == 0:
            raise InputError(f"no video frame could be decoded from {source} (corrupt or truncated)")
        busy = {timer.name: timer.busy for timer in chain.timers}
        stage_seconds = {"decode": busy.pop("source"), **busy}
        stage_seconds["encode"] = stage_seconds.pop("sink")
        report = FileReport(output, sink.frames, 0.0, stage_seconds, file_source.corrupt_packets, list(sink.notes),
                            announced)  # fmt: skip
        if strict and report.damage:
            raise InputError(f"{source}: {report.damage} (--strict)")
    report.seconds = time.perf_counter() - start
    return report


def estimate_frames(container: av.container.InputContainer) -> int | None:
    """The frames a video file holds: as its container announces, else from its duration and rate; None if
    neither says. Nothing is decoded."""
    video = container.streams.video[0]
    rate = video.average_rate or video.guessed_rate
    if container.duration and rate:
        return round(container.duration / av.time_base * rate)
    return None
