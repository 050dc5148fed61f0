"""Throughput of `streamstyle batch` on Ray against the single-process file job, on this machine: frames a second
over a folder of clips, medians of interleaved rounds (a busy machine slows every way alike).

    python -m benchmarks.cluster [--copies 4] [--rounds 3] [--max-size 256]

The ways, each over the same copies of a sample clip:
- file: one process, the network loaded once, the files one after another (what a shell loop over `streamstyle
  file` gets, less its start-ups);
- embedded: `run_batch` with no address, a Ray instance started for the batch (the command's default);
- one node: a cluster of one `ray start --head` with all the cores, joined by address;
- two nodes: a head and a second node, half the cores each, one worker on each.
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

from streamstyle.apps.batch import batch_items, run_batch
from streamstyle.apps.config import PipelineConfig, pipeline_config
from streamstyle.apps.file_job import stylize_file
from tests.cluster import ENV, RayCluster

CLIP = Path("samples/clips/city_2s.mpg")


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
    ways: dict[str, tuple[Callable, RayCluster | None]] = {
        "file (one process)": (one_process, None),
        "batch, embedded Ray": (on_ray(None, None), None),
        "batch, one node": (on_ray(one_node.address, None), one_node),
        "batch, two nodes": (on_ray(two_nodes.address, 2), two_nodes),
    }
    fps: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.rounds):
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
    baseline = statistics.median(fps["file (one process)"])
    print(f"{args.copies} x {CLIP.name}, --max-size {args.max_size}, {cores} cores, medians of {args.rounds} rounds")
    print(f"{'way':24} {'fps':>6} {'x file':>7}")
    for name, values in fps.items():
        median = statistics.median(values)
        print(f"{name:24} {median:6.2f} {median / baseline:7.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
