"""Where and how the networks run: engine, device, compute precision and memory layout, chosen automatically."""

from __future__ import annotations

import contextlib
import ctypes
import platform
from dataclasses import dataclass, replace
from functools import cache
from typing import TypeVar, cast

import torch
from torch import nn

from streamstyle.core.errors import DeviceError
from streamstyle.core.settings import EncoderSettings
from streamstyle.engines.backends import installed, load_engine, onnxruntime_has_cuda, openvino_computes_bf16, require
from streamstyle.engines.base import Engine

# int8 is the openvino engine's quantised graph; torch never computes in it.
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "int8": torch.int8}

ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    dtype: torch.dtype  # compute precision inside the networks (autocast); I/O stays float32
    channels_last: bool
    compiled: bool = False  # torch.compile the networks: a one-off wait per frame size, then faster frames
    backend: str = "torch"  # the engine that runs the style networks (engines.backends.BACKENDS)
    # What runs a style that this runtime's precision would change beyond its bound (engines.fidelity): set where
    # auto chose a reduced precision; None where the caller chose, or in fp32.
    fallback: Runtime | None = None

    @property
    def precision(self) -> str:
        return next(name for name, dtype in PRECISIONS.items() if dtype == self.dtype)

    @property
    def default_batch_size(self) -> int:
        # On CPU a batch of 4 costs 4-6x one frame (measured), so batching only adds latency there.
        return 8 if self.device.type == "cuda" else 1

    @property
    def live_max_size(self) -> int:
        # Longer side of live inference that keeps up: ~10 fps on 2 CPU cores at 256, real time on a GPU at 720.
        return 720 if self.device.type == "cuda" else 256

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype == torch.float32 or self.backend != "torch":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def prepare(self, module: ModuleT) -> ModuleT:
        module = module.to(self.device).eval().requires_grad_(False)
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        if self.compiled:
            # Fuses the norms, activations and padding between the convolutions, after about 30 s of compiling
            # per frame size (cached on disk for later runs). On 2 CPU cores it gains little (dumoulin26 640x360:
            # 71 against 74 ms) now that eager mode keeps its buffers (keep_freed_memory). The compiled module
            # stands in for the one it wraps, whose attributes it passes through; torch.compile's signature says
            # only that it is callable.
            module = cast(ModuleT, torch.compile(module))
        return module

    def engine(self, network: nn.Module, full_precision: bool = False) -> Engine:
        """A style network as this runtime runs it: prepared for torch, or exported and loaded on the backend.
        `full_precision`: in fp32 whatever the runtime's precision (the autocast of torch is the caller's)."""
        if self.backend == "torch":
            return self.prepare(network)
        precision = "fp32" if full_precision else self.precision
        return load_engine(self.backend, network.eval().requires_grad_(False), precision, self.device)

    def layout(self, images: torch.Tensor) -> torch.Tensor:
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def describe(self) -> str:
        if self.backend != "torch":
            return f"{self.backend} {self.device.type} {self.precision}"
        layout = "channels_last" if self.channels_last else "NCHW"
        return f"torch {self.device.type} {self.precision} {layout}" + (" compiled" if self.compiled else "")


@cache
def keep_freed_memory() -> bool:
    """Make glibc keep freed memory in the process for reuse instead of handing it back to the kernel. Every frame
    allocates the same large activation buffers; by default glibc unmaps each one when it is freed, and the next
    frame page-faults it back in, zero-filled: a quarter of dumoulin26's time at 640x360 on 2 CPU cores (115 ->
    86 ms a frame). One arena for all threads, since the model runs in a pipeline thread whose own arena would
    still unmap. True when applied (glibc only; elsewhere the allocator is left as it is)."""
    if platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    trim_threshold, mmap_max, arena_max = -1, -4, -8  # parameter numbers from glibc's <malloc.h>
    return all(mallopt(option, value) == 1 for option, value in
               ((arena_max, 1), (mmap_max, 0), (trim_threshold, 2**31 - 1)))  # fmt: skip


def resolve_runtime(device: str = "auto", precision: str = "auto", channels_last: bool | None = None,
                    compiled: bool = False, backend: str = "auto") -> Runtime:  # fmt: skip
    """device: auto|cpu|cuda|cuda:N; precision: auto|fp32|fp16|bf16|int8; backend: auto or one of BACKENDS.
    'auto' takes the first CUDA device when there is one, with TensorRT fp16 there when it is installed, else torch
    fp16. On a CPU it takes OpenVINO in the reduced precision that is fastest there (cpu_reduced_precision) for
    the styles that precision keeps, torch fp32 for the others; torch fp32 alone where neither pays. channels_last
    is lossless and faster in torch (see benchmarks/models.py)."""
    chosen = _device(device)
    # Naming an engine, a precision, a memory layout or torch.compile leaves the choice to the caller.
    chosen_for_caller = (backend, precision, channels_last, compiled) != ("auto", "auto", None, False)
    reduced = cpu_reduced_precision() if chosen.type == "cpu" and not chosen_for_caller else None
    if reduced:
        keep_freed_memory()
        return reduced_precision_runtime(chosen, reduced)
    if backend == "auto":
        only_torch = compiled or precision == "bf16"  # torch.compile, and bf16 on a GPU, are torch's alone
        backend = "tensorrt" if chosen.type == "cuda" and installed("tensorrt") and not only_torch else "torch"
        backend = "openvino" if precision == "int8" else backend
    require(backend)
    if precision == "auto":
        precision = "fp16" if chosen.type == "cuda" and backend in ("torch", "tensorrt") else "fp32"
    if precision not in PRECISIONS:
        raise DeviceError(f"unknown precision {precision!r}; use auto, fp32, fp16, bf16 or int8")
    _check_engine(backend, chosen, precision, compiled)
    if chosen.type == "cpu" and precision == "fp16":
        raise DeviceError("fp16 is not supported on the CPU; use fp32 or bf16")
    if channels_last is None:
        channels_last = backend == "torch"
    if chosen.type == "cpu":
        keep_freed_memory()
    else:
        compute_fp32_in_fp32()
    return Runtime(chosen, PRECISIONS[precision], channels_last, compiled, backend)


def cpu_reduced_precision() -> str | None:
    """What auto runs on this CPU where a style allows: bf16 on CPUs that compute it natively (AVX512_BF16, AMX:
    OpenVINO bf16 2.1-2.8x torch fp32, and it keeps 17 of the 26 built-in styles; int8 is only 4-8 % faster there
    and keeps fewer); int8 on other x86 CPUs with AVX2 or better (1.9-2.0x torch fp32 on 2 AVX2 cores, where bf16
    is 5-8x slower than fp32); None elsewhere (OpenVINO's int8 is untried on other CPUs)."""
    if openvino_computes_bf16():
        return "bf16"
    if installed("openvino") and installed("int8") and torch.backends.cpu.get_cpu_capability().startswith("AVX"):
        return "int8"
    return None


def reduced_precision_runtime(device: torch.device, precision: str) -> Runtime:
    """OpenVINO in `precision` for the styles it paints within that precision's bound of fp32 (engines.fidelity,
    checked once per style: Stylizer asks), torch fp32 channels_last for the others."""
    fp32 = Runtime(device, torch.float32, True)
    return Runtime(device, PRECISIONS[precision], False, backend="openvino", fallback=fp32)


@cache
def compute_fp32_in_fp32() -> None:
    """Turn off TF32 on CUDA, which PyTorch uses by default for fp32 convolutions from Ampere on: it moves some
    built-in styles as far as fp16 does (style 3: 42 dB and 89 levels of 255 from fp32 on an H200), so fp32 would
    not mean fp32. fp16 and bf16 work is not affected; fp32 convolutions take 1.2-1.4x longer."""
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False


def on_each_gpu(runtime: Runtime) -> list[Runtime]:
    """`runtime` on each CUDA device of the machine, for work that can keep them all busy at once (one job a
    device); a CPU runtime alone."""
    if runtime.device.type != "cuda":
        return [runtime]
    return [replace(runtime, device=torch.device("cuda", index)) for index in range(torch.cuda.device_count())]


# Every engine and precision, in the order a benchmark shows them.
ENGINE_PRECISIONS = [("torch", "fp32"), ("torch", "bf16"), ("torch", "fp16"), ("onnxruntime", "fp32"),
                     ("openvino", "fp32"), ("openvino", "bf16"), ("openvino", "int8"), ("tensorrt", "fp32"),
                     ("tensorrt", "fp16")]  # fmt: skip


def engines_here(device: str = "auto") -> list[tuple[str, str]]:
    """The (backend, precision) pairs that run on `device` of this machine, with what is installed."""
    found = []
    for backend, precision in ENGINE_PRECISIONS:
        try:
            resolve_runtime(device, precision, backend=backend)
        except DeviceError:
            continue  # not here: fp16 on a CPU, bf16 without native bf16, int8 without NNCF, tensorrt without CUDA
        found.append((backend, precision))
    return found


def _device(device: str) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise DeviceError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N") from None
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {device!r} requested but CUDA is not available on this machine")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise DeviceError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s) found")
    elif chosen.type != "cpu":
        raise DeviceError(f"device {device!r} is not supported; use auto, cpu, cuda or cuda:N")
    return chosen


def _check_engine(backend: str, device: torch.device, precision: str, compiled: bool) -> None:
    """What each engine runs, said before anything loads."""
    if compiled and backend != "torch":
        raise DeviceError(f"--compile is torch.compile; the {backend} engine compiles its graphs itself")
    if backend == "onnxruntime" and device.type == "cuda" and not onnxruntime_has_cuda():
        raise DeviceError("the onnxruntime installed here runs on the CPU only: pip install onnxruntime-gpu for "
                          "CUDA, or use --backend torch")  # fmt: skip
    if backend == "onnxruntime" and precision != "fp32":
        raise DeviceError(f"the onnxruntime engine runs fp32 here, not {precision}; use the openvino engine for "
                          "bf16 or torch for fp16")  # fmt: skip
    if precision == "int8":
        if backend != "openvino":
            raise DeviceError(f"int8 runs on the openvino engine, not {backend}; use --backend openvino")
        if not installed("int8"):
            raise DeviceError("int8 needs NNCF to calibrate the network, and this install lacks it: pip install "
                              "'nncf>=3.4'")  # fmt: skip
    if backend == "openvino":
        if device.type != "cpu":
            raise DeviceError("the openvino engine runs on the CPU here; use --device cpu, or tensorrt on CUDA")
        if precision == "bf16" and not openvino_computes_bf16():
            raise DeviceError("this CPU computes no bf16 natively (that needs AVX512_BF16 or AMX), so the openvino "
                              "engine would run fp32 anyway; use fp32")  # fmt: skip
    if backend == "tensorrt":
        if device.type != "cuda":
            raise DeviceError("the tensorrt engine needs a CUDA GPU; this run is on the CPU")
        if precision == "bf16":
            raise DeviceError("the tensorrt engine runs fp16 or fp32 here, not bf16")


def share_cores_with_model(encoder: EncoderSettings, runtime: Runtime) -> EncoderSettings:
    """Codec threads for running next to the model: on the CPU, the model's threads already fill the cores;
    extra codec threads only preempt them, and every op of the model waits for its slowest thread. One thread
    each keeps decode and encode off the model's back."""
    if runtime.device.type == "cpu" and not encoder.threads:
        return replace(encoder, threads=1)
    return encoder
