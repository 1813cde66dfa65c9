"""What a site's owner wants to be told, and where: its webhooks (`[[sites.webhooks]]`), the
addresses its mails go to (`notify_email`) and the events they are sent for
(`notify_events`), and how often its destinations are checked (`health_interval`).

Converters from the raw TOML values, raising ValueError with words that name the part and
never the value of a secret; `gateway.config.loader` wraps them with the key path. The event
names are contracts (docs/admin.md).
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass, field
from email.errors import HeaderParseError
from email.headerregistry import Address
from urllib.parse import urlsplit

from gateway.sites.problems import SettingsProblems, unknown_key_reason

# Every event a site can be told of (docs/admin.md, "Webhooks").
CALL_ANSWERED = "call.answered"
CALL_ENDED = "call.ended"
CALL_MISSED = "call.missed"
CALLBACK_REQUESTED = "callback.requested"
CALLBACK_ENDED = "callback.ended"
DESTINATION_DOWN = "destination.down"
DESTINATION_UP = "destination.up"
VOICEMAIL_RECEIVED = "voicemail.received"
MESSAGE_RECEIVED = "message.received"
EVENT_TYPES = (
    CALL_ANSWERED,
    CALL_ENDED,
    CALL_MISSED,
    CALLBACK_REQUESTED,
    CALLBACK_ENDED,
    DESTINATION_DOWN,
    DESTINATION_UP,
    VOICEMAIL_RECEIVED,
    MESSAGE_RECEIVED,
)
# Mail only: a `callback.ended` whose callback did not connect (status failed or interrupted).
CALLBACK_FAILED = "callback.failed"
MAIL_EVENTS = (*EVENT_TYPES, CALLBACK_FAILED)
DEFAULT_MAIL_EVENTS = (
    CALL_MISSED,
    CALLBACK_FAILED,
    DESTINATION_DOWN,
    VOICEMAIL_RECEIVED,
    MESSAGE_RECEIVED,
)

SECRET_PREFIX = "whsec_"
SECRET_BYTES = (24, 64)  # the Standard Webhooks' range for a secret's length
MAX_WEBHOOKS = 10
MAX_RECIPIENTS = 20
MAX_URL_CHARS = 2000


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    """One receiver of a site's events, signed with its secret (never in a repr)."""

    url: str
    secret: str = field(repr=False)
    events: tuple[str, ...] = EVENT_TYPES

    def wants(self, event_type: str) -> bool:
        return event_type in self.events


@dataclass(frozen=True, slots=True)
class SiteNotifications:
    """A site's webhooks and mail recipients, and which events its mails are for."""

    webhooks: tuple[WebhookEndpoint, ...] = ()
    emails: tuple[str, ...] = ()
    email_events: tuple[str, ...] = DEFAULT_MAIL_EVENTS

    def mails(self, event_type: str, callback_status: str | None = None) -> bool:
        """Whether the site's recipients get a mail for this event (`callback_status`: the
        status a `callback.ended` reports)."""
        if not self.emails:
            return False
        if event_type in self.email_events:
            return True
        return (
            event_type == CALLBACK_ENDED
            and CALLBACK_FAILED in self.email_events
            and callback_status in ("failed", "interrupted")
        )


NO_NOTIFICATIONS = SiteNotifications()


def _events(value: object, known: tuple[str, ...]) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError("must be a list of event names")
    for name in value:
        if name not in known:
            raise ValueError(f"unknown event {name[:40]!r} (known: {', '.join(known)})")
    return tuple(dict.fromkeys(value))


def parse_events(value: object) -> tuple[str, ...]:
    """`notify_events`: the events a site's mails are sent for."""
    return _events(value, MAIL_EVENTS)


def webhook_secret_bytes(secret: str) -> bytes:
    """The key a `whsec_<base64>` secret stands for; ValueError (without the secret) if it
    is not one."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"must start with {SECRET_PREFIX!r} (Standard Webhooks)")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("must be whsec_ followed by base64") from None
    low, high = SECRET_BYTES
    if not low <= len(key) <= high:
        raise ValueError(f"must hold {low} to {high} bytes of base64, not {len(key)}")
    return key


def _webhook_url(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("required: the http(s) address events are POSTed to")
    text = value.strip()
    if len(text) > MAX_URL_CHARS or any(c <= " " or c == "\x7f" for c in text):
        raise ValueError("must be one URL without spaces or control characters")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise ValueError("not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials: the secret signs each event")
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    return text


def _webhook_secret(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError("required (whsec_ and base64)")
    webhook_secret_bytes(value)
    return value


def parse_webhooks(value: object) -> tuple[WebhookEndpoint, ...]:
    """`[[sites.webhooks]]`: `url`, `secret` (`whsec_...`), `events` (default: all). Every
    problem is reported (SettingsProblems), each under its place (`[1].url`); a secret's
    value never is."""
    if not isinstance(value, list):
        raise ValueError("must be an array of tables ([[sites.webhooks]])")
    if len(value) > MAX_WEBHOOKS:
        raise ValueError(f"at most {MAX_WEBHOOKS} webhooks per site")
    endpoints = []
    problems: list[tuple[str, str]] = []
    for index, item in enumerate(value):
        where = f"[{index}]"
        if not isinstance(item, dict):
            problems.append((where, "must be a table with url and secret"))
            continue
        for key in item:
            if key not in ("url", "secret", "events"):
                problems.append(
                    (f"{where}.{key}", unknown_key_reason(key, ("url", "secret", "events")))
                )
        parts: dict[str, object] = {}
        for key, convert, default in (
            ("url", _webhook_url, None),
            ("secret", _webhook_secret, None),
            ("events", lambda v: _events(v, EVENT_TYPES), list(EVENT_TYPES)),
        ):
            try:
                parts[key] = convert(item.get(key, default))
            except ValueError as exc:
                problems.append((f"{where}.{key}", str(exc)))
        if parts.get("events") == ():
            problems.append((f"{where}.events", "is empty: leave it out for every event"))
        events = parts.get("events")
        if len(parts) == 3 and isinstance(events, tuple) and events:
            endpoints.append(WebhookEndpoint(str(parts["url"]), str(parts["secret"]), events))
    if problems:
        raise SettingsProblems(problems)
    return tuple(endpoints)


def email_address(value: object, what: str = "address") -> str:
    """One plain address (`owner@shop.example`), checked by the standard library's parser."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    text = value.strip()
    if not text or len(text) > 254 or any(c <= " " or c == "\x7f" for c in text):
        raise ValueError(f"{what} must be one address like owner@shop.example")
    try:
        address = Address(addr_spec=text)
    except (HeaderParseError, ValueError, IndexError):
        raise ValueError(f"{what}: not an e-mail address: {text[:80]!r}") from None
    if not address.username or "." not in address.domain:
        raise ValueError(f"{what}: not an e-mail address: {text[:80]!r}")
    return address.addr_spec


def parse_recipients(value: object) -> tuple[str, ...]:
    """`notify_email = ["owner@shop.example", ...]`."""
    if not isinstance(value, list):
        raise ValueError("must be a list of e-mail addresses")
    if len(value) > MAX_RECIPIENTS:
        raise ValueError(f"at most {MAX_RECIPIENTS} addresses")
    return tuple(
        dict.fromkeys(email_address(item, f"[{i}]") for i, item in enumerate(value)).keys()
    )


def parse_health_interval(value: object) -> float:
    """`health_interval`: seconds between OPTIONS to each destination; 0 turns checks off."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("must be a number of seconds (0: no health checks)")
    if value != 0 and not 0.5 <= value <= 3600:
        raise ValueError("must be 0 (off) or from 0.5 to 3600 seconds")
    return float(value)
