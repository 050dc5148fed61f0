"""`run_batch`: many video files, each one a file job (streamstyle.apps.file_job), spread over a Ray cluster.

Ray does the scheduling, the transport of results and the fault tolerance: each worker is an actor that loads the
style network once and keeps it for every file it is given; an actor whose process dies is restarted (on another
node if its own is gone) and its file is tried again. Inputs and outputs are paths every node can read and write
(one machine, or storage the cluster shares); the weights come from each node's own installed packages and cache.
Outputs are written whole under a temporary name and renamed into place, so a rerun after any interruption skips
every file already done."""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import ray
from ray.exceptions import RayError

from streamstyle.apps.config import PipelineConfig
from streamstyle.apps.file_job import estimate_frames, stylize_file
from streamstyle.core.errors import ClusterError, InputError, OutputError, StreamstyleError
from streamstyle.core.files import JSON_FILE, claim_output, partials_of, write_json
from streamstyle.io.media import VIDEO_FILE, open_video

MANIFEST_NAME = "streamstyle-batch.json"
# What a folder given as an input contributes: the files of these kinds in it (not its subfolders).
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".ts", ".mts", ".mxf", ".flv", ".mpg")
# A worker's process that dies mid-file (killed, out of memory, its node gone) is restarted and the file retried.
TASK_RETRIES = 3
_POLL_SECONDS = 0.25
_PROGRESS_EVERY_S = 0.5
_KILL_WAIT_S = 30.0
_CONNECT_S = 5.0


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
        table: dict[str, list] = defaultdict(lambda: [0, 0, 0.0])
        for result in self.results:
            if result.status == "done":
                row = table[result.node]
                row[0], row[1], row[2] = row[0] + 1, row[1] + result.frames, row[2] + result.seconds
        return {node: (files, frames, seconds) for node, (files, frames, seconds) in sorted(table.items())}


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
            videos = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            if not videos:
                raise InputError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) in folder {path}")
            found += videos
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
              workers: int | None = None, on_progress: Callable[[int, int | None], None] | None = None,
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
        with _cluster(address) as cluster_address:
            slots = _worker_slots(workers)
            say(f"Ray cluster at {cluster_address}: {len(ray.nodes())} node(s), {len(slots)} worker(s); "
                f"{len(todo)} file(s) to do, {len(items) - len(todo)} not")  # fmt: skip
            results |= _dispatch(todo, config, slots, on_progress)
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


@contextlib.contextmanager
def _cluster(address: str | None) -> Iterator[str]:
    """Connected to the cluster at `address`, or to a Ray instance started here for the block (no dashboard, no
    usage report), and disconnected after: the workers this driver made go with it."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        _check_reachable(address)
    try:
        if address is None:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            # Ray runs its workers at nice 15 by default: on a machine doing other work too, the batch would
            # barely move. Here the batch is the work.
            os.environ.setdefault("RAY_worker_niceness", "0")
            # Ray's servers listen on every interface; its token authentication (a token made once in ~/.ray)
            # keeps them to this machine's user. "local": a new instance even where `ray start` runs one.
            os.environ.setdefault("RAY_AUTH_MODE", "token")
            ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        else:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    except (ConnectionError, RayError, ValueError) as error:
        raise ClusterError(f"cannot join the Ray cluster at {address or 'this machine'}: {error}") from None
    try:
        yield address or f"this machine ({ray.get_runtime_context().gcs_address}, started for this batch)"
    finally:
        ray.shutdown()


def _check_reachable(address: str) -> None:
    """Refuse at once a HOST:PORT that nothing answers on: Ray itself would retry for minutes."""
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        return  # "auto", or a scheme Ray resolves itself
    try:
        socket.create_connection((host, int(port)), timeout=_CONNECT_S).close()
    except OSError as error:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {error.strerror or error}") from None


@dataclass(frozen=True)
class _Slot:
    cpus: float
    gpus: float


def _worker_slots(workers: int | None) -> list[_Slot]:
    """One worker per GPU where the cluster has GPUs, else one per node with all its cores (a network's threads
    share a node's cores better than separate processes do); `workers` splits the cluster's cores evenly, a
    worker never asking for more than the largest node has."""
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 1.0), int(resources.get("GPU", 0))
    nodes = [node["Resources"].get("CPU", 1.0) for node in ray.nodes() if node["Alive"]]
    if workers is None and gpus:
        return [_Slot(max(1.0, cpus // gpus), 1.0)] * gpus
    if workers is None:
        return [_Slot(node_cpus, 0.0) for node_cpus in nodes]
    return [_Slot(max(1.0, min(max(nodes), cpus // workers)), 0.0)] * workers


def _dispatch(todo: list[tuple[BatchItem, int]], config: PipelineConfig, slots: list[_Slot],
              on_progress: Callable[[int, int | None], None] | None) -> dict[BatchItem, ItemResult]:  # fmt: skip
    """Each file to the next free worker until none is left; a file whose worker died more than TASK_RETRIES
    times is failed, the others go on."""
    counter = FrameCounter.remote()  # type: ignore[attr-defined]
    # (ray.remote classes are typed as the plain class: hence the ignores)
    idle = [StyleWorker.options(num_cpus=slot.cpus, num_gpus=slot.gpus, max_restarts=-1,  # type: ignore[attr-defined]
                                max_task_retries=TASK_RETRIES).remote(config) for slot in slots]  # fmt: skip
    waiting = list(todo)
    running: dict = {}  # ObjectRef → (worker, item)
    results: dict[BatchItem, ItemResult] = {}
    total = sum(frames for _, frames in todo) or None
    try:
        while waiting or running:
            while waiting and idle:
                item, _ = waiting.pop(0)
                worker = idle.pop()
                running[worker.stylize.remote(item, counter)] = (worker, item)
            finished, _ = ray.wait(list(running), num_returns=1, timeout=_POLL_SECONDS)
            for ref in finished:
                worker, item = running.pop(ref)
                idle.append(worker)
                try:
                    results[item] = ray.get(ref)
                except RayError as error:
                    lost = f"its worker was lost {TASK_RETRIES + 1} times: {error}"
                    results[item] = ItemResult(str(item.input), str(item.output), "failed", error=lost)
            if on_progress:
                on_progress(ray.get(counter.total.remote()), total)
    finally:
        for worker in [*idle, *(worker for worker, _ in running.values())]:
            ray.kill(worker, no_restart=True)
        # Killing is asynchronous: a file still being written is left only once its worker is gone, and only
        # then may its temporary file be removed.
        ray.wait(list(running), num_returns=len(running), timeout=_KILL_WAIT_S)
    return results


@ray.remote(num_cpus=0)
class FrameCounter:
    """Frames done per file, reported by the workers: the progress of the whole cluster. A file tried again after
    its worker died counts from its new start."""

    def __init__(self) -> None:
        self.frames: dict[str, int] = {}

    def report(self, key: str, frames: int) -> None:
        self.frames[key] = frames

    def total(self) -> int:
        return sum(self.frames.values())


@ray.remote
class StyleWorker:
    """Loads the style network once, then stylizes file after file with it."""

    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        self.stylizer = config.style.stylizer(config.runtime)
        self.node = f"{socket.gethostname()} {ray.get_runtime_context().get_node_id()[:8]}"

    def stylize(self, item: BatchItem, counter) -> ItemResult:
        """One file, its progress told to `counter` (a FrameCounter; given with each file, not kept: an actor
        handle among a worker's constructor arguments would keep Ray from restarting it reliably)."""
        config, key = self.config, str(item.input)
        reported = 0.0

        def on_progress(done: int, _total: int | None) -> None:
            nonlocal reported
            if time.monotonic() - reported >= _PROGRESS_EVERY_S:
                reported = time.monotonic()
                counter.report.remote(key, done)

        try:
            report = stylize_file(item.input, item.output, self.stylizer, batch_size=config.runtime.batch_size,
                                  sizes=config.size, encoder=config.encoder, temporal=config.temporal,
                                  on_progress=on_progress, audio=config.output.audio, overwrite=config.output.overwrite,
                                  strict=config.source.strict)  # fmt: skip
        except StreamstyleError as error:
            counter.report.remote(key, 0)
            return ItemResult(key, str(item.output), "failed", node=self.node, error=str(error))
        counter.report.remote(key, report.frames)
        return ItemResult(key, str(item.output), "done", report.frames, report.seconds, self.node,
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

