"""`streamstyle stream` in a subprocess, watched through its --stats-json file, for tests of live outputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .conftest import STARTUP_S, wait_for_count, wait_until


class Restreamer:
    """`streamstyle stream SOURCE OUTPUTS... OPTIONS...`, its log in a file and its stats in a JSON file (rewritten
    every second, and once more when it stops). Failed waits carry the log as it is when they fail."""

    def __init__(self, tmp_path: Path, source: str, *outputs: str, options: tuple[str, ...] = ()):
        self.log_path, self.stats_path = tmp_path / "stream.log", tmp_path / "stats.json"
        command = [sys.executable, "-m", "streamstyle.cli", "stream", source, *outputs, *options, "--stats-json",
                   str(self.stats_path)]  # fmt: skip
        # faulthandler: a process that hangs is sent SIGABRT, and writes where each of its threads is to the log.
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=self.log_path.open("w"),
                                        env={**os.environ, "PYTHONFAULTHANDLER": "1"})  # fmt: skip

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def stats(self) -> dict:
        try:
            return json.loads(self.stats_path.read_text())
        except FileNotFoundError:
            return {}

    def wait_for_stats(self, condition: Callable[[dict], object], seconds: float, what: str) -> dict:
        """The stats once `condition` holds, within `seconds`."""
        try:
            return wait_until(lambda: (s := self.stats()) and condition(s) and s, seconds, what)
        except AssertionError as error:
            raise AssertionError(f"{error}; log:\n{self.log}") from None

    def wait_for_count(self, figure: Callable[[dict], int], target: int, what: str, stall: float = 60.0) -> dict:
        """The stats once `figure` of them reaches `target`, for as long as it keeps growing (conftest.wait_for_count);
        the first stats may take STARTUP_S to come."""
        try:
            wait_for_count(lambda: figure(s) if (s := self.stats()) else 0, target, what, stall)
        except AssertionError as error:
            raise AssertionError(f"{error}; log:\n{self.log}") from None
        return self.stats()

    def finish(self) -> int:
        """Wait for it to end by itself (a file source played to its end: coming up, then the file's length); its exit
        status."""
        return self.process.wait(timeout=2 * STARTUP_S)

    def stop(self) -> int:
        """SIGTERM, as a service manager stops it: the outputs are closed properly. Its exit status; a failure that
        carries its log, with where each thread was, when it does not end."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=STARTUP_S)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGABRT)
            self.process.wait(timeout=STARTUP_S)
            raise AssertionError(f"still running {STARTUP_S:g} s after SIGTERM; log:\n{self.log}") from None

    def __enter__(self):
        return self

    def __exit__(self, *_exc):
        self.process.kill()
        self.process.wait()
