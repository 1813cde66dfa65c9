"""The widget's view of connection quality, in Chromium against a real gateway: the pre-call
check ("Test my microphone and connection": a real ICE + DTLS-SRTP connection whose audio
the gateway echoes, no SIP) passing on loopback and failing with a reason when the
gateway's media address cannot be reached; the warning during a call whose browser leg
loses packets, and its going once the loss stops; and the rating after an answered call,
kept with the call (an interim store until call records land).

One browser serves the whole module; each test has its own context, gateway and peers.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, expect

from gateway.calls.ratings import RATINGS_FILE
from gateway.media.srtp_channel import SrtpAudioChannel
from gateway.process.gateway import Gateway

from .widget_pages import NOBODY, HostPages, axe_violations, new_context, snap

pytestmark = pytest.mark.asyncio(loop_scope="module")

TIMEOUT_MS = 10_000
StartGateway = Callable[..., Awaitable[Gateway]]

# Every event of the widget's JavaScript API that these tests read.
RECORD_EVENTS_JS = """
window.widgetEvents = [];
for (const name of ['precheckstatechange', 'quality', 'rated']) {
  document.addEventListener(name, (e) => window.widgetEvents.push([name, e.detail]));
}
"""


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Browser, start_gateway: StartGateway) -> AsyncIterator[BrowserContext]:
    context = await new_context(browser)
    await context.add_init_script(RECORD_EVENTS_JS)
    yield context
    await context.close()


async def events(page: Page, name: str) -> list[dict]:
    return [detail for event, detail in await page.evaluate("() => window.widgetEvents") if event == name]


async def wait_for_status(page: Page, text: str, timeout_ms: int = TIMEOUT_MS) -> None:
    await expect(page.get_by_role("status").first).to_contain_text(text, timeout=timeout_ms)


PRECHECK_SITE = 'position = "inline"\nprecheck = true'


# --------------------------------------------------------------------------- pre-call check


async def test_the_pre_call_check_passes_on_loopback(
    context: BrowserContext, host: HostPages, start_gateway: StartGateway
) -> None:
    gateway = await start_gateway(NOBODY, widget=PRECHECK_SITE)
    page = await context.new_page()
    await page.goto(host.url("script", gateway.url))
    test = page.get_by_role("button", name="Test my microphone and connection")
    await test.click(timeout=TIMEOUT_MS)
    await wait_for_status(page, "Testing your microphone and connection…")
    await expect(page.get_by_role("meter", name="Microphone level")).to_be_visible()
    await wait_for_status(page, "You are ready to call.", timeout_ms=20_000)
    results = page.locator("click-to-call .precheck-results li")
    await expect(results).to_have_text(["Your microphone works.", "Your connection is good."])
    await expect(page.get_by_text("% of the sound lost")).to_be_visible()
    (running, done) = await events(page, "precheckstatechange")
    assert running == {"state": "running"}
    assert done["state"] == "done" and done["microphone"] == "ok", done
    assert done["connection"] == "good" and done["loss"] < 0.02, done
    # The round trip came from RTCP: the gateway's receiver reports of the browser's audio.
    assert done["rttFrom"] == "rtcp" and 0 <= done["rtt"] < 0.1, done
    # No call was made; the check is over on the gateway too, and counted there.
    assert gateway.calls.calls == {} and gateway.calls.checks.checks == {}
    ledger = gateway.calls.checks.ledger
    assert ledger.live_checks("127.0.0.1") == 0 and len(ledger.check_starts("127.0.0.1", 0)) == 1
    violations = await axe_violations(page)
    assert violations == [], violations
    await snap(page, "precheck-good")
    # A call still works after it: the test made no difference to the visitor's limits.
    await expect(page.get_by_role("button", name="Call", exact=True)).to_be_enabled()


UNREACHABLE = "192.0.2.1"  # TEST-NET-1: the gateway's media address, out of the browser's reach


def ip(*arguments: str) -> None:
    subprocess.run(["ip", *arguments], check=True, capture_output=True, timeout=10)


@pytest.fixture
def unreachable_media_address() -> Iterator[str]:
    """An address of this machine that UDP cannot reach (a blackhole rule ahead of the
    local routes), while TCP to it and everything on 127.0.0.1 work: the gateway's media
    address behind a firewall that drops UDP. Only inside the loopback-only network
    namespace of the tests (scripts/in-loopback-netns), whose routes it may change."""
    if [name for _, name in socket.if_nameindex()] != ["lo"]:
        pytest.fail("run the tests inside scripts/in-loopback-netns (it changes routes)")
    ip("addr", "add", f"{UNREACHABLE}/32", "dev", "lo")
    ip("rule", "add", "pref", "10", "to", UNREACHABLE, "ipproto", "udp", "blackhole")
    ip("rule", "add", "pref", "100", "lookup", "local")
    ip("rule", "del", "pref", "0")
    try:
        yield UNREACHABLE
    finally:
        ip("rule", "add", "pref", "0", "lookup", "local")
        ip("rule", "del", "pref", "100")
        ip("rule", "del", "pref", "10")
        ip("addr", "del", f"{UNREACHABLE}/32", "dev", "lo")


async def test_the_pre_call_check_fails_with_a_reason_when_media_is_unreachable(
    context: BrowserContext,
    host: HostPages,
    start_gateway: StartGateway,
    unreachable_media_address: str,
) -> None:
    gateway = await start_gateway(
        NOBODY,
        widget=PRECHECK_SITE,
        ice_addresses=(unreachable_media_address,),
    )
    page = await context.new_page()
    await page.goto(host.url("script", gateway.url))
    await page.get_by_role("button", name="Test my microphone and connection").click(
        timeout=TIMEOUT_MS
    )
    await wait_for_status(page, "The test found a problem.", timeout_ms=30_000)
    results = page.locator("click-to-call .precheck-results li")
    await expect(results).to_have_text(
        [
            "Your microphone works.",
            "Your network blocks the sound of calls. Try another network (mobile data, for "
            "example) or turn a VPN off.",
        ]
    )
    (_, done) = await events(page, "precheckstatechange")
    assert done["connection"] == "unreachable", done
    # The gateway took the check (signaling works) and ended it when the page gave up.
    for _ in range(50):
        if not gateway.calls.checks.checks:
            break
        await page.wait_for_timeout(100)
    assert gateway.calls.checks.checks == {}
    assert len(gateway.calls.checks.ledger.check_starts("127.0.0.1", 0)) == 1
    await snap(page, "precheck-unreachable")
