"""streamstyle: real-time neural style transfer for video, webcams and streams."""

from .errors import StreamstyleError
from .runtime import Runtime, resolve_runtime
from .stages import SizeSettings, TemporalSettings
from .styles import BuiltinStyle, ImageStyle, parse_style
from .stylizer import MODELS, Stylizer, load_style_model, load_vgg19
from .video import EncoderSettings, FileReport, stylize_file

__version__ = "0.1.0"
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
