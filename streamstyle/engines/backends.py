"""The engines a network can run on, which of them are installed, and putting a network onto one."""

from __future__ import annotations

import importlib.util
from functools import cache

import torch
from torch import nn

from streamstyle.core.errors import DeviceError
from streamstyle.core.settings import BACKENDS
from streamstyle.engines.base import Engine
from streamstyle.engines.export import cached_graph, engine_cache_dir
from streamstyle.engines.graphs import GRAPHS, graph_of
from streamstyle.engines.quantize import calibrated

# The Python modules each engine (and int8's calibration) needs; an engine's pip extra has its name (openvino and
# NNCF, which calibrates int8, come with the default install).
_MODULES = {"onnxruntime": ("onnxruntime",), "openvino": ("openvino",),
            "tensorrt": ("tensorrt", "onnxconverter_common"), "int8": ("nncf",)}  # fmt: skip


def installed(backend: str) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in _MODULES.get(backend, ()))


def require(backend: str) -> None:
    if backend not in BACKENDS:
        raise DeviceError(f"unknown backend {backend!r}; use auto, {', '.join(BACKENDS)}")
    if not installed(backend):
        raise DeviceError(f"the {backend} engine is not installed: pip install 'streamstyle[{backend}]'")


def load_engine(backend: str, network: nn.Module, precision: str, device: torch.device) -> Engine:
    """`network` (on the CPU, in fp32) exported once and loaded onto `backend`; torch runs it as it is."""
    require(backend)
    if backend == "torch":
        return network
    graph, spec, cache = cached_graph(network), graph_of(network), engine_cache_dir()
    if backend == "onnxruntime":
        from streamstyle.engines.onnxruntime_engine import OnnxRuntimeEngine

        return OnnxRuntimeEngine(graph, spec, device)
    if backend == "openvino":
        from streamstyle.engines.openvino_engine import OpenVinoEngine

        return OpenVinoEngine(graph, spec, precision, cache)
    from streamstyle.engines.tensorrt_engine import TensorRtEngine

    return TensorRtEngine(graph, spec, precision, device, cache)


def runs_in(precision: str, network: type[nn.Module]) -> bool:
    """Whether `precision` runs `network` at all: int8 only where its calibration covers the network's style input
    (magenta's painting vectors are a continuum no set of frames calibrates for: int8 runs those in fp32)."""
    return precision != "int8" or calibrated(GRAPHS[network])


@cache
def openvino_computes_bf16() -> bool:
    """Whether OpenVINO finds native bf16 on this CPU (AVX512_BF16 or AMX): without it, a bf16 hint runs fp32."""
    if not installed("openvino"):
        return False
    from streamstyle.engines.openvino_engine import cpu_capabilities

    return "BF16" in cpu_capabilities()


@cache
def onnxruntime_has_cuda() -> bool:
    """Whether the installed onnxruntime can run on CUDA (the onnxruntime-gpu build); the plain one falls back to
    the CPU without a word."""
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
