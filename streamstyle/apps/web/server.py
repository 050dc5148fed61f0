"""`streamstyle serve`: the page over HTTP, with the headers that let its WASM engine use threads, and live
sessions over WebRTC (`POST /offer`, see live.py). Loopback by default; any other address needs a token, which
the first visit brings in the URL and a cookie keeps (other clients: `Authorization: Bearer TOKEN`)."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from streamstyle.apps.web.live import CallsFull, LiveCalls
from streamstyle.apps.web.site import CONTENT_TYPES, HEADERS, Site, prepare_site
from streamstyle.core.errors import ServerError, StreamstyleError

TOKEN_COOKIE = "streamstyle_token"


@dataclass(frozen=True)
class Address:
    host: str
    port: int
    token: str | None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def make_app(site: Site, token: str | None = None, calls: LiveCalls | None = None) -> web.Application:
    """The page's application: GET and HEAD of the site's files, every response with the page's headers; with
    `calls`, live sessions: `POST /offer` answers a WebRTC offer, `GET /api/info` says what the server offers."""

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
            return web.json_response({"error": "the offer is not JSON"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "the offer is a JSON object"}, status=400)
        try:
            return web.json_response(await calls.answer(body))
        except CallsFull as error:
            return web.json_response({"error": str(error)}, status=503)
        except StreamstyleError as error:
            return web.json_response({"error": str(error)}, status=400)

    async def info(_request: web.Request) -> web.Response:
        assert calls is not None
        return web.json_response({"live": True, "paintings": sorted(calls.paintings), "sessions": len(calls.sessions),
                                  "max_sessions": calls.limit, "engine": calls.runtime.describe()})  # fmt: skip

    async def close_calls(_app: web.Application) -> None:
        if calls is not None:
            await calls.close()

    app = web.Application(middlewares=[check_token])
    if calls is not None:
        app.router.add_post("/offer", offer)
        app.router.add_get("/api/info", info)
        app.on_shutdown.append(close_calls)
    app.router.add_get("/{path:.*}", page_file)
    app.on_response_prepare.append(add_headers)
    return app


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
          on_ready: Callable[[Address], None] = lambda address: None) -> None:  # fmt: skip
    """Serve the page (and live sessions, given `calls`) until interrupted. Off loopback a token is required: one
    is made when none is given."""
    if not is_loopback(host) and not token:
        token = secrets.token_urlsafe(16)
    app = make_app(prepare_site(), token, calls)
    asyncio.run(_serve(app, host, port, token, on_ready))
