"""Writing files so that nothing half-written is ever left where the output should be."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from types import TracebackType


class AtomicFile:
    """A file written under a temporary name beside its final one, unique to this writer (two runs writing the
    same output never share it), and renamed into place only when complete; discarded otherwise. The temporary
    name keeps the suffix, so writers that pick a format by extension (FFmpeg, PIL) still can.

    >>> with AtomicFile("out.png") as partial:   # renamed to out.png when the block ends without an error
    ...     image.save(partial)
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        token = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.partial = self.path.with_name(f".{self.path.stem}.{token}.partial{self.path.suffix}")

    def commit(self) -> None:
        os.replace(self.partial, self.path)

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
