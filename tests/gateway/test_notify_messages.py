"""What a site's owner receives: the events' JSON, one outbox row per receiver that wants
it, webhook signatures a Standard Webhooks library accepts, mails whose outside strings
cannot add markup or lines, and the configuration keys that choose all this."""

from __future__ import annotations

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from gateway.config import ConfigError, parse_config
from gateway.notify.events import (
    Notification,
    call_events,
    destination_changed,
    message_received,
    voicemail_received,
)
from gateway.notify.mail import MailRenderer, MailSender
from gateway.notify.outbox import OutboxEvent
from gateway.notify.publisher import Notifier
from gateway.notify.webhooks import encode_body, signed_headers
from gateway.storage import Database
from tests.gateway.clock import FakeClock

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OTHER = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY"

CONFIG = f"""
[http]
public_url = "https://calls.shop.example"
[email]
smtp_url = "smtp://mail.shop.example:2525"
from = "calls@shop.example"
[[sites]]
id = "shop"
destination = "sip:desk@pbx.shop.example"
notify_email = ["owner@shop.example", "Desk@Shop.example"]
[[sites.webhooks]]
url = "https://crm.shop.example/hooks"
secret = "{SECRET}"
[[sites.webhooks]]
url = "https://other.example/missed"
secret = "{OTHER}"
events = ["call.missed"]
"""

RECORD = {
    "id": "c4ll",
    "kind": "call",
    "site": "shop",
    "outcome": "missed",
    "started_at": 1_800_000_000.0,
    "answered_at": None,
    "ended_at": 1_800_000_012.5,
    "ring_seconds": 12.5,
    "talk_seconds": None,
    "end_cause": "busy",
    "end_detail": "486 Busy Here from 10.1.2.3:5060",
    "client": "198.51.100.7",
    "worker": "worker-1",
    "destination": None,
    "page": "https://shop.example/pricing",
    "visitor_name": "Ada <b>Lovelace</b>",
    "visitor_reason": "Line one\nBcc: victim@example.com",
    "source": "widget",
}


def test_a_missed_call_makes_call_ended_and_call_missed_without_private_fields():
    ended, missed = call_events(RECORD, "https://calls.shop.example")
    assert (ended.type, missed.type) == ("call.ended", "call.missed")
    body = ended.body()
    assert body["type"] == "call.ended"
    assert body["timestamp"] == "2027-01-15T08:00:12.500Z"
    data = body["data"]
    assert data["admin_url"] == "https://calls.shop.example/admin/calls/c4ll"
    assert data["outcome"] == "missed" and data["ring_seconds"] == 12.5
    for private in ("client", "worker", "end_detail"):
        assert private not in data
    assert Notification.from_body("shop", body) == ended


def test_an_answered_call_tells_only_what_is_known_then():
    record = {**RECORD, "outcome": "answered", "answered_at": 1_800_000_004.0}
    (answered,) = call_events(record, "https://x.example", answered=True)
    assert answered.type == "call.answered" and answered.occurred_at == 1_800_000_004.0
    assert "outcome" not in answered.data and "ended_at" not in answered.data
    assert [n.type for n in call_events({**record, "outcome": "answered"}, "")] == ["call.ended"]


def test_event_types_are_checked():
    with pytest.raises(ValueError):
        Notification("call.exploded", "shop", 0.0)


async def test_one_row_per_receiver_that_wants_the_event(tmp_path):
    config = parse_config(CONFIG, {})
    database = await Database.open(f"sqlite:///{tmp_path / 'gateway.db'}")
    outbox = database.outbox
    woken = []
    notifier = Notifier(config, outbox, clock=FakeClock(), on_enqueued=lambda: woken.append(1))
    ended, missed = call_events(RECORD, config.http.public_url)
    assert await notifier.publish(ended) == 1  # the first webhook only
    assert await notifier.publish(missed) == 3  # both webhooks and the mail
    up = destination_changed(
        "shop", "sip:desk@pbx", up=True, since=5.0, last_status=200, public_url=""
    )
    assert await notifier.publish(up) == 1  # not mailed by default
    rows = await notifier.deliveries(site="shop")
    assert sorted((r["type"], r["channel"], r["target"]) for r in rows) == [
        ("call.ended", "webhook", "https://crm.shop.example/hooks"),
        ("call.missed", "email", "owner@shop.example, Desk@Shop.example"),
        ("call.missed", "webhook", "https://crm.shop.example/hooks"),
        ("call.missed", "webhook", "https://other.example/missed"),
        ("destination.up", "webhook", "https://crm.shop.example/hooks"),
    ]
    assert {r["state"] for r in rows} == {"pending"} and {r["attempts"] for r in rows} == {0}
    assert len(woken) == 3
    await database.close()


def test_the_signature_verifies_with_the_standard_webhooks_library():
    body = encode_body(call_events(RECORD, "")[0].body())
    headers = signed_headers(SECRET, "msg_abc", 1_800_000_100.0, body)
    assert headers["webhook-id"] == "msg_abc" and headers["webhook-timestamp"] == "1800000100"
    assert headers["webhook-signature"].startswith("v1,")
    receiver = Webhook(SECRET)
    # The library checks the timestamp against the real clock: sign one of now to verify.
    import time

    now = time.time()
    fresh = signed_headers(SECRET, "msg_abc", now, body)
    assert receiver.verify(body, fresh)["type"] == "call.ended"
    with pytest.raises(WebhookVerificationError):
        Webhook(OTHER).verify(body, fresh)
    with pytest.raises(WebhookVerificationError):
        receiver.verify(body + b" ", fresh)


def mail_of(notification: Notification) -> OutboxEvent:
    return OutboxEvent(
        "msg_1",
        notification.site,
        notification.type,
        {"channel": "email", "to": ["owner@shop.example"], "event": notification.body()},
        0.0,
        1,
        0.0,
        None,
        "",
    )


def test_a_missed_call_mail_escapes_what_the_visitor_typed():
    config = parse_config(CONFIG, {})
    sender = MailSender(config.email, MailRenderer.for_config(config))
    _, missed = call_events(RECORD, config.http.public_url)
    message = sender.message(mail_of(missed))
    assert message["Subject"] == "Missed call from Ada <b>Lovelace</b> on shop"
    assert message["From"] == "calls@shop.example" and message["To"] == "owner@shop.example"
    assert message["Message-ID"] == "<msg_1@shop.example>"
    assert "Bcc" not in message  # the reason's newline made no header
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Visitor: Ada <b>Lovelace</b>" in text
    assert "Reason: Line one Bcc: victim@example.com" in text  # one line
    assert "Page: https://shop.example/pricing" in text
    assert "https://calls.shop.example/admin/calls/c4ll" in text
    assert "<b>Lovelace" not in html and "Ada &lt;b&gt;Lovelace&lt;/b&gt;" in html
    assert '<a href="https://calls.shop.example/admin/calls/c4ll">' in html
    assert "Waited: 12 s" in text and "Ended because: busy" in text


def test_a_destination_down_mail_says_since_when_in_the_sites_time_zone():
    config = parse_config(
        CONFIG.replace(
            'notify_email = ["owner@shop.example", "Desk@Shop.example"]',
            'notify_email = ["owner@shop.example"]\n'
            'hours = {timezone = "Europe/Paris", always_open = true}',
        ),
        {},
    )
    down = destination_changed(
        "shop", "sip:desk@pbx", up=False, since=1_800_000_000.0, last_status=None, public_url=""
    )
    mail = MailRenderer.for_config(config).render(down, "msg_2")
    assert mail.subject == "shop: sip:desk@pbx is not answering"
    assert "Down since: 2027-01-15 09:00:00 (Europe/Paris)" in mail.text


# ------------------------------------------------------------------------- configuration
def test_the_keys_are_read():
    config = parse_config(CONFIG, {"GATEWAY_EMAIL_PASSWORD": "s3cret"})
    site = config.sites[0]
    assert [hook.url for hook in site.webhooks] == [
        "https://crm.shop.example/hooks",
        "https://other.example/missed",
    ]
    assert site.webhooks[1].events == ("call.missed",) and len(site.webhooks[0].events) == 9
    assert site.notify_email == ("owner@shop.example", "Desk@Shop.example")
    assert site.notify_events == (
        "call.missed",
        "callback.failed",
        "destination.down",
        "voicemail.received",
        "message.received",
    )
    assert site.health_interval == 30
    server = config.email.server
    assert (server.host, server.port, server.implicit_tls) == ("mail.shop.example", 2525, False)
    assert server.password == "s3cret" and "s3cret" not in repr(config)
    assert SECRET not in repr(config)


def test_an_smtps_url_with_a_login():
    config = parse_config(
        '[email]\nsmtp_url = "smtps://me%40shop:p%3Ass@mail.example"\nfrom = "a@b.example"', {}
    )
    server = config.email.server
    assert (server.port, server.implicit_tls, server.username, server.password) == (
        465,
        True,
        "me@shop",
        "p:ss",
    )


@pytest.mark.parametrize(
    ("toml", "key", "words"),
    [
        ('[[sites.webhooks]]\nurl = "ftp://x.example"\nsecret = "{s}"', "webhooks", "http"),
        ('[[sites.webhooks]]\nurl = "https://x.example"\nsecret = "abc"', "webhooks", "whsec_"),
        ('[[sites.webhooks]]\nurl = "https://x.example"\nsecret = "whsec_QUJD"', "webhooks", "24"),
        (
            '[[sites.webhooks]]\nurl = "https://x.example"\nsecret = "{s}"\nevents = ["call.x"]',
            "webhooks",
            "unknown event",
        ),
        ('notify_email = ["not an address"]', "notify_email", "address"),
        ('notify_email = ["a@b.example"]', "notify_email", "smtp_url"),
        ('notify_events = ["call.exploded"]', "notify_events", "unknown event"),
        ("health_interval = 0.1", "health_interval", "0.5"),
        ("health_interval = -1", "health_interval", "0"),
    ],
)
def test_bad_values_are_refused_by_key_without_the_secret(toml, key, words):
    site = f'[[sites]]\nid = "shop"\ndestination = "sip:a@b.example"\n{toml.format(s=SECRET)}'
    with pytest.raises(ConfigError) as caught:
        parse_config(site, {})
    assert f'sites["shop"].{key}' in str(caught.value) and words in str(caught.value)
    assert "QUJD" not in str(caught.value)


def test_email_needs_a_sender_and_a_valid_url():
    with pytest.raises(ConfigError, match=r"email\.from"):
        parse_config('[email]\nsmtp_url = "smtp://mail.example"', {})
    with pytest.raises(ConfigError, match=r"email\.smtp_url") as caught:
        parse_config('[email]\nsmtp_url = "http://u:topsecret@mail.example"', {})
    assert "topsecret" not in str(caught.value)


def test_a_message_left_is_mailed_line_by_line_and_escaped() -> None:
    message = {
        "id": "m1",
        "site": "shop",
        "received_at": 1_800_000_000.0,
        "text": "Hello <script>alert(1)</script>\n\nBcc: victim@example.com\nbye",
        "name": "Ada",
        "contact": "ada@example.com",
        "contact_kind": "email",
        "client": "198.51.100.7",
        "page": "",
        "visitor_source": "newsletter",
    }
    notification = message_received(message, "https://calls.shop.example")
    assert "client" not in notification.data
    mail = MailRenderer().render(notification, "msg_1")
    assert mail.subject == "Message from Ada on shop"
    assert "> Hello <script>alert(1)</script>\n> \n> Bcc: victim@example.com\n> bye" in mail.text
    assert "<script>" not in mail.html and "&lt;script&gt;" in mail.html
    assert "Email: ada@example.com" in mail.text and "Came from: newsletter" in mail.text

    voicemail = voicemail_received(
        {"id": "v1", "site": "shop", "received_at": 1_800_000_000.0, "seconds": 4.0},
        download_url="https://calls.shop.example/api/voicemails/v1/audio?expires=1&signature=x",
        download_expires_at=1.0,
        public_url="https://calls.shop.example",
    )
    mail = MailRenderer().render(voicemail, "msg_2")
    assert mail.subject == "Voicemail on shop (4 s)"
    assert voicemail.data["download_url"] in mail.text
