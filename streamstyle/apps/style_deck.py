"""The styles the window's keys move through."""

from __future__ import annotations

import threading
from pathlib import Path

from streamstyle.core.errors import InputError, StreamstyleError
from streamstyle.io.images import IMAGE_SUFFIXES
from streamstyle.models.dumoulin import NUM_STYLES
from streamstyle.processing.styles import BuiltinStyle, parse_style
from streamstyle.processing.stylizer import Stylizer

Key = tuple[str | None, float]


class StyleDeck:
    """The styles the keys move through: the built-in ones and the paintings of --style-dir, at the strength the
    keys set. Each Stylizer is built when first asked for, in a thread of its own, and kept: a painting's model
    may first be exported for a non-torch engine (seconds to a minute), and meanwhile the picture goes on in the
    last style that was ready. A style that cannot be built is said in `failure`, and the deck goes back to the
    style shown."""

    def __init__(self, first: Stylizer, paintings: list[Path]):
        self.first = first
        self.paintings = paintings
        self.spec: str | None = None  # None: the first stylizer's style
        self.strength = first.strength
        self.failure: str | None = None  # the last style that could not be built, and why; the window clears it
        self._built: dict[Key, Stylizer] = {(None, first.strength): first}
        self._shown: Key = (None, first.strength)
        self._building: set[Key] = set()
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        return (self.first.style if self.spec is None else parse_style(self.spec)).label

    @property
    def loading(self) -> bool:
        """Whether the chosen style is still being built (the picture shows the last one meanwhile)."""
        with self._lock:
            return (self.spec, self.strength) not in self._built

    def current(self) -> Stylizer:
        """The chosen style's stylizer once it is built, the last one shown until then; never waits."""
        key = (self.spec, self.strength)
        with self._lock:
            if key in self._built:
                self._shown = key
            elif key not in self._building:
                self._building.add(key)
                threading.Thread(target=self._build, args=(key,), name="streamstyle-style", daemon=True).start()
            return self._built[self._shown]

    def _build(self, key: Key) -> None:
        spec, strength = key
        style = self.first.style if spec is None else spec
        model = self.first.model.name if spec is None else None
        try:
            stylizer = Stylizer(style, model, strength, self.first.preserve_color, runtime=self.first.requested_runtime)
        except StreamstyleError as error:
            with self._lock:
                self._building.discard(key)
                self.failure = str(error)
                if (self.spec, self.strength) == key:
                    self.spec, self.strength = self._shown
            return
        with self._lock:
            self._built[key] = stylizer
            self._building.discard(key)

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
