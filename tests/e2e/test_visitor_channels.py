"""Every way a visitor reaches the site besides a call (issue 13), in Chromium against a
real gateway and real SIP peers: call links (`/call/<site>?source=`), voicemail when the
operator is busy, a message left while the site is closed, and chat with a SIP phone.

One browser serves the module; its fake microphone plays 660 Hz, the tone a voicemail
must hold. Each test has its own gateway and peers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, expect

from gateway.config import parse_config
from gateway.process.gateway import Gateway
from tests.support.audio import write_tone_wav

from .conftest import gateway_toml
from .widget_pages import HostPages, launch, new_context, widget_browser_args

pytestmark = pytest.mark.asyncio(loop_scope="module")

MIC_HZ = 660
TIMEOUT_MS = 10_000

StartGateway = Callable[..., Awaitable[Gateway]]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Browser]:
    mic = write_tone_wav(tmp_path_factory.mktemp("mic") / "mic.wav", MIC_HZ, 60.0, 48000)
    async with launch(widget_browser_args(mic)) as browser:
        yield browser


@pytest_asyncio.fixture(loop_scope="module")
async def start_gateway(host: HostPages) -> AsyncIterator[StartGateway]:
    """`start(destination, site="<site keys>", widget="<[sites.widget] keys>", extra=...)`:
    the site `shop`, usable from the host pages."""
    started: list[Gateway] = []

    async def start(
        destination: str | None, *, site: str = "", widget: str = "", extra: str = ""
    ) -> Gateway:
        origins = f'origins = ["{host.origin}"]'
        toml = gateway_toml(
            destination=destination,
            site_extra=f"{origins}\n{site}\n[sites.widget]\n{widget}\n",
            extra=extra,
        )
        gateway = await Gateway.start(parse_config(toml, {}))
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        await gateway.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Browser, start_gateway: StartGateway) -> AsyncIterator[BrowserContext]:
    context = await new_context(browser)
    yield context
    await context.close()


# --------------------------------------------------------------------------- call links


async def test_a_call_link_names_its_source_to_the_operator_and_the_record(
    context: BrowserContext, start_gateway: StartGateway, sipp_factory
) -> None:
    uas = sipp_factory("uas_busy")
    gateway = await start_gateway(uas.uri, widget='label = "Talk to Shop"')
    page = await context.new_page()
    response = await page.goto(f"{gateway.url}/call/shop?source=newsletter")
    assert response is not None and response.status == 200
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    # A page of its own, branded: the site's label is its title and the panel's.
    await expect(page).to_have_title("Talk to Shop")
    await expect(page.get_by_role("region", name="Talk to Shop")).to_be_visible()
    call = page.get_by_role("button", name="Call", exact=True)
    await expect(call).to_be_enabled(timeout=TIMEOUT_MS)
    await call.click()
    await expect(page.get_by_role("status")).to_contain_text("Call ended: busy", timeout=TIMEOUT_MS)
    await uas.assert_passed_async()
    (invite,) = [m for m in uas.trace() if not m.sent and m.start_line.startswith("INVITE")]
    headers = dict(invite.headers)
    assert headers["X-Visitor-Source"] == "newsletter"
    assert headers["X-Visitor-Page"] == f"{gateway.url}/call/shop"  # without the query
    await gateway.history.flush()
    (record,) = await gateway.database.records.find(site="shop")
    assert record.visitor_source == "newsletter" and record.outcome == "missed"

    # An unknown site's link says so.
    missing = await page.goto(f"{gateway.url}/call/nosuch")
    assert missing is not None and missing.status == 404


async def test_a_link_ending_in_call_opens_the_widget_on_a_sites_page(
    context: BrowserContext, host: HostPages, start_gateway: StartGateway
) -> None:
    gateway = await start_gateway("sip:nobody@127.0.0.1:9")
    page = await context.new_page()
    await page.goto(host.url("script", gateway.url) + "#call")
    panel = page.get_by_role("region", name="Call us")
    await expect(panel).to_be_visible(timeout=TIMEOUT_MS)
    await expect(page.get_by_role("button", name="Call us")).to_have_attribute(
        "aria-expanded", "true"
    )
    # Closed again, a link to #call on the same page opens it again.
    await page.get_by_role("button", name="Close").click()
    await expect(panel).to_be_hidden()
    await page.evaluate("() => { location.hash = ''; location.hash = '#call'; }")
    await expect(panel).to_be_visible()
