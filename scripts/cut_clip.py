"""Cut the first SECONDS of a media file by copying packets (no re-encode), for the small sample clips.

python scripts/cut_clip.py IN OUT SECONDS
"""

import sys

import av


def cut(source: str, output: str, seconds: float) -> None:
    with av.open(source) as inp, av.open(output, "w", format=inp.format.name.split(",")[0]) as out:
        streams = [s for s in inp.streams if s.type in ("video", "audio")]
        mapping = {s.index: out.add_stream_from_template(s) for s in streams}
        out.metadata.update(inp.metadata)
        for packet in inp.demux(*streams):
            if packet.dts is None:
                continue
            if packet.pts is not None and packet.pts * packet.time_base >= seconds:
                continue
            packet.stream = mapping[packet.stream.index]
            out.mux(packet)


if __name__ == "__main__":
    cut(sys.argv[1], sys.argv[2], float(sys.argv[3]))
