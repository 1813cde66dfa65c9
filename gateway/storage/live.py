"""Calls in progress, as every worker (and node) publishes them: one row per call from its
start to its end, so the admin page and `/api/admin/live` see the calls of all workers.
A worker that dies leaves its rows: the supervisor removes them (`forget_worker`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage.tables import live_calls


@dataclass(frozen=True)
class LiveCall:
    id: str
    kind: str  # call | callback
    worker: str
    site: str
    state: str  # connecting, ringing, early_media, answered, on_hold; for callbacks: its step
    started_at: float
    updated_at: float
    answered_at: float | None = None
    destination: str | None = None
    client: str = ""
    page: str = ""
    visitor_name: str = ""

    def public(self) -> dict[str, Any]:
        return asdict(self)


class LiveCalls:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def started(self, call: LiveCall) -> None:
        async with self._engine.begin() as db:
            await db.execute(insert(live_calls).values(asdict(call)))

    async def changed(
        self,
        call_id: str,
        state: str,
        now: float,
        *,
        answered_at: float | None = None,
        destination: str | None = None,
    ) -> None:
        values: dict[str, Any] = {"state": state, "updated_at": now}
        if answered_at is not None:
            values["answered_at"] = answered_at
        if destination is not None:
            values["destination"] = destination
        async with self._engine.begin() as db:
            await db.execute(update(live_calls).where(live_calls.c.id == call_id).values(values))

    async def ended(self, call_id: str) -> None:
        async with self._engine.begin() as db:
            await db.execute(delete(live_calls).where(live_calls.c.id == call_id))

    async def forget_worker(self, worker: str | None) -> int:
        """Remove the rows of `worker` (of every worker with None): it stopped."""
        query = delete(live_calls)
        if worker is not None:
            query = query.where(live_calls.c.worker == worker)
        async with self._engine.begin() as db:
            return (await db.execute(query)).rowcount

    async def all(self, site: str | None = None) -> list[LiveCall]:
        """Oldest first."""
        query = select(live_calls).order_by(live_calls.c.started_at)
        if site is not None:
            query = query.where(live_calls.c.site == site)
        async with self._engine.connect() as db:
            rows = (await db.execute(query)).all()
        return [LiveCall(**dict(row._mapping)) for row in rows]
