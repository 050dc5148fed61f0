"""Glass-to-glass latency of live sessions over WebRTC against `streamstyle serve`, with one, two and three
sessions at once: median and p95, pictures delivered per second, and the server's CPU use.

    python -m benchmarks.webrtc [--sizes 256,480] [--sessions 1,2,3] [--seconds 15] [--fps 15]

Each session is an aiortc client on 127.0.0.1 sending a 640x360 photo at --fps with its frame counter painted
into it (tests.rtsp.publish.stamp). The server runs style 7 at the fixed size (`--fixed-size`) at strength 0: the
network runs in full and the photo is mixed back, so the counter can be read from each picture that comes back.
Latency: from sending a counter to receiving the picture that shows it (encode, network, decode, the server's
pipeline and the way back).
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
from tests.rtsp.publish import read_stamp
from tests.web.browser import PageServer
from tests.web.rtc import Call, StillCamera, start_call

CAMERA = (360, 640)
PHOTO = Path("samples/photos/skimage_coffee.png")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def latencies(call: Call) -> list[float]:
    """Milliseconds from sending each counter to receiving it back, for the pictures whose counter reads back."""
    assert isinstance(call.camera, StillCamera)
    found = []
    for picture in call.pictures:
        index = read_stamp(resized(picture.image, CAMERA))
        sent = call.camera.sent_at.get(index)
        if sent is not None and 0 <= picture.arrival - sent < 10:
            found.append((picture.arrival - sent) * 1000)
    return found


async def measure(origin: str, sessions: int, seconds: float, fps: float, camera: np.ndarray) -> list[Call]:
    starting = (start_call(origin, StillCamera(camera, fps, counter=True), style="7", strength=0.0, smoothing=False)
                for _ in range(sessions))  # fmt: skip
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
    args = parser.parse_args()
    camera = np.ascontiguousarray(resized(read_image(PHOTO), CAMERA))
    print(f"{args.fps:g} fps camera at {CAMERA[1]}x{CAMERA[0]}, {args.seconds:g} s per run, style 7 at the size given")
    print(f"{'size':>5} {'sessions':>8} {'median ms':>10} {'p95 ms':>7} {'fps back':>9} {'read':>6} {'server CPU':>11}")
    for size in (int(size) for size in args.sizes.split(",")):
        for sessions in (int(count) for count in args.sessions.split(",")):
            with PageServer("--live-size", str(size), "--fixed-size", "--max-sessions", str(sessions)) as server:
                asyncio.run(measure(server.origin, 1, 3.0, args.fps, camera))  # warm-up: the engine's first runs
                cpu, started = cpu_seconds(server.pid), time.monotonic()
                calls = asyncio.run(measure(server.origin, sessions, args.seconds, args.fps, camera))
                cpu_share = (cpu_seconds(server.pid) - cpu) / (time.monotonic() - started)
            found = [ms for call in calls for ms in latencies(call)]
            figures = median_and_p95(found)
            received = sum(len(call.pictures) for call in calls)
            median, p95 = figures if figures else (float("nan"), float("nan"))
            print(f"{size:>5} {sessions:>8} {median:>10.0f} {p95:>7.0f} {received / sessions / args.seconds:>9.1f} "
                  f"{len(found) / max(received, 1):>6.0%} {cpu_share:>10.0%}")  # fmt: skip


if __name__ == "__main__":
    main()
