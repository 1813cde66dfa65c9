"""The events a site's owner is told of, as frozen `Notification`s, and their JSON.

A webhook receives `Notification.body()`, the Standard Webhooks payload shape:
`{"type": "call.missed", "timestamp": "2026-05-04T09:12:44.120Z", "data": {...}}`; a mail
says the same in words. Every field of `data` is listed in docs/admin.md ("Webhooks").

The builders take what the gateway knows (a call's record, a stored callback, a
destination's health) and keep what a site owner's systems need: never the visitor's IP
address, a worker's name, or the end detail (which can quote internal addresses).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.sites.notifications import (
    CALL_ANSWERED,
    CALL_ENDED,
    CALL_MISSED,
    CALLBACK_ENDED,
    CALLBACK_REQUESTED,
    DESTINATION_DOWN,
    DESTINATION_UP,
    EVENT_TYPES,
    MESSAGE_RECEIVED,
    VOICEMAIL_RECEIVED,
)

__all__ = [
    "CALLBACK_ENDED",
    "CALLBACK_REQUESTED",
    "CALL_ANSWERED",
    "CALL_ENDED",
    "CALL_MISSED",
    "DESTINATION_DOWN",
    "DESTINATION_UP",
    "EVENT_TYPES",
    "MESSAGE_RECEIVED",
    "MISSED_OUTCOMES",
    "VOICEMAIL_RECEIVED",
    "Notification",
    "call_events",
    "callback_ended",
    "callback_requested",
    "destination_changed",
    "iso_time",
    "message_received",
    "voicemail_received",
]

# The outcomes of a call record that make a `call.missed` (docs/admin.md).
MISSED_OUTCOMES = ("missed", "abandoned")

# The fields of a call record a webhook carries (the others stay in the admin API).
CALL_FIELDS = (
    "id",
    "kind",
    "site",
    "outcome",
    "started_at",
    "answered_at",
    "ended_at",
    "ring_seconds",
    "talk_seconds",
    "end_cause",
    "destination",
    "page",
    "visitor_name",
    "visitor_reason",
    "visitor_source",
    "number",
    "source",
    "codecs",
    "quality",
)


class CallbackFacts(Protocol):
    """What the events of a callback read from it (a stored `Callback`)."""

    @property
    def id(self) -> str: ...
    @property
    def site(self) -> str: ...
    @property
    def number(self) -> str: ...
    @property
    def details(self) -> dict: ...
    @property
    def due_at(self) -> float: ...
    @property
    def status(self) -> str: ...
    @property
    def attempts(self) -> int: ...
    @property
    def created_at(self) -> float: ...


@dataclass(frozen=True, slots=True)
class Notification:
    """One event of one site; `occurred_at` in seconds since the epoch."""

    type: str
    site: str
    occurred_at: float
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in EVENT_TYPES:
            raise ValueError(f"not an event type: {self.type!r}")

    def body(self) -> dict[str, Any]:
        """The JSON a webhook receives (and the outbox keeps)."""
        return {"type": self.type, "timestamp": iso_time(self.occurred_at), "data": dict(self.data)}

    @classmethod
    def from_body(cls, site: str, body: Mapping[str, Any]) -> Notification:
        """The notification of a stored `body()`."""
        stamp = dt.datetime.fromisoformat(str(body["timestamp"]).replace("Z", "+00:00"))
        return cls(str(body["type"]), site, stamp.timestamp(), dict(body.get("data") or {}))


def iso_time(seconds: float) -> str:
    """RFC 3339 in UTC with milliseconds: `2026-05-04T09:12:44.120Z`."""
    moment = dt.datetime.fromtimestamp(seconds, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _admin_link(public_url: str, path: str) -> str:
    return f"{public_url.rstrip('/')}{path}"


def call_events(
    record: Mapping[str, Any], public_url: str, *, answered: bool = False
) -> list[Notification]:
    """The events of a call record: `call.answered` (with `answered`: the call was just
    answered, the record is not complete), else `call.ended` and, for a missed or abandoned
    call, `call.missed`."""
    data = {key: record[key] for key in CALL_FIELDS if key in record}
    data["admin_url"] = _admin_link(public_url, f"/admin/calls/{record['id']}")
    site = str(record["site"])
    if answered:
        data.pop("outcome", None)
        for key in ("ended_at", "talk_seconds", "end_cause", "codecs", "quality"):
            data.pop(key, None)
        return [Notification(CALL_ANSWERED, site, float(record["answered_at"]), data)]
    when = float(record.get("ended_at") or record["started_at"])
    events = [Notification(CALL_ENDED, site, when, data)]
    if record.get("outcome") in MISSED_OUTCOMES:
        events.append(Notification(CALL_MISSED, site, when, data))
    return events


def _callback_data(callback: CallbackFacts, public_url: str) -> dict[str, Any]:
    details = callback.details or {}
    return {
        "id": callback.id,
        "site": callback.site,
        "number": callback.number,
        "status": callback.status,
        "due_at": callback.due_at,
        "created_at": callback.created_at,
        "attempts": callback.attempts,
        "page": details.get("page") or "",
        "visitor_name": details.get("name") or "",
        "visitor_reason": details.get("reason") or "",
        "admin_url": _admin_link(public_url, f"/admin/callbacks?site={callback.site}"),
    }


def callback_requested(callback: CallbackFacts, public_url: str) -> Notification:
    """`callback.requested`: a visitor left their number (a stored `Callback`)."""
    return Notification(
        CALLBACK_REQUESTED,
        callback.site,
        callback.created_at,
        _callback_data(callback, public_url),
    )


def callback_ended(
    callback: CallbackFacts, status: str, detail: str, ended_at: float, public_url: str
) -> Notification:
    """`callback.ended` with its final `status` (done, failed, cancelled, interrupted) and
    the reason in words (what follows a colon, which can quote the far end, is left out)."""
    data = _callback_data(callback, public_url)
    data.update(status=status, detail=(detail or "").split(":", 1)[0], ended_at=ended_at)
    return Notification(CALLBACK_ENDED, callback.site, ended_at, data)


def destination_changed(
    site: str,
    destination: str,
    *,
    up: bool,
    since: float,
    last_status: int | None,
    public_url: str,
) -> Notification:
    """`destination.down` (no answer to two OPTIONS in a row) or `destination.up`."""
    data = {
        "site": site,
        "destination": destination,
        "state": "up" if up else "down",
        "since": since,
        "last_status": last_status,
        "admin_url": _admin_link(public_url, "/admin/destinations"),
    }
    return Notification(DESTINATION_UP if up else DESTINATION_DOWN, site, since, data)


# The fields of a voicemail's row a webhook carries (not the file's name or the address).
VOICEMAIL_FIELDS = (
    "id",
    "site",
    "call_id",
    "started_at",
    "received_at",
    "seconds",
    "size",
    "page",
    "visitor_name",
    "visitor_source",
)


def voicemail_received(
    voicemail: Mapping[str, Any],
    *,
    download_url: str,
    download_expires_at: float,
    public_url: str,
) -> Notification:
    """`voicemail.received`: a visitor left a voice message; `download_url` is a signed link
    to its audio (Ogg/Opus) that works until `download_expires_at`."""
    data = {key: voicemail.get(key) for key in VOICEMAIL_FIELDS}
    data.update(
        content_type="audio/ogg",
        download_url=download_url,
        download_expires_at=download_expires_at,
        admin_url=_admin_link(public_url, f"/admin/messages#voicemail-{voicemail['id']}"),
    )
    return Notification(
        VOICEMAIL_RECEIVED, str(voicemail["site"]), float(voicemail["received_at"]), data
    )


MESSAGE_FIELDS = (
    "id",
    "site",
    "received_at",
    "text",
    "name",
    "contact",
    "contact_kind",
    "conversation_id",
    "page",
    "visitor_source",
)


def message_received(message: Mapping[str, Any], public_url: str) -> Notification:
    """`message.received`: a visitor left a written message with a way back."""
    data = {key: message.get(key) for key in MESSAGE_FIELDS}
    data["admin_url"] = _admin_link(public_url, f"/admin/messages#message-{message['id']}")
    return Notification(MESSAGE_RECEIVED, str(message["site"]), float(message["received_at"]), data)
