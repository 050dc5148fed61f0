"""A strip of frames for the README: the input's frames on top, the stylized output's below, side by side.

python scripts/video_strip.py INPUT.mp4 OUTPUT.mp4 STRIP.jpg [--frames 20,26,32,38] [--height 160]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from streamstyle.io.images import write_image
from streamstyle.io.media import read_frames


def picked(path: Path, indices: list[int], height: int) -> list[np.ndarray]:
    frames = {i: f for i, f in enumerate(read_frames(path)) if i in indices}
    missing = sorted(set(indices) - set(frames))
    if missing:
        raise SystemExit(f"{path} has no frame {missing[0]}")
    return [cv2.resize(frames[i], (round(frames[i].shape[1] * height / frames[i].shape[0]), height),
                       interpolation=cv2.INTER_AREA) for i in indices]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("strip", type=Path)
    parser.add_argument("--frames", default="20,26,32,38", help="frame indices, comma-separated")
    parser.add_argument("--height", type=int, default=160, help="height of each frame in the strip")
    args = parser.parse_args()
    indices = [int(i) for i in args.frames.split(",")]
    gap = 4
    rows = []
    for path in (args.input, args.output):
        tiles = picked(path, indices, args.height)
        spaced = [np.pad(t, ((0, 0), (0, gap), (0, 0)), constant_values=255) for t in tiles]
        rows.append(np.concatenate(spaced, axis=1)[:, :-gap])
    rows.insert(1, np.full((gap, rows[0].shape[1], 3), 255, np.uint8))
    write_image(np.concatenate(rows, axis=0), args.strip)


if __name__ == "__main__":
    main()
