"""A real Ray cluster on 127.0.0.1 for the tests: a head and more nodes, each started by `ray start` as a user
would, with CPUs of its own; every Ray process of this machine is stopped when the block ends."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

from .conftest import STARTUP_S, free_port

RAY = str(Path(sys.executable).with_name("ray"))
# Ray's workers run at nice 15 unless told: beside the busy loops of a loaded test run they would starve. The
# cluster and its drivers share a token of their own, whatever ~/.ray holds.
ENV = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_worker_niceness="0", RAY_AUTH_MODE="token",
           RAY_AUTH_TOKEN=secrets.token_hex(32))


class RayCluster:
    def __init__(self, nodes: int = 2, cpus: int = 1) -> None:
        self.nodes, self.cpus = nodes, cpus
        self.address = f"127.0.0.1:{free_port()}"

    def _ray(self, *args: str) -> None:
        done = subprocess.run([RAY, *args], env=ENV, capture_output=True, text=True, timeout=STARTUP_S)
        assert done.returncode == 0, done.stdout + done.stderr

    def __enter__(self) -> RayCluster:
        port = self.address.rsplit(":", 1)[1]
        common = ("--node-ip-address=127.0.0.1", f"--num-cpus={self.cpus}", "--num-gpus=0")
        try:
            self._ray("start", "--head", f"--port={port}", "--include-dashboard=false", "--disable-usage-stats",
                      *common)  # fmt: skip
            for _ in range(self.nodes - 1):
                self._ray("start", f"--address={self.address}", *common)
        except BaseException:
            self.stop()
            raise
        return self

    @staticmethod
    def _newest_raylet() -> str:
        return subprocess.run(["pgrep", "-n", "-f", "ray/raylet"], capture_output=True, text=True).stdout.strip()

    def newest_node_is_painting(self) -> bool:
        """Whether a StyleWorker of the node started last is inside a task (Ray titles it ray::CLASS.METHOD)."""
        found = subprocess.run(["pgrep", "-P", self._newest_raylet(), "-f", r"^ray::StyleWorker\.run"],
                               capture_output=True)  # fmt: skip
        return found.returncode == 0

    def kill_newest_node(self) -> None:
        """The node started last leaves as a machine that fails does: its raylet and workers killed at once."""
        raylet = self._newest_raylet()
        workers = subprocess.run(["pgrep", "-P", raylet], capture_output=True, text=True).stdout.split()
        for pid in [raylet, *workers]:
            os.kill(int(pid), signal.SIGKILL)

    def stop(self) -> None:
        subprocess.run([RAY, "stop", "--force"], env=ENV, capture_output=True, timeout=STARTUP_S)

    def __exit__(self, *_) -> None:
        self.stop()
