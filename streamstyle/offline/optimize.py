"""Style transfer by optimisation (Gatys, Ecker, Bethge 2016, "Image style transfer using convolutional neural
networks"): the picture itself is optimised until its VGG19 features match the photo's (content, relu4_2) and
the Gram matrices of its features match the paintings' (style, relu1_1 to relu5_1), with a total-variation term
against high-frequency noise. Slow (minutes, not milliseconds) and needs no trained network: any painting works.

Coarse to fine: the first scale optimises a small picture, each next one starts from the previous result
upsampled, so the large scale only refines; most of the work happens where it is cheap."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from streamstyle.core.errors import StyleSpecError
from streamstyle.core.settings import OptimizeSettings
from streamstyle.io.images import fit_within, read_image
from streamstyle.models.layers import gram_matrix
from streamstyle.models.vgg import CONTENT_LAYERS, STYLE_LAYERS, VGG19Features
from streamstyle.processing.styles import ImageStyle, parse_style
from streamstyle.processing.tensors import frames_to_tensor, preserve_color, tensor_to_frames


def style_paintings(spec: str) -> list[tuple[np.ndarray, float]]:
    """The paintings a --style names, with their weights: optimisation takes painting files only."""
    style = parse_style(spec)
    if not isinstance(style, ImageStyle):
        raise StyleSpecError("--method optimize takes painting files as --style (a.jpg, or a.jpg:0.7,b.jpg:0.3)")
    return [(read_image(path), weight) for path, weight in zip(style.paths, style.weights, strict=True)]


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels of [B,C,H,W]: large for noise, small for smooth areas."""
    return (image[..., 1:, :] - image[..., :-1, :]).abs().mean() + (image[..., :, 1:] - image[..., :, :-1]).abs().mean()


def style_targets(vgg: VGG19Features, paintings: list[tuple[torch.Tensor, float]]) -> dict[str, torch.Tensor]:
    """The weighted mean of the paintings' Gram matrices at each style layer."""
    targets: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for painting, weight in paintings:
            for name, features in vgg(painting, STYLE_LAYERS).items():
                targets[name] = targets.get(name, 0) + weight * gram_matrix(features)
    return targets


@dataclass
class Losses:
    content: float
    style: float
    tv: float
    temporal: float = 0.0  # training on neighbouring video frames only

    @property
    def total(self) -> float:
        return self.content + self.style + self.tv + self.temporal

    def __str__(self) -> str:
        temporal = f", temporal {self.temporal:.3g}" if self.temporal else ""
        return f"{self.total:.3g} (content {self.content:.3g}, style {self.style:.3g}, tv {self.tv:.3g}{temporal})"


# relu5_1, the deepest layer the losses use, lies after four 2x2 poolings: VGG19 needs 16 pixels a side. Smaller
# photos are optimised enlarged to that and shrunk back; smaller paintings are enlarged.
SMALLEST_SIDE = 16


def _scale_sizes(height: int, width: int, scales: int) -> list[tuple[int, int]]:
    return [(max(SMALLEST_SIDE, round(height / 2**level)), max(SMALLEST_SIDE, round(width / 2**level)))
            for level in reversed(range(scales))]  # fmt: skip


def enlarged_to_smallest_side(image: torch.Tensor) -> torch.Tensor:
    """[B,3,H,W] with each side under SMALLEST_SIDE stretched to it; as it is when none is."""
    height, width = image.shape[2:]
    size = (max(SMALLEST_SIDE, height), max(SMALLEST_SIDE, width))
    if size == (height, width):
        return image
    return F.interpolate(image, size=size, mode="bicubic", align_corners=False).clamp(0, 1)


def optimize_image(
    content: np.ndarray,
    paintings: list[tuple[np.ndarray, float]],
    vgg: VGG19Features,
    settings: OptimizeSettings | None = None,
    keep_colors: bool = False,
    on_step: Callable[[int, int, Losses, Callable[[], np.ndarray]], None] | None = None,
) -> np.ndarray:
    """Paint `content` ([H,W,3] uint8 RGB) in the style of `paintings` ([(image, weight)], weights summing to 1).
    on_step(scale, step, losses, current_image) is called after every optimiser step; current_image() renders the
    picture so far (only when asked, it costs a copy)."""
    settings = settings or OptimizeSettings()
    device = next(vgg.parameters()).device
    height, width = content.shape[:2]
    photo = frames_to_tensor(content[None], device)
    generator = torch.Generator(device="cpu").manual_seed(0)  # noise init reproducible run to run
    image: torch.Tensor | None = None
    for scale, size in enumerate(_scale_sizes(height, width, settings.scales)):
        target = F.interpolate(photo, size=size, mode="bilinear", antialias=True, align_corners=False)
        style_size = max(size)
        styles = [(enlarged_to_smallest_side(frames_to_tensor(fit_within(p, style_size)[None], device)), w)
                  for p, w in paintings]  # fmt: skip
        grams = style_targets(vgg, styles)
        with torch.no_grad():
            content_features = vgg(target, CONTENT_LAYERS)
        if image is None:
            start = target if settings.init == "content" else torch.rand(target.shape, generator=generator).to(device)
        else:
            start = F.interpolate(image, size=size, mode="bicubic", align_corners=False).clamp(0, 1)
        image = _optimize_scale(start, content_features, grams, vgg, settings, scale, on_step)
    assert image is not None, "settings.scales is at least 1"
    result = image.detach()
    if result.shape[2:] != photo.shape[2:]:  # a side under SMALLEST_SIDE: back to the photo's size
        result = F.interpolate(result, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    if keep_colors:
        result = preserve_color(result, photo)
    return tensor_to_frames(result)[0]


def perceptual_losses(image: torch.Tensor, content_features: dict, grams: dict, vgg: VGG19Features,
                      weights: tuple[float, float, float]) -> tuple[torch.Tensor, Losses]:  # fmt: skip
    """Weighted (content, style, TV) losses of `image` [B,3,H,W] against the content's relu4_2 features and the
    style's Gram matrices ([1,C,C], shared by the batch): the objective of optimisation and of training alike."""
    content_weight, style_weight, tv_weight = weights
    features = vgg(image, STYLE_LAYERS + CONTENT_LAYERS)
    content = sum(F.mse_loss(features[n], content_features[n]) for n in CONTENT_LAYERS) * content_weight
    style = sum(F.mse_loss(gram_matrix(features[n]), grams[n].expand(image.shape[0], -1, -1))
                for n in STYLE_LAYERS) * style_weight  # fmt: skip
    assert isinstance(content, torch.Tensor) and isinstance(style, torch.Tensor), "sums over layers, never none"
    tv = total_variation(image) * tv_weight * image.shape[-1] * image.shape[-2]
    return content + style + tv, Losses(content.item(), style.item(), tv.item())


def _optimize_scale(start: torch.Tensor, content_features: dict, grams: dict, vgg: VGG19Features,
                    settings: OptimizeSettings, scale: int,
                    on_step: Callable | None) -> torch.Tensor:  # fmt: skip
    image = start.detach().clone(memory_format=torch.contiguous_format).requires_grad_(True)  # L-BFGS needs views
    weights = (settings.content_weight, settings.style_weight, settings.tv_weight)
    render = lambda: tensor_to_frames(image.detach().clamp(0, 1))[0]  # noqa: E731
    if settings.optimizer == "adam":
        optimizer: torch.optim.Optimizer = torch.optim.Adam([image], lr=settings.learning_rate)
        for step in range(settings.steps):
            optimizer.zero_grad()
            loss, parts = perceptual_losses(image, content_features, grams, vgg, weights)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                image.clamp_(0, 1)
            if on_step:
                on_step(scale, step + 1, parts, render)
        return image.detach()
    # L-BFGS: --steps bounds the function evaluations, so it counts the same work for both optimisers.
    # The strong Wolfe line search keeps L-BFGS stable whatever the scale of the losses.
    optimizer = torch.optim.LBFGS([image], max_iter=settings.steps, max_eval=settings.steps, history_size=50,
                                  line_search_fn="strong_wolfe", tolerance_grad=0.0, tolerance_change=0.0)  # fmt: skip
    step = 0

    def closure() -> torch.Tensor:
        nonlocal step
        optimizer.zero_grad()
        loss, parts = perceptual_losses(image, content_features, grams, vgg, weights)
        loss.backward()
        step += 1
        if on_step:
            on_step(scale, step, parts, render)
        return loss

    optimizer.step(closure)
    return image.detach().clamp(0, 1)

