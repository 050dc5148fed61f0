"""Reading back what the pipeline wrote, and building inputs the samples lack (VFR, odd stream layouts)."""

from __future__ import annotations

import hashlib
import itertools
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from streamstyle.core.frames import Frame
from streamstyle.core.settings import SizeSettings
from streamstyle.processing.stages import resized, stylize_stage
from streamstyle.processing.stylizer import Stylizer


def video_timestamps(path: Path) -> list[Fraction]:
    """Presentation time of every decoded video frame, in seconds, in decode-output order."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [frame.pts * frame.time_base for frame in container.decode(stream)]


def audio_digest(path: Path, stream: int = 0) -> tuple[int, str]:
    """(packet count, md5 of all packet payloads) of an audio stream."""
    digest = hashlib.md5()
    count = 0
    with av.open(str(path)) as container:
        for packet in container.demux(container.streams.audio[stream]):
            if packet.dts is None:
                continue
            digest.update(bytes(packet))
            count += 1
    return count, digest.hexdigest()


def first_frame(path: Path, index: int = 0) -> np.ndarray:
    with av.open(str(path)) as container:
        for n, frame in enumerate(container.decode(video=0)):
            if n == index:
                return frame.to_ndarray(format="rgb24")
    raise IndexError(index)


def write_vfr_clip(path: Path, pts_ms: list[int], size: tuple[int, int] = (160, 96)) -> None:
    """H.264 with irregular frame times (a variable frame rate), time base 1/1000."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for i, pts in enumerate(pts_ms):
            image = np.zeros((size[1], size[0], 3), np.uint8)
            image[:, : (i * 7) % size[0]] = (200, 80, 40)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def _mux_tone(container: av.container.OutputContainer, audio: av.AudioStream, seconds: float) -> None:
    samples = (np.sin(np.arange(int(8000 * seconds)) * 2 * np.pi * 440 / 8000) * 12000).astype(np.int16)
    resampler = av.AudioResampler(format=audio.codec_context.format, layout="mono", rate=8000)
    for start in range(0, len(samples), 800):
        frame = av.AudioFrame.from_ndarray(samples[None, start : start + 800], format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, start
        for chunk in resampler.resample(frame):
            container.mux(audio.encode(chunk))
    container.mux(audio.encode(None))


def write_tone(path: Path, audio_codec: str, seconds: float = 1.0) -> None:
    """An audio-only file: a 440 Hz tone."""
    with av.open(str(path), "w") as container:
        audio = container.add_stream(audio_codec, rate=8000)
        audio.layout = "mono"
        _mux_tone(container, audio, seconds)


def write_audio_first_clip(path: Path, video_source: Path, audio_codec: str, seconds: float = 2.0) -> None:
    """A Matroska file whose stream 0 is audio (a tone in `audio_codec`) and stream 1 the video of
    `video_source` copied packet for packet."""
    with av.open(str(video_source)) as source, av.open(str(path), "w") as container:
        audio = container.add_stream(audio_codec, rate=8000)
        audio.layout = "mono"
        video = container.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is None or packet.pts * packet.time_base >= seconds:
                continue
            packet.stream = video
            container.mux(packet)
        _mux_tone(container, audio, seconds)


def write_rotated_clip(path: Path, frames: int = 10, size: tuple[int, int] = (128, 64)) -> None:
    """An H.264 mp4 stored landscape with a red square top-left, whose track header says 'turn 90 degrees
    clockwise to display' (as phones write portrait video). PyAV cannot set the display matrix, so the tkhd
    box's matrix is patched in place."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            image = np.full((size[1], size[0], 3), 40, np.uint8)
            image[:32, :32] = (220, 30, 30)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    data = bytearray(path.read_bytes())
    box = data.find(b"tkhd")
    matrix = box + 4 + (40 if data[box + 4] == 0 else 52)  # after the version 0 / 1 header fields
    struct.pack_into(">9i", data, matrix, 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))


def write_full_range_clip(path: Path, frames: int = 8, size: tuple[int, int] = (96, 64)) -> None:
    """H.264 in full ('pc', JPEG) range, tagged so: a grey ramp from black to white."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.codec_context.color_range = 2  # full range
        ramp = np.linspace(0, 255, size[0]).astype(np.uint8)
        image = np.repeat(np.repeat(ramp[None, :, None], size[1], axis=0), 3, axis=2)
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(
                format="yuv420p", src_colorspace="itu601", dst_colorspace="itu601", dst_color_range="JPEG"
            )
            frame.color_range = 2
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def sort_decoded(packet: av.Packet, pictures: list[float], sound: list[tuple[float, float, float]]) -> None:
    """Decode `packet` into the time of each picture, and the time, length and peak of each sound frame."""
    for frame in packet.decode():
        at = float(frame.pts * frame.time_base)
        if isinstance(frame, av.VideoFrame):
            pictures.append(at)
        else:
            sound.append((at, frame.samples / frame.sample_rate, float(np.abs(frame.to_ndarray()).max())))


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 images, in levels."""
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def live_model_output(image: np.ndarray, style: str, max_size: int) -> np.ndarray:
    """What a live chain's model stage makes of one frame (run at `max_size`, returned at the frame's size)."""
    stage = stylize_stage(lambda: Stylizer(style, device="cpu"), 1, SizeSettings(max_size))
    (frame,) = stage(iter([Frame(0, image.copy(), 0, 0, Fraction(1, 1000))]))
    return resized(frame.image, frame.shape)


def write_flash_clip(path: Path, seconds: int = 6, fps: int = 25, size: tuple[int, int] = (160, 120)) -> None:
    """A clip for checking audio against pictures: dark frames with a flash (3 frames, left half bright) at the
    start of every second, and silence with a 1 kHz beep (120 ms) starting with each flash. H.264 and AAC in MP4."""
    rate = 48000
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = *size, "yuv420p"
        video.options = {"bf": "0"}
        audio = container.add_stream("aac", rate=rate)
        audio.layout = "mono"
        for index in range(seconds * fps):
            image = np.full((size[1], size[0], 3), 40, np.uint8)
            if index % fps < 3:
                image[:, : size[0] // 2] = 220  # a half, not all: a style net's instance norms flatten any even tone
            picture = av.VideoFrame.from_ndarray(image, format="rgb24")
            picture.pts, picture.time_base = index, Fraction(1, fps)
            container.mux(video.encode(picture))
        t = np.arange(seconds * rate) / rate
        sound = np.where(t % 1 < 0.12, 0.5 * np.sin(2 * np.pi * 1000 * t), 0).astype(np.float32)
        for start in range(0, len(sound), 1024):
            chunk = av.AudioFrame.from_ndarray(sound[None, start : start + 1024], format="fltp", layout="mono")
            chunk.sample_rate, chunk.pts, chunk.time_base = rate, start, Fraction(1, rate)
            container.mux(audio.encode(chunk))
        container.mux(video.encode(None))
        container.mux(audio.encode(None))


# What write_flash_clip writes, as a live source for FFmpeg's lavfi that runs as long as it is read, in real time.
FLASH_SOURCE = (
    "color=c=0x282828:s=160x120:r=25,drawbox=w=80:h=120:c=0xdcdcdc:t=fill:enable='lt(mod(n,25),3)',realtime[out0];"
    "aevalsrc='if(lt(mod(t,1),0.12),0.5*sin(2*PI*1000*t),0)':s=48000,arealtime[out1]"
)


def flash_onsets(path: Path) -> list[tuple[float, float]]:
    """Where each flash of a write_flash_clip or FLASH_SOURCE (stylized or not) begins among the pictures: the times of
    the last dark picture and of the first bright one, in seconds."""
    with av.open(str(path)) as container:
        frames = [(float(f.pts * f.time_base), _left_over_right(f.to_ndarray(format="gray")))
                  for f in container.decode(video=0)]  # fmt: skip
    middle = (min(level for _, level in frames) + max(level for _, level in frames)) / 2
    return [(before, at) for (before, dark), (at, level) in itertools.pairwise(frames) if level > middle >= dark]


def _left_over_right(image: np.ndarray) -> float:
    half = image.shape[1] // 2
    return float(image[:, :half].mean()) - float(image[:, half:].mean())


def beep_times(path: Path) -> list[float]:
    """When each beep of a write_flash_clip or FLASH_SOURCE starts: seconds of the first loud sample after a silence."""
    with av.open(str(path)) as container:
        chunks = list(container.decode(audio=0))
    start = float(chunks[0].pts * chunks[0].time_base)
    sound = np.abs(np.concatenate([chunk.to_ndarray()[0] for chunk in chunks]))
    loud = np.flatnonzero(sound > 0.1)
    onsets = loud[np.insert(np.diff(loud) > chunks[0].sample_rate // 2, 0, True)]
    return [start + index / chunks[0].sample_rate for index in onsets]


def write_moving_clip(path: Path, frames: int, size: tuple[int, int] = (96, 64), fps: int = 25,
                      format: str | None = None, options: dict[str, str] | None = None) -> None:  # fmt: skip
    """H.264 of a gradient that moves a step every frame, in the container the suffix (or `format`) names;
    `options` go to the muxer (e.g. movflags=faststart: the index at the start)."""
    width, height = size
    ramp = np.add.outer(np.arange(height), np.arange(width))
    with av.open(str(path), "w", format=format, options=options or {}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frames):
            picture = np.stack([ramp + 3 * index, ramp[::-1] + index, np.full_like(ramp, 128)], axis=-1) % 256
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture.astype(np.uint8), format="rgb24")))
        container.mux(stream.encode(None))


def write_even_gop_clip(path: Path, video_source: Path, gop: int, width: int, tone_seconds: float, loops: int = 1
                        ) -> None:  # fmt: skip
    """The pictures of `video_source` (`loops` times over) at `width`, in H.264 with a keyframe every `gop` frames
    and nowhere else (no scene-cut keyframes), and a 440 Hz tone of `tone_seconds`."""
    with av.open(str(video_source)) as source, av.open(str(path), "w") as container:
        video_in = source.streams.video[0]
        height = round(video_in.height * width / video_in.width / 2) * 2
        video = container.add_stream("libx264", rate=video_in.average_rate, options={
            "preset": "veryfast", "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"})  # fmt: skip
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        audio = container.add_stream("aac", rate=8000)
        audio.layout = "mono"
        for _ in range(loops):
            source.seek(0)
            for frame in source.decode(video_in):
                picture = frame.to_ndarray(format="rgb24", width=width, height=height)
                container.mux(video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(video.encode(None))
        _mux_tone(container, audio, tone_seconds)


def write_damaged_copy(path: Path, source: Path, packets: list[int]) -> None:
    """`source` with the payload of the video packets at these places (in decode order; none a keyframe) replaced
    by noise, as a damaged disk or download would leave them."""
    with av.open(str(source)) as container:
        video = [packet for packet in container.demux(container.streams.video[0]) if packet.size]
        places = [(video[index].pos, video[index].size) for index in packets if not video[index].is_keyframe]
    assert len(places) == len(packets), "only packets between keyframes"
    data = bytearray(source.read_bytes())
    noise = np.random.default_rng(1)
    for position, size in places:
        # The NAL unit's length and header are left: the packet is still read, and refused by the decoder.
        data[position + 8 : position + size] = noise.integers(0, 256, size - 8, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
