"""Stills: stylizing image files and folders, and the contact sheet of the built-in styles."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from streamstyle.core.errors import InputError, OutputError
from streamstyle.core.files import claim_output, files_in
from streamstyle.core.settings import DEFAULT_MAX_SIZE
from streamstyle.io.images import IMAGE_FILE, IMAGE_SUFFIXES, fit_within, read_image, write_image
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


@dataclass(frozen=True)
class StillsPlan:
    """What a run writes: an output per input, and the folders it makes for them first."""

    pairs: list[tuple[Path, Path]]  # input, output
    new_folders: list[Path]  # outermost first; removed again by a run that writes nothing into them


def _missing_folders(folder: Path) -> list[Path]:
    """`folder` and those of its parents that do not exist yet, outermost first."""
    return list(reversed(list(itertools.takewhile(lambda path: not path.exists(), [folder, *folder.parents]))))


def plan_outputs(source: Path, output: Path, suffix: str = ".png", overwrite: bool = False) -> StillsPlan:
    """The outputs for an image file or a folder of them, checked before any work is done (`claim_output`);
    where OUTPUT is a folder still to be made, that it can be."""
    if not source.exists():
        raise InputError(f"input not found: {source}")
    if source.is_dir():
        inputs = files_in(source, IMAGE_SUFFIXES, "images")
        # A name with an image suffix that does not exist yet is meant as a file, not as a folder to make.
        if not output.is_dir() and (output.exists() or output.suffix.lower() in IMAGE_SUFFIXES):
            raise OutputError(f"input {source} is a folder, so the output must be a folder too, not {output}")
        pairs = [(p, output / (p.stem + suffix)) for p in inputs]
    elif output.is_dir() or (output.suffix == "" and not output.exists()):
        pairs = [(source, output / (source.stem + suffix))]
    else:
        pairs = [(source, output)]
    new_folders = _missing_folders(output) if pairs[0][1].parent == output else []
    if new_folders:
        claim_output(new_folders[0])  # made inside a folder that exists and is writable
    inputs = [input_path for input_path, _ in pairs]
    written: dict[Path, Path] = {}
    for input_path, output_path in pairs:
        if output_path in written:
            raise OutputError(f"{written[output_path].name} and {input_path.name} would both be written to "
                              f"{output_path}; rename one")  # fmt: skip
        written[output_path] = input_path
        if not new_folders:  # nothing is in a new folder yet, to be written over
            claim_output(output_path, inputs, IMAGE_FILE, overwrite)  # in place, a.jpg must not become a.png
        if output_path.suffix.lower() not in IMAGE_SUFFIXES:
            raise OutputError(f"unsupported output image type {output_path.suffix!r} for {output_path}")
    return StillsPlan(pairs, new_folders)


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
    """The photo and its 26 built-in stylizations in a labelled grid, each sample of a batch with its own style."""
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
