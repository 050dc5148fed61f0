"""End-to-end `stylize_file` fps next to model-only fps (the same stylize stage on frames already in memory)
on the same clip and settings. The pipeline overlaps decode and encode with the model, so end-to-end should
come close to model-only. Medians of --runs, all in this process.

    python benchmarks/file_pipeline.py [--clip samples/clips/bigbuckbunny_2s.mp4] [--size 640x360] [--style 7]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import av

from streamstyle import EncoderSettings, SizeSettings, Stylizer, TemporalSettings, stylize_file
from streamstyle.io.media import open_video
from streamstyle.io.video_file import FileSource
from streamstyle.processing.stages import stylize_stage

REPO = Path(__file__).resolve().parent.parent


def scaled_copy(source: Path, target: Path, width: int, height: int) -> None:
    """The clip re-encoded at width x height (audio copied), as the benchmark input."""
    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        in_video = inp.streams.video[0]
        video = out.add_stream("libx264", rate=in_video.average_rate)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.time_base = video.codec_context.time_base = in_video.time_base
        video.options = {"crf": "18", "preset": "fast"}
        audio = {s.index: out.add_stream_from_template(s) for s in inp.streams.audio}
        for packet in inp.demux(in_video, *inp.streams.audio):
            if packet.stream.type == "audio":
                if packet.dts is not None:
                    packet.stream = audio[packet.stream.index]
                    out.mux(packet)
                continue
            for frame in packet.decode():
                scaled = frame.reformat(width, height, "yuv420p")
                scaled.pts, scaled.time_base = frame.pts, frame.time_base
                out.mux(video.encode(scaled))
        out.mux(video.encode(None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=REPO / "samples" / "clips" / "bigbuckbunny_2s.mp4")
    parser.add_argument("--size", default="640x360")
    parser.add_argument("--style", default="7")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--preset", default=EncoderSettings().preset)
    parser.add_argument("--codec-threads", type=int, default=0, help="0: stylize_file's choice")
    parser.add_argument("--temporal", default="off", help="smoothing costs are measured by benchmarks/temporal.py")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    stylizer = Stylizer(args.style)
    encoder = EncoderSettings(preset=args.preset, threads=args.codec_threads)
    batch = stylizer.runtime.default_batch_size
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / f"clip_{args.size}.mp4"
        scaled_copy(args.clip, clip, width, height)
        with open_video(clip) as container:
            items = list(FileSource(container, set()))
        frames = sum(1 for item in items if hasattr(item, "image"))
        originals = [item.image for item in items if hasattr(item, "image")]
        stage = stylize_stage(lambda: stylizer, batch, SizeSettings())
        list(stage(iter(items)))  # warm-up
        model_fps, file_fps = [], []
        for _ in range(args.runs):
            for item, image in zip((i for i in items if hasattr(i, "image")), originals, strict=True):
                item.image = image
            start = time.perf_counter()
            list(stage(iter(items)))
            model_fps.append(frames / (time.perf_counter() - start))
            temporal = TemporalSettings(args.temporal)
            report = stylize_file(clip, Path(folder) / "out.mp4", stylizer, batch_size=batch, encoder=encoder,
                                  temporal=temporal)
            file_fps.append(report.fps)
    model, file = statistics.median(model_fps), statistics.median(file_fps)
    print(f"clip {args.clip.name} at {args.size}, {frames} frames, style {args.style}, {stylizer.runtime.describe()}, "
          f"batch {batch}, x264 preset {encoder.preset}, temporal {args.temporal}")  # fmt: skip
    print(f"model-only   {model:6.2f} fps  (runs: {', '.join(f'{v:.2f}' for v in model_fps)})")
    print(f"end-to-end   {file:6.2f} fps  (runs: {', '.join(f'{v:.2f}' for v in file_fps)})")
    print(f"end-to-end / model-only = {file / model:.0%}")


if __name__ == "__main__":
    main()
