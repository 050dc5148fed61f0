"""Start-up time of the command line: `streamstyle --help` and `streamstyle file --help` against a bare Python
start and against loading the libraries a job needs (torch, PyAV, OpenCV: what every --help cost before the
commands loaded them lazily); and a job's own start, its libraries and a built-in style's network ready to paint
(weights and graphs from the cache, warmed beforehand). Interleaved rounds, medians, ratios to the bare start.

    python benchmarks/startup.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

# A file job's imports, then what it builds before its first frame.
JOB = "import streamstyle.apps.jobs, streamstyle; streamstyle.Stylizer(7)"
CASES = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "streamstyle --help": [sys.executable, "-m", "streamstyle.cli", "--help"],
    "streamstyle file --help": [sys.executable, "-m", "streamstyle.cli", "file", "--help"],
    "import torch, av, cv2": [sys.executable, "-c", "import torch, av, cv2"],
    "a job, ready to paint": [sys.executable, "-c", JOB],
}


def seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    for command in CASES.values():
        seconds(command)  # warm the file cache
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.rounds):
        for name, command in CASES.items():
            times[name].append(seconds(command))
    baseline = statistics.median(times["python -c pass"])
    print(f"{'':26}{'median s':>10}{'x bare start':>14}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:26}{median:10.3f}{median / baseline:14.1f}")


if __name__ == "__main__":
    main()
