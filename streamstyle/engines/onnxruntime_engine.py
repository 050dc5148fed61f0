"""ONNX Runtime: the CPU execution provider (CUDA's where there is a GPU), fp32."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from streamstyle.engines.base import GraphEngine
from streamstyle.engines.graphs import GraphSpec


class OnnxRuntimeEngine(GraphEngine):
    def __init__(self, graph: Path, spec: GraphSpec, device: torch.device) -> None:
        super().__init__(spec)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = torch.get_num_threads()  # the cores torch would use, no more
        providers: list[str | tuple[str, dict]] = ["CPUExecutionProvider"]
        if device.type == "cuda":
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": device.index or 0}))
        self.session = ort.InferenceSession(str(graph), options, providers=providers)

    def run(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(None, arrays)[0]
