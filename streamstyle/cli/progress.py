"""What the terminal shows: one console on stderr, progress bars, and end-of-run summaries."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from rich.console import Console

if TYPE_CHECKING:
    from rich.progress import Progress

    from streamstyle.apps.batch import BatchReport
    from streamstyle.apps.file_job import FileReport
    from streamstyle.apps.segments import SegmentedReport
    from streamstyle.processing.stylizer import Stylizer

console = Console(stderr=True, highlight=False)


def configure_logging(quiet: bool) -> None:
    """What the libraries have to say goes through Python's logging, which prints warnings and errors, or only
    errors when `quiet`: warnings.warn (PIL's on a painting of over 89 megapixels, torch's) becomes log records.
    FFmpeg's own log stays off (PyAV's default): its errors reach the user as exceptions. The encoders that print
    on stderr themselves keep to errors: x265 by its options (EncoderSettings), SVT-AV1 by its environment."""
    logging.captureWarnings(True)
    # A handler of its own: captured warnings never reach Python's last resort, which would print the rest as this.
    logging.basicConfig(format="%(message)s")
    logging.getLogger().setLevel(logging.ERROR if quiet else logging.WARNING)
    os.environ.setdefault("SVT_LOG", "1")  # errors only


def say(line: str) -> None:
    """One line as it is: file names and URLs may hold rich markup characters."""
    console.print(line, markup=False, soft_wrap=True)


def say_with_time(line: str) -> None:
    say(f"{time.strftime('%H:%M:%S')} {line}")


def warn(line: str) -> None:
    """Something the user must hear even with --quiet."""
    say(f"streamstyle: warning: {line}")


@contextlib.contextmanager
def file_progress(quiet: bool, description: str) -> Iterator[Callable[[int, int | None], None] | None]:
    """A callback (frames done, frames total) that drives a rich progress bar with fps and ETA."""
    if quiet:
        yield None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]:>5.1f} fps"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    # The bar shows once frames flow: an error found before (a bad path, a bad option) stays the only line.
    progress = Progress(*columns, console=Console(stderr=True), transient=False)
    task = progress.add_task(description, total=None, fps=0.0)

    def update(done: int, total: int | None) -> None:
        if not progress.live.is_started:
            progress.start()
        elapsed = progress.tasks[task].elapsed or 0.0
        progress.update(task, completed=done, total=total, fps=done / elapsed if elapsed else 0.0)

    try:
        yield update
    finally:
        progress.stop()


def loss_progress(**options: Any) -> Progress:
    """A progress bar with the current losses, for optimisation and training."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn())  # fmt: skip
    return Progress(*columns, console=console, **options)


def print_file_summary(report: FileReport, stylizer: Stylizer) -> None:
    busy = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in report.stage_seconds.items())
    console.print(
        f"{report.output}: {report.frames} frames in {report.seconds:.1f} s ({report.fps:.1f} fps); busy: {busy}"
    )
    console.print(f"[dim]{stylizer.model.name}, {stylizer.style_label}, {stylizer.describe()}[/dim]")
    for note in report.notes:
        console.print(f"[yellow]note:[/yellow] {note}")


def print_batch_summary(report: BatchReport) -> None:
    console.print(f"{report.count('done')} done, {report.count('skipped')} skipped (already there), "
                  f"{report.count('failed')} failed: {report.frames} frames in {report.seconds:.1f} s "
                  f"({report.frames / report.seconds if report.seconds else 0:.1f} fps) on {report.workers} worker(s)"
                  )  # fmt: skip
    _print_per_node(report.per_node(), "file(s)")
    console.print(f"[dim]manifest: {report.manifest}[/dim]", markup=True)


def print_segmented_summary(report: SegmentedReport) -> None:
    console.print(f"{report.output}: {report.frames} frames in {report.seconds:.1f} s ({report.fps:.1f} fps), "
                  f"{report.segments} segment(s) ({report.reused} from an earlier run) on {report.workers} "
                  f"worker(s); joined in {report.join_seconds:.1f} s", markup=False, soft_wrap=True)  # fmt: skip
    _print_per_node(report.per_node(), "segment(s)")
    for note in report.notes:
        console.print(f"[yellow]note:[/yellow] {note}")


def _print_per_node(table: dict[str, tuple[int, int, float]], unit: str) -> None:
    for node, (tasks, frames, seconds) in table.items():
        console.print(f"  {node}: {tasks} {unit}, {frames} frames, {frames / seconds if seconds else 0:.1f} fps")
