"""The outbox as the notification side sees it: events waiting for delivery, kept in the
gateway's database (`gateway.storage.Outbox`, SQLite or PostgreSQL) so that none is lost to
a restart, and handed out so that each is delivered at least once.

`claim_due` leases what is due (pushes its `next_attempt_at` past a lease and counts an
attempt) so that two workers never deliver one row at once, and a worker that dies
mid-delivery gives the row back when the lease runs out. A row's `id` stays the same on
every attempt: it is the `webhook-id`. A row given up has `next_attempt_at` = GIVEN_UP
(infinity) and no `delivered_at`.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from gateway.storage import OutboxEvent

__all__ = ["GIVEN_UP", "Outbox", "OutboxEvent", "delivery_state"]

GIVEN_UP = math.inf  # the next_attempt_at of a row that will not be tried again


def delivery_state(event: OutboxEvent) -> str:
    """delivered | pending | given_up"""
    if event.delivered_at is not None:
        return "delivered"
    return "given_up" if event.next_attempt_at == GIVEN_UP else "pending"


class Outbox(Protocol):
    """What delivery needs of the store (`gateway.storage.Outbox` implements it)."""

    async def enqueue(
        self, site: str, type: str, payload: dict[str, Any], now: float
    ) -> OutboxEvent:
        """Store an event for delivery, due now; its id is `msg_<random>`."""
        ...

    async def claim_due(self, now: float, lease: float, limit: int = 10) -> list[OutboxEvent]:
        """Undelivered events due by `now`, each leased for `lease` seconds to this caller
        (and counted as one more attempt)."""
        ...

    async def delivered(self, event_id: str, now: float) -> None: ...

    async def failed(self, event_id: str, error: str, retry_at: float) -> None:
        """The attempt failed: try again at `retry_at` (GIVEN_UP: never)."""
        ...

    async def find(self, *, site: str | None = None, limit: int = 100) -> list[OutboxEvent]:
        """The newest events first (of one site, or all)."""
        ...
