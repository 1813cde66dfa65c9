"""The widget's view of connection quality, in Chromium against a real gateway: the pre-call
check ("Test my microphone and connection": a real ICE + DTLS-SRTP connection whose audio
the gateway echoes, no SIP) passing on loopback and failing with a reason when the
gateway's media address cannot be reached; the warning during a call whose browser leg
loses packets, and its going once the loss stops; and the rating after an answered call,
kept with the call's record: shown by the admin API, the history page and the CSV export.

One browser serves the whole module; each test has its own context, gateway and peers.
"""

from __future__ import annotations

import csv
import io
import json
import random
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, expect

from gateway.media import ice_mux
from gateway.media.ice_mux import _MuxSocket
from gateway.process.gateway import Gateway

from .site_owner import ADMIN_TOML, admin_get, log_in
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
    return [
        detail
        for event, detail in await page.evaluate("() => window.widgetEvents")
        if event == name
    ]


async def wait_for_status(page: Page, text: str, timeout_ms: int = TIMEOUT_MS) -> None:
    await expect(page.get_by_role("status").first).to_contain_text(text, timeout=timeout_ms)


PRECHECK_SITE = 'position = "inline"\nprecheck = true'


# --------------------------------------------------------------------------- pre-call check


async def test_the_pre_call_check_passes_on_loopback(
    context: BrowserContext, host: HostPages, start_gateway: StartGateway
) -> None:
    gateway = await start_gateway(
        NOBODY, widget=PRECHECK_SITE, extra="[limits]\nprechecks_per_client_hour = 1"
    )
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
    assert done["rttFrom"] == "rtcp" and done["rtt"] >= 0, done
    # No call was made; the check is over on the gateway too, and counted there.
    assert gateway.calls.calls == {} and gateway.calls.checks.checks == {}
    ledger = gateway.calls.checks.ledger
    assert ledger.live_checks("127.0.0.1") == 0 and len(ledger.check_starts("127.0.0.1", 0)) == 1
    assert ledger.starts("shop", "127.0.0.1", 0) == []  # nothing counted as a call
    violations = await axe_violations(page)
    assert violations == [], violations
    await snap(page, "precheck-good")
    # A call still works after it: the test made no difference to the visitor's limits.
    await expect(page.get_by_role("button", name="Call", exact=True)).to_be_enabled()
    # Tests have their own limit (one an hour here): the next one is refused, in words.
    await test.click()
    await wait_for_status(page, "The test found a problem.")
    await expect(results.nth(1)).to_have_text(
        "The connection could not be tested: Too many tests from your connection. "
        "Please try again later."
    )
    assert (await events(page, "precheckstatechange"))[-1]["code"] == "precheck_limited"


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


# --------------------------------------------------------------------------- during a call


class InjectedLoss:
    """Drops a share of the browser's audio packets as they reach the gateway, as a lossy
    network would (the mechanism of test_added_delay.py: seeded random frames lost on the
    way), while `rate` is above 0."""

    def __init__(self, seed: int) -> None:
        self.rate = 0.0
        self.dropped = 0
        self._random = random.Random(seed)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # Where the worker's ICE socket hands datagrams on: before the Python path and
        # the C relay of steady G.711 calls (gateway.media.native_relay) alike. (Its C
        # dispatch of media datagrams is left out here, so that this method sees them.)
        monkeypatch.setattr(ice_mux, "Demux", None)
        arrive = _MuxSocket.datagram_received

        def lossy(port: _MuxSocket, data: bytes, addr: tuple) -> None:
            rtp = len(data) > 12 and 127 < data[0] < 192 and not 191 < data[1] < 224
            if rtp and self.rate and self._random.random() < self.rate:
                self.dropped += 1
                return
            arrive(port, data, addr)

        monkeypatch.setattr(_MuxSocket, "datagram_received", lossy)


WEAK_WORDS = "Your connection is weak; we may not hear you well."


async def test_a_call_that_loses_packets_is_said_to_be_weak_until_it_recovers(
    context: BrowserContext,
    host: HostPages,
    start_gateway: StartGateway,
    baresip_factory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loss = InjectedLoss(seed=17)
    loss.install(monkeypatch)
    phone = baresip_factory(codecs=("PCMU",), tone_hz=440, tone_seconds=60)
    gateway = await start_gateway(phone.uri, widget='position = "inline"')
    page = await context.new_page()
    await page.goto(host.url("script", gateway.url))
    await page.get_by_role("button", name="Call", exact=True).click(timeout=TIMEOUT_MS)
    await wait_for_status(page, "In call")
    warning = page.get_by_text(WEAK_WORDS)
    # A clean connection: a few seconds of samples, no warning.
    await page.wait_for_timeout(3000)
    await expect(warning).to_be_hidden()
    assert await events(page, "quality") == []

    loss.rate = 0.2  # a fifth of what the visitor says is lost on the way
    await expect(warning).to_be_visible(timeout=15_000)
    assert await events(page, "quality") == [{"weak": True, "reason": "loss"}]
    violations = await axe_violations(page)
    assert violations == [], violations
    await snap(page, "call-weak")

    loss.rate = 0.0  # the network recovers: the warning goes, once it has held
    await expect(warning).to_be_hidden(timeout=20_000)
    assert await events(page, "quality") == [
        {"weak": True, "reason": "loss"},
        {"weak": False, "reason": ""},
    ]
    assert loss.dropped > 0
    await wait_for_status(page, "In call")
    await page.get_by_role("button", name="Hang up").click()
    await wait_for_status(page, "Call ended")


# --------------------------------------------------------------------------- after a call


async def stored_rating(gateway: Gateway, call_id: str) -> tuple | None:
    assert gateway.database is not None
    rating = await gateway.database.ratings.get(call_id)
    return None if rating is None else (rating.call_id, rating.site, rating.rating, rating.comment)


async def post_rating(gateway: Gateway, call_id: str, body: dict) -> tuple[int, dict]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.url}/api/calls/{call_id}/rating", json=body) as response,
    ):
        return response.status, await response.json()


async def test_an_answered_call_may_be_rated_once_and_the_rating_is_kept(
    context: BrowserContext,
    host: HostPages,
    start_gateway: StartGateway,
    baresip_factory,
    sipp_factory,
    tmp_path: Path,
) -> None:
    phone = baresip_factory(codecs=("PCMU",), tone_hz=440, tone_seconds=30)
    busy = sipp_factory("uas_busy")
    gateway = await start_gateway(
        phone.uri,
        widget='position = "inline"',
        extra=f'[storage]\nstate_directory = "{tmp_path / "state"}"\n'
        f'database = "sqlite:///{tmp_path / "gateway.db"}"\n{ADMIN_TOML}',
        site_extra=f'[[sites]]\nid = "busy"\ndestination = "{busy.uri}"\n'
        "health_interval = 0\n"  # SIPp takes no OPTIONS
        f'origins = {json.dumps([host.origin])}\n[sites.widget]\nposition = "inline"\n',
    )
    page = await context.new_page()
    await page.goto(host.url("script", gateway.url))
    await page.get_by_role("button", name="Call", exact=True).click(timeout=TIMEOUT_MS)
    await wait_for_status(page, "In call")
    await page.get_by_role("button", name="Hang up").click()
    await wait_for_status(page, "Call ended")

    question = page.get_by_role("group", name="How was the call?")
    await expect(question).to_be_visible()
    await expect(question.get_by_role("radio")).to_have_count(5)
    send = page.get_by_role("button", name="Send")
    await send.click()  # no stars chosen: said so, nothing sent
    await expect(page.get_by_text("Choose from 1 to 5 stars.")).to_be_visible()
    await question.get_by_role("radio", name="4 out of 5").check()
    await page.get_by_role("textbox", name="Anything to add? (optional)").fill("Clear <b>sound</b>")
    violations = await axe_violations(page)
    assert violations == [], violations
    await snap(page, "rating")
    call = await page.evaluate("() => document.querySelector('click-to-call').ratingForm.call")
    await send.click()
    await expect(page.get_by_text("Thank you for your feedback.")).to_be_visible()
    await expect(question).to_be_hidden()
    comment = "Clear <b>sound</b>"
    assert await events(page, "rated") == [{"rating": 4, "comment": comment}]
    kept = (call["id"], "shop", 4, comment)
    assert await stored_rating(gateway, call["id"]) == kept

    # Once per call, with its own proof only.
    status, body = await post_rating(gateway, call["id"], {"proof": call["proof"], "rating": 1})
    assert (status, body["error"]["code"]) == (409, "already_rated")
    status, body = await post_rating(gateway, "another-call", {"proof": call["proof"], "rating": 1})
    assert (status, body["error"]["code"]) == (403, "rating_refused")
    status, body = await post_rating(gateway, call["id"], {"proof": "x.y", "rating": 5})
    assert (status, body["error"]["code"]) == (403, "rating_refused")
    assert await stored_rating(gateway, call["id"]) == kept

    # The site owner sees it with the call's record: the admin API, the history page
    # (the comment as text, not markup) and the CSV export.
    assert gateway.history is not None
    await gateway.history.flush()
    status, record, _ = await admin_get(gateway, f"/api/admin/calls/{call['id']}")
    assert status == 200, record
    assert isinstance(record, dict) and record["outcome"] == "answered"
    assert (record["rating"], record["rating_comment"]) == (4, comment)
    admin = await context.new_page()
    await log_in(admin, gateway.url)
    await admin.goto(f"{gateway.url}/admin/calls")
    row = admin.locator("#calls tbody tr")
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text(f"4/5 {comment}")
    assert await admin.locator("#calls b").count() == 0
    exported = await admin.request.get(f"{gateway.url}/admin/calls.csv")
    (header, values) = list(csv.reader(io.StringIO(await exported.text())))
    assert values[header.index("id")] == call["id"]
    assert (values[header.index("rating")], values[header.index("rating_comment")]) == (
        "4",
        comment,
    )
    await admin.close()

    # A call nobody answered is not rated.
    await page.goto(host.url("script", gateway.url, site="busy"))
    await page.get_by_role("button", name="Call", exact=True).click(timeout=TIMEOUT_MS)
    await wait_for_status(page, "Call ended: busy")
    await expect(page.get_by_role("group", name="How was the call?")).to_have_count(0)
    await busy.assert_passed_async()
