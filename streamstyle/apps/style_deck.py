"""The styles the window's keys move through."""

from __future__ import annotations

from pathlib import Path

from streamstyle.core.errors import InputError
from streamstyle.io.images import IMAGE_SUFFIXES
from streamstyle.models.dumoulin import NUM_STYLES
from streamstyle.processing.styles import BuiltinStyle, parse_style
from streamstyle.processing.stylizer import Stylizer


class StyleDeck:
    """The styles the keys move through: the built-in ones and the paintings of --style-dir, at the strength the
    keys set. Each Stylizer is built when first asked for, in the model's thread, and kept."""

    def __init__(self, first: Stylizer, paintings: list[Path]):
        self.first = first
        self.paintings = paintings
        self.spec: str | None = None  # None: the first stylizer's style
        self.strength = first.strength
        self._built: dict[tuple[str | None, float], Stylizer] = {(None, first.strength): first}

    @property
    def label(self) -> str:
        return (self.first.style if self.spec is None else parse_style(self.spec)).label

    def current(self) -> Stylizer:
        key = (self.spec, self.strength)
        if key not in self._built:
            runtime = self.first.runtime
            style = self.first.style if self.spec is None else self.spec
            model = self.first.model.name if self.spec is None else None
            self._built[key] = Stylizer(style, model, self.strength, self.first.preserve_color, runtime=runtime)
        return self._built[key]

    def step_builtin(self, step: int) -> None:
        style = parse_style(self.spec) if self.spec is not None else self.first.style
        singles = [i for i, w in enumerate(style.weights) if w == 1.0] if isinstance(style, BuiltinStyle) else []
        index = (singles[0] + step) % NUM_STYLES if singles else 0
        self.spec = str(index)

    def step_painting(self, step: int) -> bool:
        if not self.paintings:
            return False
        names = [str(p) for p in self.paintings]
        index = names.index(self.spec) + step if self.spec in names else (0 if step > 0 else -1)
        self.spec = names[index % len(names)]
        return True

    def step_strength(self, step: float) -> None:
        self.strength = round(min(1.0, max(0.0, self.strength + step)), 2)


def paintings_in(folder: Path | None, option: str = "--style-dir") -> list[Path]:
    """The pictures in `folder` (given as `option`), in name order; none without a folder."""
    if folder is None:
        return []
    if not folder.is_dir():
        raise InputError(f"{option} is not a folder: {folder}")
    paintings = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paintings:
        raise InputError(f"no images in {option} {folder}")
    return paintings
