"""`stylize_segmented`: one long video file cut into segments, each a task on a Ray cluster
(streamstyle.apps.cluster), joined into the output `stylize_file` would have written alone.

The plan cuts at keyframes, read from the packets without decoding. A segment's task decodes from a few frames
before its start (from the keyframe at or before them), runs those through the model and the temporal stages so
that the smoothing has its history, and drops them; it encodes its own frames, video only, with the input's
timestamps, into a file of the work folder beside the output. The join copies the segments' packets one after
another into the output, with the source's audio and metadata as the file job copies them. Finished segments stay
in the work folder until the join succeeds: a run that was interrupted is taken up by the next, which reuses them
when the input and the settings are the same."""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from streamstyle.apps import cluster
from streamstyle.apps.config import PipelineConfig
from streamstyle.apps.file_job import corrupt_words
from streamstyle.core.errors import ClusterError, InputError, OutputError
from streamstyle.core.files import partials_of, write_json
from streamstyle.core.frames import AudioPacket, Frame, Item
from streamstyle.core.settings import TemporalSettings
from streamstyle.io.media import open_video
from streamstyle.io.video_file import FileSink, FileSource, check_paths
from streamstyle.processing.chain import Chain, Stage
from streamstyle.processing.runtime import share_cores_with_model
from streamstyle.processing.stages import chain_stages

WORK_SUFFIX = ".segments"
PLAN_NAME = "plan.json"
# MP4 keeps every timestamp as it was written (timescale a multiple of the time base, edit lists), dts included.
SEGMENT_SUFFIX = ".mp4"
# `auto`: a few segments per worker, so that the last ones to finish are a small part of the whole, and each
# segment long enough that its warm-up is a small part of its work.
AUTO_SEGMENTS_PER_WORKER = 3
AUTO_LEAST_FRAMES = 250
# The history the smoothing forgets (weight `smooth` a frame) counts for less than half a level of 8-bit colour
# after the warm-up; at most this many frames, for smoothing that barely forgets.
_FORGOTTEN = 1 / 510
MAX_WARM_UP = 250


@dataclass(frozen=True)
class Segment:
    """A run of the input's frames in presentation order, by their timestamps in its video time base."""

    index: int
    start: int  # its first frame's, a keyframe's
    end: int | None  # the next segment's first frame's; None: to the end of the input
    warm_from: int  # the first frame run through the stages, a few before start
    frames: int

    @property
    def file_name(self) -> str:
        return f"segment-{self.index:05d}{SEGMENT_SUFFIX}"

    def holds(self, pts: int) -> bool:
        """Whether the frame stamped `pts` is one of this segment's own (not of its warm-up)."""
        return self.start <= pts and (self.end is None or pts < self.end)

    @property
    def result_name(self) -> str:
        """Its SegmentResult's file, written once the segment is in place: a rerun that reuses the segment
        knows what its run found."""
        return f"segment-{self.index:05d}.json"


@dataclass(frozen=True)
class SegmentTask:
    source: Path
    segment: Segment
    output: Path


@dataclass
class SegmentResult:
    index: int
    frames: int
    seconds: float
    node: str
    corrupt_packets: int = 0


@dataclass
class SegmentedReport:
    output: Path
    frames: int
    frames_planned: int
    seconds: float
    join_seconds: float
    segments: int
    reused: int
    workers: int
    address: str
    results: list[SegmentResult]
    notes: list[str]
    corrupt_packets: int

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    @property
    def damage(self) -> str | None:
        """What was wrong with the input, in words, as FileReport.damage says it. None for a whole input."""
        return segments_damage(self.frames, self.frames_planned, self.corrupt_packets)

    def per_node(self) -> dict[str, tuple[int, int, float]]:
        """node → (segments, frames, seconds of work) of the segments done there in this run."""
        return cluster.per_node(self.results)


def warm_up_frames(temporal: TemporalSettings) -> int:
    """Frames a segment runs through the stages before its own, so that its first frames are smoothed as they
    would have been in one run: each frame keeps `smooth` of the history (flow mode keeps less where the flow is
    unreliable), so after n frames what came before weighs smooth**n."""
    if temporal.mode == "off" or temporal.smooth == 0:
        return 0
    if temporal.smooth >= 1:
        return MAX_WARM_UP
    return min(MAX_WARM_UP, math.ceil(math.log(_FORGOTTEN) / math.log(temporal.smooth)))


def auto_segments(frames: int, workers: int) -> int:
    return max(1, min(workers * AUTO_SEGMENTS_PER_WORKER, frames // AUTO_LEAST_FRAMES))


def read_timestamps(path: Path) -> tuple[list[int], list[int]]:
    """Every video frame's timestamp in presentation order, and the keyframes' ones, from the packets alone."""
    timestamps: list[int] = []
    keyframes: list[int] = []
    with open_video(path) as container:
        for packet in container.demux(container.streams.video[0]):
            if not packet.size:
                continue  # the flush packet at the end
            if packet.pts is None:
                raise InputError(f"cannot cut {path} into segments: its video packets carry no timestamps")
            timestamps.append(packet.pts)
            if packet.is_keyframe:
                keyframes.append(packet.pts)
    if not timestamps:
        raise InputError(f"no video frame in {path}")
    return sorted(timestamps), keyframes


def plan_segments(timestamps: list[int], keyframes: list[int], count: int, warm_up: int) -> list[Segment]:
    """`count` segments starting at keyframes, as equal in frames as the keyframes allow (fewer where they are
    too few), each warmed up on the `warm_up` frames before it."""
    place = {pts: index for index, pts in enumerate(timestamps)}
    cuts = sorted({place[pts] for pts in keyframes if pts in place} - {0})
    starts = [0]
    for part in range(1, count):
        if not cuts:
            break
        target = round(part * len(timestamps) / count)
        nearest = min(cuts, key=lambda index: abs(index - target))
        if nearest > starts[-1]:
            starts.append(nearest)
    segments = []
    for number, (first, last) in enumerate(itertools.pairwise([*starts, len(timestamps)])):
        end = timestamps[last] if last < len(timestamps) else None
        segments.append(Segment(number, timestamps[first], end, timestamps[max(0, first - warm_up)], last - first))
    return segments


def stylize_segmented(source: str | os.PathLike, output: str | os.PathLike, config: PipelineConfig, *,
                      segments: int | None = None, address: str | None = None, workers: int | None = None,
                      on_progress: cluster.Progress | None = None, say: Callable[[str], None] = lambda _: None
                      ) -> SegmentedReport:  # fmt: skip
    """Stylize the video file `source` into `output` as `stylize_file` does, with `config`'s settings, in
    `segments` pieces (None: a few per worker) on the Ray cluster at `address` (see cluster.connected). The
    segments wait in the work folder (`output` + WORK_SUFFIX) until the join; a rerun reuses those finished."""
    source, output = check_paths(source, output, config.output.overwrite)
    with open_video(source) as container:
        FileSink(output, container, config.encoder, audio=False).discard()  # the file job's checks, before any work
    timestamps, keyframes = read_timestamps(source)
    work = output.with_name(output.name + WORK_SUFFIX)
    start = time.perf_counter()
    with cluster.connected(address) as where:
        slots = cluster.worker_slots(workers)
        count = segments or auto_segments(len(timestamps), len(slots))
        plan = plan_segments(timestamps, keyframes, count, warm_up_frames(config.temporal))
        earlier = _prepare_work(work, source, config, plan)
        finished = {result.index for result in earlier}
        tasks = [SegmentTask(source, segment, work / segment.file_name) for segment in plan
                 if segment.index not in finished]  # fmt: skip
        say(f"Ray cluster at {where}: {cluster.node_count()} node(s), {len(slots)} worker(s); {source.name} in "
            f"{len(plan)} segment(s), {len(finished)} already done")  # fmt: skip
        try:
            keyed = [(task, str(task.segment.index)) for task in tasks]
            results = cluster.dispatch(_stylize_segment, keyed, config, slots, on_progress,
                                       sum(task.segment.frames for task in tasks))  # fmt: skip
        finally:
            for task in tasks:
                for partial in partials_of(task.output):  # left by a worker killed mid-segment, or by this interruption
                    partial.unlink(missing_ok=True)
            if not any((work / segment.file_name).is_file() for segment in plan):
                shutil.rmtree(work)  # nothing finished to keep for a rerun
    done = [result for result in results.values() if not isinstance(result, cluster.Lost)]
    lost = [result for result in results.values() if isinstance(result, cluster.Lost)]
    if lost:
        raise ClusterError(f"a segment failed: {lost[0].reason}; the {len(finished) + len(done)} finished are kept "
                           f"in {work} for the next run")  # fmt: skip
    corrupt = sum(result.corrupt_packets for result in [*earlier, *done])
    damage = segments_damage(sum(result.frames for result in [*earlier, *done]), len(timestamps), corrupt)
    if damage and config.source.strict:
        shutil.rmtree(work)  # a rerun with the same settings would find the same
        raise InputError(f"{source}: {damage} (--strict)")
    joined = time.perf_counter()
    frames, notes = join_segments(source, [work / segment.file_name for segment in plan], output, config)
    shutil.rmtree(work)
    end = time.perf_counter()
    done.sort(key=lambda result: result.index)
    return SegmentedReport(output, frames, len(timestamps), end - start, end - joined, len(plan), len(finished),
                           len(slots), where, done, notes, corrupt)  # fmt: skip


def segments_damage(frames: int, planned: int, corrupt_packets: int) -> str | None:
    """A damaged input in words: frames its packets promised that could not be decoded, corrupt packets."""
    lost = f"{planned - frames} of the input's {planned} frames could not be decoded" if frames < planned else None
    return "; ".join(filter(None, [lost, corrupt_words(corrupt_packets)])) or None


def _prepare_work(work: Path, source: Path, config: PipelineConfig, plan: list[Segment]) -> list[SegmentResult]:
    """The work folder, made ready for `plan`: the results of the segments a run with the same input, settings
    and plan finished, or none (and the folder emptied) when anything differs."""
    stat = source.stat()
    key = {
        "input": str(source.resolve()),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "settings": dataclasses.asdict(config) | {"cluster": None},  # the same segments, wherever they are made
        "plan": [dataclasses.asdict(segment) for segment in plan],
    }
    plan_file = work / PLAN_NAME
    if work.exists() and not plan_file.is_file() and any(work.iterdir()):
        raise OutputError(f"{work} is in the way: streamstyle keeps the segments of {source.name} there")
    if plan_file.is_file() and json.loads(plan_file.read_text()) == json.loads(json.dumps(key)):
        return [SegmentResult(**json.loads((work / segment.result_name).read_text())) for segment in plan
                if (work / segment.file_name).is_file() and (work / segment.result_name).is_file()]  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    write_json(plan_file, key)
    return []


def _stylize_segment(context: cluster.WorkerContext, task: SegmentTask, on_progress: cluster.Progress
                     ) -> SegmentResult:  # fmt: skip
    """One segment, on a worker: decoded from its warm-up on, through the stages, its own frames encoded."""
    config, segment = context.config, task.segment
    encoder = share_cores_with_model(config.encoder, context.stylizer.runtime)
    start = time.perf_counter()
    with open_video(task.source) as container, FileSink(task.output, container, encoder, audio=False) as sink:
        if segment.index:
            container.seek(segment.warm_from, stream=container.streams.video[0])  # the keyframe at or before it
        source = FileSource(container, set(), threads=encoder.threads, audio=False)
        stages = chain_stages(lambda: context.stylizer, config.size, config.temporal, live=False,
                              batch_size=config.runtime.batch_size or context.stylizer.runtime.default_batch_size)
        frames = _frames_of(source, segment, task.source)
        if segment.index and config.style.strength < 1:
            # A video at strength < 1 mixes the style with the content's own, taken from its first frame (see
            # stylize_stage): the film's, not the segment's, so that every segment is painted alike.
            frames = itertools.chain(_first_frame(task.source, encoder.threads), frames)
        chain = Chain(frames, [*stages, ("trim", _from(segment.start))], sink)
        chain.run(lambda: on_progress(sink.frames, segment.frames))
    # A packet of the warm-up is the segment before's to count.
    corrupt = sum(pts is None or segment.holds(pts) for pts in source.corrupt)
    result = SegmentResult(segment.index, sink.frames, time.perf_counter() - start, context.node, corrupt)
    write_json(task.output.with_name(segment.result_name), dataclasses.asdict(result))
    return result


def _frames_of(source: FileSource, segment: Segment, path: Path) -> Iterator[Item]:
    """The decoded frames from the segment's warm-up to its end."""
    first = True
    for item in source:
        assert isinstance(item, Frame) and item.pts is not None, "video alone, every packet stamped (planned so)"
        if first and item.pts > segment.warm_from:
            raise InputError(f"seeking in {path} landed after the frame at {item.time_base * segment.warm_from} s: "
                             "it cannot be cut into segments")  # fmt: skip
        first = False
        if segment.end is not None and item.pts >= segment.end:
            return
        if item.pts >= segment.warm_from:
            yield item


def _first_frame(path: Path, threads: int) -> Iterator[Item]:
    """The input's first frame; dropped with the warm-up, as it comes before the segment."""
    with open_video(path) as container:
        yield from itertools.islice(FileSource(container, set(), threads=threads, audio=False), 1)


def _from(start: int) -> Stage:
    """Drops the warm-up frames, once they have primed the stages before."""

    def stage(items: Iterator[Item]) -> Iterator[Item]:
        return (item for item in items if not (isinstance(item, Frame) and item.pts is not None and item.pts < start))

    return stage


def join_segments(source: Path, parts: list[Path], output: Path, config: PipelineConfig) -> tuple[int, list[str]]:
    """The segments' video packets one after another, with the source's audio and metadata, into `output`
    (complete or not there at all). Returns the frames joined and the sink's notes."""
    with open_video(source) as container, open_video(parts[0]) as first:
        template = first.streams.video[0]
        with FileSink(output, container, config.encoder, config.output.audio, copy_video=template) as sink:
            sound = FileSource(container, sink.reencode, audio=config.output.audio, video=False)
            audio: Iterator[av.Packet | AudioPacket] = (item for item in sound if isinstance(item, AudioPacket))
            video: Iterator[av.Packet | AudioPacket] = _packets(parts, template.codec_context.extradata)
            for item in heapq.merge(video, audio, key=_seconds):
                if isinstance(item, av.Packet):
                    sink.write_packet(item)
                else:
                    sink.write_audio(item)
    return sink.frames, sink.notes


def _packets(parts: list[Path], extradata: bytes | None) -> Iterator[av.Packet]:
    for part in parts:
        with open_video(part) as segment:
            video = segment.streams.video[0]
            if video.codec_context.extradata != extradata:
                raise OutputError(f"{part.name} was encoded with other parameters than the first segment: cannot "
                                  "join them; remove it and run again")  # fmt: skip
            yield from (packet for packet in segment.demux(video) if packet.size)


def _seconds(item: av.Packet | AudioPacket) -> Fraction:
    """When a packet is due in the output: what the join interleaves by."""
    if isinstance(item, AudioPacket):
        if item.packet is not None:
            return _seconds(item.packet)
        assert item.frame is not None, "an AudioPacket holds a packet or a frame"
        return Fraction(item.frame.pts or 0) * (item.frame.time_base or 0)
    return Fraction(item.dts if item.dts is not None else item.pts or 0) * (item.time_base or 0)
