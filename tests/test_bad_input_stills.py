"""Issue 18 for stills: every bit depth read as it is meant, tiny and huge pictures, and outputs that cannot be
written each end in one line and exit status 2, with nothing lost and nothing half-written left behind."""

import os
import resource
import signal
import struct
import subprocess
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from streamstyle.core.errors import InputError
from streamstyle.io.images import IMAGE_FILE, read_image

from .conftest import one_line_error, run_cli

GRADIENT_16 = (np.arange(48 * 64).reshape(48, 64) * 21).astype(np.uint16)  # 0 to 64491 of 65535


def noise(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def write_png(path: Path, image: np.ndarray) -> Path:
    Image.fromarray(image).save(path)
    return path


def write_flat_png(path: Path, width: int, height: int) -> Path:
    """A black 1-bit PNG of any size, compressed row by row: a huge picture in a small file, made in little memory."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    row = bytes(1 + -(-width // 8))  # the filter byte, then the pixels, 8 to a byte
    compressor = zlib.compressobj(9)
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, greyscale
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return path


# Point 6: every mode and bit depth, scaled to 8 bits rather than clipped.


FLOAT_RAMP = (GRADIENT_16 / 65535).astype(np.float32)
DEEP_GREYSCALE = {  # a picture with more than 8 bits a sample, the file type it is saved as, its white
    "I;16 png": (lambda: Image.fromarray(GRADIENT_16), "png", 65535),
    "I;16B tiff": (lambda: Image.frombytes("I;16B", (64, 48), GRADIENT_16.astype(">u2").tobytes()), "tif", 65535),
    "I 32-bit tiff of 16-bit samples": (lambda: Image.fromarray(GRADIENT_16.astype(np.int32)), "tif", 65535),
    "F float tiff from 0 to 1": (lambda: Image.fromarray(FLOAT_RAMP), "tif", 1.0),
}


@pytest.mark.parametrize("name", DEEP_GREYSCALE)
def test_deep_greyscale_is_scaled_to_8_bits_not_clipped(tmp_path, name):
    make, suffix, white = DEEP_GREYSCALE[name]
    picture = make()
    picture.save(tmp_path / f"deep.{suffix}")
    image = read_image(tmp_path / f"deep.{suffix}")
    assert image.shape == (*GRADIENT_16.shape, 3) and image.dtype == np.uint8
    expected = np.round(np.asarray(picture, np.float64) / white * 255)[..., None]
    difference = np.abs(image - expected)
    assert difference.max() <= 1, f"{difference.max()} levels off, mean {image.mean():.1f} for {expected.mean():.1f}"


def write_associated_alpha_tiff(path: Path, grey: int, alpha: int) -> Path:
    """A greyscale TIFF whose grey is premultiplied by its alpha (Pillow's mode "La"), which Pillow cannot write."""
    Image.fromarray(np.full((4, 4, 2), (grey, alpha), np.uint8), "LA").save(path)
    unassociated_alpha = struct.pack("<HHIH", 338, 3, 1, 2)  # the ExtraSamples tag: one short, 2
    path.write_bytes(path.read_bytes().replace(unassociated_alpha, struct.pack("<HHIH", 338, 3, 1, 1)))
    return path


def test_other_modes_read_as_the_colours_they_hold(tmp_path):
    """16-bit colour (Pillow keeps the high byte), alpha (over white), palette, CMYK, 1-bit and Lab pictures."""
    colour_16 = np.zeros((4, 6, 3), np.uint16)
    colour_16[..., 2] = np.arange(6) * 13107  # cv2 writes BGR: the red channel from 0 to 65535
    cv2.imwrite(str(tmp_path / "rgb16.png"), colour_16)
    palette = Image.fromarray(noise(4, 4)).quantize(4)
    palette.save(tmp_path / "p.png")
    Image.fromarray(np.full((4, 4, 2), (0, 128), np.uint8), "LA").save(tmp_path / "la.png")
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    Image.new("1", (4, 4), 1).save(tmp_path / "one_bit.png")
    Image.new("LAB", (4, 4), (128, 128, 128)).save(tmp_path / "lab.tif")
    write_associated_alpha_tiff(tmp_path / "la_associated.tif", 32, 128)
    red_ramp = np.zeros((4, 6, 3), np.uint8)
    red_ramp[..., 0] = np.arange(6) * 51
    expected = {
        "rgb16.png": red_ramp,
        "p.png": np.asarray(palette.convert("RGB")),
        "la.png": (127, 127, 127),  # half-transparent black over white
        "cmyk.jpg": (255, 0, 0),
        "one_bit.png": (255, 255, 255),
        "lab.tif": (119, 119, 119),  # L 50 %, neutral: sRGB mid grey
        "la_associated.tif": (159, 159, 159),  # 63 at half alpha over white
    }
    for name, colours in expected.items():
        image = read_image(tmp_path / name).astype(int)
        assert np.abs(image - np.broadcast_to(colours, image.shape)).max() <= 2, f"{name}: {image[0, :2].tolist()}"


def test_floating_point_pictures_without_a_value_read_as_black(tmp_path):
    """NaN is black and infinities are the ends of the scale (they came out as whatever the cast made of them)."""
    samples = np.full((4, 4), 0.5, np.float32)
    samples[0, 0], samples[1, 1], samples[2, 2] = np.nan, np.inf, -np.inf
    Image.fromarray(samples, "F").save(tmp_path / "float.tif")
    expected = np.full((4, 4), 128, np.uint8)
    expected[0, 0], expected[1, 1], expected[2, 2] = 0, 255, 0
    assert np.array_equal(read_image(tmp_path / "float.tif"), np.repeat(expected[..., None], 3, axis=2))


# Point 7: pictures too large for memory are refused, in one line and before a pixel is decoded.

BOMB = (14000, 14000)  # twice Pillow's limit and more: it raised DecompressionBombError
OVER_THE_LIMIT = (10000, 10000)  # between Pillow's limit and twice it: it printed a DecompressionBombWarning


@pytest.mark.parametrize("size", [BOMB, OVER_THE_LIMIT], ids=["bomb", "over the limit"])
def test_pictures_over_the_pixel_limit_are_refused_in_one_line(tmp_path, size):
    huge = write_flat_png(tmp_path / "huge.png", *size)
    with pytest.raises(InputError, match=f"too large.*{size[0] * size[1]} pixels"):
        read_image(huge)
    assert IMAGE_FILE.recognizes(huge)  # still a picture: an output may replace it
    out = tmp_path / "out.png"
    one_line_error(run_cli("image", huge, out), "too large", str(huge))
    assert not out.exists()


@pytest.mark.slow  # loads the style models
def test_huge_paintings_are_refused_in_one_line(tmp_path):
    photo = write_png(tmp_path / "photo.png", noise(16, 16))
    bomb = write_flat_png(tmp_path / "bomb.png", *BOMB)
    out = tmp_path / "out.png"
    one_line_error(run_cli("image", photo, out, "--style", bomb), "too large", str(bomb))
    one_line_error(run_cli("image", photo, out, "--style", bomb, "--method", "optimize"), "too large")
    assert not out.exists()


# Point 7: the smallest pictures, as photos and as paintings, with either model and with optimisation.


@pytest.mark.slow  # loads the style models
@pytest.mark.parametrize(
    "style",
    [["--style", "3", "--model", "dumoulin26"], ["--style", "{one_pixel}"], ["--style", "{one_pixel}",
     "--strength", "0.5"], ["--style", "{one_pixel}", "--method", "optimize", "--steps", "2", "--preserve-color"]],
    ids=["dumoulin26", "magenta", "magenta strength", "optimize"],
)  # fmt: skip
def test_one_and_two_pixel_pictures_are_stylized_at_their_size(tmp_path, style):
    photos = tmp_path / "photos"
    photos.mkdir()
    sizes = {"one": (1, 1), "two": (2, 2), "row": (1, 9), "column": (7, 2)}
    for name, (height, width) in sizes.items():
        write_png(photos / f"{name}.png", noise(height, width))
    one_pixel = write_png(tmp_path / "one_pixel_painting.png", noise(1, 1, seed=1))
    out = tmp_path / "out"
    result = run_cli("image", photos, out, *[arg.format(one_pixel=one_pixel) for arg in style], "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for name, (height, width) in sizes.items():
        assert read_image(out / f"{name}.png").shape == (height, width, 3)


@pytest.mark.slow  # loads the style model
def test_a_16_bit_picture_is_stylized_as_its_8_bit_equal_and_paints_as_it(tmp_path):
    from streamstyle.processing.stylizer import MagentaModel

    photos = tmp_path / "photos"
    photos.mkdir()
    write_png(photos / "deep.png", GRADIENT_16)
    write_png(photos / "shallow.png", np.round(GRADIENT_16 / 257).astype(np.uint8))
    out = tmp_path / "out"
    result = run_cli("image", photos, out, "--style", "3", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    deep_out, shallow_out = read_image(out / "deep.png"), read_image(out / "shallow.png")
    assert np.abs(deep_out.astype(int) - shallow_out).mean() < 1, "the 16-bit input read as a different picture"
    magenta = MagentaModel(resolve_cpu())
    deep_vector, shallow_vector = (magenta.painting_vector(photos / name) for name in ("deep.png", "shallow.png"))
    assert (deep_vector - shallow_vector).abs().max() < 0.05, "the 16-bit painting read as a different picture"


def resolve_cpu():
    from streamstyle.processing.runtime import resolve_runtime

    return resolve_runtime("cpu", "fp32", channels_last=False)


# Point 7: outputs that cannot take a picture: devices, read-only places.


def test_a_device_as_output_is_refused_in_one_line(tmp_path):
    photo = write_png(tmp_path / "photo.png", noise(8, 8))
    one_line_error(run_cli("image", photo, os.devnull), "character device")


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder nothing can be written into: a read-only file system where this user may mount one (root, which
    ignores folder permissions), otherwise a folder without write permission."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"root, and may not mount a read-only file system: {mounted.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_read_only_outputs_are_refused_in_one_line(tmp_path, read_only_folder):
    photos = tmp_path / "photos"
    photos.mkdir()
    photo = write_png(photos / "photo.png", noise(8, 8))
    one_line_error(run_cli("image", photo, read_only_folder / "out.png"), "not writable")
    one_line_error(run_cli("image", photos, read_only_folder / "new" / "folder"), "not writable")
    assert list(read_only_folder.iterdir()) == []


# Point 11: a folder of pictures goes to a folder, and a run that writes nothing leaves nothing.


def test_a_folder_to_an_image_file_name_is_refused(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    write_png(photos / "photo.png", noise(8, 8))
    one_line_error(run_cli("image", photos, tmp_path / "out.png"), "must be a folder")
    assert not (tmp_path / "out.png").exists()


def test_a_folder_run_never_writes_over_another_input_or_twice_to_one_output(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    write_png(photos / "a.png", noise(8, 8))
    Image.fromarray(noise(8, 8, seed=1)).save(photos / "a.jpg")
    before = {path.name: path.read_bytes() for path in photos.iterdir()}
    # In place, a.jpg's result would be a.png, another input; and a.png's too.
    one_line_error(run_cli("image", photos, photos), "would overwrite its input")
    one_line_error(run_cli("image", photos, tmp_path / "out"), "a.jpg and a.png would both be written to")
    assert {path.name: path.read_bytes() for path in photos.iterdir()} == before
    assert not (tmp_path / "out").exists()


def test_the_pictures_saved_on_the_way_never_write_over_an_input_or_another_kind_of_file(tmp_path):
    photo = write_png(tmp_path / "cat.scale2.step0004.png", noise(8, 8))  # the name of the last saved picture
    before = photo.read_bytes()
    optimize = ("--method", "optimize", "--style", "x.png", "--steps", "4", "--scales", "2", "--save-every", "2")
    one_line_error(run_cli("image", photo, tmp_path / "cat.png", *optimize), "would overwrite its input")
    assert photo.read_bytes() == before
    notes = tmp_path / "dog.scale1.step0002.png"
    notes.write_text("not a picture")
    one_line_error(run_cli("image", photo, tmp_path / "dog.png", *optimize), "exists and is not a")
    assert notes.read_text() == "not a picture"
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([notes.name, photo.name])


def limit_file_size(limit: int):
    """For a child process: files larger than `limit` bytes cannot be written (EFBIG, as on a full disk)."""

    def limit_then_exec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the writer instead of failing the write
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return limit_then_exec


@pytest.mark.slow  # loads the style model
def test_a_folder_run_that_cannot_write_leaves_no_empty_output_folder(tmp_path, cpu):
    from streamstyle.processing.stylizer import load_style_model

    load_style_model("dumoulin26", cpu)  # its converted weights cached, so the run below only writes pictures
    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in range(2):
        write_png(photos / f"photo{seed}.png", noise(64, 64, seed))  # about 12 KB each as PNG
    out = tmp_path / "new" / "out"
    result = run_cli("image", photos, out, "--style", "3", "--device", "cpu", preexec_fn=limit_file_size(4096))
    one_line_error(result, "cannot write")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["photos"]


# --overwrite: an existing file that is not a picture is replaced only when asked.


@pytest.mark.slow  # loads the style model
def test_overwrite_replaces_an_output_that_is_not_an_image(tmp_path):
    photo = write_png(tmp_path / "photo.png", noise(8, 8))
    notes = tmp_path / "notes.png"
    notes.write_text("not a picture")
    one_line_error(run_cli("image", photo, notes), "exists and is not a", "--overwrite")
    assert notes.read_text() == "not a picture"
    result = run_cli("image", photo, notes, "--style", "3", "--device", "cpu", "--overwrite")
    assert result.returncode == 0, result.stderr
    assert read_image(notes).shape == (8, 8, 3)
