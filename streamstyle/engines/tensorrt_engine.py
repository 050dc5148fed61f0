"""TensorRT on CUDA GPUs: an engine built from the ONNX graph for each input shape, fp16 (norms, reductions and
the output kept in fp32, where fp16 drifts: see the precision notes) or fp32, kept on disk for later starts, run
on torch's CUDA tensors with no copy through the host. TensorRT builds strongly typed networks (11.x requires
them), so fp16 is a graph whose types say so."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import onnx
import tensorrt as trt
import torch
from onnxconverter_common import float16

from streamstyle.core.errors import DeviceError
from streamstyle.core.files import AtomicFile
from streamstyle.engines.base import batch_sized
from streamstyle.engines.graphs import GraphSpec

# Kept in fp32 in an fp16 graph: the statistics of instance norm overflow or round off in fp16 (dumoulin26
# style 17 drifts by 82 levels of 255), and the sigmoid's input decides the output's last bits.
FP32_OPS = ["InstanceNormalization", "ReduceMean", "Sigmoid", "MatMul", "Gemm"]
_LOGGER = trt.Logger(trt.Logger.ERROR)
KEPT_SHAPES = 4

Shapes = tuple[tuple[int, ...], ...]


def fp16_graph(graph: Path) -> Path:
    """The graph with its weights and arithmetic in fp16 but for FP32_OPS; inputs and outputs stay fp32."""
    path = graph.with_name(graph.stem + "-fp16.onnx")
    if not path.is_file():
        converted = float16.convert_float_to_float16(onnx.load(str(graph)), keep_io_types=True,
                                                     op_block_list=FP32_OPS)  # fmt: skip
        with AtomicFile(path, replace_concurrent=True) as partial:
            onnx.save(converted, str(partial))
    return path


def build_plan(graph: Path, spec: GraphSpec, shapes: Shapes, precision: str) -> bytes:
    builder = trt.Builder(_LOGGER)
    strongly_typed = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)  # always so from 11.x
    network = builder.create_network(0 if strongly_typed is None else 1 << int(strongly_typed))
    parser = trt.OnnxParser(network, _LOGGER)
    if not parser.parse(graph.read_bytes()):
        raise DeviceError(f"TensorRT cannot read {graph.name}: {parser.get_error(0)}")
    config = builder.create_builder_config()
    tf32 = getattr(trt.BuilderFlag, "TF32", None)
    if precision == "fp32" and tf32 is not None:
        config.clear_flag(tf32)  # on by default from Ampere on: fp32 must mean fp32 (style 17 drifts in TF32)
    profile = builder.create_optimization_profile()
    for tensor, shape in zip(spec.inputs, shapes, strict=True):
        profile.set_shape(tensor.name, shape, shape, shape)
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise DeviceError(f"TensorRT could not build an engine for {graph.name} at {shapes}")
    return bytes(plan)


class TensorRtEngine:
    def __init__(self, graph: Path, spec: GraphSpec, precision: str, device: torch.device, cache: Path) -> None:
        if precision not in ("fp16", "fp32"):
            raise DeviceError(f"TensorRT runs fp16 or fp32 here, not {precision}")
        self.graph = fp16_graph(graph) if precision == "fp16" else graph
        self.spec, self.precision, self.device, self.cache = spec, precision, device, cache
        self.runtime = trt.Runtime(_LOGGER)
        # The last few shapes' engines, each holding GPU memory: a video has one or two (its last, short batch).
        self._contexts: OrderedDict[Shapes, tuple[trt.ICudaEngine, trt.IExecutionContext]] = OrderedDict()

    def _context(self, shapes: Shapes) -> trt.IExecutionContext:
        if shapes not in self._contexts:
            gpu = torch.cuda.get_device_name(self.device).replace(" ", "_")
            sizes = "_".join("x".join(map(str, shape)) for shape in shapes)
            plan_path = self.cache / f"{self.graph.stem}-{self.precision}-{sizes}-trt{trt.__version__}-{gpu}.plan"
            if not plan_path.is_file():
                with AtomicFile(plan_path, replace_concurrent=True) as partial:
                    partial.write_bytes(build_plan(self.graph, self.spec, shapes, self.precision))
            engine = self.runtime.deserialize_cuda_engine(plan_path.read_bytes())
            self._contexts[shapes] = (engine, engine.create_execution_context())
            while len(self._contexts) > KEPT_SHAPES:
                self._contexts.popitem(last=False)
        self._contexts.move_to_end(shapes)
        return self._contexts[shapes][1]

    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        # TensorRT works on the calling thread's current device, and a pipeline thread starts on device 0.
        with torch.cuda.device(self.device):
            values = [value.to(self.device, torch.float32).contiguous() for value in batch_sized(self.spec, inputs)]
            context = self._context(tuple(tuple(value.shape) for value in values))
            for tensor, value in zip(self.spec.inputs, values, strict=True):
                context.set_input_shape(tensor.name, tuple(value.shape))
                context.set_tensor_address(tensor.name, value.data_ptr())
            name = self.spec.outputs[0].name
            output = torch.empty(tuple(context.get_tensor_shape(name)), dtype=torch.float32, device=self.device)
            context.set_tensor_address(name, output.data_ptr())
            if not context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
                raise DeviceError(f"TensorRT failed to run {self.graph.name}")
            return output
