"""The web page and what it needs beside it: the style networks as ONNX graphs, a description of them for the
page, and a picture of each built-in style. `streamstyle serve` serves it; `streamstyle export-web` writes it out
as a folder any static host can serve."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import streamstyle
from streamstyle.core.errors import InputError, OutputError
from streamstyle.engines.export import cached_graph, network_digest
from streamstyle.engines.fidelity import CALIBRATION
from streamstyle.engines.graphs import SIDE_MULTIPLE, SMALLEST_SIDE, graph_of
from streamstyle.io.images import read_image, write_image
from streamstyle.models.magenta import STYLE_DIM, STYLE_IMAGE_SIZE
from streamstyle.models.weights import cache_root
from streamstyle.processing.styles import BUILTIN_STYLE_LOOKS
from streamstyle.processing.stylizer import Stylizer, style_networks

PAGE = Path(__file__).with_name("page")
VENDOR = PAGE / "vendor"
# onnxruntime-web's files the page loads, copied from the npm registry's package by `make web` (web/package.json).
# The WASM build for every browser; the WebGPU build (which runs WASM too, from a file twice the size) where the
# browser has a GPU adapter.
VENDOR_FILES = (
    "ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm",
    "ort.webgpu.min.mjs", "ort-wasm-simd-threaded.asyncify.mjs", "ort-wasm-simd-threaded.asyncify.wasm",
)  # fmt: skip
SITE_DESCRIPTION = "models/site.json"
# Bump when the generated files change, so that cached sites are made again.
SITE_VERSION = 1
THUMBNAIL_SIDE = 96
THUMBNAIL_PICTURE = CALIBRATION / "bikes_050.jpg"
# What every response of the page carries. Cross-origin isolation (COOP and COEP) is what lets WASM use threads;
# the content security policy keeps the page from loading anything from another origin.
HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; "
    "img-src 'self' data: blob:; media-src 'self' blob: mediastream:; connect-src 'self' data: blob:; "
    "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}
CONTENT_TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".wasm": "application/wasm",
                 ".onnx": "application/octet-stream", ".json": "application/json", ".md": "text/markdown"}  # fmt: skip


@dataclass(frozen=True)
class Site:
    """The page's files: the ones made for this installation (graphs, description, thumbnails) and the page's own."""

    roots: tuple[Path, ...]

    def find(self, relative: str) -> Path | None:
        """The file a URL path names, from the first root that has it; None outside the roots or for a folder."""
        for root in self.roots:
            candidate = (root / relative).resolve()
            if candidate.is_relative_to(root.resolve()) and candidate.is_file():
                return candidate
        return None

    def files(self) -> dict[str, Path]:
        """Every file of the site by its path in the site, the first root's winning."""
        found: dict[str, Path] = {}
        for root in reversed(self.roots):
            found.update({path.relative_to(root).as_posix(): path for path in root.rglob("*") if path.is_file()})
        return found


def check_vendor() -> None:
    missing = [name for name in VENDOR_FILES if not (VENDOR / name).is_file()]
    if missing:
        raise InputError(
            f"the page's runtime (onnxruntime-web) is not installed: {VENDOR} lacks {', '.join(missing)}; "
            "run `make web` in the source tree (npm ci, then the files copied in)"
        )


def _thumbnail_picture() -> np.ndarray:
    picture = read_image(THUMBNAIL_PICTURE)
    height, width = picture.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = picture[top : top + side, left : left + side]
    step = side // THUMBNAIL_SIDE
    return np.ascontiguousarray(square[: step * THUMBNAIL_SIDE : step, : step * THUMBNAIL_SIDE : step])


def _write_generated(folder: Path) -> None:
    models, styles = folder / "models", folder / "styles"
    models.mkdir(parents=True)
    styles.mkdir()
    graphs = {}
    for model in ("dumoulin26", "magenta"):
        for network in style_networks(model)[1]:
            name = graph_of(network).name
            shutil.copyfile(cached_graph(network), models / f"{name}.onnx")
            graphs[name] = {"file": f"models/{name}.onnx", "bytes": (models / f"{name}.onnx").stat().st_size}
    picture = _thumbnail_picture()
    for index in range(len(BUILTIN_STYLE_LOOKS)):
        stylizer = Stylizer(index, model="dumoulin26", device="cpu", precision="fp32", backend="torch")
        write_image(stylizer(picture), styles / f"{index:02d}.jpg", quality=85)
    description = {
        "streamstyle": streamstyle.__version__, "site_version": SITE_VERSION, "graphs": graphs,
        "styles": [{"index": index, "look": look, "thumbnail": f"styles/{index:02d}.jpg"}
                   for index, look in enumerate(BUILTIN_STYLE_LOOKS)],
        "style_dim": STYLE_DIM, "style_image_size": STYLE_IMAGE_SIZE, "side_multiple": SIDE_MULTIPLE,
        "smallest_side": SMALLEST_SIDE,
    }  # fmt: skip
    (folder / SITE_DESCRIPTION).write_text(json.dumps(description, indent=1))


def _site_digest() -> str:
    digest = hashlib.sha256(f"{SITE_VERSION} {streamstyle.__version__}".encode())
    for model in ("dumoulin26", "magenta"):
        for network in style_networks(model)[1]:
            digest.update(network_digest(network).encode())
    return digest.hexdigest()[:16]


def prepare_site() -> Site:
    """The site, its generated files made once (the graphs exported, the thumbnails painted) and kept in the
    cache; a first start takes a minute or two on 2 cores."""
    check_vendor()
    generated = cache_root() / "web" / f"site-{_site_digest()}"
    if not (generated / SITE_DESCRIPTION).is_file():
        generated.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=generated.parent, prefix=".site-") as scratch:
            _write_generated(Path(scratch) / "site")
            try:
                (Path(scratch) / "site").rename(generated)
            except OSError:
                if not (generated / SITE_DESCRIPTION).is_file():  # not another process that made it meanwhile
                    raise
    return Site((generated, PAGE))


def hosting_notes() -> str:
    headers = "\n".join(f"    {name}: {value}" for name, value in HEADERS.items())
    types = "\n".join(f"    {suffix}  {kind}" for suffix, kind in CONTENT_TYPES.items())
    return f"""# Hosting this page

This folder is the streamstyle page, made by `streamstyle export-web`: copy it whole to any static host. The
networks run in the visitor's browser; the host only serves files.

Send these headers with every file (`_headers` says the same in the format of Netlify and Cloudflare Pages):

{headers}

Cross-origin isolation (the two Cross-Origin-*-Policy headers) lets the WASM engine use threads; without them the
page still works, on one thread. The content security policy keeps the page from loading anything from elsewhere.

Serve these types (most hosts do already):

{types}

To try it on this machine: `streamstyle serve` sends all of the above.
"""


def export_site(folder: Path, overwrite: bool = False) -> Path:
    """Write the whole page into `folder` (made if missing): it must be new or empty unless `overwrite`, which
    replaces the page's files in it and leaves others be. Returns the folder."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"output {folder} is a file; the page goes into a folder")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise OutputError(
            f"{folder} is not empty; give a new or empty folder, or --overwrite to replace the page in it"
        )
    site = prepare_site()
    parent = folder.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=parent, prefix=f".{folder.name}-"))
    except OSError as error:
        raise OutputError(f"cannot write into {parent}: {error.strerror}") from None
    try:
        for relative, path in site.files().items():
            (scratch / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, scratch / relative)
        headers = "".join(f"  {name}: {value}\n" for name, value in HEADERS.items())
        (scratch / "_headers").write_text(f"/*\n{headers}")
        (scratch / "HOSTING.md").write_text(hosting_notes())
        if not folder.exists():
            scratch.rename(folder)
            return folder
        for entry in scratch.iterdir():  # into an empty folder, or over the page's files with overwrite
            target = folder / entry.name
            if target.is_dir() and entry.is_dir():
                shutil.rmtree(target)
            entry.replace(target)
        return folder
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
