"""Throughput cost of each temporal mode, measured in interleaved rounds (off, ema, flow, off, ...) so that the
machine's drift hits every mode alike; prints median fps and the ratio to `off`.

    python benchmarks/temporal_cost.py [--clip samples/clips/bigbuckbunny_2s.mp4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from streamstyle import SizeSettings, Stylizer, TemporalSettings, stylize_file

REPO = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=REPO / "samples" / "clips" / "bigbuckbunny_2s.mp4")
    parser.add_argument("--style", default="7")
    parser.add_argument("--max-size", type=int, default=480)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    stylizer = Stylizer(args.style)
    fps: dict[str, list[float]] = {"off": [], "ema": [], "flow": []}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):
            for mode, runs in fps.items():
                sizes, temporal = SizeSettings(max_size=args.max_size), TemporalSettings(mode)
                report = stylize_file(args.clip, Path(folder) / "out.mp4", stylizer, sizes=sizes, temporal=temporal)
                runs.append(report.fps)
    base = statistics.median(fps["off"])
    print(f"{args.clip.name}, style {args.style}, inference max size {args.max_size}, {args.rounds} rounds")
    for mode, runs in fps.items():
        median = statistics.median(runs)
        listed = ", ".join(f"{r:.2f}" for r in runs)
        print(f"{mode:<5} {median:6.2f} fps  {median / base:5.2f}x of off  (runs: {listed})")


if __name__ == "__main__":
    main()
