"""CPU cost of carrying the source's audio through `streamstyle stream`: the same clip (the bikes clip looped to
20 s with a 48 kHz stereo AAC track) restreamed live to a file with --audio and --no-audio, in interleaved
rounds; prints the median CPU seconds (user + system) of each, the ratio, and the frames out.

    python benchmarks/stream_audio_cost.py [--rounds 3] [--max-size 256]
"""

from __future__ import annotations

import argparse
import re
import resource
import statistics
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parent.parent
BIKES = REPO / "samples" / "clips" / "bikes.mp4"
RATE = 48000


def write_clip(path: Path, loops: int) -> float:
    """The bikes clip `loops` times over, with a stereo tone as long as the pictures; returns its seconds."""
    with av.open(str(path), "w") as out:
        with av.open(str(BIKES)) as source:
            width, height = source.streams.video[0].width, source.streams.video[0].height
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt, video.options = width, height, "yuv420p", {"preset": "veryfast"}
        audio = out.add_stream("aac", rate=RATE)
        audio.layout = "stereo"
        frames = 0
        for _ in range(loops):
            with av.open(str(BIKES)) as source:
                for frame in source.decode(video=0):
                    picture = av.VideoFrame.from_ndarray(frame.to_ndarray(format="rgb24"), format="rgb24")
                    picture.pts, picture.time_base = frames, Fraction(1, 25)
                    out.mux(video.encode(picture))
                    frames += 1
        seconds = frames / 25
        tone = (0.2 * np.sin(2 * np.pi * 330 * np.arange(round(seconds * RATE)) / RATE)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            chunk = av.AudioFrame.from_ndarray(np.stack([tone[start : start + 1024]] * 2), format="fltp",
                                               layout="stereo")  # fmt: skip
            chunk.sample_rate, chunk.pts, chunk.time_base = RATE, start, Fraction(1, RATE)
            out.mux(audio.encode(chunk))
        out.mux(video.encode(None))
        out.mux(audio.encode(None))
    return seconds


def restream(clip: Path, output: Path, flag: str, max_size: int) -> tuple[float, int]:
    """(CPU seconds, frames out) of one `streamstyle stream` run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = [sys.executable, "-m", "streamstyle.cli", "stream", str(clip), str(output), "--style", "7",
               "--max-size", str(max_size), flag]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    frames_out = int(re.search(r"frames in, (\d+) out", done.stderr).group(1))
    return after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, frames_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-size", type=int, default=256)
    args = parser.parse_args()
    runs: dict[str, list[tuple[float, int]]] = {"--audio": [], "--no-audio": []}
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "bikes_with_sound.mp4"
        seconds = write_clip(clip, loops=2)
        for _ in range(args.rounds):
            for flag, results in runs.items():
                results.append(restream(clip, Path(folder) / "out.mkv", flag, args.max_size))
    print(f"{seconds:.0f} s clip (640x272, 25 fps, 48 kHz stereo AAC), style 7, model at {args.max_size} px, "
          f"{args.rounds} rounds")  # fmt: skip
    base = statistics.median(cpu for cpu, _ in runs["--no-audio"])
    for flag, results in runs.items():
        cpu = statistics.median(cpu for cpu, _ in results)
        frames = ", ".join(str(out) for _, out in results)
        print(f"{flag:<11} {cpu:6.2f} CPU s  {cpu / base:5.3f}x of --no-audio  frames out: {frames}")


if __name__ == "__main__":
    main()
