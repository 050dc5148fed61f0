"""Flicker against cost: for each temporal mode (off, ema, flow) on real clips, the warping error of the output
(Lai et al. 2018; lower is steadier), its faithfulness (mean |output - per-frame output| on [0,1]; lower stays
closer to the per-frame stylization) and end-to-end fps, with ratios against `off`. Also saves a strip of
consecutive frames of each mode as PNG (--strips DIR) to look at. fps is the median of --runs runs.

    python benchmarks/temporal.py [--clips samples/clips/bikes.mp4 ...] [--style 7] [--smooth 0.6]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np

from streamstyle import SizeSettings, Stylizer, TemporalSettings, stylize_file
from streamstyle.io.images import write_image
from streamstyle.io.media import read_frames
from streamstyle.offline.evaluation import mean_difference, warping_error

REPO = Path(__file__).resolve().parent.parent
CLIPS = [REPO / "samples" / "clips" / name for name in ("bikes.mp4", "city_2s.mpg", "bigbuckbunny_2s.mp4")]


def strip(path: Path, start: int, count: int) -> np.ndarray:
    frames = [f for i, f in enumerate(read_frames(path)) if start <= i < start + count]
    return np.concatenate(frames, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=Path, nargs="+", default=CLIPS)
    parser.add_argument("--style", default="7")
    parser.add_argument("--smooth", type=float, default=TemporalSettings().smooth)
    parser.add_argument("--max-size", type=int, default=480, help="inference size (longer side)")
    parser.add_argument("--strips", type=Path, help="save 6 consecutive frames per mode here")
    parser.add_argument("--strip-start", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3, help="fps is the median of this many runs per mode")
    args = parser.parse_args()
    stylizer = Stylizer(args.style)
    sizes = SizeSettings(max_size=args.max_size)
    print(
        f"style {args.style}, smooth {args.smooth}, inference max size {args.max_size}, {stylizer.runtime.describe()}"
    )
    print(f"{'clip':<22} {'mode':<5} {'warp error':>10} {'vs off':>7} {'faithful':>9} {'fps':>6} {'vs off':>7}")
    with tempfile.TemporaryDirectory() as folder:
        for clip in args.clips:
            outputs, results = {}, {}
            for mode in ("off", "ema", "flow"):
                outputs[mode] = Path(folder) / f"{clip.stem}_{mode}.mp4"
                temporal = TemporalSettings(mode, args.smooth)
                fps = statistics.median(
                    stylize_file(clip, outputs[mode], stylizer, sizes=sizes, temporal=temporal).fps
                    for _ in range(args.runs)
                )
                error = warping_error(read_frames(clip), read_frames(outputs[mode]))
                faithful = mean_difference(read_frames(outputs[mode]), read_frames(outputs["off"]))
                results[mode] = (error.warping_error, faithful, fps)
                base_error, _, base_fps = results["off"]
                print(f"{clip.name:<22} {mode:<5} {error.warping_error:10.5f} {error.warping_error / base_error:6.2f}x "
                      f"{faithful:9.4f} {fps:6.2f} {fps / base_fps:6.2f}x", flush=True)  # fmt: skip
                if args.strips:
                    args.strips.mkdir(parents=True, exist_ok=True)
                    write_image(strip(outputs[mode], args.strip_start, 6), args.strips / f"{clip.stem}_{mode}.png")


if __name__ == "__main__":
    main()
