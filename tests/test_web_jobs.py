"""Video jobs over HTTP against `streamstyle serve`, with a real HTTP client (aiohttp): upload, progress pushed as
Server-Sent Events, the result with its sound and timestamps kept, the queue, cancel, bad uploads and the limit
answered clearly while the server goes on, and the token."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import aiohttp
import av
import numpy as np
import pytest

from streamstyle.apps.web.jobs import JobSettings, VideoJobs
from streamstyle.processing.runtime import resolve_runtime

from .conftest import SAMPLES, STARTUP_S, wait_until
from .web.browser import PageServer

pytestmark = [pytest.mark.slow, pytest.mark.network]

BUNNY = SAMPLES / "clips" / "bigbuckbunny_2s.mp4"  # 50 pictures and AAC sound
BIKES = SAMPLES / "clips" / "bikes.mp4"  # 250 pictures, no sound
SMALL = "96"  # max_size: the network at 96 px keeps the jobs short on 2 cores
STALL_S = 120.0


@pytest.fixture(scope="module")
def temporary(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("server-tmp")


@pytest.fixture(scope="module")
def server(temporary):
    with PageServer("--max-upload", "3", env={"TMPDIR": str(temporary)}) as running:
        yield running


async def upload(client: aiohttp.ClientSession, origin: str, path: Path | None = None, content: bytes | None = None,
                 name: str | None = None, **fields: str) -> tuple[int, dict]:  # fmt: skip
    form = aiohttp.FormData()
    for key, value in fields.items():
        form.add_field(key, value)
    body = path.read_bytes() if path else content
    form.add_field("file", body, filename=name or (path.name if path else "upload.bin"))
    async with client.post(origin + "api/jobs", data=form) as response:
        return response.status, await response.json()


async def follow(client: aiohttp.ClientSession, origin: str, job: str) -> list[dict]:
    """The job's progress as the server pushes it (Server-Sent Events), until it ends."""
    events = []
    async with client.get(f"{origin}api/jobs/{job}/events", timeout=aiohttp.ClientTimeout(sock_read=STALL_S)) as got:
        assert got.headers["Content-Type"].startswith("text/event-stream")
        async for line in got.content:
            if line.startswith(b"data: "):
                events.append(json.loads(line[6:]))
    return events


def timestamps(path: Path) -> tuple[list[float], list[tuple[str, str, int]]]:
    """The pictures' presentation times in seconds, and each sound stream's codec, layout and sample count."""
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        stamps = [packet.pts for packet in container.demux(video) if packet.pts is not None]
        times = sorted(float(stamp * video.time_base) for stamp in stamps)
    with av.open(str(path)) as container:
        sounds = [(s.codec_context.name, s.layout.name, sum(f.samples for f in container.decode(s)))
                  for s in container.streams.audio]  # fmt: skip
    return times, sounds


def test_a_video_job_runs_with_its_progress_pushed_and_keeps_the_sound_and_timestamps(server, tmp_path):
    async def scenario() -> tuple[list[dict], bytes, str]:
        async with aiohttp.ClientSession() as client:
            status, job = await upload(client, server.origin, BUNNY, style="7", max_size=SMALL)
            assert status == 201 and job["state"] in ("queued", "running"), job
            events = await follow(client, server.origin, job["id"])
            async with client.get(server.origin + f"api/jobs/{job['id']}/result") as got:
                assert got.status == 200
                return events, await got.read(), got.headers["Content-Disposition"]

    events, video, disposition = asyncio.run(scenario())
    assert events[-1]["state"] == "done", events[-1]
    assert disposition == 'attachment; filename="bigbuckbunny_2s-streamstyle.mp4"'
    frames = [event["frames"] for event in events]
    assert frames == sorted(frames) and frames[-1] == 50  # progress only goes forward, to every picture
    result = tmp_path / "result.mp4"
    result.write_bytes(video)
    # As `streamstyle file` keeps them: every picture at its time, the sound as it was.
    assert timestamps(result) == timestamps(BUNNY)
    with av.open(str(result)) as container:
        picture = next(container.decode(video=0)).to_ndarray(format="rgb24")
    with av.open(str(BUNNY)) as container:
        original = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert picture.shape == original.shape and np.abs(picture.astype(int) - original).mean() > 20  # painted


def test_jobs_wait_their_turn_and_one_is_cancelled_while_it_runs(server):
    async def scenario() -> None:
        async with aiohttp.ClientSession() as client:
            _, first = await upload(client, server.origin, BIKES, style="1", max_size=SMALL)
            _, second = await upload(client, server.origin, BIKES, name="second.mp4", style="3", max_size=SMALL)
            assert second["state"] == "queued" and second["place"] >= 1, second
            # The first runs: cancel it as soon as it has done some work.
            deadline = time.monotonic() + STARTUP_S
            while True:
                async with client.get(server.origin + f"api/jobs/{first['id']}") as got:
                    state = await got.json()
                if state["frames"] > 0 or state["state"] != "queued":
                    break
                assert time.monotonic() < deadline, state
                await asyncio.sleep(0.2)
            async with client.delete(server.origin + f"api/jobs/{first['id']}") as got:
                assert got.status == 200
            events = await follow(client, server.origin, first["id"])
            assert events[-1]["state"] == "cancelled", events[-1]
            async with client.get(server.origin + f"api/jobs/{first['id']}/result") as got:
                assert got.status == 409
                assert (await got.json())["error"] == "the job is cancelled; its video is there once it is done"
            # The second's turn came; cancel it while it waits or runs, and delete it once it ended.
            async with client.delete(server.origin + f"api/jobs/{second['id']}") as got:
                assert got.status == 200
            events = await follow(client, server.origin, second["id"])
            assert events[-1]["state"] in ("cancelled", "done"), events[-1]
            async with client.delete(server.origin + f"api/jobs/{second['id']}") as got:
                assert got.status == 200
            async with client.get(server.origin + f"api/jobs/{second['id']}") as got:
                assert got.status == 404

    asyncio.run(scenario())


def test_bad_uploads_get_a_clear_error_and_the_server_goes_on(server, temporary, tmp_path):
    sound_only = tmp_path / "tone.wav"
    with av.open(str(sound_only), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        tone = (np.sin(np.arange(8000) / 8000 * 2 * np.pi * 440) * 10000).astype(np.int16)
        chunk = av.AudioFrame.from_ndarray(tone[None], format="s16", layout="mono")
        chunk.sample_rate = 8000
        for packet in [*stream.encode(chunk), *stream.encode()]:
            container.mux(packet)
    truncated = BUNNY.read_bytes()[:40_000]

    async def scenario() -> None:
        async with aiohttp.ClientSession() as client:
            for kwargs, status, said in [
                ({"content": b"just some text\n", "name": "notes.txt"}, 400,
                 "notes.txt is not a video this server can read"),
                ({"path": sound_only}, 400, "tone.wav has no video stream (sound only?): send a video"),
                ({"content": truncated, "name": "cut.mp4"}, 400, "cut.mp4 is not a video this server can read"),
                ({"path": BUNNY, "style": "../../etc/passwd"}, 400, "unknown style '../../etc/passwd'"),
                ({"path": BUNNY, "strength": "lots"}, 400, "strength 'lots': a number from 0 to 1"),
                ({"content": bytes(4_000_000), "name": "big.mp4"}, 413,
                 "the upload is 4 MB; this server takes 3 MB at most"),
            ]:  # fmt: skip
                answer = await upload(client, server.origin, **kwargs)
                assert answer[0] == status and answer[1]["error"].startswith(said), (kwargs.get("name"), answer)
            async with client.post(server.origin + "api/jobs", data=b"not a form") as got:
                assert got.status == 400
            # Another site's page cannot send a job (a form posts without asking), nor read an answer.
            form = aiohttp.FormData()
            form.add_field("file", BUNNY.read_bytes(), filename="bunny.mp4")
            async with client.post(server.origin + "api/jobs", data=form, headers={"Origin": "http://elsewhere.example"}
                                   ) as got:  # fmt: skip
                assert (got.status, await got.json()) == (403, {"error": "requests from other sites are not taken"})
            async with client.options(server.origin + "api/jobs", headers={"Origin": "http://elsewhere.example",
                                      "Access-Control-Request-Method": "POST"}) as got:  # fmt: skip
                assert "Access-Control-Allow-Origin" not in got.headers
            status, job = await upload(client, server.origin, BUNNY, max_size=SMALL)
            assert status == 201
            assert (await follow(client, server.origin, job["id"]))[-1]["state"] == "done"

    asyncio.run(scenario())
    assert not list(temporary.glob("streamstyle-jobs-*/*.upload"))  # no refused upload is left on the disk


def test_finished_jobs_are_deleted_after_keep_hours(tmp_path):
    async def scenario(origin: str) -> None:
        async with aiohttp.ClientSession() as client:
            _, job = await upload(client, origin, BUNNY, max_size=SMALL)
            assert (await follow(client, origin, job["id"]))[-1]["state"] == "done"
            deadline = time.monotonic() + STALL_S
            while True:  # kept for --keep (3.6 s here), then gone, files and all
                async with client.get(f"{origin}api/jobs/{job['id']}") as got:
                    if got.status == 404:
                        break
                assert time.monotonic() < deadline, "the finished job was never deleted"
                await asyncio.sleep(0.5)

    with PageServer("--keep", "0.001", env={"TMPDIR": str(tmp_path)}) as keeping:
        asyncio.run(scenario(keeping.origin))
        assert not [path for path in tmp_path.glob("streamstyle-jobs-*/*") if path.is_file()]


def test_with_two_devices_two_jobs_run_at_once_and_the_third_waits_its_turn(tmp_path):
    # Two CPU runtimes stand in for the GPUs of a machine that has two (`serve` makes one per GPU): none here.
    cpu = resolve_runtime("cpu", "fp32", backend="torch")
    jobs = VideoJobs(tmp_path, [cpu, cpu], {}, max_upload=10**9, keep_hours=1.0)
    try:
        added = []
        for name in ("first.mp4", "second.mp4", "third.mp4"):
            job_id, upload = jobs.new_upload()
            shutil.copyfile(BIKES, upload)
            added.append(jobs.add(job_id, name, JobSettings(style="7", max_size=32)))
        first, second, third = added
        wait_until(lambda: first.state == second.state == "running", STARTUP_S, "two jobs running at once")
        assert third.state == "queued" and jobs.place(third) == 1
        assert (first.device, second.device) == ("cpu", "cpu")
        jobs.cancel(first)
        wait_until(lambda: first.state == "cancelled" and third.state != "queued", STARTUP_S,
                   "the third job to take the device the cancelled one left")  # fmt: skip
        assert third.device == "cpu"
    finally:
        jobs.close()


def test_jobs_need_the_token_off_loopback():
    async def scenario(origin: str, token: str) -> None:
        async with aiohttp.ClientSession() as client:
            async with client.get(origin + "api/jobs") as got:
                assert got.status == 401
            async with client.get(origin + "api/jobs", headers={"Authorization": f"Bearer {token}"}) as got:
                assert got.status == 200 and await got.json() == {"jobs": []}

    with PageServer("--token", "s3cret") as guarded:
        asyncio.run(scenario(guarded.origin, "s3cret"))
