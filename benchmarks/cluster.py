"""Throughput of the jobs on Ray against the single-process file job, on this machine: frames a second, medians of
interleaved rounds (a busy machine slows every way alike), and what the join of `file --segments` costs.

    python -m benchmarks.cluster [--copies 4] [--rounds 3] [--max-size 256]

A folder (`batch`), the same copies of a sample clip each way:
- file: one process, the network loaded once, the files one after another (what a shell loop over `streamstyle
  file` gets, less its start-ups);
- embedded: `run_batch` with no address, a Ray instance started for the batch (the command's default);
- one node: a cluster of one `ray start --head` with all the cores, joined by address;
- two nodes: a head and a second node, half the cores each, one worker on each.

One video (`file --segments`): the bikes clip with a keyframe a second, alone in one process, in segments on the
embedded Ray (auto) and in four segments on the two nodes; then the join's speed, in seconds per hour of that
video and in MB/s of its segments, from the segmented runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av

from streamstyle.apps.batch import batch_items, run_batch
from streamstyle.apps.config import PipelineConfig, pipeline_config
from streamstyle.apps.file_job import stylize_file
from streamstyle.apps.segments import SegmentedReport, stylize_segmented
from tests.cluster import ENV, RayCluster
from tests.media import write_even_gop_clip

CLIP = Path("samples/clips/city_2s.mpg")
LONG_CLIP = Path("samples/clips/bikes.mp4")


def config_for(first: Path, out: Path, max_size: int) -> PipelineConfig:
    sections = {"source": {"input": str(first)}, "style": {"style": "7"}, "size": {"max_size": max_size},
                "output": {"targets": [str(out)], "overwrite": True}}  # fmt: skip
    return pipeline_config(sections, "benchmark", kind="file")


def one_process(inputs: list[Path], out: Path, config: PipelineConfig) -> int:
    stylizer = config.style.stylizer(config.runtime)
    frames = 0
    for source in inputs:
        report = stylize_file(source, out / f"{source.stem}.mp4", stylizer, sizes=config.size, encoder=config.encoder,
                              temporal=config.temporal, overwrite=True)  # fmt: skip
        frames += report.frames
    return frames


def on_ray(address: str | None, workers: int | None) -> Callable[[list[Path], Path, PipelineConfig], int]:
    def run(inputs: list[Path], out: Path, config: PipelineConfig) -> int:
        report = run_batch(batch_items([str(p) for p in inputs], out), config, address=address, workers=workers)
        assert report.count("failed") == 0, report.results
        return report.frames

    return run


def in_segments(address: str | None, segments: int | None, joins: list[SegmentedReport]
                ) -> Callable[[list[Path], Path, PipelineConfig], int]:  # fmt: skip
    def run(inputs: list[Path], out: Path, config: PipelineConfig) -> int:
        report = stylize_segmented(inputs[0], out / "joined.mp4", config, segments=segments, address=address)
        joins.append(report)
        return report.frames

    return run


def interleaved(ways: dict[str, tuple[Callable, RayCluster | None]], inputs: list[Path], config: PipelineConfig,
                work: Path, rounds: int) -> dict[str, float]:  # fmt: skip
    """Median frames a second of each way, the ways taking turns round after round."""
    fps: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(rounds):
        for name, (run, cluster) in ways.items():
            out = work / "out"
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            if cluster:
                cluster.__enter__()
            try:
                start = time.perf_counter()
                frames = run(inputs, out, config)
                fps[name].append(frames / (time.perf_counter() - start))
            finally:
                if cluster:
                    cluster.stop()
    return {name: statistics.median(values) for name, values in fps.items()}


def print_table(title: str, fps: dict[str, float]) -> None:
    baseline = next(iter(fps.values()))
    print(title)
    print(f"{'way':32} {'fps':>6} {'x file':>7}")
    for name, median in fps.items():
        print(f"{name:32} {median:6.2f} {median / baseline:7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-size", type=int, default=256)
    args = parser.parse_args()
    os.environ.update(ENV)
    cores = os.cpu_count() or 2
    work = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
    inputs = []
    for index in range(args.copies):
        inputs.append(work / f"clip{index}{CLIP.suffix}")
        shutil.copy(CLIP, inputs[-1])
    config = config_for(inputs[0], work / "out" / "x.mp4", args.max_size)
    one_node, two_nodes = RayCluster(nodes=1, cpus=cores), RayCluster(nodes=2, cpus=max(1, cores // 2))
    folder = interleaved({
        "file (one process)": (one_process, None),
        "batch, embedded Ray": (on_ray(None, None), None),
        "batch, one node": (on_ray(one_node.address, None), one_node),
        "batch, two nodes": (on_ray(two_nodes.address, 2), two_nodes),
    }, inputs, config, work, args.rounds)  # fmt: skip
    print_table(f"{args.copies} x {CLIP.name}, --max-size {args.max_size}, {cores} cores, medians of {args.rounds} "
                "rounds", folder)  # fmt: skip

    video = work / "long.mp4"
    write_even_gop_clip(video, LONG_CLIP, gop=25, width=640, tone_seconds=10.0)
    config = config_for(video, work / "out" / "joined.mp4", args.max_size)
    joins: list[SegmentedReport] = []
    one_video = interleaved({
        "file (one process)": (one_process, None),
        "file --segments auto, embedded": (in_segments(None, None, joins), None),
        "file --segments 4, two nodes": (in_segments(two_nodes.address, 4, joins), two_nodes),
    }, [video], config, work, args.rounds)  # fmt: skip
    print_table(f"\n{LONG_CLIP.name} with a keyframe a second, --max-size {args.max_size}", one_video)
    with av.open(str(video)) as container:
        hours = container.duration / av.time_base / 3600
    join = statistics.median(report.join_seconds for report in joins)
    megabytes = (work / "out" / "joined.mp4").stat().st_size / 1e6
    print(f"join: {join:.3f} s for {hours * 3600:.0f} s of video ({join / hours:.1f} s per hour of it), "
          f"{megabytes / join:.0f} MB/s of output")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
