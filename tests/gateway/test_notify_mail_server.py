"""Mail through a real SMTP server (aiosmtpd) that wants a login: the login from the
environment gets the mail through; a wrong one is a failed attempt (tried again later)
whose error never shows the password."""

from __future__ import annotations

import pytest

from gateway.config import parse_config
from gateway.notify.delivery import DeliveryError
from gateway.notify.events import destination_changed
from gateway.notify.mail import MailRenderer, MailSender
from gateway.notify.outbox import OutboxEvent
from tests.support.mailbox import Mailbox

# A login over plain SMTP, on loopback: what the test server warns about is the point.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def down_event() -> OutboxEvent:
    down = destination_changed(
        "shop", "sip:desk@pbx", up=False, since=1_800_000_000.0, last_status=None, public_url=""
    )
    return OutboxEvent(
        "msg_down",
        "shop",
        down.type,
        {"channel": "email", "to": ["owner@shop.example"], "event": down.body()},
        0.0,
        1,
        0.0,
        None,
        "",
    )


def sender_for(mailbox: Mailbox, env: dict[str, str]) -> MailSender:
    config = parse_config(
        f'[email]\nsmtp_url = "smtp://gw@127.0.0.1:{mailbox.port}"\nfrom = "calls@shop.example"',
        env,
    )
    return MailSender(config.email, MailRenderer.for_config(config), timeout=10)


@pytest.fixture
def mailbox():
    box = Mailbox(login=("gw", "right horse battery")).start()
    yield box
    box.stop()


async def test_the_login_from_the_environment_gets_the_mail_through(mailbox):
    sender = sender_for(mailbox, {"GATEWAY_EMAIL_PASSWORD": "right horse battery"})
    await sender.deliver(down_event())
    (mail,) = await mailbox.wait_for(1)
    assert mail.recipients == ("owner@shop.example",)
    assert mail.subject == "shop: sip:desk@pbx is not answering"
    assert mail.message["Message-ID"] == "<msg_down@shop.example>"


async def test_a_refused_login_is_a_failed_attempt_without_the_password(mailbox):
    sender = sender_for(mailbox, {"GATEWAY_EMAIL_PASSWORD": "wrong horse"})
    with pytest.raises(DeliveryError) as caught:
        await sender.deliver(down_event())
    assert not caught.value.permanent
    assert f"127.0.0.1:{mailbox.port}" in str(caught.value)
    assert "horse" not in str(caught.value)
    assert mailbox.mails == []
