"""The widget's side of business hours, fallbacks and Request-a-Call, in Chromium against a
real gateway: what `GET /api/widget/<site>` says, the closed panel and its callback form
(refusals next to the field, a chosen time, the next opening), the busy fallback through a
callback that rings two real baresip phones, and a call refused because the site closed
after the page loaded.

Closed hours are deterministic: the site is open all week but closed on today's UTC date.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Page, Route, expect

from gateway.config import parse_config
from gateway.process.gateway import Gateway
from tests.support.audio import assert_wav_has_tone

from .conftest import gateway_toml
from .widget_pages import NOBODY, HostPages, axe_violations, overflow, snap

pytestmark = pytest.mark.asyncio(loop_scope="module")

TIMEOUT_MS = 10_000
VISITOR = "+442079460123"  # a valid London number
VISITOR_ZONE = "Europe/Paris"  # the browser's time zone: not the site's (UTC)
ALL_WEEK = ", ".join(
    f'{day} = "00:00-24:00"' for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
)
# Every callback state the page reports, in order (the events bubble out of the widget).
RECORD_CALLBACK_EVENTS_JS = """
window.callbackEvents = [];
document.addEventListener('callbackstatechange', (e) => window.callbackEvents.push(e.detail));
"""

StartGateway = Callable[..., Awaitable[Gateway]]


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def closed_today() -> str:
    return f'hours = {{timezone = "UTC", {ALL_WEEK}, closed = ["{today().isoformat()}"]}}'


def callback_table(
    dial_port: int = 9, operator: str | None = None, countries: tuple[str, ...] = ("GB",)
) -> str:
    options = f', operator = "{operator}"' if operator else ""
    return (
        f'callback = {{dial = "sip:{{number}}@127.0.0.1:{dial_port}", '
        f"countries = {json.dumps(list(countries))}, whisper = false{options}}}"
    )


@pytest_asyncio.fixture(loop_scope="module")
async def start_gateway(host: HostPages, tmp_path: Path) -> AsyncIterator[StartGateway]:
    """`start(destination, site="<site keys>", widget="<[sites.widget] keys>", extra=...)`:
    the site `shop`, usable from the host pages, with its callbacks in tmp_path/cb.db."""
    started: list[Gateway] = []

    async def start(
        destination: str = NOBODY, *, site: str = "", widget: str = "", extra: str = ""
    ) -> Gateway:
        origins = json.dumps([host.origin])
        toml = gateway_toml(
            destination=destination,
            site_extra=f"origins = {origins}\n{site}\n[sites.widget]\n{widget}\n",
            extra=f'[storage]\ndatabase = "sqlite:///{tmp_path / "cb.db"}"\n{extra}',
        )
        gateway = await Gateway.start(parse_config(toml, {}))
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        await gateway.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Browser, start_gateway: StartGateway) -> AsyncIterator[BrowserContext]:
    context = await browser.new_context(
        viewport={"width": 1280, "height": 800}, timezone_id=VISITOR_ZONE, locale="en-GB"
    )
    await context.grant_permissions(["microphone"])
    await context.add_init_script(RECORD_CALLBACK_EVENTS_JS)
    yield context
    await context.close()


async def get_json(url: str) -> tuple[int, dict[str, str], dict]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, dict(response.headers), await response.json()


def stored_callbacks(gateway: Gateway) -> list[tuple[str, str, float]]:
    with sqlite3.connect(gateway.config.storage.database.path) as db:
        return db.execute("SELECT id, number, due_at FROM callbacks ORDER BY created_at").fetchall()


async def callback_events(page: Page) -> list[dict]:
    return await page.evaluate("() => window.callbackEvents")


async def wait_for_status(page: Page, text: str, timeout_ms: int = TIMEOUT_MS) -> None:
    await expect(page.get_by_role("status")).to_contain_text(text, timeout=timeout_ms)


def opening_words(opening: dt.datetime) -> str:
    """How the widget names `opening`: in the site's zone (UTC, web/widget/hours.js), a
    weekday, or today. (In the browser's zone, an hour before midnight UTC, tomorrow's
    opening would already be today.)"""
    there = opening.astimezone(dt.UTC)
    if there.date() == dt.datetime.now(dt.UTC).date():
        return "today at"
    return there.strftime("%A")


# --------------------------------------------------------------------------- the API


async def test_the_widget_api_says_whether_a_site_is_open_and_takes_callbacks(
    start_gateway: StartGateway,
) -> None:
    extra = (
        f'[[sites]]\nid = "closed"\ndestination = "{NOBODY}"\n{closed_today()}\n'
        f'{callback_table()}\n[[sites]]\nid = "plain"\ndestination = "{NOBODY}"\n'
        f'fallback = "message"\n{closed_today()}\n'
    )
    gateway = await start_gateway(site=callback_table(), extra=extra)

    status, headers, shown = await get_json(f"{gateway.url}/api/widget/shop")
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert shown["open"] is True and shown["next_opening"] is None and shown["hours"] is None
    assert shown["fallback"] == ["callback"]
    assert shown["callback"] == {
        "countries": ["GB"],
        "calling_codes": {"GB": 44},
        "max_days_ahead": 14,
    }
    assert shown["label"] == ""  # the widget settings are still there

    _, _, closed = await get_json(f"{gateway.url}/api/widget/closed")
    tomorrow = dt.datetime.combine(today() + dt.timedelta(days=1), dt.time(), dt.UTC)
    assert closed["open"] is False
    assert dt.datetime.fromisoformat(closed["next_opening"]) == tomorrow
    assert closed["next_opening"].endswith("+00:00")  # with its offset
    assert closed["callback"] == {
        "countries": ["GB"],
        "calling_codes": {"GB": 44},
        "max_days_ahead": 14,
    }
    week = {day: [["00:00", "24:00"]] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    assert closed["hours"] == {"timezone": "UTC", "week": week}  # no closed dates

    _, _, plain = await get_json(f"{gateway.url}/api/widget/plain")
    assert plain["open"] is False and plain["callback"] is None
    assert plain["fallback"] == []  # "message": nothing but the reason
    # Nothing about the phones: no destination, trunk or operator.
    assert "sip:" not in json.dumps([shown, closed, plain])


# --------------------------------------------------------------------------- closed hours


async def test_a_closed_site_offers_a_callback_and_schedules_it(
    context: BrowserContext, host: HostPages, start_gateway: StartGateway
) -> None:
    gateway = await start_gateway(
        site=f"{closed_today()}\n{callback_table()}", widget='position = "inline"'
    )
    opening = dt.datetime.combine(today() + dt.timedelta(days=1), dt.time(), dt.UTC)
    page = await context.new_page()
    await page.goto(host.url("script", gateway.url))
    await wait_for_status(page, "We are closed.")
    await expect(page.get_by_text("We open again")).to_contain_text(opening_words(opening))
    await expect(page.get_by_role("button", name="Call", exact=True)).to_be_hidden()
    offer = page.get_by_role("button", name="Call me back")
    await expect(offer).to_have_attribute("aria-expanded", "false")
    # The weekly hours, in the site's zone (UTC): a table captioned with it, a row a day.
    hours = page.get_by_role("table", name="Opening hours (UTC time)")
    await expect(hours).to_be_visible()
    await expect(hours.get_by_role("row")).to_have_count(7)
    monday = hours.get_by_role("row").first
    await expect(monday.get_by_role("rowheader")).to_have_text("Monday")
    await expect(monday.get_by_role("cell")).to_have_text("00:00\u201324:00")  # an en dash
    violations = await axe_violations(page)
    assert violations == [], violations
    size = page.viewport_size
    await page.set_viewport_size({"width": 320, "height": 640})
    reach = await overflow(page)
    assert max(reach.values()) <= 0.5, reach
    if size:
        await page.set_viewport_size(size)
    await snap(page, "callback-01-closed")

    # Keyboard: the offer opens the form and puts the focus in the number field.
    await offer.focus()
    await page.keyboard.press("Enter")
    await expect(offer).to_have_attribute("aria-expanded", "true")
    number = page.get_by_role("textbox", name="Your phone number")
    await expect(number).to_be_focused()
    assert await number.get_attribute("type") == "tel"
    assert await number.get_attribute("autocomplete") == "tel"
    await expect(number).to_have_accessible_description("We call back numbers in United Kingdom.")
    soon = page.get_by_role("radio", name="When we open")
    await expect(soon).to_be_checked()

    # Refusals: in words next to the field, which gets aria-invalid and the focus.
    for typed, words in [
        ("+33 6 12 34 56 78", "We can only call back numbers in United Kingdom."),
        ("+44 909 879 0000", "We cannot call back this kind of number"),
    ]:
        await number.fill(typed)
        await page.get_by_role("button", name="Request the call back").click()
        await expect(page.get_by_text(words)).to_be_visible(timeout=TIMEOUT_MS)
        await expect(number).to_have_accessible_description(re.compile(re.escape(words)))
        await expect(number).to_have_attribute("aria-invalid", "true")
        await expect(number).to_be_focused()
    assert stored_callbacks(gateway) == []
    refusals = [(e["state"], e.get("code")) for e in await callback_events(page)]
    assert refusals[1::2] == [
        ("refused", "country_not_allowed"),
        ("refused", "number_type_refused"),
    ]
    violations = await axe_violations(page)
    assert violations == [], violations
    await snap(page, "callback-02-refused")

    # A time of the visitor's choosing (their clock: Paris), tomorrow at 10:00.
    await number.fill("020 7946 0123")
    await page.get_by_role("textbox", name="Your name (optional)").fill("Ann")
    await page.get_by_role("radio", name="At a time I choose").check()
    chosen = dt.datetime.combine(
        today() + dt.timedelta(days=1), dt.time(10), ZoneInfo(VISITOR_ZONE)
    )
    await page.get_by_label("Date and time").fill(chosen.strftime("%Y-%m-%dT%H:%M"))
    await page.get_by_role("button", name="Request the call back").click()
    await wait_for_status(page, "Call back scheduled for")
    await expect(number).to_be_hidden()
    await expect(offer).to_be_hidden()  # one callback at a time
    await snap(page, "callback-03-scheduled")
    (row,) = stored_callbacks(gateway)
    assert row[1] == VISITOR and row[2] == chosen.timestamp()
    events = await callback_events(page)
    assert [e["state"] for e in events][-2:] == ["sending", "scheduled"]
    _, _, shown = await get_json(f"{gateway.url}/api/callbacks/{events[-1]['id']}")
    assert shown["status"] == "scheduled" and shown["due_at"] == chosen.timestamp()

    # Or the next opening, the form's first choice when closed.
    await page.reload()
    await page.get_by_role("button", name="Call me back").click()
    await page.get_by_role("textbox", name="Your phone number").fill(VISITOR)
    await page.get_by_role("button", name="Request the call back").click()
    await wait_for_status(page, "Call back scheduled for")
    assert [row[2] for row in stored_callbacks(gateway)] == [
        chosen.timestamp(),
        opening.timestamp(),
    ]

    # Changed their mind: cancelled from the panel while it waits, and offered again.
    cancel = page.get_by_role("button", name="Cancel the call back")
    await cancel.click()
    await wait_for_status(page, "The call back was cancelled.")
    await expect(cancel).to_be_hidden()
    await expect(page.get_by_role("button", name="Call me back")).to_be_visible()
    cancelled_id = (await callback_events(page))[-1]["id"]
    _, _, shown = await get_json(f"{gateway.url}/api/callbacks/{cancelled_id}")
    assert shown["status"] == "cancelled"


async def test_an_irish_national_number_is_taken_with_ireland_chosen(
    browser: Browser, host: HostPages, start_gateway: StartGateway
) -> None:
    # A site calling back the UK and Ireland; the visitor types their number as they know
    # it, without +353. The country choice says how to read it: the browser's region
    # (en-IE) chooses Ireland; a British visitor's (en-GB) reads it as British, refused,
    # until they choose Ireland.
    gateway = await start_gateway(
        site=f"{closed_today()}\n{callback_table(countries=('GB', 'IE'))}",
        widget='position = "inline"',
    )
    for locale in ("en-IE", "en-GB"):
        context = await browser.new_context(locale=locale, timezone_id=VISITOR_ZONE)
        page = await context.new_page()
        await page.goto(host.url("script", gateway.url))
        await page.get_by_role("button", name="Call me back").click(timeout=TIMEOUT_MS)
        country = page.get_by_role("combobox", name="Country")
        options = country.get_by_role("option")
        await expect(options).to_have_text(
            ["\U0001f1ec\U0001f1e7 +44 United Kingdom", "\U0001f1ee\U0001f1ea +353 Ireland"]
        )
        await expect(country).to_have_value(locale[-2:])
        number = page.get_by_role("textbox", name="Your phone number")
        await number.fill("087 123 4567")
        send = page.get_by_role("button", name="Request the call back")
        await send.click()
        if locale == "en-GB":
            words = "That is not a valid phone number: check the digits."
            await expect(page.get_by_text(words)).to_be_visible(timeout=TIMEOUT_MS)
            await expect(number).to_have_attribute("aria-invalid", "true")
            assert len(stored_callbacks(gateway)) == 1  # only the Irish visitor's
            await country.select_option("IE")
            await send.click()
        await wait_for_status(page, "Call back scheduled for")
        assert stored_callbacks(gateway)[-1][1] == "+353871234567"
        violations = await axe_violations(page)
        assert violations == [], violations
        await context.close()
    assert [row[1] for row in stored_callbacks(gateway)] == ["+353871234567"] * 2


async def test_the_next_opening_is_in_the_sites_zone_with_the_visitors_in_brackets(
    browser: Browser, host: HostPages, start_gateway: StartGateway
) -> None:
    # A London site, closed today (London's date): it opens tomorrow at midnight, London
    # time. One sentence, one zone: the site's, then the visitor's own time in brackets
    # if it reads differently (the same day: the time; another day: the day too).
    london = ZoneInfo("Europe/London")
    today_there = dt.datetime.now(london).date()
    hours = f'hours = {{timezone = "Europe/London", {ALL_WEEK}, closed = ["{today_there}"]}}'
    gateway = await start_gateway(site=f"{hours}\n{callback_table()}", widget='position = "inline"')
    opening = dt.datetime.combine(today_there + dt.timedelta(days=1), dt.time(), london)
    there = f"{opening:%A} {opening.day} {opening:%B} at 00:00 London time"
    paris = opening.astimezone(ZoneInfo("Europe/Paris"))
    new_york = opening.astimezone(ZoneInfo("America/New_York"))
    cases = {
        "Europe/London": f"We open again {there}.",
        "Europe/Paris": f"We open again {there} ({paris:%H:%M} your time).",
        "America/New_York": f"We open again {there} ({new_york:%A %H:%M} your time).",
    }
    for zone, sentence in cases.items():
        context = await browser.new_context(locale="en-GB", timezone_id=zone)
        page = await context.new_page()
        await page.goto(host.url("script", gateway.url))
        await wait_for_status(page, "We are closed.")
        await expect(page.get_by_text("We open again")).to_have_text(sentence)
        # The table is in the site's zone, and says so.
        await expect(page.get_by_role("table", name="Opening hours (London time)")).to_be_visible()
        # So is the form's "when we open" choice.
        await page.get_by_role("button", name="Call me back").click()
        when = sentence.removeprefix("We open again ").removesuffix(".")
        await expect(page.get_by_role("radio", name=f"When we open ({when})")).to_be_checked()
        await context.close()


async def test_a_closed_site_with_the_message_fallback_only_says_so(
    context: BrowserContext, host: HostPages, start_gateway: StartGateway
) -> None:
    gateway = await start_gateway(
        site=f'fallback = "message"\n{closed_today()}\n{callback_table()}',
        widget='position = "inline"\nlanguage = "fr"',
    )
    page = await context.new_page()
    await page.goto(host.url("script", gateway.url))
    await wait_for_status(page, "Nous sommes fermés.")
    await expect(page.get_by_text("Nous rouvrons")).to_be_visible()
    await expect(page.get_by_role("button")).to_have_count(0)  # no Call, no callback


async def test_a_call_refused_as_closed_offers_the_callback_at_the_opening(
    context: BrowserContext, host: HostPages, start_gateway: StartGateway
) -> None:
    # The page loaded while the site was open (the first settings say so); it has closed
    # since: the gateway refuses the call with `closed`.
    gateway = await start_gateway(
        site=f"{closed_today()}\n{callback_table()}", widget='position = "inline"'
    )
    page = await context.new_page()
    first = True

    async def still_open(route: Route) -> None:
        nonlocal first
        if not first:
            await route.continue_()
            return
        first = False
        response = await route.fetch()
        await route.fulfill(response=response, json={**await response.json(), "open": True})

    await page.route(f"{gateway.url}/api/widget/shop", still_open)
    await page.goto(host.url("script", gateway.url))
    await page.get_by_role("button", name="Call", exact=True).click(timeout=TIMEOUT_MS)
    await wait_for_status(page, "Call failed: We are closed now.")
    await expect(page.get_by_text("We open again")).to_be_visible()
    await page.get_by_role("button", name="Call me back").click()
    await expect(page.get_by_role("radio", name="When we open")).to_be_checked()


# --------------------------------------------------------------------------- busy fallback


async def test_a_busy_operator_leads_to_a_callback_that_joins_both_phones(
    context: BrowserContext,
    host: HostPages,
    start_gateway: StartGateway,
    sipp_factory,
    baresip_factory,
) -> None:
    busy = sipp_factory("uas_busy")
    operator = baresip_factory(codecs=("PCMU",), tone_hz=440, tone_seconds=6, answermode="manual")
    visitor = baresip_factory(
        user=VISITOR, codecs=("PCMU",), tone_hz=700, tone_seconds=30, answermode="manual"
    )
    gateway = await start_gateway(
        busy.uri,
        site=callback_table(visitor.port, operator=operator.uri),
        widget='position = "inline"',
    )
    page = await context.new_page()
    await page.goto(host.url("script", gateway.url))
    await page.get_by_role("button", name="Call", exact=True).click(timeout=TIMEOUT_MS)
    await wait_for_status(page, "Call ended: busy")
    await busy.assert_passed_async()

    await page.get_by_role("button", name="Call me back").click()
    await page.get_by_role("textbox", name="Your phone number").fill("020 7946 0123")
    await expect(page.get_by_role("radio", name="Now")).to_be_checked()
    await page.get_by_role("textbox", name="Your phone number").press("Enter")
    await wait_for_status(page, "Calling our team")
    operator.answer()
    await wait_for_status(page, "Calling you now")
    await snap(page, "callback-04-calling-you")
    visitor.answer()
    await wait_for_status(page, "Connected")
    await wait_for_status(page, "The call back is over", timeout_ms=15_000)
    states = [e["state"] for e in await callback_events(page)]
    assert states == [
        "sending",
        "scheduled",
        "calling-operator",
        "calling-you",
        "connected",
        "done",
    ], states
    await operator.wait_for_calls_ended_async(1, timeout=10)
    await visitor.wait_for_calls_ended_async(1, timeout=10)
    assert_wav_has_tone(operator.last_recording().decoded, 700, skip_seconds=0.5)
    assert_wav_has_tone(visitor.last_recording().decoded, 440, skip_seconds=0.5)
