"""`streamstyle serve`: the page over HTTP, with the headers that let its WASM engine use threads. Loopback by
default; any other address needs a token, which the first visit brings in the URL and a cookie keeps."""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from streamstyle.apps.web.site import CONTENT_TYPES, HEADERS, Site, prepare_site
from streamstyle.core.errors import ServerError

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


def make_app(site: Site, token: str | None = None) -> web.Application:
    """The page's application: GET and HEAD of the site's files, every response with the page's headers."""

    @web.middleware
    async def check_token(request: web.Request, handler):
        if token is None:
            return await handler(request)
        offered = request.query.get("token") or request.cookies.get(TOKEN_COOKIE) or ""
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

    app = web.Application(middlewares=[check_token])
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


def serve(host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          on_ready: Callable[[Address], None] = lambda address: None) -> None:  # fmt: skip
    """Serve the page until interrupted. Off loopback a token is required: one is made when none is given."""
    if not is_loopback(host) and not token:
        token = secrets.token_urlsafe(16)
    app = make_app(prepare_site(), token)
    asyncio.run(_serve(app, host, port, token, on_ready))
