"""Publish a clip to an RTSP URL in real time, as a camera or encoder would: `python -m tests.rtsp.publish URL`.

It runs as a subprocess (see server.Publisher) so a test can SIGKILL it mid-stream, which is what a crashed or
unplugged publisher looks like to the relay. Frames can carry a barcode of their index to check loss and order.
stdout lines, flushed: `PUBLISH_STARTED` once the first frame is sent (the RTSP session is up), then
`PUBLISH_DONE frames=N error=NAME` (error=none on a clean end) unless killed. SIGTERM/SIGINT end it cleanly.
"""

from __future__ import annotations

import argparse
import signal
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CLIPS = Path(__file__).resolve().parents[2] / "samples" / "clips"
DEFAULT_CLIP = CLIPS / "bikes.mp4"
BLOCK = 16  # barcode block side in px: survives H.264 at ultrafast quality
AUDIO_RATE = 48000
BITS = 16  # frame index modulo 65536, MSB first, left to right in the top-left corner


def stamp(image: np.ndarray, index: int) -> None:
    """Draw `index` as BITS black/white BLOCKxBLOCK blocks in the top row of an RGB image, in place."""
    for bit in range(BITS):
        on = (index >> (BITS - 1 - bit)) & 1
        image[:BLOCK, bit * BLOCK : (bit + 1) * BLOCK] = 255 if on else 0


def read_stamp(image: np.ndarray) -> int:
    """Read back what stamp() drew, from a decoded RGB frame (block centres only, so codec ringing is ignored)."""
    quarter = BLOCK // 4
    row = image[quarter : BLOCK - quarter].astype(np.float32).mean(axis=(0, 2))
    value = 0
    for bit in range(BITS):
        value = (value << 1) | int(row[bit * BLOCK + quarter : (bit + 1) * BLOCK - quarter].mean() > 127)
    return value


def clip_frames(clip: Path) -> Iterator[np.ndarray]:
    """The clip's frames as RGB arrays, looped forever (re-decoded each loop to keep memory flat)."""
    while True:
        with av.open(str(clip)) as container:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")


def tone(first: int, count: int) -> av.AudioFrame:
    """`count` samples of a 440 Hz sine from sample `first` on, as a 48 kHz mono frame with pts."""
    t = np.arange(first, first + count) / AUDIO_RATE
    frame = av.AudioFrame.from_ndarray((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], "fltp", "mono")
    frame.sample_rate, frame.pts, frame.time_base = AUDIO_RATE, first, Fraction(1, AUDIO_RATE)
    return frame


def publish(
    url: str,
    clip: Path = DEFAULT_CLIP,
    seconds: float = 10.0,
    barcode: bool = True,
    audio: bool = False,
    transport: str = "tcp",
    rate: float | None = None,
) -> str:
    """Send `seconds` of the looped clip to `url` paced at the clip's rate (or `rate`); returns the PUBLISH_DONE line.

    `audio` adds an AAC tone track after the video (the relay's --av-path layout). The RTSP connection is made
    at the first mux(), so connection errors (and a relay going away, as BrokenPipeError) are raised from there;
    they end the run and are reported with the frames sent so far.
    """
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    with av.open(str(clip)) as probe:
        source = probe.streams.video[0]
        fps, width, height = source.average_rate or Fraction(25), source.width, source.height
    if rate:
        fps = Fraction(rate).limit_denominator(1001)
    gop = str(round(fps))
    sent = samples = 0
    try:
        with av.open(url, "w", format="rtsp", options={"rtsp_transport": transport}, timeout=5.0) as container:
            video = container.add_stream("libx264", rate=fps)
            video.width, video.height, video.pix_fmt = width, height, "yuv420p"
            # Live-encoder settings: no B-frames, and an IDR every second so late readers join quickly.
            video.options = {"preset": "ultrafast", "tune": "zerolatency", "g": gop, "keyint_min": gop}
            video.options |= {"sc_threshold": "0", "bf": "0"}
            sound = container.add_stream("aac", rate=AUDIO_RATE) if audio else None
            if sound is not None:
                sound.layout = "mono"
            start = time.monotonic()
            for image in clip_frames(clip):
                due = start + float(sent / fps)
                if stopping or due >= start + seconds:
                    break
                time.sleep(max(0.0, due - time.monotonic()))
                if barcode:
                    stamp(image, sent)
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame.pts, frame.time_base = sent, 1 / fps
                container.mux(video.encode(frame))
                if sound is not None:
                    until = round((sent + 1) * AUDIO_RATE / fps)
                    container.mux(sound.encode(tone(samples, until - samples)))
                    samples = until
                if sent == 0:
                    print("PUBLISH_STARTED", flush=True)
                sent += 1
            container.mux(video.encode(None))
            if sound is not None:
                container.mux(sound.encode(None))
    except av.error.FFmpegError as error:
        return f"PUBLISH_DONE frames={sent} error={type(error).__name__}"
    return f"PUBLISH_DONE frames={sent} error=none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--no-barcode", dest="barcode", action="store_false")
    parser.add_argument("--audio", action="store_true", help="add an AAC tone track (for the relay's --av-path)")
    parser.add_argument("--transport", choices=("tcp", "udp"), default="tcp")
    parser.add_argument("--fps", type=float, help="send at this rate instead of the clip's")
    args = parser.parse_args()
    done = publish(args.url, args.clip, args.seconds, args.barcode, args.audio, args.transport, args.fps)
    print(done, flush=True)
    raise SystemExit(0 if done.endswith("error=none") else 1)


if __name__ == "__main__":
    main()
