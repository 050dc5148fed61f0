"""The commands that measure, learn and export: `bench`, `train`, `eval-temporal` and `export`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from streamstyle.apps.config import RuntimeConfig, StyleConfig, parse_size
from streamstyle.cli.options import backend_option, device_options, options_given
from streamstyle.cli.progress import console, loss_progress
from streamstyle.core.errors import ConfigError, InputError
from streamstyle.core.files import JSON_FILE, claim_output, write_json
from streamstyle.core.settings import TemporalSettings, TrainSettings


@click.command()
@click.option("--sizes", default="360p,720p,1080p", show_default=True, help="Comma-separated: 360p, 720p, 1080p.")
@click.option("--style", "-s", default="7", show_default=True, help="Style to run (decides the model).")
@click.option("--frames", type=click.IntRange(4, 1000), default=24, show_default=True,
              help="Frames of the sample clip per end-to-end run.")
@click.option("--runs", type=click.IntRange(1, 20), default=2, show_default=True,
              help="End-to-end runs per size (the median is reported).")
@click.option("--temporal", type=click.Choice(["flow", "ema", "off"]), default="flow", show_default=True)
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), default=Path("bench.json"),
              show_default=True, help="Where to write the results.")
@backend_option("all", also=" all: every engine and precision that runs here, one after another.")
@device_options
def bench(sizes: str, style: str, frames: int, runs: int, temporal: str, json_path: Path, device: str | None,
          precision: str | None, compile_model: bool | None, backend: str | None) -> None:  # fmt: skip
    """Measure model-only and end-to-end (decode, model, smoothing, encode) speed on the sample clip at 360p, 720p
    and 1080p; print a table and write JSON."""
    from streamstyle.offline.bench import SIZES, run_bench
    from streamstyle.processing.runtime import engines_here

    names = [name.strip() for name in sizes.split(",") if name.strip()]
    unknown = [name for name in names if name not in SIZES]
    if unknown or not names:
        raise click.BadParameter(f"unknown size {', '.join(unknown)}; use {', '.join(SIZES)}", param_hint="--sizes")
    claim_output(json_path, kind=JSON_FILE)
    if backend == "all":  # every precision too; torch.compile is torch's alone
        runtimes = [RuntimeConfig(**options_given(device=device, compile=compile_model), backend=engine,
                                  precision=engine_precision)
                    for engine, engine_precision in engines_here(device or "auto")
                    if engine == "torch" or not compile_model]  # fmt: skip
    else:
        runtimes = [RuntimeConfig(**options_given(device=device, precision=precision, compile=compile_model,
                                                  backend=backend))]  # fmt: skip
    results = []
    for runtime in runtimes:
        stylizer = StyleConfig(style=style).stylizer(runtime)
        results.append(_bench_one(stylizer, names, frames, runs, temporal, run_bench))
    write_json(json_path, results[0] if len(results) == 1 else {"engines": results})
    console.print(f"wrote {json_path}")


def _bench_one(stylizer, names: list[str], frames: int, runs: int, temporal: str, run_bench) -> dict:
    """One engine's table, printed, and its results for the JSON file."""
    def on_row(row) -> None:
        console.print(f"{row.size}: model {row.model_ms:.0f} ms/frame, end to end {row.end_to_end_fps:.2f} fps")

    rows = run_bench(stylizer, names, frames, runs, temporal=TemporalSettings(temporal), on_row=on_row)
    # Titled after the run, which is when an engine's precisions are known.
    table = Table(title=f"{stylizer.model.name}, {stylizer.style_label}, {stylizer.describe()}, --temporal {temporal}")
    for column in ("size", "model ms/frame", "model fps", "end-to-end fps", "end-to-end / model"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(f"{row.size} ({row.width}x{row.height})", f"{row.model_ms:.1f}", f"{row.model_fps:.2f}",
                      f"{row.end_to_end_fps:.2f}", f"{row.share_of_model:.2f}")  # fmt: skip
    Console().print(table)
    return {
        "model": stylizer.model.name, "style": stylizer.style_label, "runtime": stylizer.describe(),
        "temporal": temporal, "rows": [dataclasses.asdict(row) | {"end_to_end_over_model": round(row.share_of_model, 3)}
                                       for row in rows],
    }  # fmt: skip


@click.command()
@click.option("--style", "-s", "style_path", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The painting to learn.")
@click.option("--content", type=click.Path(path_type=Path), required=True,
              help="A folder of photos, or a video (frames spread over it), to learn on.")
@click.option("--out", "output", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="The model file (.pt): a checkpoint that --resume continues.")
@click.option("--steps", type=click.IntRange(min=1), default=TrainSettings.steps, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=TrainSettings.batch_size, show_default=True)
@click.option("--image-size", type=click.IntRange(min=32), default=TrainSettings.image_size, show_default=True,
              help="Side of the square training crops.")
@click.option("--lr", "learning_rate", type=click.FloatRange(min=0), default=TrainSettings.learning_rate,
              show_default=True)
@click.option("--content-weight", type=click.FloatRange(min=0), default=TrainSettings.content_weight, show_default=True)
@click.option("--style-weight", type=click.FloatRange(min=0), default=TrainSettings.style_weight, show_default=True)
@click.option("--tv-weight", type=click.FloatRange(min=0), default=TrainSettings.tv_weight, show_default=True)
@click.option("--temporal-weight", type=click.FloatRange(min=0), default=TrainSettings.temporal_weight,
              show_default=True, help="Weight of the temporal loss on pairs of neighbouring frames of a --content "
              "video, for steadier video output (a batch then holds --batch-size pairs); 1e5-1e6 to be felt.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=TrainSettings.checkpoint_every,
              show_default=True, help="Save the model (and a sample picture) every N steps.")
@click.option("--sample", type=click.Path(path_type=Path, dir_okay=False),
              help="A photo to stylize at every checkpoint, saved beside the model (NAME.stepN.png).")
@click.option("--resume", is_flag=True, help="Continue the training saved in --out.")
@device_options
def train(style_path: Path, content: Path, output: Path, steps: int, batch_size: int, image_size: int,
          learning_rate: float, content_weight: float, style_weight: float, tv_weight: float,
          temporal_weight: float, checkpoint_every: int, sample: Path | None, resume: bool, device: str | None,
          precision: str | None, compile_model: bool | None) -> None:  # fmt: skip
    """Train a fixed-style network (Johnson et al.) for one painting, with VGG19 perceptual losses."""
    from streamstyle.io.images import fit_within, read_image
    from streamstyle.models.checkpoints import CHECKPOINT_FILE
    from streamstyle.offline.train import train as run_training
    from streamstyle.processing.stylizer import load_vgg19

    settings = TrainSettings(steps, batch_size, image_size, learning_rate, content_weight, style_weight, tv_weight,
                             checkpoint_every, temporal_weight=temporal_weight)  # fmt: skip
    if not style_path.is_file():
        raise InputError(f"style image not found: {style_path}")
    if compile_model:
        raise ConfigError("--compile speeds up running a model, not training it; leave it out here")
    claim_output(output, [style_path, content, *([sample] if sample else [])], CHECKPOINT_FILE)
    runtime = RuntimeConfig(**options_given(device=device, precision=precision), backend="torch").resolve()
    picture = fit_within(read_image(sample), 512) if sample else None
    with loss_progress() as progress:
        task = progress.add_task(f"training {output.name}", total=steps, loss="-")
        run_training(style_path, content, output, load_vgg19(runtime), runtime, settings, resume, picture,
                     lambda step, losses: progress.update(task, completed=step, loss=str(losses)))  # fmt: skip
    console.print(f"wrote {output}")


@click.command("eval-temporal")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--reference", type=click.Path(path_type=Path), help="The per-frame stylization, for faithfulness.")
def eval_temporal(source: Path, output: Path, reference: Path | None) -> None:
    """Flicker of OUTPUT, a stylization of SOURCE: the warping error of Lai et al. 2018 (mean squared RGB
    difference on [0,1] between consecutive output frames along the input's optical flow, occlusions masked).
    With --reference, also the mean difference from the per-frame stylization."""
    from streamstyle.offline.evaluation import evaluate_files

    report = evaluate_files(source, output, reference)
    out = Console()
    out.print(f"warping error  {report.warping_error:.5f}  ({report.pairs} frame pairs, {report.cuts} cuts skipped)")
    if report.faithfulness is not None:
        out.print(f"faithfulness   {report.faithfulness:.4f}  (mean |output - reference| on [0,1])")


def _size_option(_context: click.Context, _option: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not WIDTHxHEIGHT, e.g. 640x360") from None


@click.command("export")
@click.argument("model")
@click.option("--out", "-o", "folder", type=click.Path(path_type=Path), required=True,
              help="The folder to write the graphs and manifest.json into (made if missing).")  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(["onnx", "openvino"]), default="onnx", show_default=True,
              help="ONNX graphs (opset 18), or OpenVINO IR (.xml and .bin).")  # fmt: skip
@click.option("--size", callback=_size_option,
              help="WIDTHxHEIGHT to fix the picture size (sides multiples of 4); default: any size at run time.")
@click.option("--batch", type=click.IntRange(min=1), help="Fix the batch size; default: any at run time.")
@click.option("--overwrite", is_flag=True, help="Replace files in the folder that are not of the kind written.")
def export(model: str, folder: Path, fmt: str, size: tuple[int, int] | None, batch: int | None,
           overwrite: bool) -> None:  # fmt: skip
    """Export MODEL (magenta, dumoulin26, or a .pt from `streamstyle train`) for other engines: its networks with
    the style as an input (magenta: predictor and transformer), and a manifest of their inputs, outputs, value
    ranges, pre- and post-processing, credits and licences."""
    from streamstyle.offline.export import export_model

    manifest = export_model(model, folder, fmt, batch, size, overwrite)
    console.print(f"wrote {', '.join(sorted(p.name for p in folder.iterdir()))} in {folder}  (see {manifest.name})")
