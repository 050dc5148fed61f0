"""`streamstyle serve`: the page over HTTP, with the headers that let its WASM engine use threads, and live
sessions over WebRTC (`POST /offer`, see live.py). Loopback by default; any other address needs a token, which
the first visit brings in the URL and a cookie keeps (other clients: `Authorization: Bearer TOKEN`)."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import os
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import BodyPartReader, web

from streamstyle.apps.web.jobs import FINISHED, JobSettings, VideoJob, VideoJobs
from streamstyle.apps.web.live import CallsFull, LiveCalls
from streamstyle.apps.web.site import CONTENT_TYPES, HEADERS, Site, prepare_site
from streamstyle.core.errors import ServerError, StreamstyleError

TOKEN_COOKIE = "streamstyle_token"
PROGRESS_EVERY_S = 0.25


@dataclass(frozen=True)
class Address:
    host: str
    port: int
    token: str | None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")


def error(status: int, message: str) -> web.Response:
    """What every API answer that refuses says: {"error": message}, with its status."""
    return web.json_response({"error": message}, status=status)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_app(site: Site, token: str | None = None, calls: LiveCalls | None = None,
             jobs: VideoJobs | None = None) -> web.Application:  # fmt: skip
    """The page's application: GET and HEAD of the site's files, every response with the page's headers; with
    `calls`, live sessions (`POST /offer` answers a WebRTC offer); with `jobs`, video jobs under /api/jobs;
    `GET /api/info` says what the server offers."""

    @web.middleware
    async def check_token(request: web.Request, handler):
        if token is None:
            return await handler(request)
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        offered = request.query.get("token") or request.cookies.get(TOKEN_COOKIE) or bearer
        if not hmac.compare_digest(offered.encode(), token.encode()):
            raise web.HTTPUnauthorized(text="this server needs its token: open the URL it printed when it started\n")
        response = await handler(request)
        if "token" in request.query:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
        return response

    async def page_file(request: web.Request) -> web.StreamResponse:
        relative = request.match_info["path"] or "index.html"
        path = site.find(relative)
        if path is None:
            raise web.HTTPNotFound(text=f"not found: /{relative}\n")
        kind = CONTENT_TYPES.get(path.suffix)
        return web.FileResponse(path, headers={"Content-Type": kind} if kind else None)

    async def add_headers(_request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(HEADERS)
        response.headers["Cache-Control"] = "no-cache"  # a new version of the page is taken at once

    async def offer(request: web.Request) -> web.Response:
        assert calls is not None
        try:
            body = await request.json()
        except ValueError:
            return error(400, "the offer is not JSON")
        if not isinstance(body, dict):
            return error(400, "the offer is a JSON object")
        try:
            return web.json_response(await calls.answer(body))
        except CallsFull as full:
            return error(503, str(full))
        except StreamstyleError as failure:
            return error(400, str(failure))

    async def info(_request: web.Request) -> web.Response:
        described: dict[str, object] = {"live": calls is not None, "jobs": jobs is not None}
        if calls is not None:
            described |= {"paintings": sorted(calls.paintings), "sessions": len(calls.sessions),
                          "max_sessions": calls.limit, "engine": calls.runtime.describe()}  # fmt: skip
        if jobs is not None:
            described |= {"max_upload_mb": jobs.max_upload // 1_000_000, "keep_hours": jobs.keep_hours}
        return web.json_response(described)

    async def close_calls(_app: web.Application) -> None:
        if calls is not None:
            await calls.close()

    @web.middleware
    async def same_origin_only(request: web.Request, handler):
        # CORS stays closed: no Access-Control-* header is ever sent, so another site's page cannot read an
        # answer; and what changes something (an upload, an offer, a cancel) must not come from another site's
        # form either, which a browser sends without asking.
        origin = request.headers.get("Origin")
        if request.method not in ("GET", "HEAD") and origin and origin != f"{request.scheme}://{request.host}":
            return error(403, "requests from other sites are not taken")
        return await handler(request)

    app = web.Application(middlewares=[same_origin_only, check_token])
    if calls is not None:
        app.router.add_post("/offer", offer)
        app.on_shutdown.append(close_calls)
    if calls is not None or jobs is not None:
        app.router.add_get("/api/info", info)
    if jobs is not None:
        add_job_routes(app, jobs)
    app.router.add_get("/{path:.*}", page_file)
    app.on_response_prepare.append(add_headers)
    return app


class UploadTooLarge(Exception):
    pass


def add_job_routes(app: web.Application, jobs: VideoJobs) -> None:
    """/api/jobs: POST a video (multipart: file, and optionally style, strength, max_size) to make a job; GET the
    list. /api/jobs/ID: GET its state, DELETE to cancel it (or delete a finished one). /api/jobs/ID/events: its
    progress as Server-Sent Events. /api/jobs/ID/result: the video once done."""
    limit_mb = jobs.max_upload / 1e6

    def job_of(request: web.Request) -> VideoJob:
        job = jobs.find(request.match_info["job"])
        if job is None:
            raise web.HTTPNotFound(text=json.dumps({"error": "no such job (finished jobs are kept for a while, then "
                                                             "deleted)"}), content_type="application/json")  # fmt: skip
        return job

    async def create(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > jobs.max_upload:
            return error(413, f"the upload is {request.content_length / 1e6:.0f} MB; this server takes "
                              f"{limit_mb:g} MB at most")  # fmt: skip
        try:
            reader = await request.multipart()
        except (AssertionError, ValueError, KeyError):
            return error(400, "send the video as multipart/form-data: the field file, and style, strength, max_size")
        job_id, upload = jobs.new_upload()
        fields: dict[str, str] = {}
        name: str | None = None
        try:
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader):
                    return error(400, "nested multipart is not taken")
                if part.name == "file":
                    name = part.filename or "video"
                    await _store(part, upload, jobs.max_upload)
                elif part.name in ("style", "strength", "max_size"):
                    fields[part.name] = await part.text()
                else:
                    return error(400, f"unknown field {part.name!r}; send file, style, strength and max_size")
            if name is None:
                return error(400, "no file: send the video in the field named file")
            settings = JobSettings.from_form(fields)
            job = await asyncio.get_running_loop().run_in_executor(None, jobs.add, job_id, name, settings)
        except UploadTooLarge:
            return error(413, f"the upload is over this server's limit of {limit_mb:g} MB")
        except StreamstyleError as failure:
            return error(400, str(failure))
        finally:
            if job_id not in jobs.jobs:
                upload.unlink(missing_ok=True)
        return web.json_response(jobs.describe(job), status=201, headers={"Location": f"/api/jobs/{job.id}"})

    async def listing(_request: web.Request) -> web.Response:
        return web.json_response({"jobs": [jobs.describe(job) for job in list(jobs.jobs.values())]})

    async def status(request: web.Request) -> web.Response:
        return web.json_response(jobs.describe(job_of(request)))

    async def cancel(request: web.Request) -> web.Response:
        job = job_of(request)
        jobs.cancel(job)
        return web.json_response(jobs.describe(job))

    async def events(request: web.Request) -> web.StreamResponse:
        job = job_of(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        sent, quiet = None, 0.0
        while True:
            now = jobs.describe(job)
            if now != sent:
                await response.write(f"data: {json.dumps(now)}\n\n".encode())
                sent, quiet = now, 0.0
            elif quiet > 15:
                await response.write(b": still here\n\n")  # keeps proxies from closing a quiet stream
                quiet = 0.0
            if now["state"] in FINISHED or job.id not in jobs.jobs:
                return response
            await asyncio.sleep(PROGRESS_EVERY_S)
            quiet += PROGRESS_EVERY_S

    async def result(request: web.Request) -> web.StreamResponse:
        job = job_of(request)
        if job.state != "done":
            return error(409, f"the job is {job.state}; its video is there once it is done")
        disposition = f'attachment; filename="{job.download_name}"'
        return web.FileResponse(job.result, headers={"Content-Disposition": disposition})

    async def sweep_now_and_then(_app: web.Application) -> AsyncIterator[None]:
        async def sweep() -> None:
            # Often enough that no finished job outlives --keep by more than a quarter of it (a minute at most).
            every = min(60.0, max(1.0, jobs.keep_hours * 3600 / 4))
            while True:
                await asyncio.sleep(every)
                jobs.sweep()

        sweeping = asyncio.ensure_future(sweep())
        yield
        sweeping.cancel()
        await asyncio.get_running_loop().run_in_executor(None, jobs.close)

    app.router.add_post("/api/jobs", create)
    app.router.add_get("/api/jobs", listing)
    app.router.add_get("/api/jobs/{job}", status)
    app.router.add_delete("/api/jobs/{job}", cancel)
    app.router.add_get("/api/jobs/{job}/events", events)
    app.router.add_get("/api/jobs/{job}/result", result)
    app.cleanup_ctx.append(sweep_now_and_then)


async def _store(part: BodyPartReader, path: Path, limit: int) -> None:
    """Stream an upload to `path`, refusing it as soon as it passes `limit` bytes."""
    size = 0
    with path.open("wb") as file:
        while chunk := await part.read_chunk(1 << 20):
            size += len(chunk)
            if size > limit:
                raise UploadTooLarge
            file.write(chunk)


async def _serve(app: web.Application, host: str, port: int, token: str | None,
                 on_ready: Callable[[Address], None]) -> None:  # fmt: skip
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as error:
            # asyncio's message names the address again: the system's own words are enough.
            reason = os.strerror(error.errno) if error.errno else str(error)
            raise ServerError(f"cannot listen on {host}:{port}: {reason}; choose another --port or --host") from None
        bound = runner.addresses[0]
        on_ready(Address(host, bound[1], token))
        await asyncio.Event().wait()  # until interrupted
    finally:
        await runner.cleanup()


def serve(host: str = "127.0.0.1", port: int = 8000, token: str | None = None, calls: LiveCalls | None = None,
          jobs: VideoJobs | None = None,
          on_ready: Callable[[Address], None] = lambda address: None) -> None:  # fmt: skip
    """Serve the page (and live sessions, given `calls`; video jobs, given `jobs`) until interrupted. Off loopback
    a token is required: one is made when none is given."""
    if not is_loopback(host) and not token:
        token = secrets.token_urlsafe(16)
    app = make_app(prepare_site(), token, calls, jobs)
    asyncio.run(_serve(app, host, port, token, on_ready))
