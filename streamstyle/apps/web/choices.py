"""What a client of the server may choose, by name only: a built-in style or blend, or one of the paintings the
server was given. A client's string never becomes a path."""

from __future__ import annotations

import re
from pathlib import Path

from streamstyle.apps.style_deck import paintings_in
from streamstyle.core.errors import StyleSpecError
from streamstyle.processing.styles import ImageStyle, Style, parse_style

# A built-in style or a blend of them: digits, weights, separators. Anything else must be a painting's name.
BUILTIN_SPEC = re.compile(r"[0-9.:,\s]+")


def paintings_by_name(folder: Path | None) -> dict[str, Path]:
    """The paintings a server offers by name: the pictures in `folder`, each by its file name without suffix."""
    return {path.stem: path for path in paintings_in(folder, "--paintings")}


def style_by_name(text: str, paintings: dict[str, Path]) -> Style:
    """A built-in style or blend ("7", "3:0.5,12:0.5"), or the name of one of the server's paintings. A client's
    string never becomes a path: a painting is looked up by name."""
    if text in paintings:
        return ImageStyle((paintings[text],), (1.0,))
    if BUILTIN_SPEC.fullmatch(text):
        return parse_style(text)
    names = ", ".join(sorted(paintings)) or "none on this server"
    raise StyleSpecError(f"unknown style {text!r}: use a built-in style number (0-25) or a painting: {names}")
