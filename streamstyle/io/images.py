"""Still images in and out, and the colour and size operations on frames that do not depend on a model."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from streamstyle.core.errors import InputError, OutputError
from streamstyle.core.files import AtomicFile, FileKind

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


def _holds_image(path: Path) -> bool:
    try:
        with Image.open(path):
            return True
    except (UnidentifiedImageError, OSError):
        return False


IMAGE_FILE = FileKind("an image", _holds_image)


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


def write_image(image: np.ndarray, path: str | os.PathLike, quality: int = 95) -> None:
    """Write [H,W,3] uint8 RGB; the format follows the suffix. Written under a temporary name, then renamed,
    so an interrupted run never leaves a truncated file at `path`."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise OutputError(
            f"unsupported output image type {path.suffix!r}; use one of {', '.join(sorted(IMAGE_SUFFIXES))}"
        )
    try:
        with AtomicFile(path) as partial:
            Image.fromarray(image).save(partial, quality=quality)
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None


def fit_within(image: np.ndarray, max_size: int | None) -> np.ndarray:
    """Shrink (never enlarge) so the longer side is at most max_size, with a Lanczos filter."""
    height, width = image.shape[:2]
    if not max_size or max(height, width) <= max_size:
        return image
    scale = max_size / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


