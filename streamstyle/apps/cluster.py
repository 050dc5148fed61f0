"""Ray, for the jobs that spread over a cluster (apps.batch: many files; apps.segments: one long file in pieces):
joining a cluster or starting one on this machine, the workers' share of it, the style workers, and the loop
that hands them tasks.

Ray does the scheduling, the transport of results and the fault tolerance: each worker is an actor that loads the
style network once and keeps it for every task it is given; an actor whose process dies is restarted (on another
node if its own is gone) and its task is tried again. Paths in tasks are paths every node can read and write (one
machine, or storage the cluster shares); the weights come from each node's own installed packages and cache."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

# Ray's servers listen on every interface: token authentication (the token made once in ~/.ray) keeps them to this
# machine's user, unless the environment says otherwise. Ray reads the mode when it is imported.
os.environ.setdefault("RAY_AUTH_MODE", "token")

import ray
from ray.exceptions import RayError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from streamstyle.apps.config import PipelineConfig
from streamstyle.core.errors import ClusterError, StreamstyleError
from streamstyle.processing.stylizer import Stylizer

# A worker's process that dies mid-task (killed, out of memory, its node gone) is restarted and the task retried.
TASK_RETRIES = 3
_POLL_SECONDS = 0.25
_PROGRESS_EVERY_S = 0.5
_KILL_WAIT_S = 30.0
_NODES_EVERY_S = 2.0
_CONNECT_S = 5.0

Progress = Callable[[int, int | None], None]


@contextlib.contextmanager
def connected(address: str | None) -> Iterator[str]:
    """Connected to the cluster at `address` ("auto", HOST:PORT; None: RAY_ADDRESS if set, else a Ray instance
    started here for the block, with no dashboard and no usage report), and disconnected after: the workers this
    driver made go with it. Yields the address in words."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        _check_reachable(address)
    try:
        if address is None:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            # Ray runs its workers at nice 15 by default: on a machine doing other work too, the job would
            # barely move. Here the job is the work.
            os.environ.setdefault("RAY_worker_niceness", "0")
            # "local": a new instance even where `ray start` runs one.
            ray.init(address="local", include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        else:
            ray.init(address=address, log_to_driver=False, logging_level=logging.ERROR)
    except (ConnectionError, RayError, ValueError) as error:
        raise ClusterError(f"cannot join the Ray cluster at {address or 'this machine'}: {error}") from None
    try:
        yield address or f"this machine ({ray.get_runtime_context().gcs_address}, started for this job)"
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


def node_count() -> int:
    return sum(node["Alive"] for node in ray.nodes())


@dataclass(frozen=True)
class Slot:
    """What one worker asks of the cluster."""

    cpus: float
    gpus: float


def worker_slots(workers: int | None) -> list[Slot]:
    """One worker per GPU where the cluster has GPUs, else one per node with all its cores (a network's threads
    share a node's cores better than separate processes do); `workers` splits the cluster's cores evenly, a
    worker never asking for more than the largest node has."""
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 1.0), int(resources.get("GPU", 0))
    nodes = [node["Resources"].get("CPU", 1.0) for node in ray.nodes() if node["Alive"]]
    if workers is None and gpus:
        return [Slot(max(1.0, cpus // gpus), 1.0)] * gpus
    if workers is None:
        return [Slot(node_cpus, 0.0) for node_cpus in nodes]
    return [Slot(max(1.0, min(max(nodes), cpus // workers)), 0.0)] * workers


class Done(Protocol):
    node: str
    frames: int
    seconds: float


def per_node(results: Iterable[Done]) -> dict[str, tuple[int, int, float]]:
    """node → (tasks, frames, seconds of work) of the tasks done there."""
    table: dict[str, list] = defaultdict(lambda: [0, 0, 0.0])
    for result in results:
        row = table[result.node]
        row[0], row[1], row[2] = row[0] + 1, row[1] + result.frames, row[2] + result.seconds
    return {node: (tasks, frames, seconds) for node, (tasks, frames, seconds) in sorted(table.items())}


@dataclass(frozen=True)
class WorkerContext:
    """What a task runs with on its worker: the network, loaded once, the job's settings, and where it runs."""

    stylizer: Stylizer
    config: PipelineConfig
    node: str


class Counted(Protocol):
    frames: int


TaskT = TypeVar("TaskT", bound=Hashable)
ResultT = TypeVar("ResultT", bound=Counted)
# A task's work, run on a worker: (context, task, progress) → its result. A module-level function, which Ray
# sends by name.
Job = Callable[[WorkerContext, TaskT, Progress], ResultT]


@ray.remote(num_cpus=0)
class FrameCounter:
    """Frames done per task, reported by the workers: the progress of the whole cluster. A task tried again after
    its worker died counts from its new start."""

    def __init__(self) -> None:
        self.frames: dict[str, int] = {}

    def report(self, key: str, frames: int) -> None:
        self.frames[key] = frames

    def total(self) -> int:
        return sum(self.frames.values())


@ray.remote
class StyleWorker:
    """Loads the style network once, then runs task after task with it."""

    def __init__(self, config: PipelineConfig) -> None:
        node = f"{socket.gethostname()} {ray.get_runtime_context().get_node_id()[:8]}"
        self.context: WorkerContext | StreamstyleError
        try:
            self.context = WorkerContext(config.style.stylizer(config.runtime), config, node)
        except StreamstyleError as error:
            # Raised by each task instead: Ray gives the driver a task's exception as it was raised, but a
            # constructor's only as the actor's death, in words.
            self.context = error

    def run(self, job: Job, task: Any, key: str, counter) -> Any:
        """One task, its progress told to `counter` (a FrameCounter; given with each task, not kept: an actor
        handle among a worker's constructor arguments would keep Ray from restarting it reliably)."""
        if isinstance(self.context, StreamstyleError):
            raise self.context
        reported = 0.0

        def on_progress(done: int, _total: int | None) -> None:
            nonlocal reported
            if time.monotonic() - reported >= _PROGRESS_EVERY_S:
                reported = time.monotonic()
                counter.report.remote(key, done)

        result = job(self.context, task, on_progress)
        counter.report.remote(key, result.frames)
        return result

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()


@dataclass(frozen=True)
class Lost:
    """A task whose worker died more than TASK_RETRIES times."""

    reason: str


def dispatch(job: Job[TaskT, ResultT], tasks: Sequence[tuple[TaskT, str]], config: PipelineConfig,
             slots: list[Slot], on_progress: Progress | None, total: int | None
             ) -> dict[TaskT, ResultT | Lost]:  # fmt: skip
    """Each task (with its key for the progress) to the next free worker until none is left, each running `job`.
    A worker process that dies is restarted by Ray and its task retried there; a task whose worker cannot be
    reached (its node left the cluster) goes to another worker; a task lost more than TASK_RETRIES times is
    Lost, the others go on. A StreamstyleError a task raised is raised here. However this ends, the workers are
    gone when it returns: nothing of theirs is still writing."""
    # The counter lives with the driver: on another node, that node leaving would take the progress with it.
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    counter = FrameCounter.options(scheduling_strategy=here).remote()  # type: ignore[attr-defined]
    workers = [_Worker(StyleWorker.options(num_cpus=slot.cpus, num_gpus=slot.gpus,  # type: ignore[attr-defined]
                                           max_restarts=-1, max_task_retries=TASK_RETRIES).remote(config))
               for slot in slots]  # fmt: skip
    idle = list(workers)
    waiting = list(tasks)
    losses: dict[TaskT, int] = defaultdict(int)
    running: dict = {}  # ObjectRef → (_Worker, task, key): a task at work
    pinged: dict = {}  # ObjectRef → _Worker: a worker whose task was lost, asked whether it is still there
    results: dict[TaskT, ResultT | Lost] = {}
    checked = time.monotonic()
    try:
        while waiting or running:
            while waiting and idle:
                task, key = waiting.pop(0)
                worker = idle.pop()
                running[worker.handle.run.remote(job, task, key, counter)] = (worker, task, key)
            if not running and not pinged:
                raise ClusterError("every worker of the cluster is gone (their nodes left it)")
            finished, _ = ray.wait([*running, *pinged], num_returns=1, timeout=_POLL_SECONDS)
            for ref in finished:
                if ref in pinged:
                    worker = pinged.pop(ref)
                    try:
                        ray.get(ref)
                        idle.append(worker)
                    except RayError:
                        worker.leave()
                    continue
                worker, task, key = running.pop(ref)
                try:
                    results[task] = ray.get(ref)
                    idle.append(worker)
                except RayTaskError as error:
                    raise (error.cause if isinstance(error.cause, StreamstyleError) else error) from None
                except RayError as error:
                    losses[task] += 1
                    if losses[task] > TASK_RETRIES:
                        # Ray's words for a lost actor run over many lines (its ids, pid, address): the first says why.
                        reason = str(error).strip().splitlines()[0]
                        results[task] = Lost(f"its worker was lost {losses[task]} times: {reason}")
                    else:
                        waiting.insert(0, (task, key))
                    pinged[worker.handle.node_id.remote()] = worker
            if time.monotonic() - checked > _NODES_EVERY_S:
                checked = time.monotonic()
                idle = _without_departed(workers, idle)
            if on_progress:
                on_progress(ray.get(counter.total.remote()), total)
    finally:
        for worker in workers:
            ray.kill(worker.handle, no_restart=True)
        # Killing is asynchronous: a file still being written is left only once its worker is gone, and only
        # then may its temporary file be removed.
        ray.wait(list(running), num_returns=len(running), timeout=_KILL_WAIT_S)
    return results


class _Worker:
    """A StyleWorker's handle, and the node it runs on once it says."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.located = handle.node_id.remote()
        self.node: str | None = None
        self.departed = False

    def leave(self) -> None:
        """Killed so that Ray does not restart it elsewhere: with the cores held by the other workers, the
        restart would wait for ever. Its task, if any, fails and goes to another worker."""
        self.departed = True
        ray.kill(self.handle, no_restart=True)


def _without_departed(workers: list[_Worker], idle: list[_Worker]) -> list[_Worker]:
    """The workers on nodes that left the cluster leave too; returns the idle workers still there."""
    for worker in workers:
        if worker.node is None and not worker.departed and ray.wait([worker.located], timeout=0)[0]:
            try:
                worker.node = ray.get(worker.located)
            except RayError:
                worker.leave()  # gone before it could say where it runs, with its retries: as good as departed
    alive = {node["NodeID"] for node in ray.nodes() if node["Alive"]}
    for worker in workers:
        if worker.node is not None and worker.node not in alive and not worker.departed:
            worker.leave()
    return [worker for worker in idle if not worker.departed]
