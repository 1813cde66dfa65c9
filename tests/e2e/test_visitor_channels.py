"""Every way a visitor reaches the site besides a call (issue 13), in Chromium against a
real gateway and real SIP peers: call links (`/call/<site>?source=`), voicemail when the
operator is busy, a message left while the site is closed, and chat with a SIP phone.

One browser serves the module; its fake microphone plays 660 Hz, the tone a voicemail
must hold. Each test has its own gateway and peers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp
import av
import numpy as np
import pytest
import pytest_asyncio
import socketio
from playwright.async_api import Browser, BrowserContext, expect

from gateway.config import parse_config
from gateway.process.gateway import Gateway
from tests.support.audio import dominant_frequency, write_tone_wav
from tests.support.mailbox import Mailbox
from tests.support.webhook_receiver import WebhookReceiver

from .conftest import gateway_toml
from .widget_pages import (
    HostPages,
    axe_violations,
    launch,
    new_context,
    snap,
    widget_browser_args,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

MIC_HZ = 660
TIMEOUT_MS = 10_000
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

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


# --------------------------------------------------------------------------- voicemail


@pytest.fixture
def mailbox():
    box = Mailbox().start()
    yield box
    box.stop()


@pytest_asyncio.fixture(loop_scope="module")
async def receiver() -> AsyncIterator[WebhookReceiver]:
    receiver = await WebhookReceiver(SECRET).start()
    yield receiver
    await receiver.stop()


def decoded(path) -> tuple[np.ndarray, int]:
    with av.open(str(path)) as container:
        assert container.format.name == "ogg"
        stream = container.streams.audio[0]
        assert stream.codec_context.name == "opus"
        samples = [frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)]
        return np.concatenate(samples), stream.codec_context.sample_rate


async def fetch(url: str) -> tuple[int, str, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, response.headers.get("Content-Type", ""), await response.read()


async def test_a_busy_operators_visitor_leaves_a_voicemail_the_site_gets_it_three_ways(
    context: BrowserContext,
    host: HostPages,
    start_gateway: StartGateway,
    sipp_factory,
    mailbox: Mailbox,
    receiver: WebhookReceiver,
) -> None:
    uas = sipp_factory("uas_busy")
    gateway = await start_gateway(
        uas.uri,
        site=(
            'fallback = ["voicemail", "callback"]\nvoicemail_max_seconds = 4\n'
            'notify_email = ["owner@shop.example"]\n'
            f'[[sites.webhooks]]\nurl = "{receiver.url}"\nsecret = "{SECRET}"\n'
            'events = ["voicemail.received"]\n'
        ),
        widget='position = "inline"',
        extra=f'[email]\nsmtp_url = "{mailbox.url}"\nfrom = "calls@gateway.example"\n',
    )
    page = await context.new_page()
    await page.goto(host.url("script", gateway.url, source="newsletter"))
    call = page.get_by_role("button", name="Call", exact=True)
    await expect(call).to_be_enabled(timeout=TIMEOUT_MS)
    await call.click()
    status = page.get_by_role("status")
    await expect(status).to_contain_text("Call ended: busy", timeout=TIMEOUT_MS)
    await uas.assert_passed_async()
    # Nobody answered: the site's fallbacks, voicemail first as it lists them.
    offer = page.get_by_role("button", name="Leave a message")
    await expect(offer).to_be_visible()
    await snap(page, "voicemail-offer")
    await offer.click()
    await expect(status).to_have_text("Recording your message…", timeout=TIMEOUT_MS)
    await expect(page.get_by_role("timer", name="Message length")).to_contain_text("/ 0:04")
    await expect(page.get_by_role("button", name="Send")).to_be_enabled()
    violations = await axe_violations(page)
    assert violations == [], violations
    # The longest message is 4 s here: the gateway stops and keeps it by itself.
    await expect(status).to_have_text("We received your message. Thank you!", timeout=TIMEOUT_MS)

    (voicemail,) = await gateway.database.voicemails.find(site="shop")
    path = gateway.config.storage.state_directory / "voicemail" / voicemail.file
    samples, rate = decoded(path)
    assert abs(len(samples) / rate - 4.0) <= 0.5, len(samples) / rate
    assert abs(dominant_frequency(samples, rate) - MIC_HZ) < 5
    assert voicemail.visitor_source == "newsletter"
    (record,) = await gateway.database.records.find(site="shop")
    assert voicemail.call_id == record.id  # the busy call it followed
    audio = path.read_bytes()

    # The webhook: signed (the receiver verified it), with a link that works once signed.
    await receiver.wait_for(lambda found: receiver.of_type("voicemail.received"))
    (delivery,) = receiver.of_type("voicemail.received")
    assert delivery.verified
    data = delivery.body["data"]
    assert data["id"] == voicemail.id and data["content_type"] == "audio/ogg"
    assert data["visitor_source"] == "newsletter" and "client" not in data
    assert data["download_expires_at"] > time.time() + 86400  # outlives the retries
    assert await fetch(data["download_url"]) == (200, "audio/ogg", audio)
    link = urlsplit(data["download_url"])
    unsigned = f"{gateway.url}{link.path}"
    assert (await fetch(unsigned))[0] == 403
    forged = link.query.replace("signature=", "signature=A")
    assert (await fetch(f"{unsigned}?{forged}"))[0] == 403
    expired = gateway.calls.access.downloads.sign(link.path, time.time() - 8 * 86400)
    assert (await fetch(f"{gateway.url}{expired}"))[0] == 403
    other = gateway.calls.access.downloads.sign("/api/voicemails/other/audio", time.time())
    assert (await fetch(f"{gateway.url}{link.path}?{urlsplit(other).query}"))[0] == 403

    # The mail carries it (besides the mail of the missed call).
    mails = await mailbox.wait_for(2)
    (mail,) = [m for m in mails if m.subject.startswith("Voicemail")]
    assert mail.recipients == ("owner@shop.example",)
    (attached,) = list(mail.message.iter_attachments())
    assert attached.get_content_type() == "audio/ogg"
    assert attached.get_content() == audio


async def test_a_call_that_reaches_nobody_offers_the_fallbacks(
    context: BrowserContext, host: HostPages, start_gateway: StartGateway, sipp_factory
) -> None:
    """A phone that cannot take calls (503) ends the call `unreachable`: every destination
    down, as far as the call could tell, so nobody can answer and the offers follow."""
    uas = sipp_factory("uas_unavailable")
    gateway = await start_gateway(uas.uri, site='fallback = ["text"]', widget='position = "inline"')
    page = await context.new_page()
    await page.goto(host.url("script", gateway.url))
    call = page.get_by_role("button", name="Call", exact=True)
    await expect(call).to_be_enabled(timeout=TIMEOUT_MS)
    await call.click()
    await expect(page.get_by_role("status")).to_contain_text(
        "Call ended: unreachable", timeout=TIMEOUT_MS
    )
    await uas.assert_passed_async()
    await expect(page.get_by_role("button", name="Write a message")).to_be_visible()


def closed_today() -> str:
    """Open all week but closed on today's (UTC) date: closed, deterministically."""
    today = dt.datetime.now(dt.UTC).date().isoformat()
    week = ", ".join(
        f'{day} = "00:00-24:00"' for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    )
    return f'hours = {{timezone = "UTC", {week}, closed = ["{today}"]}}'


async def test_a_closed_site_takes_a_voicemail_sent_with_send(
    context: BrowserContext, host: HostPages, start_gateway: StartGateway
) -> None:
    gateway = await start_gateway(
        "sip:nobody@127.0.0.1:9",
        site=f'fallback = "voicemail"\n{closed_today()}\n',
        widget='position = "inline"',
    )
    page = await context.new_page()
    await page.goto(host.url("script", gateway.url))
    status = page.get_by_role("status")
    await expect(status).to_have_text("We are closed.", timeout=TIMEOUT_MS)
    await page.get_by_role("button", name="Leave a message").click()
    timer = page.get_by_role("timer", name="Message length")
    await expect(timer).to_contain_text("0:01 / 2:00", timeout=TIMEOUT_MS)
    await snap(page, "voicemail-recording")
    await page.get_by_role("button", name="Send").click()
    await expect(status).to_have_text("We received your message. Thank you!", timeout=TIMEOUT_MS)
    (voicemail,) = await gateway.database.voicemails.find(site="shop")
    assert 1.0 <= voicemail.seconds < 10.0 and voicemail.call_id is None
    samples, rate = decoded(gateway.config.storage.state_directory / "voicemail" / voicemail.file)
    assert abs(dominant_frequency(samples, rate) - MIC_HZ) < 5


# --------------------------------------------------------------------------- chat

CHAT_TEXT = "Is order 42 ready? 👋 شكرا — שלום"
REPLY_TEXT = "On my way 🚚 — شكرا"


async def test_chat_reaches_a_sip_phone_as_message_and_its_reply_appears(
    context: BrowserContext, host: HostPages, start_gateway: StartGateway, sipp_factory
) -> None:
    phone = sipp_factory("uas_message_reply")
    gateway = await start_gateway(phone.uri, site="chat = true", widget='position = "inline"')
    page = await context.new_page()
    await page.goto(host.url("script", gateway.url, source="spring"))
    write = page.get_by_role("button", name="Write to us")
    await expect(write).to_be_visible(timeout=TIMEOUT_MS)
    await write.click()
    await expect(write).to_have_attribute("aria-expanded", "true")
    log = page.get_by_role("log", name="Conversation")
    box = page.get_by_role("textbox", name="Your message")
    await expect(box).to_be_focused()
    await box.fill(CHAT_TEXT)
    await page.get_by_role("button", name="Send", exact=True).click()
    await expect(log.get_by_text(CHAT_TEXT)).to_be_visible()
    await expect(log.get_by_text(REPLY_TEXT)).to_be_visible(timeout=TIMEOUT_MS)
    await expect(log).to_contain_text("Delivered")
    violations = await axe_violations(page)
    assert violations == [], violations
    await snap(page, "chat")
    await phone.assert_passed_async()

    (message,) = [m for m in phone.trace() if not m.sent and m.method == "MESSAGE"]
    assert message.header("Content-Type") == "text/plain; charset=UTF-8"
    assert message.header("X-Site") == "shop" and message.header("X-Visitor-Source") == "spring"
    assert "Contact" not in dict(message.headers)
    body = CHAT_TEXT.encode()
    assert message.header("Content-Length") == str(len(body))
    assert b"\r\n\r\n" + body in phone.messages_path.read_bytes()  # byte for byte

    await gateway.history.flush()
    (conversation,) = await gateway.database.conversations.find(site="shop")
    stored = await gateway.database.conversations.get(conversation.id)
    assert [(m.sender, m.text) for m in stored.messages] == [
        ("visitor", CHAT_TEXT),
        ("operator", REPLY_TEXT),
    ]
    assert stored.operator == phone.uri and stored.visitor_source == "spring"


async def test_fifty_chat_messages_in_a_second_are_limited_with_a_reason(
    context: BrowserContext, host: HostPages, start_gateway: StartGateway
) -> None:
    gateway = await start_gateway(
        "sip:nobody@127.0.0.1:9", site="chat = true", widget='position = "inline"'
    )
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
        acks = await asyncio.gather(
            *(client.call("chat:send", {"text": f"message {i}"}, timeout=10) for i in range(50))
        )
    finally:
        await client.disconnect()
    taken = [ack for ack in acks if ack["ok"]]
    refused = [ack["error"] for ack in acks if not ack["ok"]]
    assert len(taken) == 10 and len({ack["conversation_id"] for ack in taken}) == 1
    assert len(refused) == 40
    assert {error["code"] for error in refused} == {"too_many_messages"}
    assert all(error["retry_after"] >= 1 for error in refused)
    assert "too many messages from this address" in refused[0]["message"]

    # The same visitor's widget is told why, in words.
    page = await context.new_page()
    await page.goto(host.url("script", gateway.url))
    await page.get_by_role("button", name="Write to us").click()
    await page.get_by_role("textbox", name="Your message").fill("one more")
    await page.keyboard.press("Enter")
    await expect(page.get_by_text("You are sending messages too fast.")).to_be_visible()


# --------------------------------------------------------------------------- click-to-text


async def test_a_closed_sites_visitor_leaves_a_message_delivered_by_webhook_and_email(
    context: BrowserContext,
    host: HostPages,
    start_gateway: StartGateway,
    mailbox: Mailbox,
    receiver: WebhookReceiver,
) -> None:
    gateway = await start_gateway(
        "sip:nobody@127.0.0.1:9",
        site=(
            f'fallback = ["text"]\n{closed_today()}\n'
            'notify_email = ["owner@shop.example"]\n'
            f'[[sites.webhooks]]\nurl = "{receiver.url}"\nsecret = "{SECRET}"\n'
            'events = ["message.received"]\n'
        ),
        widget='position = "inline"',
        extra=f'[email]\nsmtp_url = "{mailbox.url}"\nfrom = "calls@gateway.example"\n',
    )
    page = await context.new_page()
    await page.goto(host.url("script", gateway.url, source="newsletter"))
    status = page.get_by_role("status")
    await expect(status).to_have_text("We are closed.", timeout=TIMEOUT_MS)
    await page.get_by_role("button", name="Write a message").click()
    form = page.get_by_role("form", name="Leave your message and a way to reach you")
    await expect(form).to_be_visible()
    # Without a way back, the field says what is missing.
    await form.get_by_role("textbox", name="Your message").fill(CHAT_TEXT + "\nThanks")
    await form.get_by_role("button", name="Send the message").click()
    contact = form.get_by_role("textbox", name="Your phone number or email")
    await expect(contact).to_have_attribute("aria-invalid", "true")
    await expect(contact).to_be_focused()
    await contact.fill("ana@example.com")
    await snap(page, "message-form")
    await form.get_by_role("button", name="Send the message").click()
    await expect(status).to_have_text(
        "We received your message. We will get back to you at ana@example.com.",
        timeout=TIMEOUT_MS,
    )
    await expect(form).to_be_hidden()

    await receiver.wait_for(lambda found: receiver.of_type("message.received"))
    (delivery,) = receiver.of_type("message.received")
    assert delivery.verified
    data = delivery.body["data"]
    assert data["text"] == CHAT_TEXT + "\nThanks"
    assert (data["contact"], data["contact_kind"]) == ("ana@example.com", "email")
    assert data["visitor_source"] == "newsletter" and "client" not in data
    (mail,) = await mailbox.wait_for(1)
    assert mail.recipients == ("owner@shop.example",)
    assert mail.subject == "Message from ana@example.com on shop"
    assert CHAT_TEXT in mail.part("plain") and "ana@example.com" in mail.part("html")
    (stored,) = await gateway.database.messages.find(site="shop")
    assert stored.id == data["id"] and stored.text == data["text"]
