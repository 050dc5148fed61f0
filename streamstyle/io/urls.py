"""What a source or target string names: a network URL, a live output's muxer, or a recording file."""

from __future__ import annotations

from urllib.parse import urlsplit

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "rtp", "srt")


# The muxer each kind of live target needs when the URL alone does not say it.
_TARGET_FORMATS = {"rtsp": "rtsp", "rtsps": "rtsp", "rtmp": "flv", "rtmps": "flv", "udp": "mpegts", "tcp": "mpegts",
                   "srt": "mpegts"}  # fmt: skip


def is_url(target: str) -> bool:
    return urlsplit(target).scheme in NETWORK_SCHEMES


def target_format(target: str) -> str | None:
    """The muxer for a live output: rtsp for rtsp://, flv for rtmp://, mpegts for udp://, hls for .m3u8;
    None lets FFmpeg choose from a file's extension."""
    if target.endswith(".m3u8"):
        return "hls"
    return _TARGET_FORMATS.get(urlsplit(target).scheme)


def is_file_target(target: str) -> bool:
    """A recording file, as opposed to a stream URL or an HLS playlist (which is written segment by segment)."""
    return not is_url(target) and target_format(target) != "hls"
