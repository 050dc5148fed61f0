"""What a --style value means: built-in styles of the 26-style net by index, or painting files, each with an
optional weight (`3:0.5,12:0.5`, `starry.jpg:0.7,scream.jpg:0.3`). Weights are normalised to sum to 1."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from streamstyle.core.errors import InputError, StyleSpecError
from streamstyle.models.dumoulin import NUM_STYLES

# What each built-in style looks like (described from `streamstyle styles --sheet`; the weights carry no names).
BUILTIN_STYLE_LOOKS = (
    "pale pastel wash",
    "black comic outlines on yellow",
    "soft grey pastel",
    "vivid mosaic of blue, red and yellow strokes",
    "warm red and sky blue",
    "orange-red brushwork",
    "indigo with dark dots",
    "bold primaries: yellow, blue, black",
    "pastel sketch on white",
    "teal and red textile pattern",
    "brown sepia oil",
    "yellow ochre ink sketch",
    "pale lavender and gold",
    "green-yellow expressionist",
    "icy blue watercolour",
    "pastel stained glass",
    "blue and ochre strokes",
    "red and blue rectangles",
    "sepia etching",
    "blue swirls, starry-night like",
    "red expressionist",
    "black and pink cut-outs",
    "dark blue ink with red accents",
    "dark nocturne",
    "cream and navy relief",
    "gold and blue impasto",
)


@dataclass(frozen=True)
class BuiltinStyle:
    """A blend of the 26 styles the Dumoulin et al. network was trained on."""

    weights: tuple[float, ...]  # one per built-in style, summing to 1

    @property
    def label(self) -> str:
        parts = [(i, w) for i, w in enumerate(self.weights) if w > 0]
        if len(parts) == 1:
            return f"style {parts[0][0]}"
        return "styles " + ",".join(f"{i}:{w:.2g}" for i, w in parts)


@dataclass(frozen=True)
class ImageStyle:
    """A blend of the styles of one or more painting files (for arbitrary-style models)."""

    paths: tuple[Path, ...]
    weights: tuple[float, ...]

    @property
    def label(self) -> str:
        if len(self.paths) == 1:
            return self.paths[0].stem
        return " + ".join(f"{p.stem}:{w:.2g}" for p, w in zip(self.paths, self.weights, strict=True))


Style = BuiltinStyle | ImageStyle


def _normalised(weights: list[float], spec: str) -> tuple[float, ...]:
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise StyleSpecError(f"style weights in {spec!r} must be non-negative and not all zero")
    total = sum(weights)
    return tuple(w / total for w in weights)


def parse_style(spec: str | int | Path | Style) -> Style:
    """Parse a --style value. Integers name built-in styles; anything else must be an existing image file."""
    if isinstance(spec, BuiltinStyle | ImageStyle):
        return spec
    if isinstance(spec, int):
        spec = str(spec)
    text = str(spec).strip()
    if not text:
        raise StyleSpecError("empty --style: give a built-in style index (0-25) or a painting file")
    names, weights = [], []
    for part in text.split(","):
        name, sep, weight = part.strip().rpartition(":")
        if not sep or not name or Path(part.strip()).exists():
            name, weight = part.strip(), "1"
        try:
            weights.append(float(weight))
        except ValueError:
            raise StyleSpecError(
                f"style weight {weight!r} in {text!r} is not a number (use e.g. 3:0.5,12:0.5)"
            ) from None
        names.append(name)
    if all(name.lstrip("+-").isdigit() for name in names):
        mix = [0.0] * NUM_STYLES
        for name, value in zip(names, weights, strict=True):
            index = int(name)
            if not 0 <= index < NUM_STYLES:
                raise StyleSpecError(f"unknown built-in style {index}: the built-in styles are 0 to {NUM_STYLES - 1}")
            mix[index] += value
        return BuiltinStyle(_normalised(mix, text))
    paths = []
    for name in names:
        path = Path(name).expanduser()
        if name.lstrip("+-").isdigit():
            raise StyleSpecError(f"{text!r} mixes built-in style indices with painting files; use one kind")
        if not path.is_file():
            raise InputError(f"style image not found: {name}")
        paths.append(path)
    return ImageStyle(tuple(paths), _normalised(weights, text))
