"""The widget on a site's own pages (another origin than the gateway's), in Chromium,
calling real SIP peers: both embeddings carry audio both ways, keyboard-only use with DTMF
and mute, hold, visitor details in the INVITE, the JavaScript API, and a screenshot of each
state of a call (tests/artifacts/widget/).

One browser serves the whole module; each test has its own context, gateway and peers.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import pytest_asyncio
import socketio
from playwright.async_api import Browser, BrowserContext, Frame, Page, Route, expect

from gateway.process.gateway import Gateway
from signaling import call_namespace
from tests.support.audio import assert_tone, read_wav
from tests.support.browser import capture_remote_audio, record_states, states
from tests.support.sipp import scenario_path

from .widget_pages import (
    HOLD_MICROPHONE_JS,
    NOBODY,
    HostPages,
    focused,
    new_context,
    snap,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

MIC_HZ = 1000
PHONE_HZ = 440
TIMEOUT_MS = 10_000

StartGateway = Callable[..., Awaitable[Gateway]]


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Browser, start_gateway: StartGateway) -> AsyncIterator[BrowserContext]:
    # Closed before the gateways stop (it depends on them): a page's open socket would
    # hold a gateway's HTTP shutdown for its whole timeout.
    context = await new_context(browser)
    yield context
    await context.close()


def call_button(where: Page | Frame):
    return where.get_by_role("button", name="Call", exact=True)


async def wait_for_status(where: Page | Frame, text: str, timeout_ms: int = TIMEOUT_MS) -> None:
    await expect(where.get_by_role("status")).to_contain_text(text, timeout=timeout_ms)


async def open_floating_widget(page: Page) -> None:
    launcher = page.get_by_role("button", name="Call us", exact=True)
    await launcher.click()
    await expect(launcher).to_have_attribute("aria-expanded", "true")
    await expect(call_button(page)).to_be_enabled(timeout=TIMEOUT_MS)


async def wait_released(gateway: Gateway) -> None:
    for _ in range(50):
        if not gateway.calls.calls and gateway.endpoint.ua.active_calls == 0:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"calls left: {gateway.calls.calls}")


def silent_stretch_seconds(path: Path, window: float = 0.05) -> tuple[float, float]:
    """(longest run of windows at least 40 dB below the loudest ones, seconds; where it
    starts) in a recording."""
    samples, rate = read_wav(path)
    size = int(rate * window)
    frames = samples[: len(samples) // size * size].astype(np.float64).reshape(-1, size)
    rms = np.sqrt((frames**2).mean(axis=1))
    loud = np.percentile(rms, 90)
    quiet = rms < loud / 100
    best, best_start, run = 0, 0, 0
    for index, is_quiet in enumerate(quiet):
        run = run + 1 if is_quiet else 0
        if run > best:
            best, best_start = run, index - run + 1
    return best * window, best_start * window


# --------------------------------------------------------------------------- both embeddings


async def test_script_tag_on_another_origin_calls_with_audio_both_ways(
    context: BrowserContext, host: HostPages, start_gateway: StartGateway, baresip_factory
) -> None:
    phone = baresip_factory(codecs=("PCMU",), tone_hz=PHONE_HZ, tone_seconds=20)
    gateway = await start_gateway(phone.uri)
    page = await context.new_page()
    await page.goto(host.url("script", gateway.url))
    assert page.url.startswith(host.origin) and not gateway.url.startswith(host.origin)
    await expect(page.get_by_role("button", name="Call us", exact=True)).to_be_visible()
    await snap(page, "01-floating-closed")
    await open_floating_widget(page)
    await expect(page.get_by_role("status")).to_have_text("Ready")
    await snap(page, "02-ready")
    await record_states(page)

    await call_button(page).click()
    await wait_for_status(page, "In call")
    await expect(page.get_by_role("timer")).to_have_text(re.compile(r"0:0\d"))
    samples, rate = await capture_remote_audio(page, 2.0)
    assert_tone(samples, rate, PHONE_HZ, skip_seconds=0.2, what="audio the widget received")
    await expect(page.get_by_role("timer")).not_to_have_text("0:00")  # it runs
    await snap(page, "06-in-call")
    await page.get_by_role("button", name="Hang up").click()
    await wait_for_status(page, "Call ended")
    await expect(call_button(page)).to_be_enabled()
    await snap(page, "08-ended")
    await phone.wait_for_calls_ended_async(1, timeout=10)
    assert_tone(*read_wav(phone.last_recording().decoded), MIC_HZ, skip_seconds=0.5)
    seen = await states(page)
    assert seen[:3] == ["Ready", "Asking for your microphone…", "Connecting…"], seen
    assert "In call" in seen and seen[-1] == "Call ended"
    await wait_released(gateway)


async def test_iframe_on_another_origin_calls_with_audio_both_ways(
    context: BrowserContext, host: HostPages, start_gateway: StartGateway, baresip_factory
) -> None:
    phone = baresip_factory(codecs=("PCMU",), tone_hz=PHONE_HZ, tone_seconds=20)
    gateway = await start_gateway(phone.uri)
    page = await context.new_page()
    await page.goto(host.url("iframe", gateway.url))
    frame = page.frame_locator("iframe")
    await expect(frame.get_by_role("button", name="Call", exact=True)).to_be_enabled(
        timeout=TIMEOUT_MS
    )
    await snap(page, "iframe-ready")
    await frame.get_by_role("button", name="Call", exact=True).click()
    await expect(frame.get_by_role("status")).to_have_text("In call", timeout=TIMEOUT_MS)
    (embedded,) = [f for f in page.frames if f.url.startswith(f"{gateway.url}/embed/")]
    samples, rate = await capture_remote_audio(embedded, 2.0)
    assert_tone(samples, rate, PHONE_HZ, skip_seconds=0.2, what="audio the iframe received")
    await snap(page, "iframe-in-call")
    await frame.get_by_role("button", name="Hang up").click()
    await expect(frame.get_by_role("status")).to_have_text("Call ended")
    await phone.wait_for_calls_ended_async(1, timeout=10)
    assert_tone(*read_wav(phone.last_recording().decoded), MIC_HZ, skip_seconds=0.5)
    await wait_released(gateway)


# --------------------------------------------------------------------------- keyboard only


async def test_keyboard_only_call_with_dtmf_and_mute(
    context: BrowserContext, host: HostPages, start_gateway: StartGateway, baresip_factory
) -> None:
    phone = baresip_factory(codecs=("PCMU",), tone_hz=PHONE_HZ, tone_seconds=30)
    gateway = await start_gateway(phone.uri)
    page = await context.new_page()
    await page.goto(host.url("script", gateway.url))
    await expect(page.get_by_role("button", name="Call us", exact=True)).to_be_visible()

    # Tab from the top of the page to the widget's launcher; Enter opens the panel and
    # puts the focus on Call.
    for _ in range(5):
        await page.keyboard.press("Tab")
        if (now := await focused(page)) and now["name"] == "Call us":
            break
    else:
        raise AssertionError(f"Tab never reached the widget: {await focused(page)}")
    assert now["outline"] >= 2, "the focused launcher shows no focus ring"
    await page.keyboard.press("Enter")
    await expect(call_button(page)).to_be_enabled(timeout=TIMEOUT_MS)
    assert (await focused(page))["name"] == "Call"
    await page.keyboard.press("Enter")
    await wait_for_status(page, "In call")
    # The call started: the focus moved from the now disabled Call to Hang up.
    assert (await focused(page))["name"] == "Hang up"

    # Digits typed on the keyboard are sent as DTMF.
    await page.keyboard.press("1")
    await asyncio.sleep(0.3)
    await page.keyboard.press("#")
    await asyncio.sleep(0.5)
    await snap(page, "07-in-call-keypad")

    await page.keyboard.press("Tab")
    now = await focused(page)
    assert now["name"] == "Mute" and now["outline"] >= 2, now
    await page.keyboard.press("Space")
    mute = page.get_by_role("button", name="Mute")
    await expect(mute).to_have_attribute("aria-pressed", "true")
    await asyncio.sleep(2.5)
    await page.keyboard.press("Space")
    await expect(mute).to_have_attribute("aria-pressed", "false")
    await asyncio.sleep(1.5)

    await page.keyboard.press("Shift+Tab")
    assert (await focused(page))["name"] == "Hang up"
    await page.keyboard.press("Enter")
    await wait_for_status(page, "Call ended")
    assert (await focused(page))["name"] == "Call"  # the focus is not lost

    await phone.wait_for_calls_ended_async(1, timeout=10)
    assert re.findall(r"received event: '(.)' \(end=1\)", phone.output()) == ["1", "#"]
    # The far end heard the visitor, then silence while muted, then the visitor again.
    recording = phone.last_recording().decoded
    silent, starts = silent_stretch_seconds(recording)
    assert 1.8 <= silent <= 3.5, f"{silent:.2f} s of silence at {starts:.2f} s"
    samples, rate = read_wav(recording)
    before = samples[: int(starts * rate)]
    after = samples[int((starts + silent) * rate) :]
    assert_tone(before, rate, MIC_HZ, what="before mute")
    assert_tone(after, rate, MIC_HZ, what="after unmute")
    await wait_released(gateway)


# --------------------------------------------------------------------------- states


async def test_asking_connecting_ringing_and_busy_are_shown(
    context: BrowserContext, host: HostPages, start_gateway: StartGateway, sipp_factory, tmp_path
) -> None:
    # A phone that says only 100 Trying: the widget stays "Connecting…".
    trying_only = re.sub(
        r"<send>\s*<!\[CDATA\[\s*SIP/2.0 180 Ringing.*?</send>",
        "",
        scenario_path("uas_no_answer").read_text(),
        flags=re.DOTALL,
    )
    (tmp_path / "uas_trying_only.xml").write_text(trying_only)
    uas = sipp_factory(tmp_path / "uas_trying_only.xml")
    gateway = await start_gateway(uas.uri, widget='position = "inline"')
    page = await context.new_page()
    await page.add_init_script(HOLD_MICROPHONE_JS)
    await page.goto(host.url("script", gateway.url))
    await expect(call_button(page)).to_be_enabled(timeout=TIMEOUT_MS)
    await snap(page, "inline-ready")
    await call_button(page).click()
    await wait_for_status(page, "Asking for your microphone…")
    await expect(page.get_by_text("allow the microphone so that we can hear you")).to_be_visible()
    await snap(page, "03-asking-for-microphone")
    await page.evaluate("() => window.releaseMicrophone()")
    await wait_for_status(page, "Connecting…")
    await expect(page.get_by_role("meter", name="Microphone level")).to_be_visible()
    await snap(page, "04-connecting")
    await page.get_by_role("button", name="Hang up").click()
    await wait_for_status(page, "Call ended")
    await uas.assert_passed_async()

    ringing = sipp_factory("uas_no_answer")
    gateway = await start_gateway(ringing.uri, widget='position = "inline"')
    await page.goto(host.url("script", gateway.url))
    await call_button(page).click()
    await page.evaluate("() => window.releaseMicrophone()")
    await wait_for_status(page, "Ringing…")
    await snap(page, "05-ringing")
    samples, rate = await capture_remote_audio(page, 1.0)
    assert_tone(samples, rate, 425, what="ringback the visitor hears")
    await page.get_by_role("button", name="Hang up").click()
    await ringing.assert_passed_async()

    busy = sipp_factory("uas_busy")
    gateway = await start_gateway(busy.uri, widget='position = "inline"')
    await page.goto(host.url("script", gateway.url))
    await call_button(page).click()
    await page.evaluate("() => window.releaseMicrophone()")
    await wait_for_status(page, "Call ended: busy")
    await expect(page.get_by_text("The line is busy. Please try again")).to_be_visible()
    await snap(page, "09-ended-busy")
    await busy.assert_passed_async()


async def test_hold_is_shown_while_the_operator_holds(
    context: BrowserContext, host: HostPages, start_gateway: StartGateway, sipp_factory, tmp_path
) -> None:
    # The operator holds for 3 s (the scenario's second pause), then resumes.
    text = scenario_path("uas_reinvite_hold").read_text()
    pause = '<pause milliseconds="500"/>'
    second = text.index(pause, text.index(pause) + 1)
    longer = text[:second] + '<pause milliseconds="3000"/>' + text[second + len(pause) :]
    (tmp_path / "uas_long_hold.xml").write_text(longer)
    uas = sipp_factory(tmp_path / "uas_long_hold.xml")
    gateway = await start_gateway(uas.uri)
    page = await context.new_page()
    await page.goto(host.url("script", gateway.url))
    await open_floating_widget(page)
    await record_states(page)
    await call_button(page).click()
    await wait_for_status(page, "On hold")
    await expect(page.get_by_text("You are on hold. Please stay on the line.")).to_be_visible()
    await snap(page, "06b-on-hold")
    await wait_for_status(page, "In call", timeout_ms=6000)
    await page.get_by_role("button", name="Hang up").click()
    await uas.assert_passed_async()
    seen = await states(page)
    hold = seen.index("On hold")
    assert "In call" in seen[:hold] and "In call" in seen[hold:], seen


# --------------------------------------------------------------------------- visitor details


async def test_visitor_details_reach_the_operator_in_the_invite(
    context: BrowserContext, host: HostPages, start_gateway: StartGateway, sipp_factory
) -> None:
    uas = sipp_factory("uas_busy")
    gateway = await start_gateway(
        uas.uri, widget='position = "inline"\nvisitor_details = "required"'
    )
    page = await context.new_page()
    await page.goto(host.url("script", gateway.url, ref="secret-campaign"))
    await expect(call_button(page)).to_be_enabled(timeout=TIMEOUT_MS)
    name = page.get_by_role("textbox", name="Your name")
    await snap(page, "10-visitor-details")
    # The name is required: no call without it, and the visitor is told why.
    await call_button(page).click()
    await expect(page.get_by_text("Please enter your name, then press Call.")).to_be_visible()
    await expect(name).to_be_focused()
    await expect(name).to_have_attribute("aria-invalid", "true")
    assert not gateway.calls.calls and uas.trace() == []

    await name.fill('  Ana "Quotes"   María ')
    await page.get_by_role("textbox", name="What is it about? (optional)").fill("Invoice\t42")
    await page.keyboard.press("Enter")  # Enter in a field calls
    await wait_for_status(page, "Call ended: busy")
    await uas.assert_passed_async()
    (invite,) = [m for m in uas.trace() if not m.sent and m.start_line.startswith("INVITE")]
    headers = dict(invite.headers)
    assert headers["From"].startswith('"Ana \\"Quotes\\" María" <sip:'), headers["From"]
    assert headers["X-Visitor-Name"] == 'Ana "Quotes" María'
    assert headers["X-Visitor-Reason"] == "Invoice 42"
    # The page it came from, without its query string.
    assert headers["X-Visitor-Page"] == f"{host.origin}/script"
    assert headers["X-Site"] == "shop"


async def test_a_required_name_is_enforced_by_the_gateway_too(
    host: HostPages, start_gateway: StartGateway
) -> None:
    # A page that skips the widget's question (here: a plain socket.io client).
    gateway = await start_gateway(NOBODY, widget='visitor_details = "required"')
    origin = {"Origin": host.origin}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{gateway.url}/api/token", json={"site": "shop"}, headers=origin) as answer,
    ):
        token = (await answer.json())["token"]
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(
        gateway.url,
        transports=["websocket"],
        headers=origin,
        auth={"site": "shop", "token": token},
        wait_timeout=5,
    )
    try:
        offer = {"sdp": "v=0\r\n"}
        for visitor in (None, {"name": "   ", "reason": "help"}):
            payload = offer if visitor is None else {**offer, "visitor": visitor}
            ack = await client.call("call:start", payload, timeout=5)
            assert ack["error"] == {
                "code": "name_required",
                "message": "this site asks for your name before a call",
            }
        # With a name the call gets past that check (and on to the offer, refused here).
        ack = await client.call("call:start", {**offer, "visitor": {"name": "Ana"}}, timeout=5)
        assert ack["error"]["code"] == "bad_offer"
    finally:
        await client.disconnect()
    await wait_released(gateway)


async def test_without_visitor_details_only_the_page_is_sent(
    context: BrowserContext, host: HostPages, start_gateway: StartGateway, sipp_factory
) -> None:
    uas = sipp_factory("uas_busy")
    gateway = await start_gateway(uas.uri, widget='position = "inline"')
    page = await context.new_page()
    await page.goto(host.url("script", gateway.url))
    await expect(page.get_by_role("textbox")).to_have_count(0)
    await call_button(page).click()
    await wait_for_status(page, "Call ended: busy")
    await uas.assert_passed_async()
    (invite,) = [m for m in uas.trace() if not m.sent and m.start_line.startswith("INVITE")]
    headers = dict(invite.headers)
    assert headers["From"].startswith("<sip:")  # the site has no caller_name
    assert "X-Visitor-Name" not in headers and "X-Visitor-Reason" not in headers
    assert headers["X-Visitor-Page"] == f"{host.origin}/script"


# --------------------------------------------------------------------------- JavaScript API


async def test_the_sites_own_button_drives_the_widget(
    context: BrowserContext, host: HostPages, start_gateway: StartGateway, sipp_factory
) -> None:
    uas = sipp_factory("uas_no_answer")
    gateway = await start_gateway(uas.uri)
    page = await context.new_page()
    await page.goto(host.url("button", gateway.url))
    await page.get_by_role("button", name="Talk to us").click()  # widget.call()
    await wait_for_status(page, "Ringing…")
    assert await page.evaluate("() => document.querySelector('click-to-call').state") == "ringing"
    await page.get_by_role("button", name="Stop talking").click()  # widget.hangup()
    await wait_for_status(page, "Call ended")
    await uas.assert_passed_async()
    events = await page.evaluate("() => window.widgetEvents")
    changes = [detail["state"] for name, detail in events if name == "statechange"]
    assert changes[:2] == ["loading", "ready"], changes
    assert changes[2:5] == ["microphone", "connecting", "ringing"], changes
    assert changes[-1] == "ended"
    ended = [detail for name, detail in events if name == "ended"]
    assert ended == [{"cause": "hangup", "text": "Call ended"}]
    assert not [detail for name, detail in events if name == "error"]
    await wait_released(gateway)


async def test_starting_a_call_before_the_connection_is_up_waits_for_it(
    context: BrowserContext, host: HostPages, start_gateway: StartGateway, sipp_factory
) -> None:
    # A floating widget connects only when it is opened, or when call() is called.
    uas = sipp_factory("uas_busy")
    gateway = await start_gateway(uas.uri)
    page = await context.new_page()
    await page.goto(host.url("button", gateway.url))
    await expect(page.get_by_role("button", name="Call us", exact=True)).to_be_visible()
    await asyncio.sleep(0.5)
    assert await page.evaluate("() => document.querySelector('click-to-call').state") == "loading"
    assert call_namespace(gateway.sio).client_count == 0  # not connected
    await page.get_by_role("button", name="Talk to us").click()
    await wait_for_status(page, "Call ended: busy")
    await uas.assert_passed_async()


@pytest.mark.parametrize("position", ["inline", "bottom-right"])
async def test_a_call_asked_for_before_a_required_name_waits_for_a_click(
    context: BrowserContext,
    host: HostPages,
    start_gateway: StartGateway,
    sipp_factory,
    position: str,
) -> None:
    # widget.call() before the settings arrive: the defaults ask for no name, so the call
    # waits for the connection, which then finds the site's required name missing. A
    # floating widget keeps the panel call() opened, so that the visitor sees why.
    uas = sipp_factory("uas_busy")
    gateway = await start_gateway(
        uas.uri, widget=f'position = "{position}"\nvisitor_details = "required"'
    )
    settings_asked = asyncio.Event()
    release_settings = asyncio.Event()

    async def held(route: Route) -> None:
        settings_asked.set()
        await release_settings.wait()
        await route.continue_()

    page = await context.new_page()
    await page.route(f"{gateway.url}/api/widget/shop", held)
    await page.goto(host.url("button", gateway.url))
    await asyncio.wait_for(settings_asked.wait(), TIMEOUT_MS / 1000)
    await page.get_by_role("button", name="Talk to us").click()  # widget.call()
    release_settings.set()
    name = page.get_by_role("textbox", name="Your name")
    await expect(page.get_by_text("Please enter your name, then press Call.")).to_be_visible(
        timeout=TIMEOUT_MS
    )
    await expect(name).to_be_focused()
    await name.fill("Ana")
    # A later `ready` (here: after the connection drops and comes back) starts nothing.
    widget = "document.querySelector('click-to-call')"
    await page.evaluate(f"() => {widget}.session.socket.io.engine.close()")

    async def readies() -> int:
        events = await page.evaluate("() => window.widgetEvents")
        return [d["state"] for n, d in events if n == "statechange"].count("ready")

    for _ in range(50):
        if await readies() >= 2:
            break
        await asyncio.sleep(0.1)
    assert await readies() >= 2
    await asyncio.sleep(0.3)
    assert await page.evaluate(f"() => {widget}.state") == "ready"
    assert not gateway.calls.calls and uas.trace() == []

    await call_button(page).click()
    await wait_for_status(page, "Call ended: busy")
    await uas.assert_passed_async()
