"""`Notifier`: what producers call when something happens that a site's owner may want to
know. It stores one outbox row per receiver that wants the event (each of the site's
webhooks whose `events` name it; its mail recipients when `notify_events` does), then wakes
the delivery loop. Storing is all a producer waits for, and a failure to store is logged,
never raised into a call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from gateway.config import GatewayConfig
from gateway.notify import events
from gateway.notify.events import CallbackFacts, Notification
from gateway.notify.outbox import Outbox, OutboxEvent, delivery_state
from gateway.notify.webhooks import shown_url
from gateway.sites.notifications import CALLBACK_ENDED, VOICEMAIL_RECEIVED

logger = logging.getLogger(__name__)


class Notifier:
    def __init__(
        self,
        config: GatewayConfig,
        outbox: Outbox,
        *,
        clock: Callable[[], float] = time.time,
        on_enqueued: Callable[[], None] | None = None,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.clock = clock
        self.on_enqueued = on_enqueued
        self.public_url = config.http.public_url
        self._pending: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ producers
    def call_answered(self, record: Mapping[str, Any]) -> None:
        """A browser call was answered (`record`: the call record so far)."""
        self.publish_soon(*events.call_events(record, self.public_url, answered=True))

    def call_ended(self, record: Mapping[str, Any]) -> None:
        """A call ended with its record: `call.ended`, and `call.missed` when missed or
        abandoned."""
        self.publish_soon(*events.call_events(record, self.public_url))

    def callback_requested(self, callback: CallbackFacts) -> None:
        self.publish_soon(events.callback_requested(callback, self.public_url))

    def callback_ended(self, callback: CallbackFacts, status: str, detail: str, now: float) -> None:
        self.publish_soon(events.callback_ended(callback, status, detail, now, self.public_url))

    def destination_changed(
        self, site: str, destination: str, *, up: bool, since: float, last_status: int | None
    ) -> None:
        self.publish_soon(
            events.destination_changed(
                site,
                destination,
                up=up,
                since=since,
                last_status=last_status,
                public_url=self.public_url,
            )
        )

    def voicemail_received(
        self, voicemail: Mapping[str, Any], *, download_url: str, download_expires_at: float
    ) -> None:
        """A visitor left a voice message (`voicemail`: its row); the mail attaches it."""
        self.publish_soon(
            events.voicemail_received(
                voicemail,
                download_url=download_url,
                download_expires_at=download_expires_at,
                public_url=self.public_url,
            )
        )

    def message_received(self, message: Mapping[str, Any]) -> None:
        """A visitor left a written message with a way back."""
        self.publish_soon(events.message_received(message, self.public_url))

    # ------------------------------------------------------------------ storing
    def publish_soon(self, *notifications: Notification) -> None:
        """Store in the background (for callers that cannot wait); `drain` awaits it."""
        for notification in notifications:
            task = asyncio.create_task(self.publish(notification))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def publish(self, notification: Notification) -> int:
        """Store one row per receiver that wants `notification`; returns how many."""
        site = self.config.site(notification.site)
        if site is None:
            return 0
        body = notification.body()
        payloads: list[dict[str, Any]] = [
            {"channel": "webhook", "url": hook.url, "event": body}
            for hook in site.webhooks
            if hook.wants(notification.type)
        ]
        status = notification.data.get("status") if notification.type == CALLBACK_ENDED else None
        if self.config.email.server is not None and site.notifications.mails(
            notification.type, status
        ):
            mail: dict[str, Any] = {
                "channel": "email",
                "to": list(site.notify_email),
                "event": body,
            }
            if notification.type == VOICEMAIL_RECEIVED:
                mail["attach"] = {"voicemail": notification.data["id"]}  # read when sent
            payloads.append(mail)
        stored = 0
        for payload in payloads:
            try:
                await self.outbox.enqueue(site.id, notification.type, payload, self.clock())
                stored += 1
            except Exception:
                logger.exception(
                    "notification %s of site %s could not be stored", notification.type, site.id
                )
        if stored and self.on_enqueued is not None:
            self.on_enqueued()
        return stored

    async def drain(self) -> None:
        """Wait until every event published so far is stored."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    # ------------------------------------------------------------------ reading
    async def deliveries(self, *, site: str | None = None, limit: int = 100) -> list[dict]:
        """The newest deliveries and their attempts, as the admin API and page show them
        (docs/admin.md, "Deliveries")."""
        return [delivery_view(event) for event in await self.outbox.find(site=site, limit=limit)]


def delivery_view(event: OutboxEvent) -> dict[str, Any]:
    payload = event.payload
    channel = payload.get("channel", "")
    target = (
        shown_url(str(payload.get("url", "")))
        if channel == "webhook"
        else ", ".join(payload.get("to", []))
    )
    return {
        "id": event.id,
        "site": event.site,
        "type": event.type,
        "channel": channel,
        "target": target,
        "state": delivery_state(event),
        "created_at": event.created_at,
        "attempts": event.attempts,
        "next_attempt_at": (event.next_attempt_at if delivery_state(event) == "pending" else None),
        "delivered_at": event.delivered_at,
        "last_error": event.last_error,
    }
