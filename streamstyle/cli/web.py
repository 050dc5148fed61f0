"""The commands for the web page: `serve` and `export-web`."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import click

from streamstyle.cli.options import options_given, runtime_options
from streamstyle.cli.progress import configure_logging, console
from streamstyle.core.settings import SMALLEST_LIVE_SIDE

if TYPE_CHECKING:
    from streamstyle.apps.web.server import Address


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on. Any other than loopback needs a token (--token, or one made "
              "up).")  # fmt: skip
@click.option("--port", type=click.IntRange(min=0, max=65535), default=8000, show_default=True,
              help="The port to listen on; 0 picks a free one.")  # fmt: skip
@click.option("--token", envvar="STREAMSTYLE_TOKEN", help="A secret visitors bring in the URL (?token=...); "
              "off loopback one is made up when none is given. Also read from STREAMSTYLE_TOKEN.")  # fmt: skip
@click.option(
    "--paintings",
    type=click.Path(path_type=Path),
    help="A folder of paintings live sessions may choose by name (a file's name without its suffix).",
)
@click.option("--live-size", type=click.IntRange(min=SMALLEST_LIVE_SIDE), default=480, show_default=True,
              help="Live sessions: the largest inference size (longer side); it shrinks while the machine cannot hold "
              "the camera's frame rate.")  # fmt: skip
@click.option("--fixed-size", is_flag=True,
              help="Live sessions: keep --live-size whatever the machine delivers (to measure one size).")  # fmt: skip
@click.option("--max-sessions", type=click.IntRange(min=0), default=3, show_default=True,
              help="Live sessions at once (0: none, the page only).")  # fmt: skip
@click.option(
    "--max-upload",
    type=click.IntRange(min=1),
    default=2000,
    show_default=True,
    help="Video jobs: the largest upload, in MB; a larger one is refused before it is stored.",
)
@click.option("--keep", type=click.FloatRange(min=0), default=24.0, show_default=True,
              help="Video jobs: hours a finished job's video is kept for download.")  # fmt: skip
@runtime_options
@click.option("--quiet", is_flag=True, help="Print only the URL and errors.")
def serve(host: str, port: int, token: str | None, paintings: Path | None, live_size: int, fixed_size: bool,
          max_sessions: int, max_upload: int, keep: float, device: str | None, precision: str | None,
          compile_model: bool | None, backend: str | None, quiet: bool) -> None:  # fmt: skip
    """Serve the web page that stylizes photos and the webcam in the browser: the networks run on the visitor's
    machine (WebGPU or WASM), nothing is uploaded. The page can also send its camera to this server over WebRTC
    (POST /offer), to be stylized here on the fastest engine and sent back, and video files to be stylized here
    (/api/jobs). The first start exports the networks and paints the style thumbnails, once. Stop with Ctrl-C."""
    from streamstyle.apps.config import RuntimeConfig
    from streamstyle.apps.web.choices import paintings_by_name
    from streamstyle.apps.web.jobs import VideoJobs
    from streamstyle.apps.web.live import LiveCalls
    from streamstyle.apps.web.server import serve as serve_page
    from streamstyle.core.settings import TemporalSettings
    from streamstyle.processing.runtime import on_each_gpu

    configure_logging(quiet)
    runtime = RuntimeConfig(**options_given(device=device, precision=precision, compile=compile_model,
                                            backend=backend)).resolve()  # fmt: skip
    offered = paintings_by_name(paintings)
    calls = None
    if max_sessions:
        live = TemporalSettings(mode="ema")  # cheap enough for live; switched on and off over the data channel
        calls = LiveCalls(runtime, offered, live_size, max_sessions, live, adapt=not fixed_size)

    def announce(address: Address) -> None:
        click.echo(f"serving the page at {address.url}")
        if not quiet:
            console.print("stop with Ctrl-C")

    with tempfile.TemporaryDirectory(prefix="streamstyle-jobs-") as folder:
        # Video jobs keep every GPU busy, one job each, unless a device was chosen.
        devices = on_each_gpu(runtime) if device in (None, "auto") else [runtime]
        jobs = VideoJobs(Path(folder), devices, offered, max_upload * 1_000_000, keep)
        serve_page(host, port, token, calls, jobs, on_ready=announce)


@click.command("export-web")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace the page's files in a folder that is not empty.")
@click.option("--quiet", is_flag=True, help="Print only errors.")
def export_web(folder: Path, overwrite: bool, quiet: bool) -> None:
    """Write the web page into FOLDER as static files any web host can serve: the page, onnxruntime-web, the
    networks as ONNX and the style thumbnails. HOSTING.md in it says which headers the host should send."""
    from streamstyle.apps.web.site import export_site

    configure_logging(quiet)
    export_site(folder, overwrite)
    if not quiet:
        size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
        console.print(f"wrote the page into {folder} ({size / 1e6:.1f} MB); see {folder / 'HOSTING.md'}")
