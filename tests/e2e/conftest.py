"""A real gateway (in this process, on free loopback ports) and a real browser for each test."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, expect

from gateway.config import parse_config
from gateway.process.gateway import Gateway
from tests.support.audio import write_tone_wav
from tests.support.browser import chromium, record_states
from tests.support.ports import free_port_block, free_udp_port

if TYPE_CHECKING:
    from .widget_pages import HostPages

MIC_HZ = 1000


def gateway_toml(
    *,
    destination: str | None,
    browser_codecs=("PCMU",),
    ring_timeout: float = 10,
    site_extra: str = "",
    extra: str = "",
    health_interval: float = 0,
    ice_addresses: tuple[str, ...] = ("127.0.0.1",),
    ice_extra: str = "",
    http_extra: str = "",
    media: str = "",
) -> str:
    """A gateway on free loopback ports with the site `shop`. Health checks are off unless
    asked for: a SIPp UAS takes an OPTIONS for a call it did not expect."""
    http, sip = free_udp_port(), free_udp_port()
    rtp = free_port_block(100)
    return f"""
[http]
listen = "127.0.0.1:{http}"
{http_extra}
[sip]
listen = "127.0.0.1:{sip}"
[media]
rtp_ports = "{rtp}-{rtp + 99}"
browser_codecs = {json.dumps(list(browser_codecs))}
{media}
[ice]
host_addresses = {json.dumps(list(ice_addresses))}
port = {free_udp_port()}
{ice_extra}
[demo]
enabled = false
{extra}
[[sites]]
id = "shop"
{f'destination = "{destination}"' if destination else ""}
ring_timeout = {ring_timeout}
health_interval = {health_interval}
{site_extra}
"""


@pytest.fixture
async def gateway_factory() -> AsyncIterator[Callable[..., Awaitable[Gateway]]]:
    started: list[Gateway] = []

    async def start(**options) -> Gateway:
        gateway = await Gateway.start(parse_config(gateway_toml(**options), {}))
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        await gateway.stop()


@pytest.fixture
def mic_wav(tmp_path: Path) -> Path:
    return write_tone_wav(tmp_path / "mic.wav", MIC_HZ, 60.0, 48000)


@pytest.fixture
async def page(mic_wav: Path) -> AsyncIterator[Page]:
    async with chromium(mic_wav) as browser:
        context = await browser.new_context()
        yield await context.new_page()


async def call_token(gateway: Gateway, site: str = "shop", origin: str | None = None) -> str:
    """A call token from POST /api/token, as the gateway's own call page gets one."""
    origin = origin or gateway.config.http.public_origin
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{gateway.url}/api/token", json={"site": site}, headers={"Origin": origin}
        ) as response,
    ):
        answer = await response.json()
        assert response.status == 200, answer
        return answer["token"]


async def open_call_page(page: Page, gateway: Gateway, site: str = "shop") -> None:
    await page.goto(f"{gateway.url}/embed/{site}")
    # Playwright's locators see into the widget's (open) shadow root.
    await expect(page.get_by_role("button", name="Call", exact=True)).to_be_enabled(timeout=10_000)
    await record_states(page)


async def wait_for_status(page: Page, text: str, timeout: float = 10.0) -> None:
    await expect(page.get_by_role("status")).to_contain_text(text, timeout=timeout * 1000)


# ------------------------------------------------------------------- the widget's tests
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Browser]:
    """One Chromium per widget test module, its fake microphone playing MIC_HZ."""
    from .widget_pages import launch, widget_browser_args  # it imports this module

    mic = write_tone_wav(tmp_path_factory.mktemp("mic") / "mic.wav", MIC_HZ, 60.0, 48000)
    async with launch(widget_browser_args(mic)) as browser:
        yield browser


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def host() -> AsyncIterator[HostPages]:
    """The site's own pages (script tag, iframe), on an origin other than the gateway's."""
    from .widget_pages import HostPages

    pages = await HostPages().start()
    yield pages
    await pages.close()


@pytest_asyncio.fixture(loop_scope="module")
async def start_gateway(host: HostPages) -> AsyncIterator[Callable[..., Awaitable[Gateway]]]:
    """`start(destination, widget="<[sites.widget] keys>", **widget_toml options)`: the
    site `shop`, usable from the host pages; stopped after the test."""
    from .widget_pages import NOBODY, widget_toml

    started: list[Gateway] = []

    async def start(destination: str = NOBODY, widget: str = "", **options: object) -> Gateway:
        toml = widget_toml(destination=destination, host=host, widget=widget, **options)
        gateway = await Gateway.start(parse_config(toml, {}))
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        await gateway.stop()
