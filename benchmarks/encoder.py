"""What the x264 encoder costs the file job, per preset and thread count: wall and CPU milliseconds per frame,
bitrate and PSNR against the pictures it was given, medians of --runs. The pictures are stylized frames at the
model's size, scaled to the clip's size and converted in the same pass as the file sink does, so the cost is
the sink's. On a machine whose cores the model keeps busy, CPU time per frame is the figure that decides:
every millisecond the encoder spends is one the model does not get.

    python benchmarks/encoder.py [--clip samples/clips/bigbuckbunny_2s.mp4] [--max-size 640] [--runs 3]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from streamstyle import EncoderSettings, SizeSettings, Stylizer
from streamstyle.core.frames import Frame
from streamstyle.engines.fidelity import psnr
from streamstyle.io.media import encodable_picture, read_frames
from streamstyle.processing.stages import stylize_stage

REPO = Path(__file__).resolve().parent.parent
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "medium")
THREADS = (1, 2, 0)


def stylized_frames(clip: Path, max_size: int) -> list[Frame]:
    frames = [Frame(index, image, index, 1, Fraction(1, 25)) for index, image in enumerate(read_frames(clip))]
    return list(stylize_stage(lambda: Stylizer("7", device="cpu"), 1, SizeSettings(max_size))(iter(frames)))


def encode(frames: list[Frame], encoder: EncoderSettings) -> tuple[float, float, bytes]:
    """(wall seconds, CPU seconds of the whole process, the MP4) for encoding every frame."""
    height, width = frames[0].shape
    buffer = io.BytesIO()
    wall, cpu = time.perf_counter(), time.process_time()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream(encoder.codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, encoder.pix_fmt
        stream.codec_context.options = encoder.options()
        stream.codec_context.thread_count = encoder.threads
        for frame in frames:
            picture = encodable_picture(frame.image, (height, width), encoder.pix_fmt, None, 1)
            picture.pts = frame.index
            container.mux(stream.encode(picture))
        container.mux(stream.encode(None))
    return time.perf_counter() - wall, time.process_time() - cpu, buffer.getvalue()


def median_psnr(video: bytes, frames: list[Frame]) -> float:
    """Median PSNR of the decoded video against the pictures as the sink scaled them (before x264)."""
    height, width = frames[0].shape
    values = []
    with av.open(io.BytesIO(video)) as container:
        for decoded, frame in zip(container.decode(video=0), frames, strict=True):
            given = encodable_picture(frame.image, (height, width), "yuv420p", None, 1).to_ndarray(format="rgb24")
            values.append(psnr(decoded.to_ndarray(format="rgb24").astype(np.float32), given.astype(np.float32)))
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=REPO / "samples" / "clips" / "bigbuckbunny_2s.mp4")
    parser.add_argument("--max-size", type=int, default=640)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    frames = stylized_frames(args.clip, args.max_size)
    height, width = frames[0].shape
    seconds = len(frames) / 25
    print(f"{args.clip.name}: {len(frames)} frames stylized at {args.max_size} px, encoded at {width}x{height}, "
          f"libx264 crf 18, medians of {args.runs}")  # fmt: skip
    print(f"{'preset':10s} {'threads':>7s} {'wall ms/frame':>14s} {'CPU ms/frame':>13s} {'kbit/s':>8s} {'PSNR':>6s}")
    for preset in PRESETS:
        for threads in THREADS:
            encoder = EncoderSettings(preset=preset, threads=threads)
            runs = [encode(frames, encoder) for _ in range(args.runs)]
            wall = statistics.median(run[0] for run in runs) / len(frames) * 1000
            cpu = statistics.median(run[1] for run in runs) / len(frames) * 1000
            video = runs[0][2]
            print(f"{preset:10s} {threads or 'auto':>7} {wall:14.1f} {cpu:13.1f} "
                  f"{len(video) * 8 / seconds / 1000:8.0f} {median_psnr(video, frames):6.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
