"""Reference graphs for parity tests: the shipped ONNX files, and float copies of them with every activation
Quantize/Dequantize pair replaced by Identity (weights still dequantized by the graph's own nodes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper


def strip_activation_qdq(model: onnx.ModelProto) -> onnx.ModelProto:
    """Quantize and Dequantize nodes on activations become Identity; those on weights stay. Some activation
    pairs have a Transpose or Reshape between them, which works on float values just as well."""
    graph = model.graph
    initializers = {init.name for init in graph.initializer}
    nodes = []
    for node in graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and node.input[0] not in initializers:
            node = helper.make_node("Identity", [node.input[0]], [node.output[0]], name=node.name + "_float")
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def free_spatial_dims(model: onnx.ModelProto, axes: tuple[int, int]) -> onnx.ModelProto:
    """Make the given axes of every graph input and output symbolic, so the graph runs at any size."""
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 4:
            for axis, name in zip(axes, ("H", "W"), strict=False):
                dims[axis].dim_param = name
    del model.graph.value_info[:]
    return model


def session(path: Path, float_copy: bool, free_dims: tuple[int, int] | None = None) -> ort.InferenceSession:
    model = onnx.load(str(path))
    if float_copy:
        model = strip_activation_qdq(model)
    if free_dims:
        model = free_spatial_dims(model, free_dims)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    # Graph optimisations would fold the QDQ pairs into int8 kernels: keep the reference literal.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run(sess: ort.InferenceSession, *inputs: np.ndarray) -> np.ndarray:
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, dict(zip(names, inputs, strict=False)))[0]
