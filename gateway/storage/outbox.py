"""The notification outbox: events a site's webhooks and mails are to receive, stored in
the same transaction-safe database, delivered at least once.

Any code enqueues with `await database.outbox.enqueue(site, type, payload, now)`; a sender
(webhooks, email) claims due events with `claim_due`, which leases them (each claim pushes
`next_attempt_at` past the lease and counts an attempt, so a sender that dies mid-delivery
gives the event back when the lease runs out), then reports `delivered` or `failed` with the
time of the next try. The event's `id` stays the same on every attempt (the webhook-id).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage.tables import outbox


@dataclass(frozen=True)
class OutboxEvent:
    id: str
    site: str
    type: str
    payload: dict[str, Any]
    created_at: float
    attempts: int
    next_attempt_at: float
    delivered_at: float | None
    last_error: str


class Outbox:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def enqueue(
        self, site: str, type: str, payload: dict[str, Any], now: float
    ) -> OutboxEvent:
        """Store an event for delivery, due now; its id is `msg_<random>`."""
        event = OutboxEvent(
            f"msg_{secrets.token_urlsafe(18)}", site, type, payload, now, 0, now, None, ""
        )
        async with self._engine.begin() as db:
            await db.execute(
                insert(outbox).values(
                    id=event.id,
                    site=site,
                    type=type,
                    payload=json.dumps(payload),
                    created_at=now,
                    next_attempt_at=now,
                )
            )
        return event

    async def claim_due(self, now: float, lease: float, limit: int = 10) -> list[OutboxEvent]:
        """Undelivered events due by `now`, each leased for `lease` seconds to this caller."""
        due = (
            select(outbox.c.id)
            .where(outbox.c.delivered_at.is_(None) & (outbox.c.next_attempt_at <= now))
            .order_by(outbox.c.next_attempt_at)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        async with self._engine.begin() as db:
            ids = list((await db.execute(due)).scalars())
            if not ids:
                return []
            await db.execute(
                update(outbox)
                .where(outbox.c.id.in_(ids))
                .values(next_attempt_at=now + lease, attempts=outbox.c.attempts + 1)
            )
            rows = (await db.execute(select(outbox).where(outbox.c.id.in_(ids)))).all()
        return [_event(row) for row in rows]

    async def delivered(self, event_id: str, now: float) -> None:
        async with self._engine.begin() as db:
            await db.execute(
                update(outbox)
                .where(outbox.c.id == event_id)
                .values(delivered_at=now, last_error="")
            )

    async def failed(self, event_id: str, error: str, retry_at: float) -> None:
        async with self._engine.begin() as db:
            await db.execute(
                update(outbox)
                .where(outbox.c.id == event_id)
                .values(next_attempt_at=retry_at, last_error=error[:500])
            )

    async def find(self, *, site: str | None = None, limit: int = 100) -> list[OutboxEvent]:
        query = select(outbox).order_by(outbox.c.created_at.desc()).limit(limit)
        if site is not None:
            query = query.where(outbox.c.site == site)
        async with self._engine.connect() as db:
            return [_event(row) for row in (await db.execute(query)).all()]

    async def purge(self, site: str, before: float) -> int:
        """Forget the site's events created before `before` (retention)."""
        async with self._engine.begin() as db:
            result = await db.execute(
                delete(outbox).where((outbox.c.site == site) & (outbox.c.created_at < before))
            )
        return result.rowcount


def _event(row: Any) -> OutboxEvent:
    values = dict(row._mapping)
    values["payload"] = json.loads(values["payload"])
    return OutboxEvent(**values)
