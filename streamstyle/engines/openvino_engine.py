"""OpenVINO on the CPU: fp32, or bf16 on CPUs that compute it natively (AVX512_BF16, AMX)."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import openvino as ov

from streamstyle.engines.base import GraphEngine
from streamstyle.engines.graphs import GraphSpec

PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16"}
# Compiled for each input shape met, as a static graph: 1.3x faster than one compile for any shape (dumoulin26
# at 640x360 on 2 AVX2 cores: 80 against 102 ms). A video has one shape; stills of many sizes keep the last few.
KEPT_SHAPES = 4

Shapes = tuple[tuple[str, tuple[int, ...]], ...]


def cpu_capabilities() -> list[str]:
    """What OpenVINO finds this CPU can compute: FP32, BF16, INT8, ..."""
    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


class OpenVinoEngine(GraphEngine):
    def __init__(self, graph: Path, spec: GraphSpec, precision: str, cache: Path) -> None:
        super().__init__(spec)
        self.core = ov.Core()
        # Compiled blobs are kept per graph, shape and settings: later starts skip compiling.
        self.core.set_property({"CACHE_DIR": str(cache)})
        self.model = self.core.read_model(graph)
        self.config = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision], "PERFORMANCE_HINT": "LATENCY"}
        self._requests: OrderedDict[Shapes, ov.InferRequest] = OrderedDict()

    def run(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        shapes = tuple((name, array.shape) for name, array in arrays.items())
        request = self._requests.pop(shapes, None) or self._compile(shapes)
        self._requests[shapes] = request
        while len(self._requests) > KEPT_SHAPES:
            self._requests.popitem(last=False)
        request.infer(arrays)
        return request.get_output_tensor(0).data.copy()

    def _compile(self, shapes: Shapes) -> ov.InferRequest:
        model = self.model.clone()
        model.reshape({name: list(shape) for name, shape in shapes})
        return self.core.compile_model(model, "CPU", self.config).create_infer_request()
