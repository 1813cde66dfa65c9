"""The widget's problems, in words with what to do, its access rules, its languages, its
accessibility (axe-core, 320 px) and the demo host page, in Chromium.

Problems: microphone denied, no microphone, an insecure page, a browser without WebRTC,
the network blocking the call, an iframe without allow="microphone". Access: an origin the
site does not list can neither frame the call page (frame-ancestors) nor call.
Screenshots of each problem go to tests/artifacts/widget/.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, expect

from gateway.process.gateway import Gateway
from signaling import call_namespace

from .widget_pages import (
    ARTIFACTS,
    ICE_FAILS_JS,
    NO_WEBRTC_JS,
    HostPages,
    axe_violations,
    launch,
    new_context,
    overflow,
    snap,
    widget_browser_args,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

TIMEOUT_MS = 10_000

StartGateway = Callable[..., Awaitable[Gateway]]
NewContext = Callable[..., Awaitable[BrowserContext]]


@pytest_asyncio.fixture(loop_scope="module")
async def contexts(browser: Browser, start_gateway: StartGateway) -> AsyncIterator[NewContext]:
    """New browser contexts, closed before the gateways stop (they depend on them)."""
    opened: list[BrowserContext] = []

    async def open_context(**options: object) -> BrowserContext:
        context = await new_context(browser, **options)  # type: ignore[arg-type]
        opened.append(context)
        return context

    yield open_context
    for context in opened:
        await context.close()


async def new_page(contexts: NewContext, **options: object) -> Page:
    return await (await contexts(**options)).new_page()


def call_button(page: Page):
    return page.get_by_role("button", name="Call", exact=True)


async def assert_no_call_reached(gateway: Gateway) -> None:
    assert not gateway.calls.calls
    assert gateway.endpoint.ua.active_calls == 0


def connected_pages(gateway: Gateway) -> int:
    """Pages connected to the gateway's signaling."""
    return call_namespace(gateway.sio).client_count


# --------------------------------------------------------------------------- problems


async def test_a_denied_microphone_says_how_to_allow_it(
    contexts: NewContext, host: HostPages, start_gateway: StartGateway
) -> None:
    gateway = await start_gateway(widget='position = "inline"')
    page = await new_page(contexts, microphone=False)  # the visitor says no
    await page.goto(host.url("script", gateway.url))
    await page.evaluate(
        """() => {
          window.errors = [];
          document.querySelector('click-to-call')
            .addEventListener('error', (event) => window.errors.push(event.detail));
        }"""
    )
    await call_button(page).click()
    status = page.get_by_role("status")
    await expect(status).to_have_text(
        "Microphone access was denied. Allow it to call.", timeout=TIMEOUT_MS
    )
    await expect(page.get_by_text("allow the microphone for this site, then press")).to_be_visible()
    await expect(call_button(page)).to_be_enabled()  # once allowed, it can try again
    await snap(page, "11-microphone-denied")
    errors = await page.evaluate("() => window.errors")
    assert [error["code"] for error in errors] == ["mic-denied"]
    await assert_no_call_reached(gateway)


async def test_no_microphone_says_to_connect_one(
    host: HostPages, start_gateway: StartGateway
) -> None:
    gateway = await start_gateway(widget='position = "inline"')
    # No fake capture device: this browser finds no microphone at all.
    args = [a for a in widget_browser_args(None) if a != "--use-fake-device-for-media-stream"]
    async with launch(args) as browser:
        context = await new_context(browser)
        page = await context.new_page()
        await page.goto(host.url("script", gateway.url))
        await call_button(page).click()
        await expect(page.get_by_role("status")).to_have_text(
            "No microphone was found.", timeout=TIMEOUT_MS
        )
        await expect(page.get_by_text("Connect a microphone or a headset")).to_be_visible()
        await snap(page, "12-no-microphone")
        await context.close()
    await assert_no_call_reached(gateway)


async def test_an_insecure_page_says_https_is_needed(
    contexts: NewContext, host: HostPages, start_gateway: StartGateway
) -> None:
    gateway = await start_gateway()
    page = await new_page(contexts)
    await page.goto(host.url("script", gateway.url, origin=host.insecure_origin))
    assert await page.evaluate("() => window.isSecureContext") is False
    await page.get_by_role("button", name="Call us", exact=True).click()
    await expect(page.get_by_role("status")).to_have_text(
        "Calling needs a secure (https) page.", timeout=TIMEOUT_MS
    )
    await expect(page.get_by_text("open this page with https://")).to_be_visible()
    await expect(call_button(page)).to_be_hidden()  # only controls that can be used
    await snap(page, "13-insecure-page")
    assert connected_pages(gateway) == 0  # it did not even connect


async def test_a_browser_without_webrtc_says_so(
    contexts: NewContext, host: HostPages, start_gateway: StartGateway
) -> None:
    gateway = await start_gateway(widget='position = "inline"')
    page = await new_page(contexts)
    await page.add_init_script(NO_WEBRTC_JS)
    await page.goto(host.url("script", gateway.url))
    await expect(page.get_by_role("status")).to_have_text(
        "This browser cannot make calls.", timeout=TIMEOUT_MS
    )
    await expect(page.get_by_text("use a recent version of Chrome")).to_be_visible()
    await expect(call_button(page)).to_be_hidden()
    await snap(page, "14-browser-unsupported")


async def test_a_blocked_network_ends_the_call_with_what_to_try(
    contexts: NewContext, host: HostPages, start_gateway: StartGateway, sipp_factory
) -> None:
    uas = sipp_factory("uas_no_answer")
    gateway = await start_gateway(uas.uri, widget='position = "inline"')
    page = await new_page(contexts)
    await page.add_init_script(ICE_FAILS_JS)
    await page.goto(host.url("script", gateway.url))
    await call_button(page).click()
    await expect(page.get_by_role("status")).to_have_text(
        "Call ended: the network blocked the call", timeout=TIMEOUT_MS
    )
    await expect(page.get_by_text("Try another network")).to_be_visible()
    await snap(page, "15-network-blocked")
    await uas.assert_passed_async()  # the widget hung up: the phone got its CANCEL


async def test_an_iframe_without_allow_microphone_says_what_the_site_must_add(
    contexts: NewContext, host: HostPages, start_gateway: StartGateway
) -> None:
    gateway = await start_gateway()
    page = await new_page(contexts)
    await page.goto(host.url("iframe", gateway.url, allow="no"))
    frame = page.frame_locator("iframe")
    await expect(frame.get_by_role("status")).to_have_text(
        "This page does not let the call use the microphone.", timeout=TIMEOUT_MS
    )
    await expect(frame.get_by_text('allow="microphone; autoplay"')).to_be_visible()
    await expect(frame.get_by_role("button", name="Call", exact=True)).to_be_hidden()
    await snap(page, "16-iframe-without-microphone")


# --------------------------------------------------------------------------- access


async def test_an_origin_not_listed_can_neither_frame_nor_call(
    contexts: NewContext, host: HostPages, start_gateway: StartGateway
) -> None:
    gateway = await start_gateway()
    page = await new_page(contexts)
    refusals: list[str] = []
    page.on("console", lambda message: refusals.append(message.text))
    await page.goto(host.url("iframe", gateway.url, origin=host.other_origin))
    (framed,) = page.frames[1:]
    # The browser refused to show the call page inside this origin's page.
    await expect(page.frame_locator("iframe").locator("click-to-call")).to_have_count(0)
    assert not framed.url.startswith(gateway.url), framed.url
    assert any("frame-ancestors" in text for text in refusals), refusals

    await page.goto(host.url("script", gateway.url, origin=host.other_origin))
    await page.get_by_role("button", name="Call us", exact=True).click()
    # The gateway's refusal (code origin_refused), in the widget's words.
    await expect(page.get_by_role("status")).to_have_text(
        "Cannot call: This website may not use this call service.", timeout=TIMEOUT_MS
    )
    await expect(call_button(page)).to_be_hidden()
    await snap(page, "17-origin-refused")
    # Not through the API either.
    await page.evaluate("() => document.querySelector('click-to-call').call()")
    assert await page.evaluate("() => document.querySelector('click-to-call').state") == (
        "unavailable"
    )
    await assert_no_call_reached(gateway)
    assert connected_pages(gateway) == 0


# --------------------------------------------------------------------------- languages


async def test_the_language_follows_the_browser_unless_the_site_sets_one(
    contexts: NewContext, start_gateway: StartGateway
) -> None:
    german = '[[sites]]\nid = "shop-de"\ndestination = "sip:a@127.0.0.1:9"\n'
    german += '[sites.widget]\nlanguage = "de"\nlabel = "Kundendienst"\n'
    gateway = await start_gateway(site_extra=german)
    cases = [
        ("en-US", "shop", "Ready", "Call", "en"),
        ("fr-FR", "shop", "Prêt", "Appeler", "fr"),
        ("fr-FR", "shop-de", "Bereit", "Anrufen", "de"),
    ]
    for locale, site, ready, call, lang in cases:
        page = await new_page(contexts, locale=locale)
        await page.goto(f"{gateway.url}/embed/{site}")
        await expect(page.get_by_role("status")).to_have_text(ready, timeout=TIMEOUT_MS)
        await expect(page.get_by_role("button", name=call, exact=True)).to_be_enabled()
        assert await page.locator("click-to-call .ctc").get_attribute("lang") == lang
        if site == "shop-de":
            await expect(page.locator("click-to-call .title")).to_have_text("Kundendienst")
        await snap(page, f"18-language-{lang}")


# --------------------------------------------------------------------------- accessibility


async def test_axe_finds_no_serious_violations_and_320_px_does_not_break(
    contexts: NewContext, host: HostPages, start_gateway: StartGateway, sipp_factory
) -> None:
    uas = sipp_factory("uas_answer_echo", rtp_echo=True)
    gateway = await start_gateway(uas.uri, widget='visitor_details = "optional"')
    found: dict[str, list[dict[str, object]]] = {}

    # The gateway's own pages have a strict CSP: axe is injected past it.
    page = await new_page(contexts, bypass_csp=True)
    await page.goto(f"{gateway.url}/embed/shop")
    await expect(call_button(page)).to_be_enabled(timeout=TIMEOUT_MS)
    found["iframe page, ready"] = await axe_violations(page)
    await page.goto(f"{gateway.url}/demo/shop")
    await expect(page.get_by_role("button", name="Call us", exact=True)).to_be_visible()
    found["demo host page"] = await axe_violations(page)

    # A site's page with the floating widget, through a call.
    page = await new_page(contexts)
    await page.goto(host.url("script", gateway.url))
    await page.get_by_role("button", name="Call us", exact=True).click()
    await expect(call_button(page)).to_be_enabled(timeout=TIMEOUT_MS)
    found["floating, open, visitor details"] = await axe_violations(page)
    await page.get_by_role("textbox", name="Your name (optional)").fill("Ana")
    await call_button(page).click()
    await expect(page.get_by_role("status")).to_have_text("In call", timeout=TIMEOUT_MS)
    keypad = page.get_by_role("button", name="Keypad")
    await expect(keypad).to_have_attribute("aria-expanded", "false")  # behind its button
    await expect(page.get_by_role("button", name="pound")).to_be_hidden()
    await keypad.click()
    await expect(keypad).to_have_attribute("aria-expanded", "true")
    await expect(page.get_by_role("button", name="pound")).to_be_visible()
    found["in call, keypad"] = await axe_violations(page)

    # 320 px: nothing sticks out of the viewport, the controls are still usable.
    await page.set_viewport_size({"width": 320, "height": 640})
    reach = await overflow(page)
    assert max(reach.values()) <= 0.5, reach
    await page.get_by_role("button", name="5", exact=True).click()
    await page.screenshot(path=ARTIFACTS / "19-in-call-320.png")
    await page.get_by_role("button", name="Hang up").click()
    await expect(page.get_by_role("status")).to_have_text("Call ended")
    found["ended"] = await axe_violations(page)
    await uas.assert_passed_async()

    narrow = await new_page(contexts, viewport={"width": 320, "height": 560})
    await narrow.goto(f"{gateway.url}/embed/shop")
    await expect(call_button(narrow)).to_be_enabled(timeout=TIMEOUT_MS)
    reach = await overflow(narrow)
    assert max(reach.values()) <= 0.5, reach

    problems = {state: v for state, v in found.items() if v}
    assert not problems, json.dumps(problems, indent=1)


async def test_on_a_phone_the_panel_is_a_bottom_sheet_that_does_not_pop_the_keyboard(
    contexts: NewContext, host: HostPages, start_gateway: StartGateway
) -> None:
    gateway = await start_gateway(widget='visitor_details = "optional"')
    name = "Your name (optional)"
    # On a desktop, opening the panel puts the focus in the name field, ready to type.
    page = await new_page(contexts)
    await page.goto(host.url("script", gateway.url))
    await page.get_by_role("button", name="Call us", exact=True).click()
    await expect(page.get_by_role("textbox", name=name)).to_be_focused(timeout=TIMEOUT_MS)
    # On a phone, the panel spans the bottom of the screen, and the focus goes to Call:
    # a focused text field would open the keyboard over the sheet.
    phone = await new_page(contexts, viewport={"width": 375, "height": 740}, has_touch=True)
    await phone.goto(host.url("script", gateway.url))
    await phone.get_by_role("button", name="Call us", exact=True).click()
    await expect(call_button(phone)).to_be_focused(timeout=TIMEOUT_MS)
    await expect(phone.get_by_role("textbox", name=name)).not_to_be_focused()
    sheet = await phone.locator("click-to-call .panel").bounding_box()
    assert sheet is not None
    assert (sheet["x"], sheet["width"], sheet["y"] + sheet["height"]) == (0, 375, 740), sheet


async def test_axe_on_a_problem_state(
    contexts: NewContext, host: HostPages, start_gateway: StartGateway
) -> None:
    gateway = await start_gateway(widget='position = "inline"')
    page = await new_page(contexts, microphone=False)
    await page.goto(host.url("script", gateway.url))
    await call_button(page).click()
    await expect(page.get_by_role("status")).to_contain_text("denied", timeout=TIMEOUT_MS)
    assert await axe_violations(page) == []


# --------------------------------------------------------------------------- demo page


async def test_the_demo_page_shows_both_snippets_ready_to_copy(
    contexts: NewContext, start_gateway: StartGateway
) -> None:
    gateway = await start_gateway()
    context = await contexts()
    await context.grant_permissions(["clipboard-read", "clipboard-write", "microphone"])
    page = await context.new_page()
    await page.goto(f"{gateway.url}/demo/shop")
    script = f'<script type="module" src="{gateway.url}/widget.js"></script>'
    await expect(page.locator("#script-snippet")).to_contain_text(script)
    await expect(page.locator("#script-snippet")).to_contain_text(
        '<click-to-call site="shop"></click-to-call>'
    )
    iframe = f'<iframe src="{gateway.url}/embed/shop" allow="microphone; autoplay"'
    await expect(page.locator("#iframe-snippet")).to_contain_text(iframe)
    # Both are live on the page: the floating button and the framed call page.
    await expect(page.get_by_role("button", name="Call us", exact=True)).to_be_visible()
    framed = page.frame_locator("#iframe-preview")
    await expect(framed.get_by_role("button", name="Call", exact=True)).to_be_enabled(
        timeout=TIMEOUT_MS
    )
    await snap(page, "20-demo-page")
    await page.get_by_role("button", name="Copy").first.click()
    await expect(page.get_by_role("status").filter(has_text="Copied.")).to_be_visible()
    copied = await page.evaluate("() => navigator.clipboard.readText()")
    assert copied == await page.locator("#script-snippet").text_content()
