"""The admin page in Chromium: a wrong password refused, login, a live call visible during
the call, its history row after, CSV export, what visitors left (a voicemail the player
loads, a message, a conversation), a change without its CSRF token refused, failed logins
rate-limited, no serious axe-core violation, usable at phone width."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import time

import numpy as np
from playwright.async_api import Page, expect

from gateway.calls.voicemail import voicemail_folder
from gateway.media.recorder import OggOpusRecorder
from gateway.media.transcoder import audio_codec
from gateway.storage import ChatMessage, Conversation, LeftMessage, Voicemail
from sip_bridge import codec_by_name
from tests.e2e.widget_pages import axe_violations

from .conftest import open_call_page, wait_for_status
from .site_owner import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    log_in,
    start_owner_gateway,
    wait_for_records,
)


async def assert_accessible(page: Page) -> None:
    assert await axe_violations(page) == [], page.url


async def test_admin_page_in_chromium(sipp_factory, page):
    uas = sipp_factory("uas_answer_echo", rtp_echo=True, timeout=90)
    gateway = await start_owner_gateway(
        {"shop": uas.uri},
        site_extra={"shop": 'callback = {dial = "sip:{number}@127.0.0.1:9", countries = ["GB"]}'},
    )
    # The site owner's browser: its own context (cookies), CSP bypassed only for axe-core.
    admin_context = await page.context.browser.new_context(bypass_csp=True)
    admin = await admin_context.new_page()
    try:
        await admin.goto(f"{gateway.url}/admin")
        await expect(admin).to_have_url(f"{gateway.url}/admin/login")
        await assert_accessible(admin)

        await log_in(admin, gateway.url, "not the password")
        await expect(admin.get_by_role("alert")).to_have_text("Wrong user name or password.")
        await log_in(admin, gateway.url, ADMIN_PASSWORD)
        await expect(admin.get_by_role("heading", name="Live calls")).to_be_visible()
        cookie = next(c for c in await admin_context.cookies() if c["name"] == "gateway_admin")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and not cookie["secure"]

        # A visitor calls: the call shows among the live calls while it lasts.
        await open_call_page(page, gateway, "shop")
        await page.get_by_role("button", name="Call").click()
        await wait_for_status(page, "In call")
        live = admin.locator("#live-calls tbody")
        await expect(live).to_contain_text("answered", timeout=10_000)  # refreshed by itself
        await expect(live).to_contain_text("shop")
        # Its worker, named after its node: with several nodes, where the call is.
        await expect(live.locator("td").nth(7)).to_have_text(
            re.compile(r"^\S+/(gateway|worker-0)$")
        )
        await assert_accessible(admin)
        await page.get_by_role("button", name="Hang up").click()
        await wait_for_status(page, "Call ended")
        await uas.assert_passed_async()
        await expect(live).to_contain_text("No call in progress.", timeout=10_000)

        # The history has its row; the record page and the CSV export show it.
        (record,) = await wait_for_records(gateway, 1)
        await admin.get_by_role("link", name="History").click()
        row = admin.locator("#calls tbody tr")
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text("answered")
        await assert_accessible(admin)
        await admin.get_by_label("Outcome").select_option("missed")
        await admin.get_by_role("button", name="Show").click()
        await expect(admin.locator("#calls tbody")).to_contain_text("No call matches.")
        await admin.get_by_label("Outcome").select_option("answered")
        await admin.get_by_role("button", name="Show").click()
        async with admin.expect_download() as download:
            await admin.get_by_role("link", name="Export these calls as CSV").click()
        exported = (await (await download.value).path()).read_text()
        (header, row_values) = list(csv.reader(io.StringIO(exported)))
        assert header[:2] == ["id", "kind"] and row_values[0] == record["id"]
        assert row_values[header.index("outcome")] == "answered"
        await admin.get_by_role("link", name=f"Call {record['id']}").click()
        await expect(admin.get_by_role("heading", name=f"Call {record['id']}")).to_be_visible()
        await expect(admin.get_by_role("table")).to_contain_text("PCMU")
        await assert_accessible(admin)
        # Callbacks: cancel a scheduled one, place a failed one again.
        callbacks = gateway.database.callbacks
        now = time.time()
        later = await callbacks.add(
            site="shop", number="+442079460123", details={}, due_at=now + 86400, now=now
        )
        failed = await callbacks.add(
            site="shop", number="+442079460124", details={}, due_at=now + 86400, now=now
        )
        # Tried at its time (tomorrow, as a worker would then) and not reached.
        assert await callbacks.claim(failed.id, "test", failed.due_at) is not None
        await callbacks.finish(failed.id, "failed", "visitor not reached: busy", now)
        await admin.get_by_role("link", name="Callbacks").click()
        await admin.get_by_role("button", name="Cancel callback to +442079460123").click()
        await expect(admin.locator("#callbacks tbody")).to_contain_text("cancelled")
        assert (await callbacks.get(later.id)).status == "cancelled"
        await admin.get_by_role("button", name="Place callback to +442079460124 again").click()
        await expect(admin.get_by_role("heading", name="Callbacks")).to_be_visible()
        events = [event for _, event, detail in (await callbacks.get(failed.id)).history]
        assert events[:4] == ["requested", "dialing", "failed", "scheduled"]
        for section in ("Callbacks", "Destinations", "Daily figures"):
            await admin.get_by_role("link", name=section).click()
            await expect(admin.get_by_role("heading", level=1)).to_have_text(
                "Daily figures" if section == "Daily figures" else section
            )
            await assert_accessible(admin)
        await expect(admin.locator("#stats tbody")).to_contain_text("100.0 %")

        # What visitors left: a voicemail to hear, a written message, a conversation.
        await leave_for_the_owner(gateway)
        await admin.get_by_role("link", name="Messages").click()
        await expect(admin.get_by_role("heading", level=1)).to_have_text("Messages")
        player = admin.locator("#voicemail-v1 audio")
        await expect(player).to_have_attribute("src", "/admin/voicemails/v1/audio")
        # The player loads the audio (the page's CSP allows it, the session serves it).
        await player.evaluate("(audio) => { audio.preload = 'auto'; audio.load(); }")
        for _ in range(100):
            duration = await player.evaluate("(audio) => audio.duration")
            if duration and duration == duration:  # not NaN
                break
            await asyncio.sleep(0.05)
        assert 1.5 < duration < 2.5, duration
        await expect(admin.locator("#message-m1")).to_contain_text("+44 20 7946 0123")
        await assert_accessible(admin)
        await admin.get_by_role("link", name="Conversation k1").click()
        await expect(admin.get_by_role("table")).to_contain_text("Shipped today")
        await assert_accessible(admin)

        # On a phone: one column, nothing wider than the screen but the tables' own scroll.
        await admin.set_viewport_size({"width": 360, "height": 740})
        await admin.goto(f"{gateway.url}/admin/calls")
        overflow = await admin.evaluate(
            "() => document.documentElement.scrollWidth - window.innerWidth"
        )
        assert overflow <= 0
        await expect(admin.get_by_role("link", name="History")).to_be_visible()

        # A change without the session's CSRF token is refused and changes nothing.
        refused = await admin_context.request.post(
            f"{gateway.url}/admin/calls/{record['id']}/delete", form={"csrf_token": "forged"}
        )
        assert refused.status == 403
        assert len(await wait_for_records(gateway, 1)) == 1
        # With the token (the record page's button), the visitor's record goes.
        await admin.goto(f"{gateway.url}/admin/calls/{record['id']}")
        admin.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
        await admin.get_by_role("button", name="Delete this record").click()
        await expect(admin.locator("#calls tbody")).to_contain_text("No call matches.")

        # Failed logins are limited: after five, even the right password waits.
        await admin.get_by_role("button", name=f"Log out {ADMIN_USER}").click()
        await expect(admin).to_have_url(f"{gateway.url}/admin/login")
        for _ in range(4):  # one failed already
            await log_in(admin, gateway.url, "still not it")
            await expect(admin.get_by_role("alert")).to_have_text("Wrong user name or password.")
        await log_in(admin, gateway.url, ADMIN_PASSWORD)
        await expect(admin.get_by_role("alert")).to_contain_text("Too many failed logins")
        assert "/admin/login" in admin.url
    finally:
        await admin_context.close()
        await gateway.stop()


async def leave_for_the_owner(gateway) -> None:
    """A two-second voicemail (a real Ogg/Opus file), a message and a conversation."""
    folder = voicemail_folder(gateway.config)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    recorder = OggOpusRecorder(folder / "v1.ogg", audio_codec("PCMU"), max_frames=100)
    encode = codec_by_name("PCMU").create_encoder(20).encode
    tone = (np.sin(2 * np.pi * 440 * np.arange(160) / 8000) * 8000).astype(np.int16)
    for index in range(100):
        recorder.add(encode(tone), index * 160)
    recorder.close()
    now = time.time()
    database = gateway.database
    size = (folder / "v1.ogg").stat().st_size
    await database.voicemails.add(Voicemail("v1", "shop", now - 5, now, 2.0, size, "v1.ogg"))
    await database.messages.add(
        LeftMessage("m1", "shop", now, "Call me back\nplease", "+44 20 7946 0123", "phone")
    )
    await database.conversations.started(Conversation("k1", "shop", now, now))
    await database.conversations.add_message(
        "k1", ChatMessage(now, "operator", "Shipped today", "sip:desk@pbx.example")
    )
