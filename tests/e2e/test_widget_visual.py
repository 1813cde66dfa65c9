"""What the widget looks like in every state, at desktop width and at 375 px, compared
with the approved screenshots in tests/e2e/visual/approved/ (see tests/e2e/visual.py for
how they are kept deterministic and how to approve a change), in Chromium against a real
gateway calling real phones. Each state also shows only the controls that can be used
there, and is checked with axe-core.

Two values that depend on the day are pinned so that pixels do not: the browser's clock
(fixed, so the call timer reads 0:00 and dates are the same), and the closed site's next
opening in the gateway's answer (set to a fixed Monday).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import pytest_asyncio
from playwright.async_api import Browser, Page, Route, expect

from gateway.process.gateway import Gateway

from .visual import STABLE_RENDERING_ARGS, VisualCheck, font_environment
from .widget_pages import (
    DESKTOP,
    HOLD_MICROPHONE_JS,
    PHONE,
    HostPages,
    axe_violations,
    launch,
    widget_browser_args,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

TIMEOUT_MS = 10_000
FIXED_NOW = dt.datetime(2026, 2, 27, 10, 0, tzinfo=dt.UTC)  # a Friday, 10:00 in London
NEXT_OPENING = "2026-03-02T09:00:00+00:00"  # the Monday after, 09:00 in London
WEEKDAYS = 'mon = "09:00-17:30", tue = "09:00-17:30", wed = "09:00-17:30", '
WEEKDAYS += 'thu = "09:00-17:30", fri = "09:00-12:30, 13:30-17:00"'
CALLBACK = (
    'callback = {dial = "sip:{number}@127.0.0.1:9", countries = ["GB", "IE"], whisper = false}'
)

# A site's own look: its colours (light and dark), promise, font and corner radius.
BRAND = """
label = "Acme Support"
colour = "#1a5fb4"
dark_colour = "#99c1f1"
dark_text_colour = "#0b1d33"
promise = "We answer in about 30 seconds"
font = "Inter, sans-serif"
radius = 4
"""

StartGateway = Callable[..., Awaitable[Gateway]]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def visual_browser(browser: Browser) -> AsyncIterator[Browser]:
    """A Chromium that renders the same pixels on every machine (only fonts-inter)."""
    args = [*widget_browser_args(None), *STABLE_RENDERING_ARGS]
    async with launch(args, env=font_environment()) as stable:
        yield stable


def sites(host: HostPages, busy_uri: str, chat_uri: str) -> str:
    """Besides `shop`: `busy` (its operator is busy; one call per visitor in 15 minutes;
    a voicemail, then a callback offered) and `closed` (closed today, London hours; a
    written message, then a callback offered), both taking callbacks; `brand` (the site's
    own look), `checked` (offering the pre-call check) and `chat` (Write to us, its
    operator a phone that answers)."""
    origins = json.dumps([host.origin])
    london_today = dt.datetime.now(ZoneInfo("Europe/London")).date()
    return (
        f'[[sites]]\nid = "busy"\ndestination = "{busy_uri}"\norigins = {origins}\n'
        'health_interval = 0\nfallback = ["voicemail", "callback"]\n'
        f"calls_per_client_15min = 1\n{CALLBACK}\n"
        f'[[sites]]\nid = "closed"\ndestination = "sip:nobody@127.0.0.1:9"\n'
        f'origins = {origins}\nfallback = ["text", "callback"]\n{CALLBACK}\n'
        f'hours = {{timezone = "Europe/London", {WEEKDAYS}, '
        f'closed = ["{london_today.isoformat()}"]}}\n'
        f'[[sites]]\nid = "chat"\ndestination = "{chat_uri}"\norigins = {origins}\n'
        "health_interval = 0\nchat = true\n"
        f'[[sites]]\nid = "brand"\ndestination = "sip:nobody@127.0.0.1:9"\n'
        f"origins = {origins}\n[sites.widget]\n{BRAND}\n"
        f'[[sites]]\nid = "checked"\ndestination = "sip:nobody@127.0.0.1:9"\n'
        f"origins = {origins}\n[sites.widget]\nprecheck = true\n"
    )


async def visible_buttons(page: Page) -> list[str]:
    """The names of the widget's buttons a visitor can see, in order."""
    buttons = page.locator("click-to-call .panel button:visible")
    names = []
    for index in range(await buttons.count()):
        button = buttons.nth(index)
        name = await button.get_attribute("aria-label") or (await button.inner_text()).strip()
        names.append(name)
    return names


class Album:
    """Takes each state's screenshots (desktop: the panel; 375 px: the whole screen, with
    the bottom sheet) and collects axe-core's findings."""

    def __init__(self, check: VisualCheck) -> None:
        self.check = check
        self.violations: dict[str, list[dict[str, object]]] = {}

    async def shoot(self, page: Page, name: str, *, axe: bool = True) -> None:
        # Live values are masked: a microphone's level, a connection test's figures.
        meter = page.locator("click-to-call meter, click-to-call .precheck-measured")
        panel = page.locator("click-to-call .panel")
        target = panel if await panel.is_visible() else page.locator("click-to-call .launcher")
        self.check.compare(
            f"{name}-desktop", await target.screenshot(animations="disabled", mask=[meter])
        )
        await page.set_viewport_size(PHONE)
        self.check.compare(
            f"{name}-375", await page.screenshot(animations="disabled", mask=[meter])
        )
        await page.set_viewport_size(DESKTOP)
        if axe and (found := await axe_violations(page)):
            self.violations[name] = found


async def pinned_page(
    browser: Browser, *, color_scheme: str = "light", hold_microphone: bool = False
) -> Page:
    context = await browser.new_context(
        viewport=DESKTOP,
        locale="en-GB",
        timezone_id="Europe/London",
        reduced_motion="reduce",
        color_scheme=color_scheme,  # type: ignore[arg-type]
    )
    await context.grant_permissions(["microphone"])
    page = await context.new_page()
    await page.clock.set_fixed_time(FIXED_NOW)
    if hold_microphone:
        await page.add_init_script(HOLD_MICROPHONE_JS)
    return page


async def pin_next_opening(page: Page, gateway: Gateway, site: str) -> None:
    """The gateway's real answer, with the next opening of a fixed day."""

    async def pinned(route: Route) -> None:
        response = await route.fetch()
        body = await response.json()
        if body.get("next_opening"):
            body["next_opening"] = NEXT_OPENING
        await route.fulfill(response=response, json=body)

    await page.route(f"{gateway.url}/api/widget/{site}", pinned)


async def status_is(page: Page, text: str) -> None:
    await expect(page.get_by_role("status")).to_have_text(text, timeout=TIMEOUT_MS)


async def test_every_state_looks_as_approved(
    visual_browser: Browser,
    host: HostPages,
    start_gateway: StartGateway,
    baresip_factory,
    sipp_factory,
    tmp_path: Path,
) -> None:
    phone = baresip_factory(codecs=("PCMU",), tone_hz=440, tone_seconds=30, answermode="manual")
    busy = sipp_factory("uas_busy")
    desk = sipp_factory("uas_message_reply", timeout=300)  # its message comes late
    gateway = await start_gateway(
        phone.uri,
        site_extra=sites(host, busy.uri, desk.uri),
        extra=f'[storage]\ndatabase = "sqlite:///{tmp_path / "gateway.db"}"\n'
        f'state_directory = "{tmp_path / "state"}"',
    )
    album = Album(VisualCheck())
    shoot = album.shoot

    # A call, floating: launcher, ready, microphone, ringing, in call, keypad, muted, hold.
    page = await pinned_page(visual_browser, hold_microphone=True)
    await page.goto(host.url("script", gateway.url))
    launcher = page.get_by_role("button", name="Call us", exact=True)
    await expect(launcher).to_be_visible(timeout=TIMEOUT_MS)
    await shoot(page, "launcher", axe=False)
    await launcher.click()
    await status_is(page, "Ready")
    assert await visible_buttons(page) == ["Close", "Call"]
    await shoot(page, "ready")
    await page.get_by_role("button", name="Call", exact=True).click()
    await status_is(page, "Asking for your microphone…")
    assert await visible_buttons(page) == ["Close", "Hang up"]
    await shoot(page, "microphone")
    await page.evaluate("() => window.releaseMicrophone()")
    await status_is(page, "Ringing…")
    assert await visible_buttons(page) == ["Close", "Hang up", "Mute"]
    await shoot(page, "ringing")
    phone.answer()
    await status_is(page, "In call")
    await expect(page.get_by_role("timer")).to_have_text("0:00")  # the pinned clock
    assert await visible_buttons(page) == ["Close", "Hang up", "Mute", "Keypad"]
    await shoot(page, "in-call")
    await page.get_by_role("button", name="Keypad").click()
    await shoot(page, "keypad")
    await page.get_by_role("button", name="Keypad").click()
    await page.get_by_role("button", name="Mute", exact=True).click()
    await expect(page.get_by_role("button", name="Unmute")).to_have_attribute(
        "aria-pressed", "true"
    )
    await shoot(page, "muted")
    await page.get_by_role("button", name="Unmute").click()
    phone.command("hold")
    await status_is(page, "On hold")
    await shoot(page, "on-hold")
    phone.command("resume")
    await status_is(page, "In call")
    await page.get_by_role("button", name="Hang up").click()
    await status_is(page, "Call ended")
    # An answered call: the visitor may rate it.
    await expect(page.get_by_role("group", name="How was the call?")).to_be_visible()
    assert await visible_buttons(page) == ["Close", "Call", "Send"]
    await shoot(page, "ended")
    await page.get_by_role("radio", name="4 out of 5").check()
    await page.get_by_role("button", name="Send").click()
    await expect(page.get_by_text("Thank you for your feedback.")).to_be_visible()
    assert await visible_buttons(page) == ["Close", "Call"]
    await shoot(page, "rated")

    # Busy: the offers of a voicemail and a callback, the callback form, a voicemail being
    # recorded; then the second call is refused by the rate limit, and Call says from when
    # it works again (10:00 + 15 minutes).
    await page.goto(host.url("script", gateway.url, site="busy"))
    await page.get_by_role("button", name="Call us", exact=True).click()
    await page.get_by_role("button", name="Call", exact=True).click()
    await page.evaluate("() => window.releaseMicrophone()")
    await status_is(page, "Call ended: busy")
    assert await visible_buttons(page) == ["Close", "Call", "Leave a message", "Call me back"]
    await shoot(page, "busy")
    await page.get_by_role("button", name="Call me back").click()
    await expect(page.get_by_role("textbox", name="Your phone number")).to_be_focused()
    await shoot(page, "callback-form")
    await page.get_by_role("button", name="Leave a message").click()
    await page.evaluate("() => window.releaseMicrophone()")
    await status_is(page, "Recording your message…")
    await expect(page.get_by_role("timer", name="Message length")).to_have_text("0:00 / 2:00")
    assert await visible_buttons(page) == ["Close", "Send"]
    await shoot(page, "voicemail-recording")
    await page.get_by_role("button", name="Send").click()
    await expect(page.get_by_role("status")).to_contain_text("message", timeout=TIMEOUT_MS)
    await expect(page.get_by_role("button", name="Call", exact=True)).to_be_visible()
    await page.get_by_role("button", name="Call", exact=True).click()
    await page.evaluate("() => window.releaseMicrophone()")
    await status_is(page, "Call failed: Too many calls from your connection.")
    await expect(page.get_by_text("You can call again today at 10:15.")).to_be_visible()
    await expect(page.get_by_role("button", name="Call from 10:15")).to_be_disabled()
    await shoot(page, "rate-limited")
    await page.context.close()

    # Closed: the hours, in the site's zone, and the callback offer as the main action.
    page = await pinned_page(visual_browser)
    await pin_next_opening(page, gateway, "closed")
    await page.goto(host.url("script", gateway.url, site="closed"))
    await page.get_by_role("button", name="Call us", exact=True).click()
    await status_is(page, "We are closed.")
    opening = page.get_by_text("We open again Monday 2 March at 09:00 London time.")
    await expect(opening).to_be_visible()
    assert await visible_buttons(page) == ["Close", "Write a message", "Call me back"]
    await shoot(page, "closed")
    # A written message with a way back, and its receipt.
    await page.get_by_role("button", name="Write a message").click()
    await page.get_by_role("textbox", name="Your message").fill("Please call me about my order.")
    await page.get_by_role("textbox", name="Your phone number or email").fill("ana@example.com")
    await shoot(page, "message-form")
    await page.get_by_role("button", name="Send the message").click()
    await status_is(page, "We received your message. We will get back to you at ana@example.com.")
    await shoot(page, "message-received")
    await page.context.close()

    # Write to us: the conversation, with the operator's reply.
    page = await pinned_page(visual_browser)
    await page.goto(host.url("script", gateway.url, site="chat"))
    await page.get_by_role("button", name="Call us", exact=True).click()
    await status_is(page, "Ready")
    assert await visible_buttons(page) == ["Close", "Call", "Write to us"]
    await page.get_by_role("button", name="Write to us").click()
    await page.get_by_role("textbox", name="Your message").fill("Is my order on its way?")
    await page.keyboard.press("Enter")
    log = page.get_by_role("log", name="Conversation")
    await expect(log.get_by_text("Delivered")).to_be_visible(timeout=TIMEOUT_MS)
    await expect(log.get_by_text("On my way")).to_be_visible(timeout=TIMEOUT_MS)
    await shoot(page, "chat")
    await page.context.close()

    # Dark mode, from the visitor's system.
    page = await pinned_page(visual_browser, color_scheme="dark")
    await page.goto(host.url("script", gateway.url))
    await page.get_by_role("button", name="Call us", exact=True).click()
    await status_is(page, "Ready")
    await shoot(page, "dark-ready")
    await pin_next_opening(page, gateway, "closed")
    await page.goto(host.url("script", gateway.url, site="closed"))
    await page.get_by_role("button", name="Call us", exact=True).click()
    await page.get_by_role("button", name="Call me back").click()
    await shoot(page, "dark-callback-form")
    await page.context.close()

    # The site's own look, light and dark.
    for scheme in ("light", "dark"):
        page = await pinned_page(visual_browser, color_scheme=scheme)
        await page.goto(host.url("script", gateway.url, site="brand"))
        await page.get_by_role("button", name="Acme Support", exact=True).click()
        await status_is(page, "Ready")
        await expect(page.get_by_text("We answer in about 30 seconds")).to_be_visible()
        await shoot(page, f"brand-{scheme}")
        await page.context.close()

    # The site offers the pre-call check: its link under Call, then its verdict.
    page = await pinned_page(visual_browser)
    await page.goto(host.url("script", gateway.url, site="checked"))
    await page.get_by_role("button", name="Call us", exact=True).click()
    await status_is(page, "Ready")
    assert await visible_buttons(page) == [
        "Close",
        "Call",
        "Test my microphone and connection",
    ]
    await shoot(page, "precheck-offer")
    await page.get_by_role("button", name="Test my microphone and connection").click()
    await status_is(page, "You are ready to call.")
    await shoot(page, "precheck-good")
    await page.context.close()

    # Calling is impossible here: no buttons but Close.
    page = await pinned_page(visual_browser)
    await page.goto(host.url("script", gateway.url, origin=host.insecure_origin))
    await page.get_by_role("button", name="Call us", exact=True).click()
    await status_is(page, "Calling needs a secure (https) page.")
    assert await visible_buttons(page) == ["Close"]
    await shoot(page, "unavailable")
    # The iframe page: the widget fills the frame.
    await page.set_viewport_size({"width": 360, "height": 540})
    await page.goto(f"{gateway.url}/embed/shop")
    await status_is(page, "Ready")
    page_shot = await page.screenshot(animations="disabled")
    album.check.compare("embed-360", page_shot)
    await page.context.close()

    await busy.assert_passed_async()
    await desk.assert_passed_async()
    album.check.assert_unchanged()
    assert not album.violations, json.dumps(album.violations, indent=1)
