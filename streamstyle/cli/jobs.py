"""The commands that run a pipeline: `file`, `webcam`, `stream` and `run` build a PipelineConfig and hand it to
the job of its kind (streamstyle.apps.jobs), with the terminal's progress, status and summary."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from streamstyle.apps.config import WINDOW, PipelineConfig, load_pipeline, pipeline_config
from streamstyle.apps.keys import key_help
from streamstyle.cli.options import (
    LIVE_MAX_SIZE_HELP,
    audio_option,
    encoder_options,
    float_range,
    int_range,
    live_source_options,
    options_given,
    overwrite_option,
    parse_bitrate,
    style_options,
    temporal_options,
)
from streamstyle.cli.progress import (
    configure_logging,
    console,
    file_progress,
    print_batch_summary,
    print_file_summary,
    print_segmented_summary,
    say,
    say_with_time,
    warn,
)
from streamstyle.core.errors import BatchError
from streamstyle.core.settings import (
    BATCH_SIZE,
    CRF,
    KEYFRAME_SECONDS,
    MAX_SIZE,
    READ_TIMEOUT,
    SCALE,
    WORKERS,
    TemporalSettings,
)


def file_job_options(command):
    """The options of a file job, shared by `file` and `batch`: the command receives them as `sections` of a
    pipeline config (all but the input and the output, which are the command's own), and `quiet`."""

    @functools.wraps(command)
    def with_sections(*args, style: dict, runtime: dict, batch_size: int | None, max_size: int | None,
                      scale: float | None, output_size: str | None, codec: str | None, preset: str | None,
                      crf: int | None, pix_fmt: str | None, temporal: str | None, smooth: float | None,
                      strict: bool | None, audio: bool | None, overwrite: bool | None, **kwargs):  # fmt: skip
        sections = {
            "source": options_given(strict=strict),
            "style": style,
            "runtime": runtime | options_given(batch_size=batch_size),
            "size": options_given(max_size=max_size, scale=scale, output_size=output_size),
            "encoder": options_given(codec=codec, preset=preset, crf=crf, pix_fmt=pix_fmt),
            "temporal": options_given(mode=temporal, smooth=smooth),
            "output": options_given(audio=audio, overwrite=overwrite),
        }
        return command(*args, sections=sections, **kwargs)

    options = [
        style_options,
        click.option("--batch-size", type=int_range(BATCH_SIZE),
                     help="Frames per model call (default: 8 on CUDA, 1 on CPU)."),
        click.option("--max-size", type=int_range(MAX_SIZE), help="Run the model with the longer side at most this."),
        click.option("--scale", type=float_range(SCALE), help="Run the model at this fraction of the input size."),
        click.option("--output-size", help="WIDTHxHEIGHT of the output video (default: the input's)."),
        encoder_options,
        click.option("--crf", type=int_range(CRF), help="Constant quality (default 18 for x264, 20 x265, 31 vp9)."),
        click.option("--pix-fmt", help="Output pixel format (default yuv420p)."),
        temporal_options("flow", TemporalSettings().smooth),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary (a damaged input is still said)."),
        click.option("--strict", is_flag=True, default=None,
                     help="A damaged input (ended early, corrupt packets) is an error: exit 2, nothing written."),
        audio_option,
        overwrite_option,
    ]  # fmt: skip
    for option in reversed(options):
        with_sections = option(with_sections)
    return with_sections


def cluster_options(command):
    """Where a job on Ray runs: --address and --workers."""
    command = click.option("--workers", type=int_range(WORKERS), help="Workers across the cluster, sharing its "
                           "cores evenly (default: one per node with all its cores, or one per GPU).")(command)
    return click.option("--address", help="The Ray cluster to run on: HOST:PORT, or auto (default: RAY_ADDRESS if "
                        "set, else a Ray instance on this machine, started and stopped by the command).")(command)


def parse_segments(_context: click.Context, _parameter: click.Parameter, value: str | None) -> str | None:
    if value is None or value == "auto" or (value.isdigit() and int(value) >= 1):
        return value
    raise click.BadParameter(f"{value!r} is neither a number of segments (1 or more) nor auto")


@click.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
@file_job_options
@click.option("--segments", metavar="N|auto", callback=parse_segments,
              help="Cut SOURCE at keyframes into N segments (auto: a few per worker), stylize them on a Ray "
              "cluster and join them into OUTPUT.")  # fmt: skip
@cluster_options
def file(source: Path, output: Path, sections: dict[str, dict], quiet: bool, segments: str | None,
         address: str | None, workers: int | None) -> None:  # fmt: skip
    """Stylize the video file SOURCE into OUTPUT, keeping every frame's timing, the audio and the metadata."""
    if segments is None and (address or workers):
        raise click.BadParameter("it goes with --segments (a file job on Ray)",
                                 param_hint="'--address'" if address else "'--workers'")  # fmt: skip
    sections["source"] = {"input": str(source)} | sections["source"]
    sections["output"] = {"targets": [str(output)]} | sections["output"]
    sections["cluster"] = options_given(segments=segments, address=address, workers=workers)
    execute(pipeline_config(sections, "command line"), quiet)


def run_segmented(config: PipelineConfig, quiet: bool) -> None:
    """A file job in segments on Ray, with the terminal's progress and summary."""
    from streamstyle.apps.segments import stylize_segmented

    source, output = Path(config.source.input), Path(config.output.targets[0])
    with file_progress(quiet, f"{source.name} → {output.name}") as on_progress:
        report = stylize_segmented(source, output, config, segments=config.cluster.segment_count,
                                   address=config.cluster.address, workers=config.cluster.workers,
                                   on_progress=on_progress, say=(lambda _: None) if quiet else say)  # fmt: skip
    if not quiet:
        print_segmented_summary(report)
    warn_damage(report.damage)


@click.command()
@click.argument("inputs", nargs=-1, required=True)
@click.option("--out-dir", type=click.Path(path_type=Path), required=True,
              help="Where the outputs go, each named after its input, with the manifest (streamstyle-batch.json).")
@click.option("--suffix", default=".mp4", show_default=True,
              help="The outputs' container: each is named after its input with this suffix.")
@file_job_options
@cluster_options
def batch(inputs: tuple[str, ...], out_dir: Path, suffix: str, sections: dict[str, dict], quiet: bool,
          address: str | None, workers: int | None) -> None:  # fmt: skip
    """Stylize many video files (INPUTS: files, folders of videos, globs) on a Ray cluster, as `file` does each.
    Outputs already in --out-dir are skipped unless --overwrite; a file that fails is reported and the rest go on
    (exit status 2 if any failed)."""
    from streamstyle.apps.batch import batch_items, run_batch

    configure_logging(quiet)
    items = batch_items(inputs, out_dir, suffix)
    # The settings of a file job; each worker gives them its own input and output.
    sections["source"] = {"input": str(items[0].input)} | sections["source"]
    sections["output"] = {"targets": [str(items[0].output)]} | sections["output"]
    config = pipeline_config(sections, "command line", kind="file")
    with file_progress(quiet, f"{len(items)} file(s) → {out_dir}") as on_progress:
        report = run_batch(items, config, address=address, workers=workers, on_progress=on_progress,
                           say=(lambda _: None) if quiet else say)  # fmt: skip
    if not quiet:
        print_batch_summary(report)
    for result in report.results:
        if result.status == "failed":
            warn(f"{result.input}: {result.error}")
        elif result.damage:
            warn(f"{result.input}: {result.damage}")
    if report.count("failed"):
        raise BatchError(f"{report.count('failed')} of {len(report.results)} file(s) failed (see {report.manifest})")


@click.command(epilog="\b\nKeys in the window:\n" + key_help())
@live_source_options
@style_options
@click.option("--style-dir", type=click.Path(path_type=Path), help="Paintings to cycle through with ] and [.")
@click.option("--max-size", type=int_range(MAX_SIZE), help=LIVE_MAX_SIZE_HELP)
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
    sections = {
        "source": options_given(input=source or camera, format=source_format, size=camera_size, fps=camera_fps),
        "style": style | options_given(style_dir=str(style_dir) if style_dir else None),
        "runtime": runtime,
        "size": options_given(max_size=max_size),
        "temporal": options_given(mode=temporal, smooth=smooth),
        "output": {"targets": [WINDOW]} | options_given(
            save_dir=str(save_dir) if save_dir else None, overlay=False if no_overlay else None, audio=audio
        ),
    }
    execute(pipeline_config(sections, "command line"))


@click.command()
@click.argument("source_url")
@click.argument("outputs", nargs=-1)
@click.option("--out", "more_outputs", multiple=True,
              help="Another output (repeatable): rtsp://, rtmp://, udp://, a .m3u8 playlist, or a recording file.")
@click.option("--source-format", help="FFmpeg demuxer for SOURCE_URL when it does not say (lavfi, mpegts...).")
@style_options
@click.option("--max-size", type=int_range(MAX_SIZE), help=LIVE_MAX_SIZE_HELP)
@click.option("--output-size", help="WIDTHxHEIGHT of the output (default: the input's).")
@temporal_options("ema", 0.6)
@encoder_options
@click.option("--bitrate", callback=parse_bitrate, help="Output video bitrate (default 2M), e.g. 2M or 800k.")
@click.option("--gop", type=float_range(KEYFRAME_SECONDS),
              help="Seconds between keyframes (default 1): how long a new viewer waits for a picture.")
@click.option("--read-timeout", type=float_range(READ_TIMEOUT),
              help="Seconds without a frame before the input counts as lost and is reconnected (default 5).")
@audio_option
@click.option("--stats-json", type=click.Path(path_type=Path, dir_okay=False),
              help="Keep this file updated (every second) with fps, drops, latency and reconnects.")
@overwrite_option
def stream(source_url: str, outputs: tuple[str, ...], more_outputs: tuple[str, ...], source_format: str | None,
           style: dict, runtime: dict, max_size: int | None, output_size: str | None, temporal: str | None,
           smooth: float | None, codec: str | None, preset: str | None, bitrate: int | None, gop: float | None,
           read_timeout: float | None, audio: bool | None, stats_json: Path | None,
           overwrite: bool | None) -> None:  # fmt: skip
    """Restream SOURCE_URL stylized to OUTPUTS: read a live stream (rtsp:// over TCP, rtmp://, udp://, http://, or a
    file played in real time), publish to RTSP servers (ANNOUNCE/RECORD, as to MediaMTX), rtmp://, udp:// (MPEG-TS),
    HLS, and/or record to files. Reconnects when the input or an output drops; SIGINT/SIGTERM close cleanly.
    While the input is away, outputs repeat the last picture. The input's audio goes along (AAC)."""
    targets = [*outputs, *more_outputs]
    if not targets:
        raise click.UsageError("give at least one output: streamstyle stream IN_URL OUT_URL [--out MORE]")
    sections = {
        "source": options_given(input=source_url, format=source_format, read_timeout=read_timeout),
        "style": style,
        "runtime": runtime,
        "size": options_given(max_size=max_size, output_size=output_size),
        "temporal": options_given(mode=temporal, smooth=smooth),
        "encoder": options_given(codec=codec, preset=preset, bitrate=bitrate),
        "output": {"targets": targets}
        | options_given(keyframe_seconds=gop, audio=audio, stats_json=str(stats_json) if stats_json else None,
                        overwrite=overwrite),
    }
    execute(pipeline_config(sections, "command line", kind="stream"))


@click.command()
@click.argument("pipeline", type=click.Path(path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override a setting of the file, e.g. --set temporal.smooth=0.5 --set style.style=3 (repeatable).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary (file jobs).")
def run(pipeline: Path, overrides: tuple[str, ...], quiet: bool) -> None:
    """Run a pipeline file (TOML): a source, a style, smoothing, an encoder and outputs. See pipelines/.
    source.strict and output.overwrite are the --strict and --overwrite of the commands."""
    execute(load_pipeline(pipeline, list(overrides)), quiet)


def execute(config: PipelineConfig, quiet: bool = False) -> None:
    """Run a PipelineConfig as its kind of job, with the terminal's progress, status and summary."""
    from streamstyle.apps.claims import claim_job_outputs

    claim_job_outputs(config)
    configure_logging(quiet)
    if config.kind == "file" and config.cluster.segments:
        run_segmented(config, quiet)
        return
    from streamstyle.apps import jobs

    if config.kind == "file":
        source, output = Path(config.source.input), Path(config.output.targets[0])
        with file_progress(quiet, f"{source.name} → {output.name}") as on_progress:
            report, stylizer = jobs.run_file_job(config, on_progress)
        if not quiet:
            print_file_summary(report, stylizer)
        warn_damage(report.damage)
    elif config.kind == "window":
        jobs.run_window_job(config, say)
    else:
        run_stream(config)


def warn_damage(damage: str | None) -> None:
    """A damaged input is said, even with --quiet."""
    if damage:
        warn(f"{damage}; the output holds what could be read (--strict makes this an error)")


def run_stream(config: PipelineConfig) -> None:
    """A restream with its status line: redrawn in place on a terminal, logged every 10 s otherwise."""
    from rich.live import Live

    from streamstyle.apps import jobs

    with Live(console=console, transient=True, auto_refresh=False) as status:

        def on_stats(stats: jobs.StreamStats) -> None:
            if console.is_terminal:
                status.update(stats.line(), refresh=True)
            elif int(stats.uptime_s) % 10 == 0:
                say_with_time(stats.line())

        jobs.run_stream_job(config, say_with_time, on_stats)
