"""The HTTP routes over a real socket: pages, headers, static files, no listing or traversal."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
import socketio
from aiohttp import web
from yarl import URL

from gateway.http.app import build_app
from signaling import attach, create_signaling
from tests.signaling.conftest import ROOT, SignalingServer, call_token
from tests.signaling.memory_service import InMemoryCallService


async def fetch(url: str, path: str) -> tuple[int, dict[str, str], str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(URL(url + path, encoded=True), allow_redirects=False) as response,
    ):
        return response.status, dict(response.headers), await response.text(errors="replace")


async def test_landing_page_lists_no_site(signaling_server: SignalingServer) -> None:
    status, headers, body = await fetch(signaling_server.url, "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "/embed/" not in body and "/demo/" not in body  # a site is reached by its link
    assert "demo" not in body and "shop" not in body


async def test_embed_page_for_a_site(signaling_server: SignalingServer) -> None:
    status, headers, body = await fetch(signaling_server.url, "/embed/shop")
    assert status == 200
    assert body == (ROOT / "web" / "embed.html").read_text()
    csp = [part.strip() for part in headers["Content-Security-Policy"].split(";")]
    assert "frame-ancestors 'self' https://shop.example https://www.shop.example" in csp
    assert "script-src 'self'" in csp
    assert "default-src 'none'" in csp
    assert headers["Permissions-Policy"].startswith("microphone=(self)")
    assert headers["X-Content-Type-Options"] == "nosniff"
    # what the page needs is there, and served (the widget renders its own controls)
    assert '<click-to-call mode="page">' in body
    for asset in ("../widget.js", "../static/style.css"):
        assert asset in body
        status, _, _ = await fetch(signaling_server.url, "/" + asset.removeprefix("../"))
        assert status == 200, asset


async def test_embed_page_for_an_unknown_site_is_404_with_words(
    signaling_server: SignalingServer,
) -> None:
    status, headers, body = await fetch(signaling_server.url, "/embed/nope")
    assert status == 404
    assert body == "No such site: 'nope'. Check the link you followed."
    # Not a page of any site: nobody may frame it.
    assert headers["Content-Security-Policy"].endswith("frame-ancestors 'none'")
    status, _, body = await fetch(signaling_server.url, "/embed/" + "x" * 500)
    assert status == 404
    assert len(body) < 120


async def test_static_files_have_their_types(signaling_server: SignalingServer) -> None:
    expected = {
        "/widget.js": "javascript",
        "/widget/element.js": "javascript",
        "/widget/widget.css": "text/css",
        "/static/style.css": "text/css",
        "/vendor/socket.io.min.js": "text/javascript",
        "/vendor/socket.io.esm.min.js": "text/javascript",
    }
    for path, kind in expected.items():
        status, headers, body = await fetch(signaling_server.url, path)
        assert status == 200
        assert kind in headers["Content-Type"]
        assert body
    _, _, client = await fetch(signaling_server.url, "/vendor/socket.io.min.js")
    assert "Socket.IO v4" in client


@pytest.mark.parametrize(
    "path",
    [
        "/static/",
        "/static",
        "/static/../pyproject.toml",
        "/static/%2e%2e/pyproject.toml",
        "/static/%2E%2E%2Fpyproject.toml",
        "/static/..%2fgateway/http/app.py",
        "/static/....//pyproject.toml",
        "/vendor/",
        "/vendor/../package.json",
        "/embed/",
        "/embed/demo/../../pyproject.toml",
    ],
)
async def test_no_listing_and_no_traversal(signaling_server: SignalingServer, path: str) -> None:
    status, _, body = await fetch(signaling_server.url, path)
    assert status in (403, 404), (path, status)
    assert "[project]" not in body
    assert "def build_app" not in body
    assert "embed.html" not in body


async def test_healthz(signaling_server: SignalingServer) -> None:
    status, headers, body = await fetch(signaling_server.url, "/healthz")
    assert (status, body) == (200, "ok")
    assert headers["Content-Type"].startswith("text/plain")


async def test_socket_io_is_attached(signaling_server: SignalingServer) -> None:
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(
        signaling_server.url,
        transports=["websocket"],
        headers={"Origin": "http://127.0.0.1:8080"},
        auth={"site": "demo", "token": await call_token(signaling_server.url, "demo")},
        wait_timeout=5,
    )
    assert sio.connected
    await sio.disconnect()


async def test_a_missing_socket_io_client_says_how_to_install_it(tmp_path: Path) -> None:
    service = InMemoryCallService({})
    app = build_app(
        service=service,
        web_dir=ROOT / "web",
        node_modules=tmp_path,
    )
    attach(app, create_signaling(service, ice_servers=[]))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        status, _, body = await fetch(f"http://{host}:{port}", "/vendor/socket.io.min.js")
        assert (status, body) == (404, "socket.io client not installed: run `npm ci`")
    finally:
        await runner.cleanup()
