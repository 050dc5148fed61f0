"""Writing files so that nothing half-written is ever left where the output should be, no input is ever written
over, and nothing that is not an output of the same kind is replaced unless the user asks."""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from streamstyle.core.errors import InputError, OutputError


@dataclass(frozen=True)
class FileKind:
    """What an output writes, and how to recognise an existing file of that kind (which may be replaced)."""

    name: str  # "a video file", "an image": said in the error
    recognizes: Callable[[Path], bool]


def _holds_json(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return True


JSON_FILE = FileKind("a JSON file", _holds_json)


def files_in(folder: Path, suffixes: Iterable[str], kind: str) -> list[Path]:
    """The files of a folder (not its subfolders) whose suffix is one of `suffixes`, in name order; none is an
    InputError that names the `kind` of file sought."""
    suffixes = sorted(suffixes)
    found = sorted(path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in suffixes)
    if not found:
        raise InputError(f"no {kind} ({', '.join(suffixes)}) in folder {folder}")
    return found


def write_json(path: str | os.PathLike, data: object) -> None:
    """Replace `path` whole, so a reader never sees half a file."""
    with AtomicFile(path) as partial:
        partial.write_text(json.dumps(data, indent=1))

_SPECIAL = {stat.S_ISFIFO: "a named pipe (FIFO)", stat.S_ISCHR: "a character device",
            stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}  # fmt: skip


def real_output_path(path: str | os.PathLike) -> Path:
    """Where writing `path` lands: through symbolic links (the link stays, its target gets the file) and `..`.
    Outputs are written whole under a temporary name and renamed into place, which a pipe or a device cannot take:
    those are refused rather than replaced by a regular file."""
    real = Path(os.path.realpath(path))
    with contextlib.suppress(FileNotFoundError):
        mode = real.stat().st_mode
        for is_kind, name in _SPECIAL.items():
            if is_kind(mode):
                raise OutputError(f"output {path} is {name}, not a file: streamstyle writes outputs whole, under a "
                                  "temporary name renamed into place; give a file name")  # fmt: skip
    return real


def claim_output(path: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (), kind: FileKind | None = None,
                 overwrite: bool = False) -> Path:  # fmt: skip
    """Check before any work that `path` can take this output, and return where it will be written (see
    `real_output_path`). Refused: a folder, a missing or read-only folder, any of `inputs` (the same file however
    it is named: links, `..`, hard links), and an existing non-empty file that is not of `kind` unless
    `overwrite`."""
    real = real_output_path(path)
    if real.is_dir():
        raise OutputError(f"output {path} is a folder; give a file name")
    for source in inputs:
        with contextlib.suppress(OSError):
            if real.exists() and os.path.samefile(real, source):
                raise OutputError(f"output {path} would overwrite its input {source}")
    if not real.parent.is_dir():
        raise OutputError(f"output folder does not exist: {Path(path).parent}")
    if not os.access(real.parent, os.W_OK):
        raise OutputError(f"output folder is not writable: {Path(path).parent}")
    if kind and not overwrite and real.is_file() and real.stat().st_size and not kind.recognizes(real):
        raise OutputError(f"{path} exists and is not {kind.name}; pass --overwrite to replace it")
    return real


def _identity(path: Path) -> tuple[int, int, int, int] | None:
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns


def partials_of(path: str | os.PathLike) -> list[Path]:
    """The temporary files of every AtomicFile writer of `path` there now: being written, or left by a writer that
    was killed."""
    real = real_output_path(path)
    return sorted(real.parent.glob(f".{glob.escape(real.stem)}.*.partial{glob.escape(real.suffix)}"))


@contextlib.contextmanager
def one_process_at_a_time(lock: Path) -> Iterator[None]:
    """Held by one process of the machine at a time (a POSIX lock on the file `lock`, made where missing): work on
    shared files that processes started together (a cluster's workers) would otherwise do side by side."""
    lock.parent.mkdir(parents=True, exist_ok=True)
    with lock.open("a") as handle:
        fcntl.lockf(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(handle, fcntl.LOCK_UN)


class AtomicFile:
    """A file written under a temporary name beside its final one, unique to this writer (two runs writing the
    same output never share it), and renamed into place only when complete; discarded otherwise. The temporary
    name keeps the suffix, so writers that pick a format by extension (FFmpeg, PIL) still can. A file another run
    completed at the same place meanwhile is not replaced: this one is kept beside it under its own name, and the
    commit says so; unless `replace_concurrent` (a cache, whose writers all write the same bytes).

    >>> with AtomicFile("out.png") as partial:   # renamed to out.png when the block ends without an error
    ...     image.save(partial)
    """

    def __init__(self, path: str | os.PathLike, replace_concurrent: bool = False) -> None:
        self.path = real_output_path(path)
        self.replace_concurrent = replace_concurrent
        self.token = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.partial = self.path.with_name(f".{self.path.stem}.{self.token}.partial{self.path.suffix}")
        self._found = _identity(self.path)

    def commit(self) -> None:
        if self.replace_concurrent or _identity(self.path) == self._found:
            os.replace(self.partial, self.path)
            return
        kept = self.path.with_name(f"{self.path.stem}.{self.token}{self.path.suffix}")
        os.replace(self.partial, kept)
        raise OutputError(f"{self.path} was written by another run while this one worked; this run's result is "
                          f"{kept}")  # fmt: skip

    def discard(self) -> None:
        # Nothing to clean up where nothing could be written (a read-only folder): that is not a second error.
        with contextlib.suppress(OSError):
            self.partial.unlink(missing_ok=True)

    def __enter__(self) -> Path:
        return self.partial

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:  # fmt: skip
        if kind is None:
            try:
                self.commit()
            except BaseException:
                self.discard()
                raise
        else:
            self.discard()
