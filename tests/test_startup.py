"""The command line starts at once: no --help loads torch, PyAV or OpenCV, `import streamstyle` stays light until a
model is asked for, a job loads no library its network does not need, and the help of every command reads as recorded
in tests/data/help (a change shows in the diff)."""

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

HELP = Path(__file__).parent / "data" / "help"
COMMANDS = ["", "file", "batch", "webcam", "stream", "run", "image", "bench", "train", "eval-temporal", "export",
            "serve", "export-web", "styles", "models"]
HEAVY = ("torch", "av", "cv2")


def loaded_after(code: str, libraries: tuple[str, ...] = HEAVY) -> tuple[str, list[str]]:
    """What `code` printed, and which of `libraries` it had loaded, in a fresh interpreter."""
    report = f"import sys; print('HEAVY', sorted(m for m in {libraries!r} if m in sys.modules))"
    cache = os.environ["STREAMSTYLE_CACHE_DIR"]  # conftest's: what the tests convert and export once
    environment = {"COLUMNS": "100", "PATH": "/usr/bin:/bin", "STREAMSTYLE_CACHE_DIR": cache}
    done = subprocess.run([sys.executable, "-c", f"{code}\n{report}"], capture_output=True, text=True, timeout=300,
                          env=environment)  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed, _, heavy = done.stdout.rpartition("HEAVY ")
    return printed, ast.literal_eval(heavy)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c or "streamstyle")
def test_help_loads_no_heavy_library_and_reads_as_before(command):
    args = [command, "--help"] if command else ["--help"]
    printed, heavy = loaded_after(
        "from streamstyle.cli.main import cli\n"
        f"try:\n    cli.main({args!r}, prog_name='streamstyle')\nexcept SystemExit:\n    pass"
    )
    assert heavy == []
    assert printed == (HELP / f"{command or 'main'}.txt").read_text()


def test_the_package_loads_a_model_library_only_when_asked():
    assert loaded_after("import streamstyle")[1] == []
    assert loaded_after("import streamstyle; streamstyle.SizeSettings(max_size=8)")[1] == []
    assert "torch" in loaded_after("import streamstyle; streamstyle.Stylizer")[1]
    with pytest.raises(AttributeError, match="no attribute 'Stylise'"):
        import streamstyle

        streamstyle.Stylise  # noqa: B018


def test_a_built_in_style_starts_without_what_only_other_networks_and_first_starts_need():
    """torchvision (magenta's predictor, VGG for training and metrics) and onnx (exporting, converting weights)
    took 1.5 s of every start, a dumoulin26 job's too, whose weights and graph were in the cache."""
    painting = ("import numpy as np, streamstyle\n"
                "stylizer = streamstyle.Stylizer(7, device='cpu', backend='openvino', precision='fp32')\n"
                "stylizer(np.zeros((64, 96, 3), np.uint8))")  # fmt: skip
    loaded_after(painting)  # the first start converts the weights and exports the graph, if no test did yet
    assert loaded_after(painting, ("torch", "openvino", "torchvision", "onnx"))[1] == ["openvino", "torch"]


def test_the_installed_command_and_the_module_both_run():
    """The `streamstyle` script pip writes from [project.scripts], and `python -m streamstyle.cli`, start the CLI."""
    script = Path(sys.executable).with_name("streamstyle")
    for command in ([str(script)], [sys.executable, "-m", "streamstyle.cli"]):
        done = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("streamstyle")
