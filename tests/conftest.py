import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "samples"
PHOTOS = sorted((SAMPLES / "photos").iterdir())
PAINTINGS = sorted((SAMPLES / "paintings").iterdir())

# Converted weights go to a cache shared by the whole run (and by CI runs on the same clone).
os.environ.setdefault("STREAMSTYLE_CACHE_DIR", str(REPO / ".cache" / "streamstyle"))
torch.manual_seed(0)


@pytest.fixture(scope="session")
def cpu():
    from streamstyle.processing.runtime import resolve_runtime

    return resolve_runtime("cpu", "fp32", channels_last=False)


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    from streamstyle.io.images import read_image

    return {path.stem: read_image(path) for path in PHOTOS}


def wait_until(condition: Callable[[], object], seconds: float, what: str, poll: float = 0.25) -> object:
    """Poll `condition` until it returns something truthy, for at most `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(poll)
    raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
