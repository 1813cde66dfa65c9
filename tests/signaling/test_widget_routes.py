"""The widget's HTTP routes over a real socket: its script and modules (loadable from any
origin), the per-site settings, the demo host page, and the iframe page's headers."""

from __future__ import annotations

import json

import aiohttp
import pytest

from gateway.api import SiteInfo
from gateway.sites.widget import WidgetSettings
from tests.signaling.conftest import OTHER_SITE_ORIGIN, SITES, SignalingServer
from tests.signaling.memory_service import InMemoryCallService
from tests.signaling.test_http_app import fetch

SHOP_WIDGET = WidgetSettings(label="Talk to us", colour="#1a5fb4", language="fr")


@pytest.fixture
def call_service() -> InMemoryCallService:
    sites = dict(SITES)
    sites["shop"] = SiteInfo("shop", SITES["shop"].origins, SHOP_WIDGET)
    return InMemoryCallService(sites)


async def get_json(url: str, origin: str | None) -> tuple[int, dict[str, str], object]:
    headers = {"Origin": origin} if origin else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(url, headers=headers) as response,
    ):
        return response.status, dict(response.headers), json.loads(await response.text())


async def test_widget_settings_of_a_site(signaling_server: SignalingServer) -> None:
    status, headers, body = await get_json(
        f"{signaling_server.url}/api/widget/shop", OTHER_SITE_ORIGIN
    )
    # Always open, no callbacks (those sites are tested in tests/e2e/test_widget_callbacks.py).
    availability = {
        "open": True,
        "next_opening": None,
        "hours": None,
        "fallback": [],
        "callback": None,
        "voicemail": None,
        "chat": None,
        "messages": False,
    }
    assert status == 200
    assert body == {**SHOP_WIDGET.public_settings(), **availability}
    assert headers["Access-Control-Allow-Origin"] == OTHER_SITE_ORIGIN
    assert headers["Cache-Control"] == "no-store"  # whether it is open changes with the time
    status, _, body = await get_json(f"{signaling_server.url}/api/widget/demo", None)
    assert (status, body) == (200, {**WidgetSettings().public_settings(), **availability})


async def test_widget_settings_of_an_unknown_site(signaling_server: SignalingServer) -> None:
    status, _, body = await get_json(f"{signaling_server.url}/api/widget/nope", None)
    assert status == 404
    assert body == {"error": {"code": "unknown_site", "message": "no site 'nope'"}}


@pytest.mark.parametrize(
    "path",
    ["/widget.js", "/widget/element.js", "/widget/widget.css", "/vendor/socket.io.esm.min.js"],
)
async def test_the_widget_files_load_from_any_origin(
    signaling_server: SignalingServer, path: str
) -> None:
    # A module script of another origin is fetched with CORS: without this header the
    # host page's browser refuses it.
    status, headers, _ = await fetch(signaling_server.url, path)
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    # Revalidated on every load: after an upgrade, no stale module next to a new widget.js.
    assert headers["Cache-Control"] == "no-cache"


async def test_the_iframe_page_grants_microphone_and_autoplay_to_itself_only(
    signaling_server: SignalingServer,
) -> None:
    status, headers, _ = await fetch(signaling_server.url, "/embed/shop")
    assert status == 200
    policy = [part.strip() for part in headers["Permissions-Policy"].split(",")]
    assert {"microphone=(self)", "autoplay=(self)", "camera=()"} <= set(policy)
    assert "Access-Control-Allow-Origin" not in headers  # a page, not a public file


async def test_the_demo_host_page(signaling_server: SignalingServer) -> None:
    status, headers, body = await fetch(signaling_server.url, "/demo/shop")
    assert status == 200
    csp = [part.strip() for part in headers["Content-Security-Policy"].split(";")]
    assert "frame-ancestors 'none'" in csp
    assert "frame-src 'self'" in csp
    for needed in ('id="script-snippet"', 'id="iframe-snippet"', "../widget.js"):
        assert needed in body
    status, _, body = await fetch(signaling_server.url, "/demo/nope")
    assert status == 404


@pytest.mark.parametrize(
    "path",
    [
        "/widget/",
        "/widget",
        "/widget/../pyproject.toml",
        "/widget/%2e%2e/%2e%2e/gateway/http/app.py",
        "/widget/..%2f..%2fpyproject.toml",
        "/vendor/package.json",
        "/vendor/..%2f..%2fpackage.json",
        "/api/widget/",
        "/demo/",
    ],
)
async def test_no_listing_and_no_traversal(signaling_server: SignalingServer, path: str) -> None:
    status, _, body = await fetch(signaling_server.url, path)
    assert status in (403, 404), (path, status)
    assert "[project]" not in body
    assert "def build_app" not in body
    assert "socket.io-client" not in body
