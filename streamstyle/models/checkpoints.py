"""Networks trained by `streamstyle train`, saved as checkpoints: what makes a file one, writing it whole, and
reading it back."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch

from streamstyle.core.errors import InputError
from streamstyle.core.files import AtomicFile, FileKind

CHECKPOINT_KIND = "streamstyle-transformer-net"
# torch.save writes a zip archive: that is what an existing model file may be replaced by a new one.
CHECKPOINT_FILE = FileKind("a model file", zipfile.is_zipfile)


def save_checkpoint(path: Path, contents: dict[str, Any]) -> None:
    """Write a checkpoint; a crash mid-save leaves the previous one whole."""
    with AtomicFile(path) as partial:
        torch.save({"kind": CHECKPOINT_KIND, **contents}, partial)


def load_checkpoint(path: Path, device: torch.device) -> dict[str, Any]:
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except (OSError, RuntimeError, ValueError) as error:
        raise InputError(f"not a readable model file: {path} ({error})") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("kind") != CHECKPOINT_KIND:
        raise InputError(f"{path} is not a streamstyle training checkpoint")
    return checkpoint
