"""Live building blocks on their own: what a camera or URL opens with, the newest-frame slot, the live writer's
timestamps and its temporary name, the clock that keeps live audio in step, outputs other than RTSP (RTMP, UDP,
HLS) fed by `streamstyle stream`, and the source's audio carried through it."""

from __future__ import annotations

import contextlib
import shutil
import threading
from fractions import Fraction

import av
import numpy as np
import pytest

from streamstyle.core.errors import InputError
from streamstyle.core.frames import Frame
from streamstyle.core.settings import EncoderSettings
from streamstyle.io.live_audio import AudioChunk, AudioFormat
from streamstyle.io.live_source import LiveInput, LiveSource, Reconnect, SourceClock, live_input
from streamstyle.io.live_writer import LiveWriter
from streamstyle.io.urls import target_format
from streamstyle.processing.chain import NewestSlot

from .conftest import SAMPLES, STARTUP_S, free_port, run_cli, wait_for_count
from .media import FLASH_SOURCE, beep_times, flash_onsets, sort_decoded, video_timestamps, write_flash_clip
from .restreamer import Restreamer

# Live outputs, players and servers on 127.0.0.1.
pytestmark = [pytest.mark.slow, pytest.mark.network]

BIKES = SAMPLES / "clips" / "bikes.mp4"
# The writer lays the sound down as one unbroken track, taking stamps within 150 ms of the track's end as
# unbroken (io.live_writer._AUDIO_SLACK_MS): on a busy machine, whose stamps wobble more, the sound may run up to
# that far behind.
SOUND_SLACK = 0.15


def test_what_each_kind_of_live_input_opens_with(tmp_path):
    camera = live_input("/dev/null", "v4l2", (1280, 720), 30)  # a device path that exists here: no camera can
    assert (camera.format, camera.options) == ("v4l2", {"video_size": "1280x720", "framerate": "30"})
    with pytest.raises(InputError, match="no camera at /dev/video9"):
        live_input("9")
    network = live_input("rtsp://127.0.0.1:8554/cam", timeout=(10.0, 2.0))
    assert network.options == {"fflags": "nobuffer", "flags": "low_delay", "rtsp_transport": "tcp"}
    assert network.timeout == (10.0, 2.0)
    assert live_input(str(BIKES)).paced  # a file plays in real time, as a camera would deliver it
    with pytest.raises(InputError, match="source not found"):
        live_input(str(tmp_path / "nope.mp4"))
    assert not live_input("testsrc2", "lavfi").paced  # lavfi paces itself (realtime filter) or not at all


def test_targets_get_the_muxer_their_protocol_needs():
    assert [target_format(t) for t in ("rtsp://h/x", "rtmp://h/app/key", "udp://127.0.0.1:5000", "out/live.m3u8",
                                        "rec.mp4")] == ["rtsp", "flv", "mpegts", "hls", None]  # fmt: skip


def test_newest_slot_keeps_only_the_newest_and_counts_the_rest():
    slot = NewestSlot()
    for item in range(5):
        slot.put(item)
    assert slot.get(timeout=1) == 4 and slot.dropped == 4
    taker = threading.Thread(target=lambda: results.append(slot.get(timeout=5)))
    results: list[int] = []
    taker.start()
    slot.put(7)
    taker.join(timeout=5)
    assert results == [7] and slot.dropped == 4


def test_live_writer_keeps_capture_timing_and_renames_when_closed(tmp_path):
    out = tmp_path / "live.mp4"
    writer = LiveWriter(out, EncoderSettings(preset="ultrafast"), rate=25)
    image = np.zeros((91, 121, 3), np.uint8)  # odd sizes: cropped to even for yuv420p
    captured_ms = [1000, 1040, 1040, 1200, 1500]  # a late start, two frames in one ms, then frames dropped
    for index, pts in enumerate(captured_ms):
        writer.write(Frame(index, image, pts, 0, Fraction(1, 1000)))
        assert not out.exists()  # only the temporary name until closed
    writer.close()
    times = [float(t) for t in video_timestamps(out)]
    assert times == pytest.approx([0.0, 0.04, 0.041, 0.2, 0.5], abs=0.0015)
    with av.open(str(out)) as container:
        assert (container.streams.video[0].width, container.streams.video[0].height) == (120, 90)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.mp4"]


STREAM_OPTIONS = ("--style", "7", "--max-size", "96", "--temporal", "off")


class Receiver(threading.Thread):
    """Reads a network output as a player or an ingest server would, reopening it until stopped: how many pictures
    came (coded pictures, as an ingest server keeps them: a decoder's last pictures are lost when a connection ends
    with an error rather than an end of stream, as RTMP's does), the last one decoded, and the errors met."""

    def __init__(self, url: str, demuxer: str, options: dict[str, str]):
        super().__init__(daemon=True)
        self.url, self.demuxer, self.options = url, demuxer, options
        self.count, self.last, self.errors = 0, None, []
        self.stopped = threading.Event()
        self.start()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                timeout = (STARTUP_S, 10.0)  # listening for as long as the app may take to come up
                with av.open(self.url, format=self.demuxer, options=self.options, timeout=timeout) as container:
                    for packet in container.demux(video=0):
                        self.count += packet.size > 0  # the empty packet at the end only flushes the decoder
                        for frame in packet.decode():
                            self.last = frame.to_ndarray(format="rgb24")
            except av.error.FFmpegError as error:
                self.errors.append(str(error))
                continue  # no publisher yet (a slow start), or it went away: listen again


@pytest.mark.slow
@pytest.mark.network
def test_restream_to_an_rtmp_listener_udp_and_an_hls_playlist(tmp_path):
    # An RTMP server in listen mode, which keeps all it gets as a streaming service's ingest does (with nobuffer it
    # would drop what it probed), and a low-delay player on the UDP port.
    rtmp = Receiver(f"rtmp://127.0.0.1:{free_port()}/live/styled", "flv", {"listen": "1"})
    udp = Receiver(f"udp://127.0.0.1:{free_port()}", "mpegts", {"fflags": "nobuffer", "flags": "low_delay"})
    playlist = tmp_path / "hls" / "live.m3u8"
    playlist.parent.mkdir()
    try:
        with Restreamer(tmp_path, str(BIKES), rtmp.url, "--out", udp.url, "--out", str(playlist),
                        options=STREAM_OPTIONS) as app:  # fmt: skip
            assert app.finish() == 0, app.log
            sent = [output["frames"] for output in app.stats()["outputs"]]
        # However many pictures the model made of the clip: every one sent over RTMP came in; over UDP, which may
        # lose packets, whole pictures came.
        try:
            wait_for_count(lambda: rtmp.count, sent[0], "the pictures sent to the RTMP listener", stall=30)
        except AssertionError as error:
            raise AssertionError(f"{error}; the listener met {rtmp.errors}; the app said:\n{app.log}") from None
        wait_for_count(lambda: udp.count, 1, "pictures from the UDP output", stall=30)
    finally:
        rtmp.stopped.set()
        udp.stopped.set()
    assert rtmp.count == sent[0] and rtmp.last.shape == udp.last.shape == (272, 640, 3)  # the model ran at 96 px
    assert udp.last.std() > 10  # a picture decoded whole, not a blank or grey concealment
    segment = playlist.parent / next(line for line in playlist.read_text().splitlines() if line.endswith(".ts"))
    with av.open(str(segment)) as container:
        assert sum(1 for _ in container.decode(video=0)) > 0


def audio_frame(samples: int = 480) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(np.zeros((1, samples), np.float32), format="fltp", layout="mono")
    frame.sample_rate = 48000
    return frame


def test_source_clock_anchors_audio_to_the_least_delayed_picture():
    clock = SourceClock()
    assert clock.audio(audio_frame(), source_ms=0.0) == []  # no picture yet: it waits
    waited = clock.picture(capture_ms=5040.0, source_ms=20.0)  # this picture came 20 ms late, say
    assert [chunk.capture_ms for chunk in waited] == [5020.0]
    assert clock.audio(audio_frame(), 10.0)[0].capture_ms == 5030.0
    clock.picture(capture_ms=5050.0, source_ms=40.0)  # on time: the anchor moves to it
    assert clock.audio(audio_frame(), 50.0)[0].capture_ms == 5060.0
    clock.picture(capture_ms=5100.0, source_ms=60.0)  # late again: the anchor stays
    assert clock.audio(audio_frame(), 70.0)[0].capture_ms == 5080.0
    clock.picture(capture_ms=9000.0, source_ms=0.0)  # the source's timestamps restarted: re-anchored
    chunk = clock.audio(audio_frame(), 20.0)[0]
    assert chunk.capture_ms == 9020.0
    assert (chunk.format, chunk.layout, chunk.rate, chunk.samples.shape) == ("fltp", "mono", 48000, (1, 480))


def test_a_source_back_without_its_audio_offers_none(tmp_path):
    camera = tmp_path / "camera.mp4"
    shutil.copy(SAMPLES / "clips" / "bigbuckbunny_2s.mp4", camera)  # pictures and 5.1 sound

    def lost(line: str) -> None:
        if "lost" in line:
            shutil.copy(BIKES, camera)  # it comes back without its microphone

    source = LiveSource(LiveInput(str(camera)), Reconnect(attempts=2, first_delay=0.1), notify=lost)
    chunks: list[AudioChunk] = []
    source.on_audio = chunks.append
    offered: dict[int, AudioFormat | None] = {}
    for _ in source:
        offered.setdefault(source.reconnects, source.audio_format)
        if source.reconnects:
            break
    # Writers made after the reconnection get no audio track (one never fed holds their pictures back).
    assert offered == {0: AudioFormat(48000, "stereo"), 1: None}
    assert chunks


def test_live_writer_keeps_one_unbroken_audio_track(tmp_path):
    out = tmp_path / "live.mkv"
    writer = LiveWriter(out, EncoderSettings(preset="ultrafast"), rate=25, audio=AudioFormat(8000, "mono"))
    tone = np.full((1, 800), 0.5, np.float32)  # 100 ms chunks of a constant level, so the track can be read back

    def chunk(capture_ms: float, level: float = 0.5) -> AudioChunk:
        return AudioChunk(tone * level / 0.5, "fltp", "mono", 8000, capture_ms, 800)

    image = np.zeros((64, 64, 3), np.uint8)
    writer.write(Frame(0, image, 1000, 0, Fraction(1, 1000)))
    # The track begins one AAC encoder delay (1024 samples, 128 ms at 8 kHz) after the first picture.
    writer.write_audio(chunk(1050))  # 50 ms after the picture: cut to begin at 128 ms
    writer.write_audio(chunk(1180))  # 30 ms late, within the slack: taken as unbroken (150 ms on)
    writer.write_audio(chunk(1200))  # a burst with one time: still unbroken (250 ms on)
    writer.write_audio(chunk(1700, level=0.25))  # 350 ms beyond the track's end: silence, then this
    writer.write(Frame(1, image, 2000, 0, Fraction(1, 1000)))
    writer.fill_silence(2000)  # the source away: silence up to the picture
    writer.close()
    track = np.full(8000, np.nan, np.float32)  # 1 s, each decoded sample at its own time
    with av.open(str(out)) as container:
        for frame in container.decode(audio=0):
            start = round(frame.pts * frame.time_base * 8000)
            samples = frame.to_ndarray()[0][: max(0, 8000 - start)]
            track[start : start + len(samples)] = samples
    levels = [float(np.median(np.abs(track[i : i + 400]))) for i in range(1200, 8000, 400)]  # 50 ms steps
    # From 150 ms: 200 ms of the first level, 350 ms of silence, 100 ms of the second, silence up to 1 s.
    expected = [0.5] * 4 + [0.0] * 7 + [0.25] * 2 + [0.0] * 4
    assert levels == pytest.approx(expected, abs=0.05)
    assert np.isnan(track[:1000]).all() and not np.isnan(track[1030:]).any()  # nothing before 128 ms, no hole


@pytest.mark.slow
def test_restream_keeps_the_sources_audio_in_step_with_the_pictures(tmp_path):
    outputs = [tmp_path / "out.mkv", tmp_path / "out.mp4"]
    options = ("--source-format", "lavfi", "--style", "7", "--max-size", "96", "--temporal", "flow")
    # A flash (3 frames) and a beep (120 ms) at the start of every second, live, for as long as the test needs.
    with Restreamer(tmp_path, FLASH_SOURCE, *map(str, outputs), options=options) as app:
        # Enough pictures that a dozen showed a flash however many frames the model dropped, over 6 s at least.
        app.wait_for_count(lambda s: s["frames_in"], 150, "6 s of the source")
        stats = app.wait_for_count(lambda s: s["frames_out"], 100, "100 stylized pictures")
        assert app.stop() == 0, app.log  # as a service is stopped
    for output in outputs:
        with av.open(str(output)) as container:
            assert [s.codec_context.name for s in container.streams] == ["h264", "aac"]
        beeps = beep_times(output)
        # A picture the writer had to re-time (1 ms after a repeated one, stamped when it went out, later than this one
        # was captured) has no capture time to check. Outputs repeat a picture after 0.5 s without a new one, so with a
        # model that takes longer than that every picture is re-timed (and trails the sound by the model's delay).
        onsets = flash_onsets(output)
        assert onsets, stats  # the stylized pictures still show the flashes
        timed = [(before, at) for before, at in onsets if at - before > 0.0015]
        if not timed:
            pytest.skip(f"the machine was too busy to check: the model's latency ({stats['latency_ms_median']} ms) was "
                        "over the outputs' 0.5 s hold, so every picture was re-timed on the way out")  # fmt: skip
        for before, at in timed:
            # The beep begins where the flash does: between the last dark picture and the first bright one. The sound
            # may run behind by up to the writer's slack; the dark picture may be a repeated one, shown up to a flash's
            # length into it. The model's delay reaches neither.
            in_step = [beep for beep in beeps if before - 0.12 < beep <= at + SOUND_SLACK + 0.01]
            assert in_step, (output.name, before, at, beeps)


def test_flv_takes_sound_that_comes_after_its_pictures(tmp_path):
    # RTMP is FLV, which refuses a packet stamped before the first one it wrote: the AAC encoder's first packet is
    # stamped one encoder delay before its samples, so sound muxed after the pictures (late on the wire, or stored
    # far from them in a file) must still not reach back before the first picture.
    writer = LiveWriter(tmp_path / "live.flv", EncoderSettings(preset="ultrafast", tune="zerolatency"), rate=25,
                        audio=AudioFormat(48000, "stereo"))  # fmt: skip
    image = np.zeros((64, 64, 3), np.uint8)
    for index in range(25):  # a second of pictures: the muxer has written them before any sound came
        writer.write(Frame(index, image, 1000 + 40 * index, 0, Fraction(1, 1000)))
    for index in range(47):
        samples = np.full((2, 1024), 0.1, np.float32)
        writer.write_audio(AudioChunk(samples, "fltp", "stereo", 48000, 1000 + index * 1024 / 48, 1024))
    writer.close()
    with av.open(str(tmp_path / "live.flv")) as container:
        assert sum(frame.samples for frame in container.decode(audio=0)) >= 46 * 1024 - 1024


@pytest.mark.slow
@pytest.mark.network
def test_rtmp_output_carries_the_sound(tmp_path):
    clip = tmp_path / "flash.mp4"
    write_flash_clip(clip, seconds=5)
    rtmp = f"rtmp://127.0.0.1:{free_port()}/live/styled"
    streams: list[str] = []
    pictures: list[float] = []  # seconds
    sound: list[tuple[float, float, float]] = []  # seconds, length, peak

    def ingest() -> None:
        """An RTMP ingest server in listen mode: the streams announced, and the pictures and sound that came."""
        with av.open(rtmp, format="flv", options={"listen": "1"}, timeout=(STARTUP_S, 10.0)) as container:
            streams.extend(stream.codec_context.name for stream in container.streams)
            with contextlib.suppress(av.error.FFmpegError):  # the publisher hangs up at the end
                for packet in container.demux():
                    sort_decoded(packet, pictures, sound)

    listener = threading.Thread(target=ingest, daemon=True)
    listener.start()
    with Restreamer(tmp_path, str(clip), rtmp, options=STREAM_OPTIONS) as app:
        assert app.finish() == 0, app.log
        final = app.stats()
    listener.join(timeout=60)
    assert "failed" not in app.log, app.log  # FLV refuses a packet stamped before its first: none was
    assert streams == ["h264", "aac"]
    # However many pictures the model made of the file's 125, every one sent came in.
    assert final["frames_in"] == 125 and len(pictures) == final["outputs"][0]["frames"] > 0, (final, pictures)
    # The sound spans the pictures it came with, unbroken: from the first picture (the AAC track begins one encoder
    # delay of 1024 samples after it) to the last one's end, within the writer's slack. A live job drops the
    # frames the model cannot take, the last ones too on a busy machine, but never sound: it may then go on past
    # the last picture, by the frames dropped at most.
    start, end = sound[0][0], sound[-1][0] + sound[-1][1]
    assert abs(start - pictures[0]) <= 1024 / 48000 + 0.002, (start, pictures[0])
    beyond, dropped_s = end - (pictures[-1] + 1 / 25), (final["frames_in"] - len(pictures)) / 25
    assert -SOUND_SLACK - 1 / 25 <= beyond <= SOUND_SLACK + 1 / 25 + dropped_s, (end, pictures[-1], dropped_s)
    assert sum(length for _, length, _ in sound) == pytest.approx(end - start, abs=1024 / 48000)
    assert max(peak for _, _, peak in sound) > 0.2  # the beeps, not silence


@pytest.mark.slow
def test_restream_without_audio_writes_pictures_only(tmp_path):
    output = tmp_path / "out.mkv"
    done = run_cli("stream", SAMPLES / "clips" / "bigbuckbunny_2s.mp4", output, *STREAM_OPTIONS, "--no-audio")
    assert done.returncode == 0, done.stderr
    with av.open(str(output)) as container:
        assert [s.type for s in container.streams] == ["video"]
