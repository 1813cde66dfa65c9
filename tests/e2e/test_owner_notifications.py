"""The site owner is told, with real parts on both sides: Chromium calls through the widget,
SIPp is a busy operator, an aiosmtpd server receives the mails and an HTTP receiver checks
every webhook with the Standard Webhooks library; a destination on a port where nobody
listens goes down, a call is then refused at once and offered the callback, and it comes
up again when a baresip phone appears there."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, expect

from gateway.admin.auth import hash_password
from gateway.config import parse_config
from gateway.process.gateway import Gateway
from tests.support.mailbox import Mailbox
from tests.support.ports import free_port_block
from tests.support.webhook_receiver import WebhookReceiver

from .conftest import gateway_toml
from .site_owner import ADMIN_PASSWORD, ADMIN_USER
from .test_admin_page import assert_accessible, log_in
from .widget_pages import HostPages, new_context

pytestmark = pytest.mark.asyncio(loop_scope="module")

TIMEOUT_MS = 10_000
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
StartGateway = Callable[..., Awaitable[Gateway]]


@pytest_asyncio.fixture(loop_scope="module")
async def start_gateway(host: HostPages, tmp_path) -> AsyncIterator[StartGateway]:
    started: list[Gateway] = []

    async def start(destination: str, *, site: str = "", extra: str = "", **options) -> Gateway:
        toml = gateway_toml(
            destination=destination,
            site_extra=f"origins = {json.dumps([host.origin])}\n{site}\n"
            '[sites.widget]\nposition = "inline"\nvisitor_details = "optional"\n',
            extra=f'[storage]\ndatabase = "sqlite:///{tmp_path / "gateway.db"}"\n{extra}',
            **options,
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


async def test_a_busy_operator_makes_a_missed_call_mail_and_signed_webhooks(
    context: BrowserContext,
    host: HostPages,
    start_gateway: StartGateway,
    sipp_factory,
    mailbox: Mailbox,
    receiver: WebhookReceiver,
) -> None:
    busy = sipp_factory("uas_busy")
    gateway = await start_gateway(
        busy.uri,
        site='notify_email = ["owner@shop.example"]\n'
        f'[[sites.webhooks]]\nurl = "{receiver.url}"\nsecret = "{SECRET}"\n',
        extra=f'[email]\nsmtp_url = "{mailbox.url}"\nfrom = "calls@gateway.example"\n',
    )
    page = await context.new_page()
    await page.goto(host.url("script", gateway.url, utm="campaign"))
    await page.get_by_role("textbox", name="Your name (optional)").fill("Ada <i>Lovelace</i>")
    await page.get_by_role("button", name="Call", exact=True).click(timeout=TIMEOUT_MS)
    await expect(page.get_by_role("status")).to_contain_text("Call ended: busy", timeout=TIMEOUT_MS)
    await busy.assert_passed_async()

    (mail,) = await mailbox.wait_for(1)
    assert mail.recipients == ("owner@shop.example",)
    assert mail.sender == "calls@gateway.example"
    assert mail.subject == "Missed call from Ada <i>Lovelace</i> on shop"
    text, html = mail.part("plain"), mail.part("html")
    page_url = f"{host.origin}/script"  # without its query string
    for part in (text, html):
        assert page_url in part and "Ended because" in part and "campaign" not in part
    assert "Visitor: Ada <i>Lovelace</i>" in text
    assert "Ada &lt;i&gt;Lovelace&lt;/i&gt;" in html and "<i>" not in html
    await receiver.wait_for(lambda d: len(d) >= 2)
    assert all(d.verified and d.status == 204 for d in receiver.deliveries)
    (ended,) = receiver.of_type("call.ended")
    (missed,) = receiver.of_type("call.missed")
    assert ended.webhook_id != missed.webhook_id
    data = missed.body["data"]
    assert (data["outcome"], data["end_cause"], data["visitor_name"]) == (
        "missed",
        "busy",
        "Ada <i>Lovelace</i>",
    )
    assert data["page"] == page_url and data["answered_at"] is None
    link = f"{gateway.url}/admin/calls/{data['id']}"
    assert data["admin_url"] == link and link in text and f'href="{link}"' in html
    assert not receiver.of_type("call.answered")


async def test_a_dead_destination_goes_down_a_call_is_offered_the_callback_then_it_comes_up(
    context: BrowserContext,
    host: HostPages,
    start_gateway: StartGateway,
    baresip_factory,
    receiver: WebhookReceiver,
    caplog,
) -> None:
    port = free_port_block(14, align=2)  # nobody listens there yet: baresip will, later
    destination = f"sip:operator@127.0.0.1:{port}"
    gateway = await start_gateway(
        destination,
        site='callback = {dial = "sip:{number}@127.0.0.1:9", countries = ["GB"]}\n'
        f'[[sites.webhooks]]\nurl = "{receiver.url}"\nsecret = "{SECRET}"\n'
        'events = ["destination.down", "destination.up", "call.missed"]\n',
        health_interval=0.5,
        extra=f'[[admin.users]]\nname = "{ADMIN_USER}"\n'
        f'password_hash = "{hash_password(ADMIN_PASSWORD)}"\n',
    )
    caplog.set_level(logging.INFO, logger="gateway.health.monitor")
    await receiver.wait_for(
        lambda d: bool([x for x in d if x.body and "destination" in x.body["type"]])
    )
    (down,) = gateway.health.snapshot("shop")
    assert down["state"] == "down" and down["misses"] >= 2
    assert down["since"] <= time.time()

    page = await context.new_page()
    await page.goto(host.url("script", gateway.url))
    await page.get_by_role("button", name="Call", exact=True).click(timeout=TIMEOUT_MS)
    status = page.get_by_role("status")
    await expect(status).to_contain_text("Nobody can answer right now", timeout=TIMEOUT_MS)
    await expect(page.get_by_role("button", name="Call me back")).to_be_visible()
    # Refused before any INVITE: the visitor was not left to ring into silence.
    assert gateway.endpoint.ua.transaction_count <= 1  # at most the OPTIONS in flight
    assert not gateway.calls.calls

    # The site owner's page says so, and that the webhook got the news.
    admin_context = await context.browser.new_context(bypass_csp=True)
    admin = await admin_context.new_page()
    await log_in(admin, gateway.url, ADMIN_PASSWORD)
    await admin.goto(f"{gateway.url}/admin/destinations")
    row = admin.locator("#destinations tbody tr")
    await expect(row).to_contain_text(destination)
    await expect(row).to_contain_text("down since")
    delivered = admin.locator("#deliveries tbody tr", has_text="destination.down")
    await expect(delivered).to_contain_text("delivered")
    await assert_accessible(admin)
    await admin_context.close()

    phone = baresip_factory(port=port)
    await receiver.wait_for(lambda d: bool(receiver.of_type("destination.up")), timeout=15)
    (up,) = gateway.health.snapshot("shop")
    assert up["state"] == "up" and up["last_status"] == 200
    (went_down,) = receiver.of_type("destination.down")
    (came_up,) = receiver.of_type("destination.up")
    assert (
        went_down.body["data"]["destination"] == destination == came_up.body["data"]["destination"]
    )
    assert came_up.body["data"]["since"] > went_down.body["data"]["since"]
    (missed,) = receiver.of_type("call.missed")
    assert missed.body["data"]["end_cause"] == "nobody_available"
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name == "gateway.health.monitor"
    ]
    assert len(warnings) == 2, warnings
    assert "is down" in warnings[0] and "is up again" in warnings[1]
    assert phone.port == port
