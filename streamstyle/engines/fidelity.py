"""How close a reduced precision (bf16, int8) paints a style to fp32: measured on real video frames, each style
once, against the bound its precision must keep; the verdicts are kept on disk for later runs."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from streamstyle.core.files import AtomicFile
from streamstyle.io.images import read_image

CALIBRATION = Path(__file__).parent / "calibration"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Bound:
    """What a reduced precision must keep of a style against fp32 on 8-bit pictures, on every frame."""

    psnr: float
    ssim: float

    def holds(self, least_psnr: float, least_ssim: float) -> bool:
        """Whether a style whose least PSNR and SSIM against fp32 over the frames are these is kept."""
        return least_psnr >= self.psnr and least_ssim >= self.ssim


# The parity bounds of the engines' issue (14): int8 35 dB and SSIM 0.98; bf16 40 dB, its SSIM held as int8's.
BOUNDS = {"bf16": Bound(40.0, 0.98), "int8": Bound(35.0, 0.98)}


@cache
def calibration_pictures() -> np.ndarray:
    """Frames of real video ([N,3,360,640] float32 in [0,1], NCHW): street scenes, a city at night, animation."""
    paths = sorted(CALIBRATION.glob("*.jpg"))
    return np.stack([read_image(path) for path in paths]).transpose(0, 3, 1, 2).astype(np.float32) / 255.0


def to_8bit(images: np.ndarray) -> np.ndarray:
    """[B,3,H,W] float in [0,1] → [B,H,W,3] float32 holding the 8-bit values a picture gets."""
    return np.round(np.clip(images, 0.0, 1.0) * 255.0).transpose(0, 2, 3, 1).astype(np.float32)


def psnr(first: np.ndarray, second: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two 8-bit pictures ([H,W,C], values 0-255, uint8 or float): the
    difference is taken in float64, never in the pictures' own type (uint8 would wrap around)."""
    error = float(np.mean((np.asarray(first, np.float64) - np.asarray(second, np.float64)) ** 2))
    return float("inf") if error == 0 else 10.0 * float(np.log10(255.0**2 / error))


def ssim(first: np.ndarray, second: np.ndarray) -> float:
    """Structural similarity (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5) of two 8-bit pictures ([H,W,C],
    values 0-255), the mean over pixels and channels."""
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def blur(image: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(image, (11, 11), 1.5)

    mean1, mean2 = blur(first), blur(second)
    variance1 = blur(first * first) - mean1 * mean1
    variance2 = blur(second * second) - mean2 * mean2
    covariance = blur(first * second) - mean1 * mean2
    numerator = (2 * mean1 * mean2 + c1) * (2 * covariance + c2)
    denominator = (mean1 * mean1 + mean2 * mean2 + c1) * (variance1 + variance2 + c2)
    return float(np.mean(numerator / denominator))


def least_error(reduced: np.ndarray, fp32: np.ndarray) -> tuple[float, float]:
    """(least PSNR, least SSIM) over a batch of outputs of a reduced precision against the fp32 ones ([B,3,H,W]
    in [0,1])."""
    pairs = list(zip(to_8bit(reduced), to_8bit(fp32), strict=True))
    return min(psnr(a, b) for a, b in pairs), min(ssim(a, b) for a, b in pairs)


Paint = Callable[[str, dict[str, np.ndarray]], np.ndarray]  # (precision, a network's inputs) → its output


class StyleChecks:
    """Whether `precision` paints each style (a sample's conditioning inputs: built-in style weights, a painting's
    vector, or none) within its bound of fp32 on every calibration frame. On photos it then holds too: measured for
    int8 on all 26 built-in styles. Checked the first time a style comes, a frame at a time (the shape a 640x360
    video compiles anyway), and kept in `path`; a style not kept is said once. `graph`: what `paint` runs for the
    precision, where it has more than one graph (int8's); the precision itself by default."""

    def __init__(self, precision: str, path: Path, paint: Paint, graph: str | None = None) -> None:
        self.precision, self.path, self.paint, self.graph = precision, path, paint, graph or precision
        self.bound = BOUNDS[precision]
        self._verdicts = load_verdicts(path)
        self._said: set[str] = set()
        self._checking = threading.Lock()  # stylizers built at once (live sessions) check their styles in turn

    def keeps(self, style: dict[str, np.ndarray], say: bool = True) -> bool:
        """Whether the precision keeps `style`; `say`: a style it does not keep is said (once), where the caller
        asked for this precision."""
        key = hashlib.sha256(b"".join(array.tobytes() for array in style.values())).hexdigest()[:16]
        with self._checking:
            if key not in self._verdicts:
                errors = []
                for picture in calibration_pictures():
                    arrays = {"content": picture[None], **style}
                    errors.append(least_error(self.paint(self.graph, arrays), self.paint("fp32", arrays)))
                self._verdicts[key] = [min(error[0] for error in errors), min(error[1] for error in errors)]
                save_verdicts(self.path, self._verdicts)
            least_psnr, least_ssim = self._verdicts[key]
        keeps = self.bound.holds(least_psnr, least_ssim)
        if not keeps and say and key not in self._said:
            self._said.add(key)
            log.warning("%s changes this style too much (PSNR %.1f dB, SSIM %.3f against fp32 on video frames; it "
                        "needs %.0f dB and %.2f): it runs in fp32", self.precision, least_psnr, least_ssim,
                        self.bound.psnr, self.bound.ssim)  # fmt: skip
        return keeps


def load_verdicts(path: Path) -> dict[str, list[float]]:
    """What a precision kept of each style checked before: (least PSNR, least SSIM) by the style's digest."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # none yet, or a file a crash left unreadable: check again


def save_verdicts(path: Path, verdicts: dict[str, list[float]]) -> None:
    with AtomicFile(path, replace_concurrent=True) as partial:
        partial.write_text(json.dumps(verdicts, indent=1, sort_keys=True))
