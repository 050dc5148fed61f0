"""`run_batch`: many video files, each one a file job (streamstyle.apps.file_job), spread over a Ray cluster
(streamstyle.apps.cluster): each worker stylizes file after file with the network it loaded once. Outputs are
written whole under a temporary name and renamed into place, so a rerun after any interruption skips every file
already done."""

from __future__ import annotations

import dataclasses
import glob
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from streamstyle.apps import cluster
from streamstyle.apps.config import PipelineConfig
from streamstyle.apps.file_job import estimate_frames, stylize_file
from streamstyle.core.errors import InputError, OutputError, StreamstyleError
from streamstyle.core.files import JSON_FILE, claim_output, files_in, partials_of, write_json
from streamstyle.io.media import VIDEO_FILE, open_video

MANIFEST_NAME = "streamstyle-batch.json"
# What a folder given as an input contributes: the files of these kinds in it (not its subfolders).
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".ts", ".mts", ".mxf", ".flv", ".mpg")


@dataclass(frozen=True)
class BatchItem:
    input: Path
    output: Path


@dataclass
class ItemResult:
    """What became of one input: done, skipped (its output was there already) or failed (and why)."""

    input: str
    output: str
    status: str
    frames: int = 0
    seconds: float = 0.0
    node: str = ""
    error: str | None = None
    damage: str | None = None


@dataclass
class BatchReport:
    results: list[ItemResult]
    seconds: float
    workers: int
    nodes: int
    manifest: Path
    address: str

    def count(self, status: str) -> int:
        return sum(result.status == status for result in self.results)

    @property
    def frames(self) -> int:
        return sum(result.frames for result in self.results if result.status == "done")

    def per_node(self) -> dict[str, tuple[int, int, float]]:
        """node → (files, frames, seconds of work) of the files done there."""
        return cluster.per_node(result for result in self.results if result.status == "done")


def batch_items(inputs: Sequence[str], out_dir: Path, suffix: str = ".mp4") -> list[BatchItem]:
    """Each input (a file, a folder of videos, or a glob) with its output in `out_dir`, named after it with
    `suffix` (which says the container). Refused before any work: an input that matches nothing, and two inputs
    whose outputs would be one file."""
    if not out_dir.is_dir():
        raise OutputError(f"output folder does not exist: {out_dir}")
    found: list[Path] = []
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            found += files_in(path, VIDEO_SUFFIXES, "videos")
        elif path.exists():
            found.append(path)
        else:
            matches = sorted(Path(match) for match in glob.glob(given, recursive=True) if Path(match).is_file())
            if not matches:
                raise InputError(f"input not found: {given}")
            found += matches
    items: dict[str, BatchItem] = {}
    for path in dict.fromkeys(p.resolve() for p in found):
        name = path.stem + suffix
        if name in items:
            raise InputError(f"{items[name].input} and {path} would both be written to {out_dir / name}; "
                             "batch them apart")  # fmt: skip
        items[name] = BatchItem(path, out_dir / name)
    return list(items.values())


def run_batch(items: Sequence[BatchItem], config: PipelineConfig, *, address: str | None = None,
              workers: int | None = None, on_progress: cluster.Progress | None = None,
              say: Callable[[str], None] = lambda _: None) -> BatchReport:  # fmt: skip
    """Stylize every item with `config`'s style, sizes, encoder and temporal settings, on the Ray cluster at
    `address` ("auto", HOST:PORT; None: RAY_ADDRESS if set, else a Ray instance on this machine for this call).
    Outputs already there are skipped unless the config says overwrite; a file that fails is reported and the
    others go on. on_progress(frames done, frames total) comes about twice a second from across the cluster. The
    manifest (MANIFEST_NAME beside the outputs) says what became of each file."""
    out_dir = items[0].output.parent if items else Path(".")
    manifest = claim_output(out_dir / MANIFEST_NAME, [item.input for item in items], JSON_FILE, overwrite=True)
    start = time.perf_counter()
    results: dict[BatchItem, ItemResult] = {}
    todo: list[tuple[BatchItem, int]] = []
    for item in items:
        try:
            claim_output(item.output, [item.input], VIDEO_FILE, config.output.overwrite)
            frames = _probe(item)
        except StreamstyleError as error:
            results[item] = ItemResult(str(item.input), str(item.output), "failed", error=str(error))
            continue
        if item.output.exists() and not config.output.overwrite:
            results[item] = ItemResult(str(item.input), str(item.output), "skipped")
        else:
            todo.append((item, frames))
    try:
        with cluster.connected(address) as cluster_address:
            slots = cluster.worker_slots(workers)
            say(f"Ray cluster at {cluster_address}: {cluster.node_count()} node(s), {len(slots)} worker(s); "
                f"{len(todo)} file(s) to do, {len(items) - len(todo)} not")  # fmt: skip
            done = cluster.dispatch(_stylize_item, [(item, str(item.input)) for item, _ in todo], config, slots,
                                    on_progress, sum(frames for _, frames in todo) or None)  # fmt: skip
        for item, result in done.items():
            if isinstance(result, cluster.Lost):
                result = ItemResult(str(item.input), str(item.output), "failed", error=result.reason)
            results[item] = result
    finally:
        for item, _ in todo:
            for partial in partials_of(item.output):  # left by a worker killed mid-file, or by this interruption
                partial.unlink(missing_ok=True)
    nodes = len({result.node for result in results.values() if result.node})
    report = BatchReport([results[item] for item in items], time.perf_counter() - start, len(slots), nodes,
                         manifest, cluster_address)  # fmt: skip
    write_json(manifest, _manifest(report, config))
    return report


def _probe(item: BatchItem) -> int:
    with open_video(item.input) as container:
        return estimate_frames(container) or 0


def _stylize_item(context: cluster.WorkerContext, item: BatchItem, on_progress: cluster.Progress) -> ItemResult:
    """One file, on a worker: a file job, or what stopped it."""
    config, key = context.config, str(item.input)
    try:
        report = stylize_file(item.input, item.output, context.stylizer, batch_size=config.runtime.batch_size,
                              sizes=config.size, encoder=config.encoder, temporal=config.temporal,
                              on_progress=on_progress, audio=config.output.audio, overwrite=config.output.overwrite,
                              strict=config.source.strict)  # fmt: skip
    except StreamstyleError as error:
        return ItemResult(key, str(item.output), "failed", node=context.node, error=str(error))
    return ItemResult(key, str(item.output), "done", report.frames, report.seconds, context.node,
                      damage=report.damage)  # fmt: skip


def _manifest(report: BatchReport, config: PipelineConfig) -> dict:
    return {
        "cluster": {"address": report.address, "nodes": report.nodes, "workers": report.workers},
        "settings": dataclasses.asdict(config),
        "seconds": round(report.seconds, 2),
        "frames": report.frames,
        "fps": round(report.frames / report.seconds, 2) if report.seconds else 0.0,
        "counts": {status: report.count(status) for status in ("done", "skipped", "failed")},
        "per_node": {node: {"files": files, "frames": frames, "seconds": round(seconds, 2)}
                     for node, (files, frames, seconds) in report.per_node().items()},
        "files": [dataclasses.asdict(result) for result in report.results],
    }

