"""The command line starts at once: no --help loads torch, PyAV or OpenCV, `import streamstyle` stays light until a
model is asked for, and the help of every command reads as recorded in tests/data/help (a change shows in the diff)."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

HELP = Path(__file__).parent / "data" / "help"
COMMANDS = ["", "file", "batch", "webcam", "stream", "run", "image", "bench", "train", "eval-temporal", "export",
            "serve", "export-web", "styles", "models"]
HEAVY = ("torch", "av", "cv2")


def loaded_after(code: str) -> tuple[str, list[str]]:
    """What `code` printed, and which of the heavy libraries it had loaded, in a fresh interpreter."""
    report = f"import sys; print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", f"{code}\n{report}"], capture_output=True, text=True, timeout=120,
                          env={"COLUMNS": "100", "PATH": "/usr/bin:/bin"})  # fmt: skip
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


def test_the_installed_command_and_the_module_both_run():
    """The `streamstyle` script pip writes from [project.scripts], and `python -m streamstyle.cli`, start the CLI."""
    script = Path(sys.executable).with_name("streamstyle")
    for command in ([str(script)], [sys.executable, "-m", "streamstyle.cli"]):
        done = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("streamstyle")
