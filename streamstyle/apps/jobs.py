"""The three kinds of job a PipelineConfig describes, built from it and run: a file (every frame, audio kept), the
live window, and a live restream. What a job has to say goes through the caller's `say`, one line at a time, so
the command line and Python callers decide where it goes."""

from __future__ import annotations

import dataclasses
import signal
import threading
from collections.abc import Callable
from pathlib import Path

# OpenCV before PyAV: both wheels bundle their own libxcb, and with PyAV's loaded first OpenCV's Qt window never
# opens (cv2.namedWindow hangs). Imported here, it loads before any job module brings PyAV in.
import cv2  # noqa: F401

from streamstyle.apps.claims import claim_stream_outputs
from streamstyle.apps.config import PipelineConfig
from streamstyle.apps.display import screen_size
from streamstyle.apps.file_job import FileReport, stylize_file
from streamstyle.apps.keys import key_help
from streamstyle.apps.restream import Restream, StreamStats, write_stats_json
from streamstyle.apps.style_deck import StyleDeck, paintings_in
from streamstyle.apps.window import LiveWindow, WindowReport
from streamstyle.core.errors import OutputError
from streamstyle.core.settings import SizeSettings
from streamstyle.io.live_source import LiveSource, Reconnect, live_input
from streamstyle.io.video_file import check_paths
from streamstyle.processing.runtime import share_cores_with_model
from streamstyle.processing.stylizer import Stylizer

Say = Callable[[str], None]


def run_file_job(config: PipelineConfig, on_progress: Callable[[int, int | None], None] | None = None
                 ) -> tuple[FileReport, Stylizer]:  # fmt: skip
    source, output = check_paths(config.source.input, config.output.targets[0], config.output.overwrite)
    stylizer = config.style.stylizer(config.runtime)
    report = stylize_file(source, output, stylizer, batch_size=config.runtime.batch_size, sizes=config.size,
                          encoder=config.encoder, temporal=config.temporal, on_progress=on_progress,
                          audio=config.output.audio, overwrite=config.output.overwrite,
                          strict=config.source.strict)  # fmt: skip
    return report, stylizer


def live_sizes(config: PipelineConfig, stylizer: Stylizer) -> SizeSettings:
    """The config's sizes, or the runtime's live default when the user gave none."""
    if config.size.max_size or config.size.scale:
        return config.size
    return dataclasses.replace(config.size, max_size=stylizer.runtime.live_max_size)


def run_window_job(config: PipelineConfig, say: Say) -> WindowReport:
    screen_size()  # no display: say so now, before OpenCV aborts the process
    save_dir = Path(config.output.save_dir)
    if not save_dir.is_dir():
        raise OutputError(f"the folder for snapshots and recordings does not exist: {save_dir}")
    source = config.source
    live = live_input(source.input, source.format, source.size, source.fps)
    style_dir = Path(config.style.style_dir) if config.style.style_dir else None
    deck = StyleDeck(config.style.stylizer(config.runtime), paintings_in(style_dir))
    sizes = live_sizes(config, deck.first)
    # A camera that disappears is retried a few times, then the window closes.
    window = LiveWindow(
        LiveSource(live, Reconnect(attempts=3, first_delay=0.5, max_delay=2.0)), deck, sizes=sizes,
        temporal=config.temporal, save_dir=save_dir, encoder=share_cores_with_model(config.encoder, deck.first.runtime),
        overlay=config.output.overlay, audio=config.output.audio, notify=say,
    )  # fmt: skip
    say(f"{live.label} → {deck.label}, model at {sizes.max_size} px, {deck.first.runtime.describe()}")
    say("keys:\n" + key_help())
    report = window.run()
    say(report.summary())
    return report


def run_stream_job(config: PipelineConfig, say: Say, on_stats: Callable[[StreamStats], None] | None = None
                   ) -> StreamStats:  # fmt: skip
    """Restream until the input is gone for good or SIGINT/SIGTERM/SIGHUP (a second one stops at once); the stats go
    to `on_stats` every second and to the config's stats file."""
    claim_stream_outputs(config)
    live = live_input(config.source.input, config.source.format, timeout=(10.0, config.source.read_timeout))
    stylizer = config.style.stylizer(config.runtime)
    sizes = live_sizes(config, stylizer)
    source = LiveSource(live, Reconnect(attempts=None, max_delay=5.0), notify=say)  # it may come back any time
    targets = list(config.output.targets)
    encoder = share_cores_with_model(config.encoder, stylizer.runtime)
    restream = Restream(source, stylizer, targets, sizes, config.temporal, encoder, config.output.keyframe_seconds,
                        notify=say, audio=config.output.audio)  # fmt: skip
    stats_json = Path(config.output.stats_json) if config.output.stats_json else None
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        say(f"{signal.Signals(signum).name}: closing the outputs")
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    say(f"{live.label} → {', '.join(targets)}: {stylizer.style_label}, model at {sizes.max_size} px, "
        f"{stylizer.runtime.describe()}")  # fmt: skip

    def report(stats: StreamStats) -> None:
        if stats_json:
            write_stats_json(stats, stats_json)
        if on_stats:
            on_stats(stats)

    final = restream.run(stop, report)
    if stats_json:
        write_stats_json(final, stats_json)
    say(f"stopped: {final.frames_in} frames in, {final.frames_out} out, {final.dropped} dropped, "
        f"{final.reconnects_in} input reconnects")  # fmt: skip
    return final
