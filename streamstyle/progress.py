"""Progress bar and end-of-run summary for the terminal."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .stylizer import Stylizer
from .video import FileReport


@contextlib.contextmanager
def file_progress(quiet: bool, description: str) -> Iterator[Callable[[int, int | None], None] | None]:
    """A callback (frames done, frames total) that drives a rich progress bar with fps and ETA."""
    if quiet:
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[fps]:>5.1f} fps"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(description, total=None, fps=0.0)

        def update(done: int, total: int | None) -> None:
            elapsed = progress.tasks[task].elapsed or 0.0
            progress.update(task, completed=done, total=total, fps=done / elapsed if elapsed else 0.0)

        yield update


def print_file_summary(console: Console, report: FileReport, stylizer: Stylizer) -> None:
    busy = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in report.stage_seconds.items())
    console.print(
        f"{report.output}: {report.frames} frames in {report.seconds:.1f} s ({report.fps:.1f} fps); busy: {busy}"
    )
    console.print(f"[dim]{stylizer.model.name}, {stylizer.style.label}, {stylizer.runtime.describe()}[/dim]")
    for note in report.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
