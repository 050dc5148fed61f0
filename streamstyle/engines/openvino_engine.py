"""OpenVINO on the CPU: fp32, and bf16 (on CPUs that compute it natively: AVX512_BF16, AMX) and int8 for the
styles they keep."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import openvino as ov

from streamstyle.core.files import one_process_at_a_time
from streamstyle.engines.base import GraphEngine
from streamstyle.engines.fidelity import StyleChecks
from streamstyle.engines.graphs import GraphSpec
from streamstyle.engines.quantize import calibrated, quantized_graph, quantized_path

# int8's graphs, the fastest first: every convolution quantised (it keeps 3 of the 26 built-in styles), then the
# first convolution (the picture's 3 channels to 32, straight into an instance norm: most of int8's error) left in
# float, which keeps 6 more at 0.75x the speed, still 1.9x OpenVINO fp32 (benchmarks/int8_layers.py, 640x360).
INT8_GRAPHS = {"int8": False, "int8, first convolution in float": True}  # name: first convolution in float
# int8's graphs are quantised, and computed at the CPU's own precision.
PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16"} | dict.fromkeys(INT8_GRAPHS, "f32")
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
    """int8 runs each style (a sample's conditioning inputs) on the fastest of its graphs that paints it within its
    bound of fp32 on real frames (fidelity.StyleChecks); a batch holding a style none keeps runs in fp32, said once
    per style. A network int8 has no calibration for (magenta's painting vectors) runs in fp32, said once. bf16
    runs every style it is given; whether it keeps one is the caller's question (`keeps`), which auto asks before
    it takes bf16."""

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
        self.graph, self.cache = graph, cache
        # The graphs of the precision, the fastest first, each with its verdicts; none for fp32, which keeps all.
        self.checks: list[StyleChecks] = []
        if precision == "int8":
            self.checks = [StyleChecks("int8", quantized_path(graph, cache, in_float).with_suffix(".verdicts.json"),
                                       self._infer, name) for name, in_float in INT8_GRAPHS.items()]  # fmt: skip
            self._model("int8")  # calibrated now, not at the first frame; the next graph when a style needs it
        elif precision == "bf16":
            self.checks = [StyleChecks("bf16", cache / f"{graph.stem}-bf16.verdicts.json", self._infer)]
        self.precision = precision
        self._requests: OrderedDict[tuple[str, Shapes], ov.InferRequest] = OrderedDict()
        # One network serves every thread that runs it (live sessions sharing a server, a style checked while the
        # picture goes on), and a request runs one inference at a time: OpenVINO's latency hint gives each all
        # the cores anyway.
        self._lock = threading.Lock()

    def keeps(self, style: dict[str, np.ndarray], say: bool = True) -> bool:
        return not self.checks or self._keeping([style], say) is not None

    def run(self, arrays: dict[str, np.ndarray]) -> np.ndarray:
        graph = self.precision
        if self.precision == "int8":
            graph = self._keeping(self._styles(arrays), say=True) or "fp32"
        self.ran_in = graph
        return self._infer(graph, arrays)

    def _keeping(self, styles: list[dict[str, np.ndarray]], say: bool) -> str | None:
        """The fastest of the precision's graphs that keeps every one of `styles`; None where none does (said by
        the last, the closest, where `say`)."""
        for checks in self.checks:
            if all(checks.keeps(style, say and checks is self.checks[-1]) for style in styles):
                return checks.graph
        return None

    def _model(self, graph: str) -> ov.Model:
        """The model of one of the engine's graphs; an int8 one is calibrated the first time it is needed."""
        if graph not in self.models:
            quantized = quantized_graph(self.graph, self.spec, self.cache, INT8_GRAPHS[graph])
            self.models[graph] = self.core.read_model(quantized)
        return self.models[graph]

    def _infer(self, graph: str, arrays: dict[str, np.ndarray]) -> np.ndarray:
        key = (graph, tuple((name, array.shape) for name, array in arrays.items()))
        with self._lock:
            request = self._requests.pop(key, None)
            if request is None:
                # OpenVINO writes the compiled blob into the shared cache folder and then makes it read-only, which
                # fails when another process (a cluster's worker beside this one) replaced it meanwhile.
                with one_process_at_a_time(self.cache / "compiling.lock"):
                    request = compile_request(self.core, self._model(graph), *key)
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
