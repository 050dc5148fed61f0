"""OpenVINO on the CPU: fp32, or bf16 on CPUs that compute it natively (AVX512_BF16, AMX)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov

from streamstyle.engines.base import GraphEngine
from streamstyle.engines.graphs import GraphSpec

PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16"}


def cpu_capabilities() -> list[str]:
    """What OpenVINO finds this CPU can compute: FP32, BF16, INT8, ..."""
    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


class OpenVinoEngine(GraphEngine):
    def __init__(self, graph: Path, spec: GraphSpec, precision: str, cache: Path) -> None:
        super().__init__(spec)
        core = ov.Core()
        # Compiled blobs are kept per graph, device and settings: later starts skip compiling.
        core.set_property({"CACHE_DIR": str(cache)})
        config = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision], "PERFORMANCE_HINT": "LATENCY"}
        self.compiled = core.compile_model(core.read_model(graph), "CPU", config)
        self.request = self.compiled.create_infer_request()

    def run(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        self.request.infer(arrays)
        return self.request.get_output_tensor(0).data.copy()
