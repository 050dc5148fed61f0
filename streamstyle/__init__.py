"""streamstyle: real-time neural style transfer for video, webcams and streams.

The names below load on first use: `import streamstyle` stays light (no torch, PyAV or OpenCV) until a model or a
video is asked for."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_PUBLIC = {
    "StreamstyleError": "streamstyle.core.errors",
    "EncoderSettings": "streamstyle.core.settings",
    "SizeSettings": "streamstyle.core.settings",
    "TemporalSettings": "streamstyle.core.settings",
    "MODELS": "streamstyle.models.registry",
    "Runtime": "streamstyle.processing.runtime",
    "resolve_runtime": "streamstyle.processing.runtime",
    "BuiltinStyle": "streamstyle.processing.styles",
    "ImageStyle": "streamstyle.processing.styles",
    "parse_style": "streamstyle.processing.styles",
    "Stylizer": "streamstyle.processing.stylizer",
    "load_style_model": "streamstyle.processing.stylizer",
    "load_vgg19": "streamstyle.processing.stylizer",
    "FileReport": "streamstyle.apps.file_job",
    "stylize_file": "streamstyle.apps.file_job",
}
__all__ = [
    "MODELS",
    "BuiltinStyle",
    "EncoderSettings",
    "FileReport",
    "ImageStyle",
    "Runtime",
    "SizeSettings",
    "StreamstyleError",
    "Stylizer",
    "TemporalSettings",
    "load_style_model",
    "load_vgg19",
    "parse_style",
    "resolve_runtime",
    "stylize_file",
]

if TYPE_CHECKING:
    from streamstyle.apps.file_job import FileReport, stylize_file
    from streamstyle.core.errors import StreamstyleError
    from streamstyle.core.settings import EncoderSettings, SizeSettings, TemporalSettings
    from streamstyle.models.registry import MODELS
    from streamstyle.processing.runtime import Runtime, resolve_runtime
    from streamstyle.processing.styles import BuiltinStyle, ImageStyle, parse_style
    from streamstyle.processing.stylizer import Stylizer, load_style_model, load_vgg19


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'streamstyle' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
