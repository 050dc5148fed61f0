"""User-facing errors: anything raised as a StreamstyleError is reported as one line and exit status 2."""


class StreamstyleError(Exception):
    """Base of every error caused by the user's input or environment, not by a bug."""


class InputError(StreamstyleError):
    """An input file is missing, unreadable or not what it claims to be."""


class OutputError(StreamstyleError):
    """The output cannot be written where the user asked."""


class StyleSpecError(StreamstyleError):
    """A --style value does not parse or names a style that does not exist."""


class WeightsNotFoundError(StreamstyleError):
    """The package that ships a model's pretrained weights is not installed."""


class DeviceError(StreamstyleError):
    """The requested device or precision is not available on this machine."""


class DisplayError(StreamstyleError):
    """There is no display to open a window on."""


class ConfigError(StreamstyleError):
    """A pipeline file or command-line setting has an unknown key or a wrong value."""


class ServerError(StreamstyleError):
    """A server cannot start where it was asked to listen."""


class ClusterError(StreamstyleError):
    """The Ray cluster to spread work over cannot be joined or started."""


class BatchError(StreamstyleError):
    """Some files of a batch failed (each is said, and in its manifest); the others were done."""
