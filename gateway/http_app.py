"""The gateway's HTTP face: the call page, its static files, socket.io and a health check."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

import socketio
from aiohttp import web

from gateway.service import CallService, SiteInfo
from signaling import attach

SOCKET_IO_CLIENT = Path("socket.io-client/dist/socket.io.min.js")
# What a CSP source expression may contain of an origin; anything else is left out rather
# than let a bad configuration value break (or inject into) the header.
_ORIGIN = re.compile(r"https?://([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?")
MAX_SHOWN_SITE_CHARS = 40

SERVICE_KEY = web.AppKey("service", CallService)
SIO_KEY = web.AppKey("sio", socketio.AsyncServer)

# Only our own scripts, styles and socket; the media path is WebRTC, which CSP does not
# govern. `frame-ancestors` is added per site.
_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'"
)


def build_app(
    *,
    service: CallService,
    sio: socketio.AsyncServer,
    web_dir: Path,
    node_modules: Path,
    sites: Iterable[str] = (),
) -> web.Application:
    """The aiohttp application.

    Routes: `/` (landing page linking the call pages of `sites`, e.g. `("demo",)`),
    `/embed/{site}` (the call page; the site is looked up with `service.site`),
    `/static/...` (files of `web_dir`, no listing), `/vendor/socket.io.min.js` (from
    `node_modules`), `/healthz`, and socket.io at `/socket.io/`.
    """
    app = web.Application()
    app[SERVICE_KEY] = service
    app[SIO_KEY] = sio
    embed_page = (web_dir / "embed.html").read_bytes()
    landing_page = _landing_page(sites).encode()
    socket_io_client = node_modules / SOCKET_IO_CLIENT

    async def landing(request: web.Request) -> web.Response:
        return web.Response(body=landing_page, content_type="text/html", charset="utf-8")

    async def embed(request: web.Request) -> web.Response:
        site_id = request.match_info["site"]
        site = service.site(site_id)
        if site is None:
            shown = site_id[:MAX_SHOWN_SITE_CHARS]
            raise web.HTTPNotFound(text=f"No such site: {shown!r}. Check the link you followed.")
        response = web.Response(body=embed_page, content_type="text/html", charset="utf-8")
        response.headers["Content-Security-Policy"] = (
            f"{_PAGE_CSP}; frame-ancestors {_frame_ancestors(site)}"
        )
        # The page itself (and nothing it frames) may use the microphone; a site framing it
        # grants it with <iframe allow="microphone">.
        response.headers["Permissions-Policy"] = "microphone=(self), camera=(), geolocation=()"
        response.headers["Cache-Control"] = "no-store"
        return response

    async def vendor_socket_io(request: web.Request) -> web.StreamResponse:
        if not socket_io_client.is_file():
            raise web.HTTPNotFound(text="socket.io client not installed: run `npm ci`")
        return web.FileResponse(
            socket_io_client, headers={"Content-Type": "text/javascript; charset=utf-8"}
        )

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app.router.add_get("/", landing)
    app.router.add_get("/embed/{site}", embed)
    app.router.add_get("/vendor/socket.io.min.js", vendor_socket_io)
    app.router.add_get("/healthz", healthz)
    # aiohttp's static route refuses paths that resolve outside web_dir (and symlinks).
    app.router.add_static("/static/", web_dir, show_index=False, follow_symlinks=False)
    app.on_response_prepare.append(_common_headers)
    attach(app, sio)
    return app


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")


def _frame_ancestors(site: SiteInfo) -> str:
    sources = ["'self'", *(origin for origin in site.origins if _ORIGIN.fullmatch(origin))]
    return " ".join(sources)


def _landing_page(sites: Iterable[str]) -> str:
    links = "".join(
        f'<li><a href="/embed/{quote(site, safe="")}">Call {html.escape(site)}</a></li>'
        for site in sites
    )
    listing = f"<ul>{links}</ul>" if links else "<p>No demo site is configured.</p>"
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>Click-to-call gateway</title><link rel="stylesheet" href="/static/style.css">'
        '</head><body><main class="landing"><h1>Click-to-call gateway</h1>'
        "<p>Talk from this browser to a phone.</p>"
        f"{listing}</main></body></html>"
    )
