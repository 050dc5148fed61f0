"""Glass-to-glass latency of live sessions over WebRTC against `streamstyle serve`, with one, two and three
sessions at once: median and p95, pictures delivered per second, and the server's CPU use.

    python -m benchmarks.webrtc [--sizes 256,480] [--sessions 1,2,3] [--seconds 15] [--fps 15] [--split-cores]
                                [--backend auto]

Each session is an aiortc client on 127.0.0.1 sending a 640x360 photo at --fps with its frame counter painted
into it (tests.rtsp.publish.stamp). The server runs style 7 at the fixed size (`--fixed-size`) at strength 0: the
network runs in full and the photo is mixed back, so the counter can be read from each picture that comes back.
Latency: from sending a counter to receiving the picture that shows it (encode, network, decode, the server's
pipeline and the way back). Each session sends sound too, a beep every BEEPS_S seconds, which the server holds
for the pictures' latency: "sound - pictures" is the median latency of the beeps (from sending a beep's start to
receiving it) less the pictures' median: how far the sound runs behind the pictures (ahead, when negative).
By default the server and the clients share the machine's cores; --split-cores gives the server the first core
and the clients the others, as a one-core server and clients on devices of their own would be.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from pathlib import Path

import numpy as np

from streamstyle.core.stats import median_and_p95
from streamstyle.io.images import read_image
from streamstyle.processing.stages import resized
from tests.web.browser import PageServer
from tests.web.rtc import Call, StillCamera, ToneMicrophone, picture_latencies, sound_behind, start_call

CAMERA = (360, 640)
BEEPS_S = 2.0  # longer than any latency here, so that each beep back is matched to the one sent
PHOTO = Path("samples/photos/skimage_coffee.png")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(origin: str, sessions: int, seconds: float, fps: float, camera: np.ndarray) -> list[Call]:
    starting = (start_call(origin, StillCamera(camera, fps, counter=True), microphone=ToneMicrophone(BEEPS_S),
                           style="7", strength=0.0, smoothing=False) for _ in range(sessions))  # fmt: skip
    calls = await asyncio.gather(*starting)
    await asyncio.sleep(seconds)
    await asyncio.gather(*(call.close() for call in calls))
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="256,480")
    parser.add_argument("--sessions", default="1,2,3")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--split-cores", action="store_true", help="the server on the first core, the clients on "
                        "the others")  # fmt: skip
    parser.add_argument("--backend", default="auto", help="the server's engine (streamstyle serve --backend)")
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    if args.split_cores and len(cores) < 2:
        parser.error("--split-cores needs two cores or more")
    camera = np.ascontiguousarray(resized(read_image(PHOTO), CAMERA))
    print(f"{args.fps:g} fps camera at {CAMERA[1]}x{CAMERA[0]}, {args.seconds:g} s per run, style 7 at the size given "
          f"on the {args.backend} engine")  # fmt: skip
    print(f"{'size':>5} {'sessions':>8} {'median ms':>10} {'p95 ms':>7} {'fps back':>9} {'read':>6} {'server CPU':>11} "
          f"{'sound - pictures ms':>20} {'off the wire ms':>16}")  # fmt: skip
    for size in (int(size) for size in args.sizes.split(",")):
        for sessions in (int(count) for count in args.sessions.split(",")):
            if args.split_cores:
                os.sched_setaffinity(0, cores[:1])  # what the server starts with, and so every thread of it
            server = PageServer("--live-size", str(size), "--fixed-size", "--max-sessions", str(sessions),
                                "--backend", args.backend)  # fmt: skip
            with server:
                if args.split_cores:
                    os.sched_setaffinity(0, cores[1:])  # this thread, and the clients' threads it starts
                asyncio.run(measure(server.origin, 1, 3.0, args.fps, camera))  # warm-up: the engine's first runs
                cpu, started = cpu_seconds(server.pid), time.monotonic()
                calls = asyncio.run(measure(server.origin, sessions, args.seconds, args.fps, camera))
                cpu_share = (cpu_seconds(server.pid) - cpu) / (time.monotonic() - started)
            found = [ms for call in calls for ms in picture_latencies(call)]
            figures = median_and_p95(found)
            received = sum(len(call.pictures) for call in calls)
            median, p95 = figures if figures else (float("nan"), float("nan"))
            skew, wire_skew = (sound_behind(calls, off_the_wire) for off_the_wire in (False, True))
            rate, read = received / sessions / args.seconds, len(found) / max(received, 1)
            print(f"{size:>5} {sessions:>8} {median:>10.0f} {p95:>7.0f} {rate:>9.1f} {read:>6.0%} {cpu_share:>10.0%} "
                  f"{skew if skew is not None else float('nan'):>20.0f} "
                  f"{wire_skew if wire_skew is not None else float('nan'):>16.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
