"""The gateway's HTTP face: the widget and its pages, their static files, call tokens,
socket.io and a health check."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import aiohttp.web_response
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from gateway.api import BadRequest, GatewayService, SiteInfo
from gateway.http.client_limits import ClientLimitRefused, OpenPerClient, RatePerClient, socket_cap
from gateway.http.forwarded import Network, parse_networks, visitor_address
from gateway.http.json_api import (
    BODY_TIMEOUT,
    api_response,
    is_origin,
    preflight,
    read_json,
    refusals,
)

SOCKET_IO_CLIENT = Path("socket.io-client/dist/socket.io.min.js")
SOCKET_IO_CLIENT_ESM = Path("socket.io-client/dist/socket.io.esm.min.js")  # the widget's
# Files any page may load, from any origin: the widget is an ES module imported across
# origins (CORS applies to module scripts), its stylesheet goes into its shadow root, and
# it imports the socket.io client. Nothing else (/static/ is for the gateway's own pages).
_PUBLIC_FILE_PREFIXES = ("/vendor/", "/widget/")
_PUBLIC_FILES = ("/widget.js",)
# What every response says in its Server header: the product, never a version.
SERVER_NAME = "click-to-call"
MAX_SHOWN_SITE_CHARS = 40
MAX_SITE_ID_CHARS = 64
# A token request is {"site": ..., "proof": {...}}: a proof of work is ~300 bytes, a
# CAPTCHA response token a few KiB.
MAX_TOKEN_REQUEST_BYTES = 8 * 1024

SERVICE_KEY = web.AppKey("service", GatewayService)

# Only our own scripts, styles and socket; the media path is WebRTC, which CSP does not
# govern. `frame-ancestors` is added per site.
_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'"
)
# The demo host page frames the call page of its site, from the gateway itself.
_DEMO_CSP = f"{_PAGE_CSP}; frame-src 'self'; frame-ancestors 'none'"
# Every other response (static files, the landing page, API answers): framed by nobody.
_DEFAULT_CSP = f"{_PAGE_CSP}; frame-ancestors 'none'"
# A call link's page stands alone: nobody frames it either.
_LINK_CSP = _DEFAULT_CSP
# The call page may use the microphone and play audio, and delegates nothing; a site's
# <iframe allow="microphone; autoplay"> grants both to it.
_PAGE_PERMISSIONS = "microphone=(self), autoplay=(self), camera=(), geolocation=(), payment=()"
_DEFAULT_PERMISSIONS = "microphone=(), autoplay=(), camera=(), geolocation=(), payment=()"


def build_app(
    *,
    service: GatewayService,
    web_dir: Path,
    node_modules: Path,
    trusted_proxies: Iterable[str] = (),
    clock: Callable[[], float] = time.time,
    sockets_per_client: int | None = None,
    tokens_per_client_minute: int | None = None,
    request_timeout: float = 10.0,
) -> web.Application:
    """The aiohttp application.

    Routes: `/` (a landing page that lists no site: a site is reached by its own link),
    `/embed/{site}` (the widget as a full page, for iframes; the site is looked up with
    `service.site`), `/call/{site}` (the site's call link: the widget as a page of its
    own, `?source=<tag>` naming where the visitor came from), `/demo/{site}` (a host page
    showing both embedding snippets),
    `/widget.js` and `/widget/...` (the `<click-to-call>` web component and its modules,
    docs/embedding.md),
    `GET /api/widget/{site}` (the site's public widget settings, whether it is open now
    by `clock` and its Request-a-Call offer; never cached), `POST /api/token` (a
    call token; docs/signaling.md), `/static/...` (files of `web_dir`, no listing),
    `/vendor/socket.io[.esm].min.js` (from `node_modules`) and `/healthz`. Signaling
    (socket.io at `/socket.io/`) is attached by the composition root.

    Behind reverse proxies listed in `trusted_proxies` (addresses or CIDR networks), a
    request's `remote` is the visitor's address from X-Forwarded-For (gateway.http.forwarded),
    for the token request and signaling alike.

    Per visitor address (gateway.http.client_limits), when given: at most
    `sockets_per_client` socket.io connections open, `tokens_per_client_minute` call
    tokens a minute. A request body must arrive within `request_timeout` seconds.
    """
    hide_server_version()
    trusted = parse_networks(trusted_proxies)
    middlewares = [_forwarded_remote(trusted)] if trusted else []
    middlewares.append(refusals)
    if sockets_per_client is not None:
        sockets = OpenPerClient(
            sockets_per_client, "socket.io connections", "http.sockets_per_client"
        )
        middlewares.append(socket_cap(sockets))
    token_rate = RatePerClient(tokens_per_client_minute) if tokens_per_client_minute else None
    app = web.Application(middlewares=middlewares)
    app[SERVICE_KEY] = service
    app[BODY_TIMEOUT] = request_timeout
    embed_page = (web_dir / "embed.html").read_bytes()
    link_page = (web_dir / "call.html").read_bytes()
    demo_page = (web_dir / "demo.html").read_bytes()
    widget_script = web_dir / "widget.js"
    landing_page = LANDING_PAGE.encode()
    vendor_files = {
        "socket.io.min.js": node_modules / SOCKET_IO_CLIENT,
        "socket.io.esm.min.js": node_modules / SOCKET_IO_CLIENT_ESM,
    }

    async def landing(request: web.Request) -> web.Response:
        return web.Response(body=landing_page, content_type="text/html", charset="utf-8")

    def known_site(request: web.Request) -> SiteInfo:
        site_id = request.match_info["site"]
        site = service.site(site_id)
        if site is None:
            shown = site_id[:MAX_SHOWN_SITE_CHARS]
            raise web.HTTPNotFound(text=f"No such site: {shown!r}. Check the link you followed.")
        return site

    def site_page(body: bytes, csp: str) -> web.Response:
        """A page of the widget's (iframe or demo), with the microphone granted to itself."""
        response = web.Response(body=body, content_type="text/html", charset="utf-8")
        response.headers["Content-Security-Policy"] = csp
        response.headers["Permissions-Policy"] = _PAGE_PERMISSIONS
        response.headers["Cache-Control"] = "no-store"
        return response

    async def embed(request: web.Request) -> web.Response:
        site = known_site(request)
        return site_page(embed_page, f"{_PAGE_CSP}; frame-ancestors {_frame_ancestors(site)}")

    async def link(request: web.Request) -> web.Response:
        known_site(request)
        return site_page(link_page, _LINK_CSP)

    async def demo(request: web.Request) -> web.Response:
        known_site(request)
        return site_page(demo_page, _DEMO_CSP)

    async def widget(request: web.Request) -> web.StreamResponse:
        # Revalidated on every load (Last-Modified), so a new gateway version is picked up.
        return web.FileResponse(
            widget_script,
            headers={"Content-Type": "text/javascript; charset=utf-8", "Cache-Control": "no-cache"},
        )

    async def widget_settings(request: web.Request) -> web.Response:
        site_id = request.match_info["site"]
        site = service.site(site_id)
        if site is None:
            shown = site_id[:MAX_SHOWN_SITE_CHARS]
            raise BadRequest(f"no site {shown!r}", code="unknown_site", status=404)
        # `no-store` (api_response): whether the site is open changes with the time.
        now = dt.datetime.fromtimestamp(clock(), dt.UTC)
        return api_response(request, site.public_settings(now))

    async def vendor(request: web.Request) -> web.StreamResponse:
        path = vendor_files.get(request.match_info["file"])
        if path is None:
            raise web.HTTPNotFound()
        if not path.is_file():
            raise web.HTTPNotFound(text="socket.io client not installed: run `npm ci`")
        return web.FileResponse(path, headers={"Content-Type": "text/javascript; charset=utf-8"})

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def token(request: web.Request) -> web.Response:
        if token_rate is not None:
            now = asyncio.get_running_loop().time()
            wait = token_rate.take(request.remote or "unknown", now)
            if wait:
                raise ClientLimitRefused(
                    "too_many_requests",
                    "too many call tokens asked for from this address; try again shortly",
                    retry_after=wait,
                )
        body = await read_json(request, max_bytes=MAX_TOKEN_REQUEST_BYTES)
        site_id, proof = _token_request(body)
        grant = await service.issue_token(
            site_id=site_id,
            origin=request.headers.get("Origin"),
            client=request.remote or "unknown",
            proof=proof,
        )
        return api_response(request, {"token": grant.token, "expires_in": grant.expires_in})

    app.router.add_get("/", landing)
    app.router.add_get("/embed/{site}", embed)
    app.router.add_get("/demo/{site}", demo)
    app.router.add_get("/call/{site}", link)
    app.router.add_get("/widget.js", widget)
    app.router.add_get("/api/widget/{site}", widget_settings)
    app.router.add_get("/vendor/{file}", vendor)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/api/token", token)
    app.router.add_route("OPTIONS", "/api/token", preflight("POST"))
    # aiohttp's static route refuses paths that resolve outside web_dir (and symlinks).
    app.router.add_static("/static/", web_dir, show_index=False, follow_symlinks=False)
    # The widget's modules, next to /widget.js so that its relative imports resolve.
    app.router.add_static("/widget/", web_dir / "widget", show_index=False, follow_symlinks=False)
    app.on_response_prepare.append(_common_headers)
    return app


def hide_server_version() -> None:
    """No `Server: Python/3.x aiohttp/3.y` banner on any response. aiohttp fills the
    header from this module attribute when a response has none, its own error answers
    (malformed requests, which never reach the application's signals) included."""
    aiohttp.web_response.SERVER_SOFTWARE = SERVER_NAME


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Security headers on every response; pages set their own CSP and permissions first."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Content-Security-Policy", _DEFAULT_CSP)
    response.headers.setdefault("Permissions-Policy", _DEFAULT_PERMISSIONS)
    if request.path.startswith(_PUBLIC_FILE_PREFIXES) or request.path in _PUBLIC_FILES:
        # Public files without cookies: any page may load them (the widget's modules).
        response.headers.setdefault("Access-Control-Allow-Origin", "*")
        response.headers.setdefault("Cross-Origin-Resource-Policy", "cross-origin")
        # Revalidated on every load (ETag / Last-Modified make that cheap): after an
        # upgrade, a new widget.js never imports stale cached modules.
        response.headers.setdefault("Cache-Control", "no-cache")


def _forwarded_remote(trusted: tuple[Network, ...]) -> Middleware:
    @web.middleware
    async def forwarded_remote(request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = request.remote or "unknown"
        forwarded = ",".join(request.headers.getall("X-Forwarded-For", ())) or None
        visitor = visitor_address(peer, forwarded, trusted)
        if visitor != peer:
            request = request.clone(remote=visitor)
        return await handler(request)

    return forwarded_remote


def _token_request(body: object) -> tuple[str, object]:
    """(site id, proof or None) of a token request: {"site": id[, "proof": {...}]}."""
    if not isinstance(body, dict) or "site" not in body or not body.keys() <= {"site", "proof"}:
        raise BadRequest('the request must be {"site": "<site id>"[, "proof": {...}]}')
    site_id = body["site"]
    if not isinstance(site_id, str) or not 0 < len(site_id) <= MAX_SITE_ID_CHARS:
        raise BadRequest("site must be a site id")
    return site_id, body.get("proof")


def _frame_ancestors(site: SiteInfo) -> str:
    sources = ["'self'", *(origin for origin in site.origins if is_origin(origin))]
    return " ".join(sources)


# Sites are not listed: a visitor reaches a site by the link the site gives, and nobody
# learns from here which sites a gateway serves.
LANDING_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8">'
    '<meta name="viewport" content="width=device-width, initial-scale=1">'
    '<title>Click-to-call gateway</title><link rel="stylesheet" href="/static/style.css">'
    '</head><body><main class="landing"><h1>Click-to-call gateway</h1>'
    "<p>This gateway puts visitors of its sites through to their phones. Use the call "
    "button or link on the site you want to call.</p></main></body></html>"
)
