"""Video jobs over HTTP: files sent to `streamstyle serve` and stylized there as `streamstyle file` stylizes them
(every frame, the audio and the timestamps kept), one at a time per device (each GPU, or the CPU) while the
others wait in order.

Each upload is stored under a name the server makes (never one a client sent) and probed with PyAV before any
work; a finished job's files are deleted after `keep_hours`."""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av

from streamstyle.apps.file_job import stylize_file
from streamstyle.apps.web.choices import style_by_name
from streamstyle.core.errors import ConfigError, InputError, StreamstyleError
from streamstyle.core.settings import SizeSettings
from streamstyle.io.media import open_video
from streamstyle.processing.runtime import Runtime
from streamstyle.processing.stylizer import Stylizer, check_strength

FINISHED = ("done", "failed", "cancelled")  # the states a job ends in; before: queued, running
JOB_ID = re.compile(r"[0-9a-f]{32}")
# The container of the result: an MP4 stays an MP4 (a browser plays it); anything else goes into Matroska, which
# holds every codec the input's other streams may have.
MP4_FORMATS = ("mov", "mp4")
_CLOSE_S = 30.0  # for the running jobs to stop when the server does


class JobCancelled(Exception):
    """Raised from the progress callback to stop a running job; the file job discards its output."""


@dataclass
class VideoJob:
    id: str
    name: str  # the client's file name: shown, and the download's name; never a path
    style: str
    strength: float
    max_size: int | None  # the inference size's longer side; None: streamstyle file's default
    upload: Path
    result: Path
    state: str = "queued"
    device: str | None = None  # where it runs or ran
    frames: int = 0
    total: int | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None
    cancelling: threading.Event = field(default_factory=threading.Event)

    @property
    def download_name(self) -> str:
        stem = re.sub(r"[^\w.-]+", "_", Path(self.name).stem)[:80] or "video"
        return f"{stem}-streamstyle{self.result.suffix}"


def probe_upload(path: Path, name: str) -> str:
    """Check that an upload is a video PyAV can decode, before any work; the result's suffix. The error names the
    client's file, not where the server keeps it."""
    try:
        container = open_video(path)
    except InputError as error:
        if "no video stream" in str(error):
            raise InputError(f"{name} has no video stream (sound only?): send a video") from None
        raise InputError(f"{name} is not a video this server can read") from None
    with container:
        try:
            next(container.decode(video=0))
        except (StopIteration, av.error.FFmpegError):
            raise InputError(f"no picture could be decoded from {name}: is it truncated or damaged?") from None
        kind = container.format.name
    return ".mp4" if any(format_name in kind.split(",") for format_name in MP4_FORMATS) else ".mkv"


class VideoJobs:
    """The server's video jobs: stored in `folder`, run by a worker thread per runtime (one for each device), each
    taking the next waiting job when it is free."""

    def __init__(self, folder: Path, runtimes: list[Runtime], paintings: dict[str, Path], max_upload: int,
                 keep_hours: float) -> None:  # fmt: skip
        self.folder, self.paintings = folder, paintings
        self.max_upload, self.keep_hours = max_upload, keep_hours
        self.jobs: dict[str, VideoJob] = {}
        self._waiting: deque[str] = deque()
        self._changed = threading.Condition()
        self._closed = False
        self._workers = [threading.Thread(target=self._work, args=(runtime,), name=f"streamstyle-jobs-{runtime.device}",
                                          daemon=True) for runtime in runtimes]  # fmt: skip
        for worker in self._workers:
            worker.start()

    def new_upload(self) -> tuple[str, Path]:
        """An id for a new job and where its upload goes."""
        job_id = uuid.uuid4().hex
        return job_id, self.folder / f"{job_id}.upload"

    def add(self, job_id: str, name: str, settings: JobSettings) -> VideoJob:
        """Queue the job whose upload is complete: the style and the file are checked first (an error deletes the
        upload)."""
        upload = self.folder / f"{job_id}.upload"
        try:
            style_by_name(settings.style, self.paintings)
            suffix = probe_upload(upload, name)
        except StreamstyleError:
            upload.unlink(missing_ok=True)
            raise
        job = VideoJob(job_id, name, settings.style, settings.strength, settings.max_size, upload,
                       self.folder / f"{job_id}.result{suffix}")  # fmt: skip
        with self._changed:
            self.jobs[job_id] = job
            self._waiting.append(job_id)
            self._changed.notify_all()
        return job

    def find(self, job_id: str) -> VideoJob | None:
        return self.jobs.get(job_id) if JOB_ID.fullmatch(job_id) else None

    def place(self, job: VideoJob) -> int | None:
        """1 for the next to run, 2 after it...; None for a job that is not waiting."""
        with self._changed:
            return self._waiting.index(job.id) + 1 if job.id in self._waiting else None

    def describe(self, job: VideoJob) -> dict[str, object]:
        result = f"/api/jobs/{job.id}/result" if job.state == "done" else None
        return {"id": job.id, "name": job.name, "state": job.state, "place": self.place(job), "device": job.device,
                "frames": job.frames, "total": job.total, "style": job.style, "strength": job.strength,
                "max_size": job.max_size, "error": job.error, "result": result}  # fmt: skip

    def cancel(self, job: VideoJob) -> None:
        """A waiting job ends at once, a running one at its next progress report; a finished one is deleted."""
        with self._changed:
            if job.id in self._waiting:
                self._waiting.remove(job.id)
                self._finish(job, "cancelled")
            elif job.state == "running":
                job.cancelling.set()
            else:
                self._delete(job)
            self._changed.notify_all()

    def sweep(self, now: float | None = None) -> None:
        """Delete the jobs that finished over `keep_hours` ago."""
        now = time.time() if now is None else now
        with self._changed:
            for job in list(self.jobs.values()):
                if job.finished is not None and now - job.finished > self.keep_hours * 3600:
                    self._delete(job)

    def close(self) -> None:
        with self._changed:
            self._closed = True
            for job in self.jobs.values():
                job.cancelling.set()
            self._changed.notify_all()
        deadline = time.monotonic() + _CLOSE_S
        for worker in self._workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))

    def _delete(self, job: VideoJob) -> None:
        job.upload.unlink(missing_ok=True)
        job.result.unlink(missing_ok=True)
        self.jobs.pop(job.id, None)

    def _finish(self, job: VideoJob, state: str, error: str | None = None) -> None:
        job.state, job.error, job.finished = state, error, time.time()
        job.upload.unlink(missing_ok=True)
        if state != "done":
            job.result.unlink(missing_ok=True)

    def _next(self, runtime: Runtime) -> VideoJob | None:
        with self._changed:
            self._changed.wait_for(lambda: self._waiting or self._closed)
            if self._closed:
                return None
            job = self.jobs[self._waiting.popleft()]
            job.state, job.device = "running", str(runtime.device)
            self._changed.notify_all()
            return job

    def _work(self, runtime: Runtime) -> None:
        while (job := self._next(runtime)) is not None:
            try:
                self._run(job, runtime)
            except JobCancelled:
                state, error = "cancelled", None
            except StreamstyleError as failure:
                state, error = "failed", str(failure).replace(str(job.upload), job.name)
            except Exception as failure:  # a job's failure is the job's, the server goes on
                state, error = "failed", f"{type(failure).__name__}: {failure}"
            else:
                state, error = "done", None
            with self._changed:
                self._finish(job, state, error)
                self._changed.notify_all()

    def _run(self, job: VideoJob, runtime: Runtime) -> None:
        stylizer = Stylizer(style_by_name(job.style, self.paintings), strength=job.strength, runtime=runtime)
        sizes = SizeSettings(max_size=job.max_size) if job.max_size else None
        stylize_file(job.upload, job.result, stylizer, sizes=sizes, on_progress=self._reporter(job))

    def _reporter(self, job: VideoJob) -> Callable[[int, int | None], None]:
        def report(done: int, total: int | None) -> None:
            if job.cancelling.is_set():
                raise JobCancelled
            with self._changed:
                job.frames, job.total = done, total
                self._changed.notify_all()

        return report


@dataclass(frozen=True)
class JobSettings:
    style: str = "7"
    strength: float = 1.0
    max_size: int | None = None

    @classmethod
    def from_form(cls, fields: dict[str, str]) -> JobSettings:
        """The settings of a job's form fields (style, strength, max_size), or a ConfigError naming what is
        wrong."""
        style = fields.get("style", cls.style)
        if not style:
            raise ConfigError("style: a built-in style number or a painting's name")
        try:
            strength = float(fields.get("strength", cls.strength))
        except ValueError:
            raise ConfigError(f"strength {fields['strength']!r}: a number from 0 to 1") from None
        check_strength(strength)
        try:
            max_size = int(fields["max_size"]) if fields.get("max_size") else None
        except ValueError:
            raise ConfigError(f"max_size {fields['max_size']!r}: a whole number of pixels") from None
        SizeSettings(max_size=max_size)  # checks its range
        return cls(style, strength, max_size)
