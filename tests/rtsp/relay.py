#!/usr/bin/python3
"""RTSP relay (H.264, optionally + AAC) on GStreamer's gst-rtsp-server, so tests can run a real RTSP server locally.

Run it with Debian's /usr/bin/python3: `gi` is not in the project venv. Debian packages:
    python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
    gstreamer1.0-plugins-bad (h264parse) gstreamer1.0-plugins-ugly (x264enc, only for /test)

For every --path NAME (H.264 only) and --av-path NAME (H.264, then AAC):
    rtsp://HOST:PORT/NAME      RECORD: one publisher ANNOUNCEs/RECORDs here (RTP over TCP or UDP)
    rtsp://HOST:PORT/NAME/out  PLAY:   readers get what is currently published on /NAME
plus rtsp://HOST:PORT/test     PLAY:   a videotestsrc -> x264enc source that needs no publisher.
The publisher's tracks must match the path exactly: an audio track on a --path is refused (ANNOUNCE 415),
and a video-only publisher on an --av-path is refused too.

On stdout, flushed: `RTSP_RELAY_LISTENING port=N`, `RTSP_RELAY_PUBLISHER path=NAME` (at ANNOUNCE, before the
tracks are checked),
`RTSP_RELAY_PUBLISHER_GONE path=NAME readers=K` and `RTSP_RELAY_STOPPED`. Exits on SIGTERM/SIGINT.
"""

import argparse
import contextlib
import os
import signal
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstApp", "1.0")
# Importing GstApp is what gives appsink/appsrc their pull_sample/push_buffer/end_of_stream methods.
from gi.repository import GLib, Gst, GstApp, GstRtspServer  # noqa: E402, F401

# Sink/source element names per track; the relay copies each track's access units from RECORD to every PLAY.
VIDEO, AUDIO = "video", "audio"
# config-interval=-1: SPS/PPS in-band before every IDR access unit (FFmpeg publishers send them only in the SDP),
# so late readers can start at the next keyframe. This is the ONLY h264parse: see PLAY_VIDEO.
RECORD_VIDEO = (
    "rtph264depay name=depay0 ! h264parse config-interval=-1 ! video/x-h264,stream-format=byte-stream,alignment=au "
    "! appsink name=video emit-signals=true sync=false max-buffers=60 drop=true"
)
RECORD_AUDIO = (
    "rtpmp4gdepay name=depay1 ! aacparse ! appsink name=audio emit-signals=true sync=false max-buffers=60 drop=true"
)
# No second h264parse: with config-interval it puts SPS/PPS before *each IDR slice*, which splits the multi-slice
# frames of x264 tune=zerolatency in two and the decoder shows green garbage.
PLAY_VIDEO = (
    "appsrc name=video is-live=true do-timestamp=true format=time "
    "caps=video/x-h264,stream-format=byte-stream,alignment=au ! rtph264pay name=pay0 pt=96 config-interval=0"
)
# No caps here: the AAC caps (with codec_data) come with every pushed sample from the publisher's stream.
PLAY_AUDIO = "appsrc name=audio is-live=true do-timestamp=true format=time ! rtpmp4gpay name=pay1 pt=97"


class Relay:
    """Fans the access units of one RECORD session (publisher) out to the appsrcs of every PLAY session (reader)."""

    def __init__(self, name: str, tracks: tuple[str, ...]) -> None:
        self.name, self.tracks = name, tracks
        self.lock, self.readers = threading.Lock(), []

    def on_sample(self, sink) -> Gst.FlowReturn:
        """Streaming thread of the RECORD media: one access unit of one track."""
        sample, track = sink.pull_sample(), sink.get_name()
        with self.lock:
            readers = list(self.readers)
        for sources in readers:
            buffer = sample.get_buffer().copy()
            buffer.pts = buffer.dts = Gst.CLOCK_TIME_NONE  # appsrc do-timestamp=true re-stamps on push
            sources[track].push_sample(Gst.Sample.new(buffer, sample.get_caps(), None, None))
        return Gst.FlowReturn.OK

    def record_configure(self, _factory, media) -> None:
        for track in self.tracks:
            media.get_element().get_by_name(track).connect("new-sample", self.on_sample)
        media.connect("unprepared", self.publisher_gone)
        print(f"RTSP_RELAY_PUBLISHER path={self.name}", flush=True)

    def publisher_gone(self, _media) -> None:
        """EOS to every reader: rtpbin sends RTCP BYE and FFmpeg/PyAV readers see EOF instead of stalling."""
        with self.lock:
            readers, self.readers = self.readers, []
        for sources in readers:
            for source in sources.values():
                source.end_of_stream()
        print(f"RTSP_RELAY_PUBLISHER_GONE path={self.name} readers={len(readers)}", flush=True)

    def play_configure(self, _factory, media) -> None:
        sources = {track: media.get_element().get_by_name(track) for track in self.tracks}
        with self.lock:
            self.readers.append(sources)

        def gone(_media) -> None:
            with self.lock:
                if sources in self.readers:
                    self.readers.remove(sources)

        media.connect("unprepared", gone)


def add_path(mounts, name: str, audio: bool) -> None:
    """/NAME (RECORD) and /NAME/out (PLAY). The publisher's SDP must list exactly these tracks, video first."""
    relay = Relay(name, (VIDEO, AUDIO) if audio else (VIDEO,))
    record = GstRtspServer.RTSPMediaFactory()
    record.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
    record.set_latency(0)
    record.set_launch(f"( {RECORD_VIDEO} {RECORD_AUDIO if audio else ''} )")
    record.connect("media-configure", relay.record_configure)
    mounts.add_factory(f"/{name}", record)
    play = GstRtspServer.RTSPMediaFactory()
    play.set_shared(False)  # one pipeline per reader: an ended session never poisons the next one
    play.set_launch(f"( {PLAY_VIDEO} {PLAY_AUDIO if audio else ''} )")
    play.connect("media-configure", relay.play_configure)
    mounts.add_factory(f"/{name}/out", play)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8554, help="0 = pick a free port (printed)")
    parser.add_argument("--path", action="append", default=[], help="H.264 publish path, repeatable (default: in)")
    parser.add_argument("--exit-on-stdin-eof", action="store_true", help="quit when the parent (stdin pipe) goes")
    parser.add_argument("--av-path", action="append", default=[], help="H.264 + AAC publish path, repeatable")
    args = parser.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    # Restarting on the same port works at once: gst-rtsp-server binds with SO_REUSEADDR.
    # The default pool has ONE thread for all clients: a reader's DESCRIBE blocks in it (waiting for the first
    # frames) and starves the publisher's session, a deadlock. Give clients their own threads.
    server.get_thread_pool().set_max_threads(16)
    mounts = server.get_mount_points()
    for name in args.path or ([] if args.av_path else ["in"]):
        add_path(mounts, name.strip("/"), audio=False)
    for name in args.av_path:
        add_path(mounts, name.strip("/"), audio=True)
    test = GstRtspServer.RTSPMediaFactory()
    test.set_shared(True)
    test.set_launch(
        "( videotestsrc is-live=true ! video/x-raw,width=640,height=360,framerate=30/1 ! videoconvert "
        "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=30 "
        "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )
    mounts.add_factory("/test", test)
    if server.attach(None) == 0:
        sys.exit(f"RTSP_RELAY_ERROR cannot bind {args.address}:{args.port}")
    print(f"RTSP_RELAY_LISTENING port={server.get_bound_port()}", flush=True)
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    if args.exit_on_stdin_eof:  # a test runner killed with SIGKILL must not leave a relay behind
        GLib.io_add_watch(
            GLib.IOChannel.unix_new(0),
            GLib.PRIORITY_DEFAULT,
            GLib.IOCondition.IN | GLib.IOCondition.HUP,
            lambda *_: loop.quit(),
        )
    loop.run()
    with contextlib.suppress(BrokenPipeError):  # stdout is gone too when the parent died
        print("RTSP_RELAY_STOPPED", flush=True)
    # Out without finalising Python: the server's client threads still deliver samples to the Python callbacks,
    # and one that does while the interpreter is torn down crashes it (SIGSEGV on a SIGTERM, seen once in a loaded
    # run of test_relay_restarts_on_same_port).
    os._exit(0)


if __name__ == "__main__":
    main()
