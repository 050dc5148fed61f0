"""Still images in and out, and the colour and size operations on frames that do not depend on a model."""

from __future__ import annotations

import contextlib
import functools
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from streamstyle.core.errors import InputError, OutputError
from streamstyle.core.files import AtomicFile, FileKind

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


class ImageTooLargeError(InputError):
    """More pixels than Pillow's decompression-bomb limit: refused before any is decoded."""


def _open_image(path: Path) -> Image.Image:
    """Image.open (the header only), refusing pictures over Pillow's limit (`Image.MAX_IMAGE_PIXELS`, 89 million
    pixels, 270 MB as RGB): above twice it Pillow refuses, between the two it only prints a warning and decodes
    the lot, which takes gigabytes further on; one bound for both, and nothing printed."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            return Image.open(path)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise ImageTooLargeError(f"image too large: {path}: {error}") from None


def _holds_image(path: Path) -> bool:
    try:
        with _open_image(path):
            return True
    except ImageTooLargeError:
        return True
    except (UnidentifiedImageError, OSError):
        return False


IMAGE_FILE = FileKind("an image", _holds_image)

# The full scales the samples of greyscale modes deeper than 8 bits come in, smallest first: white is the first
# that holds the brightest sample (beyond them, the brightest sample itself). A 16-bit mode says its scale; 32-bit
# integer and float files do not, and hold 8- or 16-bit samples (Pillow's own conversions), or floats from 0 to 1.
# Pillow's conversion to RGB would clip them all at 255 instead: a 16-bit PNG came out nearly white.
_FULL_SCALES = {"I;16": (65535,), "I;16L": (65535,), "I;16B": (65535,), "I;16N": (65535,), "I": (255, 65535),
                "F": (1.0, 255, 65535)}  # fmt: skip


@functools.cache
def _lab_to_srgb() -> ImageCms.ImageCmsTransform:
    return ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB")


def _as_rgb(image: Image.Image) -> np.ndarray:
    """Any mode as [H,W,3] uint8 RGB: deep greyscale scaled to 8 bits, Lab through colour management,
    transparency composited over white."""
    if image.mode in _FULL_SCALES:
        samples = np.asarray(image, dtype=np.float32)
        finite = samples[np.isfinite(samples)]
        peak = float(finite.max()) if finite.size else 0.0
        white = next((scale for scale in _FULL_SCALES[image.mode] if peak <= scale), peak)
        samples = np.nan_to_num(samples, nan=0.0, posinf=white, neginf=0.0)  # no value is black, infinity white
        grey = np.round(samples * (255 / white)).clip(0, 255).astype(np.uint8)  # negative samples are black
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode == "LAB":
        return np.asarray(ImageCms.applyTransform(image, _lab_to_srgb()))
    if image.mode == "La":  # grey premultiplied by alpha, which Pillow converts to LA only
        image = image.convert("LA")
    if image.mode in ("RGBA", "RGBa", "LA", "P", "PA"):
        image = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image)
    return np.asarray(image.convert("RGB"))


def read_image(path: str | os.PathLike) -> np.ndarray:
    """An image file as [H,W,3] uint8 RGB whatever its mode and depth (see `_as_rgb`), EXIF rotation applied.
    Pictures over Pillow's pixel limit are refused (ImageTooLargeError) before any pixel is decoded."""
    with _readable_image(Path(path)) as opened:
        return _as_rgb(ImageOps.exif_transpose(opened))


def check_image(path: str | os.PathLike) -> None:
    """What `read_image` would refuse in `path` (missing, not an image, too large), found from its header alone."""
    with _readable_image(Path(path)):
        pass


@contextlib.contextmanager
def _readable_image(path: Path) -> Iterator[Image.Image]:
    """The picture at `path` opened (its header read); a missing or unreadable one, or one whose pixels cannot be
    decoded in the block, is refused (InputError)."""
    if not path.exists():
        raise InputError(f"image not found: {path}")
    try:
        with _open_image(path) as opened:
            yield opened
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
