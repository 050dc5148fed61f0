"""The style models as the rest of streamstyle uses them: conditioned on a Style, batched frames in and out."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from streamstyle.core.errors import DeviceError, InputError, StyleSpecError
from streamstyle.core.settings import STRENGTH
from streamstyle.engines.backends import runs_in
from streamstyle.engines.base import Engine, GraphEngine
from streamstyle.io.images import check_image, read_image
from streamstyle.models import weights
from streamstyle.models.checkpoints import load_checkpoint
from streamstyle.models.dumoulin import Dumoulin26
from streamstyle.models.johnson import TransformerNet
from streamstyle.models.layers import pad_to_multiple
from streamstyle.models.magenta import STYLE_IMAGE_SIZE, MagentaTransformer, StylePredictor
from streamstyle.models.vgg import VGG19Features
from streamstyle.processing.runtime import ModuleT, Runtime, resolve_runtime
from streamstyle.processing.styles import BuiltinStyle, ImageStyle, Style, parse_style
from streamstyle.processing.tensors import frames_to_tensor, preserve_color, square_resize, tensor_to_frames

log = logging.getLogger(__name__)


def check_strength(strength: float) -> None:
    if not STRENGTH.holds(strength):
        raise StyleSpecError(f"strength must be {STRENGTH}, got {strength:g}")


def _with_weights(module: ModuleT, source: weights.WeightFile, convert) -> ModuleT:
    module.load_state_dict(weights.load_state_dict(source, convert))
    return module


class StyleModel:
    """A feed-forward style network plus how a Style conditions it."""

    name: str
    network: Engine
    style_network: type[nn.Module]  # the network a style conditions (magenta's predictor only computes its input)

    def __init__(self, runtime: Runtime):
        self.runtime = runtime

    def conditioning(self, styles: Sequence[Style], content: torch.Tensor, strength: float,
                     reference: torch.Tensor | None = None) -> torch.Tensor | None:  # fmt: skip
        """The network's style input for each sample, [B, D] (None for a network that takes none). `reference`
        replaces the content's own style where strength < 1 needs it, so that video uses one for all frames."""
        raise NotImplementedError

    def content_reference(self, content: torch.Tensor, strength: float) -> torch.Tensor | None:
        """What `reference` should be for a video starting with `content`; None where nothing is needed."""
        return None

    def blends_output(self) -> bool:
        """Whether strength < 1 is applied by mixing the output with the content (no style-space blend)."""
        return False

    def run(self, content: torch.Tensor, condition: torch.Tensor | None) -> torch.Tensor:
        return self.network(content) if condition is None else self.network(content, condition)

    def keeps(self, style: Style, say: bool = True) -> bool:
        """Whether the network's engine paints `style` in its precision within that precision's bound of fp32
        (engines.fidelity): checked once per style, a few seconds. `say`: one it does not keep is said, once."""
        if not isinstance(self.network, GraphEngine):
            return True
        condition = self.conditioning([style], torch.zeros(1, 3, 8, 8, device=self.runtime.device), 1.0)
        names = [tensor.name for tensor in self.network.spec.inputs[1:]]
        values = [] if condition is None else [condition.float().cpu().numpy()]
        return self.network.keeps(dict(zip(names, values, strict=True)), say)

    @torch.inference_mode()
    def stylize(
        self,
        content: torch.Tensor,
        style: Style | Sequence[Style],
        strength: float = 1.0,
        keep_colors: bool = False,
        reference: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """content [B,3,H,W] in [0,1] on the runtime's device, any H and W; one style for the batch or one per
        sample. Returns [B,3,H,W] float32 in [0,1]."""
        styles = [style] * content.shape[0] if isinstance(style, BuiltinStyle | ImageStyle) else list(style)
        if len(styles) != content.shape[0]:
            raise ValueError(f"{len(styles)} styles for a batch of {content.shape[0]}")
        check_strength(strength)
        height, width = content.shape[2:]
        # One style for the whole batch is given once ([1,D]): each norm then runs once over the batch instead of
        # once per sample (a batch of 8 at 720p on an H200: 1.5x faster; at 640x360 on 2 CPU cores 1.16x).
        one_style = all(style == styles[0] for style in styles)
        with self.runtime.autocast():
            condition = self.conditioning(styles[:1] if one_style else styles, content, strength, reference)
            # The nets downsample by 4 and reflect-pad their convolutions, by 4 pixels at full size and 1 at a
            # quarter: pad to a multiple of 4 and at least 8 (a 1-pixel photo too), and crop back.
            padded = self.runtime.layout(pad_to_multiple(content, 4, minimum=8))
            output = self.run(padded, condition)[:, :, :height, :width].float()
        if self.blends_output() and strength < 1.0:
            output = torch.lerp(content, output, strength)
        if keep_colors:
            output = preserve_color(output, content)
        return output


class MagentaModel(StyleModel):
    """Ghiasi et al.: a style image → 100-d vector (computed once per style and cached) → transformer norms.
    Strength interpolates between the content image's own style vector and the painting's, as in the paper."""

    name = "magenta"
    style_network = MagentaTransformer

    def __init__(self, runtime: Runtime):
        super().__init__(runtime)
        predictor = _with_weights(StylePredictor(), weights.MAGENTA_PREDICTOR, weights.convert_magenta_predictor)
        self.predictor = runtime.engine(predictor, full_precision=True)
        transformer = _with_weights(MagentaTransformer(), weights.MAGENTA_TRANSFORMER,
                                    weights.convert_magenta_transformer)  # fmt: skip
        self.network = runtime.engine(transformer)
        self._vectors: dict[tuple[str, int, int], torch.Tensor] = {}

    def predict(self, images: torch.Tensor) -> torch.Tensor:
        """Style vectors [B,100] of images [B,3,H,W] in [0,1] (centre square, resized to 256), in fp32 whatever the
        runtime's precision: the predictor runs once per painting, and most of magenta's fp16 error came from it."""
        with torch.autocast(self.runtime.device.type, enabled=False):
            return self.predictor(self.runtime.layout(square_resize(images, STYLE_IMAGE_SIZE))).float()

    def painting_vector(self, path: Path) -> torch.Tensor:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
        if key not in self._vectors:
            image = frames_to_tensor(read_image(path)[None], self.runtime.device)
            with torch.inference_mode():
                self._vectors[key] = self.predict(image)[0]
        return self._vectors[key]

    def style_vector(self, style: ImageStyle) -> torch.Tensor:
        vector = sum(w * self.painting_vector(p) for p, w in zip(style.paths, style.weights, strict=True))
        assert isinstance(vector, torch.Tensor), "a style has at least one painting"
        return vector

    def content_reference(self, content: torch.Tensor, strength: float) -> torch.Tensor | None:
        if strength >= 1.0:
            return None
        with torch.inference_mode():
            return self.predict(content[:1])

    def conditioning(self, styles: Sequence[Style], content: torch.Tensor, strength: float,
                     reference: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        paintings: list[ImageStyle] = []
        for style in styles:
            if not isinstance(style, ImageStyle):
                raise StyleSpecError(
                    f"the magenta model takes painting files as --style, not {style.label}; use --model dumoulin26"
                )
            paintings.append(style)
        vectors = torch.stack([self.style_vector(style) for style in paintings])
        if strength < 1.0:
            own = reference.expand_as(vectors) if reference is not None else self.predict(content)
            vectors = torch.lerp(own, vectors, strength)
        return vectors


class Dumoulin26Model(StyleModel):
    """Dumoulin et al.: 26 styles in one net, mixed by weights. The paper defines no 'less style' point, so
    strength < 1 mixes the output with the content."""

    name = "dumoulin26"
    style_network = Dumoulin26

    def __init__(self, runtime: Runtime):
        super().__init__(runtime)
        self.network = runtime.engine(_with_weights(Dumoulin26(), weights.DUMOULIN26, weights.convert_dumoulin26))

    def blends_output(self) -> bool:
        return True

    def conditioning(self, styles: Sequence[Style], content: torch.Tensor, strength: float,
                     reference: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        for style in styles:
            if not isinstance(style, BuiltinStyle):
                raise StyleSpecError(
                    f"the dumoulin26 model takes built-in style indices as --style, not {style.label}; "
                    "use --model magenta"
                )
        return torch.tensor([style.weights for style in styles], dtype=torch.float32, device=content.device)


class TrainedModel(StyleModel):
    """A TransformerNet trained by `streamstyle train`: its one style is in the weights, so --style is ignored;
    strength < 1 mixes the output with the content."""

    style_network = TransformerNet

    def __init__(self, runtime: Runtime, path: Path):
        super().__init__(runtime)

        self.name = str(path)  # what load_style_model takes back, for stylizers built later (webcam keys)
        network = TransformerNet()
        network.load_state_dict(load_checkpoint(path, torch.device("cpu"))["model"])
        self.network = runtime.engine(network)

    def blends_output(self) -> bool:
        return True

    def conditioning(self, styles: Sequence[Style], content: torch.Tensor, strength: float,
                     reference: torch.Tensor | None = None) -> None:  # fmt: skip
        return None


STYLE_MODELS = {"magenta": MagentaModel, "dumoulin26": Dumoulin26Model}


def load_style_model(name: str, runtime: Runtime) -> StyleModel:
    """One loaded instance per model and runtime, shared by every Stylizer in the process, those built at the same
    time too (live sessions that start together would each load one, and on an engine export and compile it side
    by side). A name ending in .pt is a model file trained by `streamstyle train`."""
    with _LOADING:
        return _loaded_style_model(name, runtime)


_LOADING = threading.Lock()


@functools.cache
def _loaded_style_model(name: str, runtime: Runtime) -> StyleModel:
    if style_model_class(name) is TrainedModel:
        return TrainedModel(runtime, Path(name))
    return STYLE_MODELS[name](runtime)


def style_model_class(name: str) -> type[StyleModel]:
    """The kind of model `name` loads, checked before anything loads: a built-in model, or a trained .pt file."""
    if name.endswith(".pt"):
        if not Path(name).is_file():
            raise InputError(f"model file not found: {name}")
        return TrainedModel
    if name not in STYLE_MODELS:
        available = ", ".join(STYLE_MODELS)
        raise StyleSpecError(f"unknown model {name!r}; use {available} or a .pt file from streamstyle train")
    return STYLE_MODELS[name]


def style_networks(model: str) -> tuple[StyleModel, list[nn.Module]]:
    """The model and its networks as plain fp32 modules on the CPU, in the order they run."""
    loaded = load_style_model(model, resolve_runtime("cpu", "fp32", channels_last=False, backend="torch"))
    engines = [loaded.predictor, loaded.network] if isinstance(loaded, MagentaModel) else [loaded.network]
    networks = [engine for engine in engines if isinstance(engine, nn.Module)]
    assert len(networks) == len(engines), "a torch runtime runs the modules themselves"
    return loaded, networks


@functools.cache
def load_vgg19(runtime: Runtime) -> VGG19Features:
    return runtime.prepare(_with_weights(VGG19Features(), weights.VGG19, weights.convert_vgg19))


def default_model_for(style: Style) -> str:
    return "dumoulin26" if isinstance(style, BuiltinStyle) else "magenta"


class Stylizer:
    """Stylize frames with one style: the library entry point.

    >>> stylizer = Stylizer("starry_night.jpg")          # arbitrary style, any painting
    >>> stylizer = Stylizer("3:0.5,12:0.5", strength=0.8)  # a blend of two built-in styles
    >>> out = stylizer(frames)                             # [B,H,W,3] or [H,W,3] uint8 RGB in and out
    """

    def __init__(
        self,
        style: str | int | Path | Style,
        model: str | None = None,
        strength: float = 1.0,
        preserve_color: bool = False,
        device: str = "auto",
        precision: str = "auto",
        channels_last: bool | None = None,
        compiled: bool = False,
        backend: str = "auto",
        runtime: Runtime | None = None,
    ):
        """`runtime`, when given, stands for device, precision, channels_last, compiled and backend."""
        self.style = parse_style(style)
        check_strength(strength)
        self.strength = strength
        self.preserve_color = preserve_color
        # The runtime asked for; `runtime` is the one that runs this style: its fallback where its precision
        # would change the style beyond that precision's bound.
        self.requested_runtime = runtime or resolve_runtime(device, precision, channels_last, compiled, backend)
        self.runtime = self.requested_runtime
        name = model or default_model_for(self.style)
        for painting in self.style.paths if isinstance(self.style, ImageStyle) else ():
            check_image(painting)  # before a model loads (and, on a first run, is exported for its engine)
        # int8 has no calibration for some networks (magenta's): auto runs those on its fallback from the start,
        # without exporting them for nothing.
        if self.runtime.fallback and not runs_in(self.runtime.precision, style_model_class(name).style_network):
            self.runtime = self.runtime.fallback
        self.model = load_style_model(name, self.runtime)
        # Fail now, not on the first frame, when the style does not suit the model.
        self.model.conditioning([self.style], torch.zeros(1, 3, 8, 8, device=self.runtime.device), 1.0)
        self._fitting_batch: int | None = None  # the most frames the GPU's memory held at once, once it ran out
        # auto's own choice, made quietly: the summary line names the engine that runs the style.
        if self.runtime.fallback and not self.model.keeps(self.style, say=False):
            self.runtime = self.runtime.fallback
            self.model = load_style_model(name, self.runtime)

    def stylize_tensor(self, content: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        """[B,3,H,W] float in [0,1] on the runtime's device → the same, stylized. For video, pass the
        `content_reference` of the first frames so every frame gets the same style input. A batch the GPU has no
        memory for runs in halves, and so on down to single frames; later batches start from what fitted."""
        while True:
            pieces = content.split(min(len(content), self._fitting_batch or len(content)))
            try:
                painted = [self.model.stylize(piece, self.style, self.strength, self.preserve_color, reference)
                           for piece in pieces]  # fmt: skip
                return painted[0] if len(painted) == 1 else torch.cat(painted)
            except torch.OutOfMemoryError:
                if len(pieces[0]) == 1:
                    height, width = content.shape[2:]
                    raise DeviceError(f"{self.runtime.device} has not the memory to paint one {width}x{height} frame "
                                      f"({self.describe()}): run the model smaller (--max-size, --scale) or on "
                                      "another device") from None  # fmt: skip
                self._fitting_batch = len(pieces[0]) // 2
            # Out of the handler, the failed attempt's tensors are free: give their memory back before trying again.
            torch.cuda.empty_cache()
            log.warning("%s has not the memory for batches of %d frames at this size; running %d at a time",
                        self.runtime.device, len(pieces[0]), self._fitting_batch)  # fmt: skip

    def content_reference(self, content: torch.Tensor) -> torch.Tensor | None:
        return self.model.content_reference(content, self.strength)

    @property
    def style_label(self) -> str:
        """The style as the user is told it: a trained model paints its own, whatever --style says."""
        return "its own style" if isinstance(self.model, TrainedModel) else self.style.label

    def describe(self) -> str:
        """The runtime, and the precision the style network last ran in where its engine chose another than asked
        (int8 runs in fp32 the styles it would change too much)."""
        network = self.model.network
        ran_in = network.ran_in if isinstance(network, GraphEngine) else None
        if ran_in not in (None, self.runtime.precision):
            return f"{self.runtime.describe()} (ran in {ran_in})"
        return self.runtime.describe()

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        single = frames.ndim == 3
        batch = frames[None] if single else frames
        output = tensor_to_frames(self.stylize_tensor(frames_to_tensor(batch, self.runtime.device)))
        return output[0] if single else output
