"""`streamstyle export`: a model's networks as ONNX (or OpenVINO IR) files and a manifest that says how to feed
them, for other engines, other languages and the browser page."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from torch import nn

import streamstyle
from streamstyle.core.errors import OutputError
from streamstyle.core.files import JSON_FILE, FileKind, claim_output, write_json
from streamstyle.engines.export import OPSET, export_onnx, to_openvino
from streamstyle.engines.graphs import SIDE_MULTIPLE, SMALLEST_SIDE, GraphSpec, graph_of
from streamstyle.models.checkpoints import load_checkpoint
from streamstyle.models.registry import MODELS
from streamstyle.processing.runtime import resolve_runtime
from streamstyle.processing.styles import BUILTIN_STYLE_LOOKS
from streamstyle.processing.stylizer import style_networks

FORMATS = ("onnx", "openvino")
MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1


def _holds_onnx(path: Path) -> bool:
    try:
        graph = onnx.load_model(str(path), load_external_data=False).graph
    except (OSError, DecodeError):
        return False
    return len(graph.node) > 0  # many files parse as some protobuf message; a graph has nodes


def _holds_openvino_ir(path: Path) -> bool:
    try:
        with path.open("rb") as file:
            return b"<net " in file.read(4096)
    except OSError:
        return False


ONNX_FILE = FileKind("an ONNX graph", _holds_onnx)
OPENVINO_FILE = FileKind("an OpenVINO model", _holds_openvino_ir)
# A .bin is raw weights: it is an OpenVINO model's when its .xml beside it is one.
OPENVINO_WEIGHTS = FileKind("an OpenVINO model's weights", lambda path: _holds_openvino_ir(path.with_suffix(".xml")))

PREPROCESSING = [
    "decode the picture as 8-bit RGB; divide by 255: float32 in [0, 1]",
    "lay it out NCHW: [batch, 3, height, width]",
    f"pad the bottom and right so height and width are multiples of {SIDE_MULTIPLE} and at least {SMALLEST_SIDE}: "
    "by reflection (numpy 'reflect', torch 'reflect'), or by repeating the edge where the picture is too small to "
    "reflect",
]
POSTPROCESSING = [
    "crop the output back to the picture's height and width (top-left)",
    "multiply by 255, round, clip to 0-255: 8-bit RGB",
]
# The pictures of streamstyle and of its tests come from float32 arithmetic; an engine's default may be lower.
PRECISION = ("float32 weights and arithmetic. Some engines lower it by default: OpenVINO's CPU plugin computes in "
             "bf16 on CPUs that have it, which moves pixels by a few levels and some styles by more; "
             "INFERENCE_PRECISION_HINT=f32 keeps float32")
CONDITIONING = {
    "dumoulin26": "style_weights: a one-hot row picks a built-in style (index = the --style number); a blend is a "
    "row of weights summing to 1. Less style (strength s < 1): output * s + content * (1 - s).",
    "magenta": "style_vector: run magenta-predictor on the painting (its centre square resized to 256x256); a "
    "blend of paintings is the weighted sum of their vectors. Less style (strength s < 1): mix with the photo's "
    "own vector (magenta-predictor on the photo): own * (1 - s) + painting * s.",
    "trained": "no style input: the network was trained for one painting. Less style (strength s < 1): "
    "output * s + content * (1 - s).",
}


def _describe(model: str) -> dict[str, object]:
    if model in MODELS:
        info = MODELS[model]
        licences = sorted({source.licence for source in info.sources})
        described: dict[str, object] = {"title": info.title, "credit": info.credit, "weights_licences": licences,
                                        "conditioning": CONDITIONING[model]}  # fmt: skip
        if model == "dumoulin26":
            described["styles"] = list(BUILTIN_STYLE_LOOKS)
        return described
    checkpoint = load_checkpoint(Path(model), resolve_runtime("cpu", "fp32", backend="torch").device)
    return {"title": "Johnson et al. 2016 fixed-style network, trained by streamstyle train",
            "credit": f"trained on the painting {checkpoint.get('style', '?')}", "weights_licences": [],
            "conditioning": CONDITIONING["trained"]}  # fmt: skip


def _graph_entry(spec: GraphSpec, files: list[str], batch: int | None, size: tuple[int, int] | None) -> dict:
    fixed = {"batch": batch, "height": size[1] if size else None, "width": size[0] if size else None}

    def tensor(entry) -> dict:
        shape = [fixed.get(dim) or dim if isinstance(dim, str) else dim for dim in entry.shape]
        described = {"name": entry.name, "shape": shape, "dtype": "float32", "meaning": entry.meaning}
        if entry.value_range:
            described["range"] = list(entry.value_range)
        return described

    return {"name": spec.name, "title": spec.title, "files": files, "inputs": [tensor(t) for t in spec.inputs],
            "outputs": [tensor(t) for t in spec.outputs]}  # fmt: skip


def _export_graph(network: nn.Module, spec: GraphSpec, folder: Path, fmt: str, batch: int | None,
                  size: tuple[int, int] | None) -> dict:  # fmt: skip
    """One network into `folder` as `fmt`; its manifest entry."""
    picture = (size[1], size[0]) if size else None
    onnx_path = export_onnx(network, folder / f"{spec.name}.onnx", batch, picture)
    if fmt == "onnx":
        return _graph_entry(spec, [onnx_path.name], batch, size)
    xml = to_openvino(onnx_path, folder / f"{spec.name}.xml")
    onnx_path.unlink()
    return _graph_entry(spec, [xml.name, xml.with_suffix(".bin").name], batch, size)


def export_model(model: str, folder: Path, fmt: str = "onnx", batch: int | None = None,
                 size: tuple[int, int] | None = None, overwrite: bool = False) -> Path:  # fmt: skip
    """Write `model`'s networks into `folder` (made if missing) as `fmt`, with a manifest; returns the manifest's
    path. `size` (width, height) and `batch` fix those dimensions; otherwise they are chosen at run time."""
    if size and any(side % SIDE_MULTIPLE or side < SMALLEST_SIDE for side in size):
        raise OutputError(f"--size {size[0]}x{size[1]}: the networks take sides that are multiples of "
                          f"{SIDE_MULTIPLE}, {SMALLEST_SIDE} at least; pad to that and crop back")  # fmt: skip
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"output {folder} is a file; exports go into a folder")
    loaded, networks = style_networks(model)
    specs = [graph_of(network) for network in networks]
    kind, suffix = (OPENVINO_FILE, ".xml") if fmt == "openvino" else (ONNX_FILE, ".onnx")
    names = [spec.name + suffix for spec in specs]
    if fmt == "openvino":
        names += [spec.name + ".bin" for spec in specs]  # the weights beside each .xml
    made = not folder.exists()
    try:
        folder.mkdir(exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot make the folder {folder}: {error.strerror}") from None
    try:
        for name in names:
            claim_output(folder / name, [model], OPENVINO_WEIGHTS if name.endswith(".bin") else kind, overwrite)
        claim_output(folder / MANIFEST_NAME, [model], JSON_FILE, overwrite)
        # Every graph is made in a scratch folder beside, then all are moved in: a failure leaves no new graph
        # next to an old one of another export.
        with tempfile.TemporaryDirectory(dir=folder, prefix=".export-") as scratch:
            entries = [_export_graph(network, spec, Path(scratch), fmt, batch, size)
                       for network, spec in zip(networks, specs, strict=True)]  # fmt: skip
            for name in names:
                (Path(scratch) / name).replace(folder / name)
        manifest = {"format": "streamstyle export", "version": MANIFEST_VERSION, "model": loaded.name,
                    **_describe(model), "exported_by": f"streamstyle {streamstyle.__version__}",
                    "graph_format": "ONNX" if fmt == "onnx" else "OpenVINO IR", "onnx_opset": OPSET,
                    "graphs": entries, "precision": PRECISION, "preprocessing": PREPROCESSING,
                    "postprocessing": POSTPROCESSING}  # fmt: skip
        write_json(folder / MANIFEST_NAME, manifest)
    except BaseException:
        if made:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder / MANIFEST_NAME

