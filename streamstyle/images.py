"""Still images in and out, and the colour and size operations on frames that do not depend on a model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError, OutputError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
# ITU-R BT.601 luma weights, the Y of YCbCr.
_LUMA = (0.299, 0.587, 0.114)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as [H,W,3] uint8 RGB: EXIF rotation applied, transparency composited over white."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"image not found: {path}")
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            if image.mode in ("RGBA", "LA", "P", "PA"):
                image = image.convert("RGBA")
                image = Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image)
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise InputError(f"not a readable image: {path} ({error.__class__.__name__})") from None


def partial_path(path: Path) -> Path:
    """Where a file is written until complete: hidden beside its final name, then renamed into place, so nothing
    half-written is ever left where the output should be."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def write_image(image: np.ndarray, path: str | os.PathLike, quality: int = 95) -> None:
    """Write [H,W,3] uint8 RGB; the format follows the suffix. Written under a temporary name, then renamed,
    so an interrupted run never leaves a truncated file at `path`."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise OutputError(
            f"unsupported output image type {path.suffix!r}; use one of {', '.join(sorted(IMAGE_SUFFIXES))}"
        )
    partial = partial_path(path)
    try:
        Image.fromarray(image).save(partial, quality=quality)
        partial.replace(path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None


def fit_within(image: np.ndarray, max_size: int | None) -> np.ndarray:
    """Shrink (never enlarge) so the longer side is at most max_size, with a Lanczos filter."""
    height, width = image.shape[:2]
    if not max_size or max(height, width) <= max_size:
        return image
    scale = max_size / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))


def frames_to_tensor(frames: np.ndarray | torch.Tensor, device: torch.device) -> torch.Tensor:
    """[B,H,W,3] uint8 RGB → [B,3,H,W] float in [0,1] on `device`; converts after the copy, so 1 byte per
    channel crosses the bus, from pinned memory when the target is a GPU."""
    if isinstance(frames, np.ndarray) and not frames.flags.writeable:
        frames = frames.copy()  # torch cannot wrap read-only arrays (e.g. PIL's)
    tensor = torch.as_tensor(frames)
    if device.type == "cuda":
        tensor = tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device).permute(0, 3, 1, 2).float().div_(255.0)


def tensor_to_frames(images: torch.Tensor) -> np.ndarray:
    """[B,3,H,W] float in [0,1] → [B,H,W,3] uint8 RGB on the CPU, rounded to nearest."""
    quantised = images.float().clamp(0.0, 1.0).mul(255.0).round_().to(torch.uint8)
    return quantised.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of [B,3,H,W] RGB, shaped [B,1,H,W]."""
    weights = rgb.new_tensor(_LUMA)[None, :, None, None]
    return (rgb * weights).sum(dim=1, keepdim=True)


def preserve_color(stylized: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Luminance-only transfer (Gatys et al. 2016, 'Preserving color'): keep the stylized image's luma and
    the content's chroma. Adding the luma difference to every channel keeps CbCr unchanged."""
    return (content + luminance(stylized) - luminance(content)).clamp(0.0, 1.0)


def square_resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """Centre square crop of [B,3,H,W], resized to size x size with an antialiased bicubic filter."""
    height, width = images.shape[2:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = images[:, :, top : top + side, left : left + side]
    return F.interpolate(square, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
