"""OpenVINO on the CPU: fp32, and bf16 (on CPUs that compute it natively: AVX512_BF16, AMX) and int8 for the
styles they keep."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import openvino as ov

from streamstyle.engines.base import GraphEngine
from streamstyle.engines.fidelity import StyleChecks
from streamstyle.engines.graphs import GraphSpec
from streamstyle.engines.quantize import calibrated, quantized_graph

# int8 is the quantised graph, computed at the CPU's own precision.
PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
# Compiled for each input shape met, as a static graph: 1.3x faster than one compile for any shape (dumoulin26
# at 640x360 on 2 AVX2 cores: 80 against 102 ms). A video has one shape; stills of many sizes keep the last few.
KEPT_SHAPES = 4

Shapes = tuple[tuple[str, tuple[int, ...]], ...]

log = logging.getLogger(__name__)


def cpu_capabilities() -> list[str]:
    """What OpenVINO finds this CPU can compute: FP32, BF16, INT8, ..."""
    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def compile_request(core: ov.Core, model: ov.Model, precision: str, shapes: Shapes) -> ov.InferRequest:
    """`model` compiled for the CPU as a static graph of `shapes`, at `precision`, for the least latency."""
    model = model.clone()
    model.reshape({name: list(shape) for name, shape in shapes})
    config = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision], "PERFORMANCE_HINT": "LATENCY"}
    return core.compile_model(model, "CPU", config).create_infer_request()


class OpenVinoEngine(GraphEngine):
    """int8 runs each style (a sample's conditioning inputs) that it paints within its bound of fp32 on real frames
    (fidelity.StyleChecks); a batch holding a style it does not keep runs in fp32, said once per style. A network
    int8 has no calibration for (magenta's painting vectors) runs in fp32, said once. bf16 runs every style it is
    given; whether it keeps one is the caller's question (`keeps`), which auto asks before it takes bf16."""

    def __init__(self, graph: Path, spec: GraphSpec, precision: str, cache: Path) -> None:
        super().__init__(spec)
        self.core = ov.Core()
        # Compiled blobs are kept per graph, shape and settings: later starts skip compiling.
        self.core.set_property({"CACHE_DIR": str(cache)})
        if precision == "int8" and not calibrated(spec):
            log.warning("int8 is calibrated for the built-in styles and trained networks, not for %s: it runs in fp32",
                        spec.name)  # fmt: skip
            precision = "fp32"
        fp32 = self.core.read_model(graph)
        # bf16 is the fp32 graph computed in bf16 (the compile's hint).
        self.models = {"fp32": fp32, "bf16": fp32}
        self.checks: StyleChecks | None = None
        if precision == "int8":
            quantized = quantized_graph(graph, spec, cache)
            self.models["int8"] = self.core.read_model(quantized)
            self.checks = StyleChecks("int8", quantized.with_suffix(".verdicts.json"), self._infer)
        elif precision == "bf16":
            self.checks = StyleChecks("bf16", cache / f"{graph.stem}-bf16.verdicts.json", self._infer)
        self.precision = precision
        self._requests: OrderedDict[tuple[str, Shapes], ov.InferRequest] = OrderedDict()
        # One network serves every thread that runs it (live sessions sharing a server, a style checked while the
        # picture goes on), and a request runs one inference at a time: OpenVINO's latency hint gives each all
        # the cores anyway.
        self._lock = threading.Lock()

    def keeps(self, style: dict[str, np.ndarray], say: bool = True) -> bool:
        return self.checks.keeps(style, say) if self.checks else True

    def run(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        precision = self.precision
        if precision == "int8" and not all(self.keeps(style) for style in self._styles(arrays)):
            precision = "fp32"
        self.ran_in = precision
        return self._infer(precision, arrays)

    def _infer(self, precision: str, arrays: dict[str, np.ndarray]) -> np.ndarray:
        key = (precision, tuple((name, array.shape) for name, array in arrays.items()))
        with self._lock:
            request = self._requests.pop(key, None) or compile_request(self.core, self.models[precision], *key)
            self._requests[key] = request
            while len(self._requests) > KEPT_SHAPES:
                self._requests.popitem(last=False)
            request.infer(arrays)
            return request.get_output_tensor(0).data.copy()

    @staticmethod
    def _styles(arrays: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Each sample's conditioning inputs (all but the picture), one sample each."""
        conditioning = {name: array for name, array in arrays.items() if name != "content"}
        batch = len(arrays["content"])
        return [{name: array[index : index + 1] for name, array in conditioning.items()} for index in range(batch)]
