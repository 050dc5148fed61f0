"""Style networks to ONNX (opset 18): the style conditioning an input of the graph, sizes fixed or chosen at run
time, constant-folded by the exporter's optimiser, every Split made Slices; and ONNX to OpenVINO's IR."""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from streamstyle.core.files import AtomicFile
from streamstyle.engines.graphs import SIDE_MULTIPLE, SMALLEST_SIDE, example_inputs, graph_of
from streamstyle.models.weights import cache_root

if TYPE_CHECKING:
    import onnx
    import openvino

OPSET = 18
LARGEST_SIDE = 16384
# Bump when the exported graphs change, so cached ones are made again.
EXPORT_VERSION = 2

log = logging.getLogger(__name__)


def export_onnx(network: nn.Module, path: Path, batch: int | None = None,
                picture: tuple[int, int] | None = None) -> Path:  # fmt: skip
    """Write `network` to `path` as ONNX. Batch and picture size (height, width) are chosen at run time unless
    fixed here; a picture side stays a multiple of 4 either way (`graphs.SIDE_MULTIPLE`)."""
    spec = graph_of(network)
    network = network.float().eval().cpu()
    inputs = example_inputs(spec, batch or 1, picture or (64, 64))
    batch_dim = None if batch else torch.export.Dim("batch", min=1, max=1024)
    dynamic: list[dict[int, object]] = []  # per input, in order: the forward's own argument names may differ
    for tensor in spec.inputs:
        dims: dict[int, object] = {}
        if batch_dim is not None:
            dims[0] = batch_dim
        if picture is None and "height" in tensor.shape:
            low, high = SMALLEST_SIDE // SIDE_MULTIPLE, LARGEST_SIDE // SIDE_MULTIPLE
            dims[2] = SIDE_MULTIPLE * torch.export.Dim("height_4", min=low, max=high)
            dims[3] = SIDE_MULTIPLE * torch.export.Dim("width_4", min=low, max=high)
        dynamic.append(dims)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The exporter warns about what it renames and decomposes: not for our users. It traces with autograd on,
    # which a caller's inference mode (a pipeline stage loading a model for a new style) would forbid.
    with AtomicFile(path, replace_concurrent=True) as partial, warnings.catch_warnings(), \
            torch.inference_mode(False):  # fmt: skip
        warnings.simplefilter("ignore")
        torch.onnx.export(network, inputs, str(partial), input_names=[t.name for t in spec.inputs],
                          output_names=[t.name for t in spec.outputs], opset_version=OPSET, dynamo=True,
                          dynamic_shapes=dynamic if any(dynamic) else None, optimize=True, external_data=False,
                          verbose=False)  # fmt: skip
        # Here, not at the top: onnx (ml_dtypes) takes half a second to import, and a cached graph needs none of it.
        import onnx

        graph = onnx.load(str(partial))
        splits_as_slices(graph.graph)
        onnx.save(graph, str(partial))
    return path


def splits_as_slices(graph: onnx.GraphProto) -> None:
    """Each Split whose sizes are constant becomes one Slice per output, in place. The norms' parameters are cut
    18 ways, and onnxruntime-web's WebGPU Split binds every output as a storage buffer of one shader: more than
    adapters offer (WebGPU's default is 8 a shader stage, SwiftShader's 10), so the page could not run there. A
    Slice binds two."""
    from onnx import helper, numpy_helper

    constants = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
    nodes, sizes = [], set()
    for node in graph.node:
        if node.op_type != "Split" or len(node.input) < 2 or node.input[1] not in constants:
            nodes.append(node)
            continue
        sizes.add(node.input[1])
        axis = next((attribute.i for attribute in node.attribute if attribute.name == "axis"), 0)
        ends = np.cumsum(constants[node.input[1]])
        for index, output in enumerate(node.output):
            bounds = {"starts": ends[index - 1] if index else 0, "ends": ends[index], "axes": axis}
            for part, value in bounds.items():
                graph.initializer.append(numpy_helper.from_array(np.array([value], np.int64), f"{output}_{part}"))
            nodes.append(helper.make_node("Slice", [node.input[0], *(f"{output}_{part}" for part in bounds)],
                                          [output], name=f"{node.name}_{index}"))  # fmt: skip
    used = {name for node in nodes for name in node.input}
    kept = [tensor for tensor in graph.initializer if tensor.name in used or tensor.name not in sizes]
    del graph.node[:], graph.initializer[:]
    graph.node.extend(nodes)
    graph.initializer.extend(kept)


def to_openvino(onnx_path: Path, xml_path: Path) -> Path:
    """OpenVINO's IR (`xml_path` and the .bin beside it) from an ONNX graph, weights kept in fp32."""
    import openvino as ov

    return save_openvino(ov.convert_model(onnx_path), xml_path)


def save_openvino(model: openvino.Model, xml_path: Path) -> Path:
    """Write an OpenVINO model as IR (`xml_path` and the .bin beside it, weights as they are), each file complete
    or not there."""
    import openvino as ov

    xml_path.parent.mkdir(parents=True, exist_ok=True)
    with AtomicFile(xml_path, replace_concurrent=True) as xml_partial, \
            AtomicFile(xml_path.with_suffix(".bin"), replace_concurrent=True) as bin_partial:  # fmt: skip
        saved_bin = xml_partial.with_suffix(".bin")  # save_model puts the weights beside the .xml, by its name
        try:
            ov.save_model(model, str(xml_partial), compress_to_fp16=False)
            saved_bin.replace(bin_partial)
        finally:
            saved_bin.unlink(missing_ok=True)
    return xml_path


def network_digest(network: nn.Module) -> str:
    """What the exported graph depends on: the network's class and weights, the exporter and its version."""
    digest = hashlib.sha256(f"{type(network).__name__} {EXPORT_VERSION} {torch.__version__}".encode())
    for name, tensor in network.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def cached_graph(network: nn.Module) -> Path:
    """The network as ONNX with sizes chosen at run time, exported on first use and kept in the cache."""
    path = engine_cache_dir() / f"{graph_of(network).name}-{network_digest(network)}.onnx"
    if not path.is_file():
        # A wait of 20-60 s on 2 cores, once: said, so that it is not taken for a hang (a warning, so that
        # --quiet keeps it quiet).
        log.warning("exporting %s to ONNX for this engine, once (kept in %s)", graph_of(network).name, path.parent)
        export_onnx(network, path)
    return path


def engine_cache_dir() -> Path:
    return cache_root() / "engines"
