"""Stills: stylizing image files and folders, and the contact sheet of the built-in styles."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from streamstyle.apps.claims import plan_outputs
from streamstyle.core.errors import OutputError
from streamstyle.core.files import claim_output
from streamstyle.core.settings import DEFAULT_MAX_SIZE
from streamstyle.io.images import IMAGE_FILE, fit_within, read_image, write_image
from streamstyle.models.dumoulin import NUM_STYLES
from streamstyle.processing.runtime import Runtime
from streamstyle.processing.styles import BuiltinStyle
from streamstyle.processing.stylizer import Stylizer, load_style_model
from streamstyle.processing.tensors import frames_to_tensor, tensor_to_frames


@dataclass(frozen=True)
class StillResult:
    source: Path
    output: Path
    size: tuple[int, int]  # width, height written
    seconds: float


def stylize_images(
    source: str | Path,
    output: str | Path,
    paint: Stylizer | Callable[[np.ndarray, Path], np.ndarray],
    max_size: int | None = DEFAULT_MAX_SIZE,
    suffix: str = ".png",
    on_done: Callable[[StillResult], None] | None = None,
    overwrite: bool = False,
) -> list[StillResult]:
    """Stylize one image file, or every image in a folder, into `output` (a file or a folder): with a Stylizer,
    or any paint(image, output_path) such as optimisation (which saves intermediate pictures beside the output).
    An existing output that is not an image is replaced only with `overwrite`."""
    if isinstance(paint, Stylizer):
        stylizer = paint
        paint = lambda image, _output: stylizer(image)  # noqa: E731
    plan = plan_outputs(Path(source), Path(output), suffix, overwrite)
    results = []
    try:
        for folder in plan.new_folders:
            try:
                folder.mkdir()
            except OSError as error:
                raise OutputError(f"cannot make the output folder {folder}: {error.strerror or error}") from None
        for input_path, output_path in plan.pairs:
            start = time.perf_counter()
            image = fit_within(read_image(input_path), max_size)
            write_image(paint(image, output_path), output_path)
            size = (image.shape[1], image.shape[0])
            result = StillResult(input_path, output_path, size, time.perf_counter() - start)
            results.append(result)
            if on_done:
                on_done(result)
    except BaseException:
        for folder in reversed(plan.new_folders):  # those still empty: a run that wrote nothing leaves nothing
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return results


def _batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def render_style_sheet(photo: np.ndarray, runtime: Runtime, tile: int = 256, columns: int = 7) -> np.ndarray:
    """The photo and its 26 built-in stylizations in a labelled grid, each sample of a batch with its own style:
    where auto chose a precision that keeps only some styles, every one as its fallback (fp32) paints it."""
    runtime = runtime.fallback or runtime
    small = fit_within(photo, tile)
    height, width = small.shape[:2]
    model = load_style_model("dumoulin26", runtime)
    content = frames_to_tensor(small[None], runtime.device)
    tiles = [("original", small)]
    styles = [BuiltinStyle(tuple(float(i == j) for j in range(NUM_STYLES))) for i in range(NUM_STYLES)]
    index = 0
    for batch in _batches(styles, 7):
        stylized = tensor_to_frames(model.stylize(content.expand(len(batch), -1, -1, -1), batch))
        for frame in stylized:
            tiles.append((f"style {index}", frame))
            index += 1
    gap, label = 8, 24
    rows = -(-len(tiles) // columns)
    sheet = Image.new("RGB", (columns * (width + gap) + gap, rows * (height + label + gap) + gap), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=16)
    for n, (name, image) in enumerate(tiles):
        row, column = divmod(n, columns)
        x, y = gap + column * (width + gap), gap + row * (height + label + gap)
        draw.text((x + 2, y + 2), name, fill="black", font=font)
        sheet.paste(Image.fromarray(image), (x, y + label))
    return np.asarray(sheet)


def write_style_sheet(photo_path: str | Path, output: str | Path, runtime: Runtime, tile: int = 256) -> Path:
    output = Path(output)
    claim_output(output, [photo_path], IMAGE_FILE)
    with torch.inference_mode():
        sheet = render_style_sheet(read_image(photo_path), runtime, tile)
    write_image(sheet, output)
    return output
