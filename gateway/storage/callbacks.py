"""Stored callback requests (Request-a-Call), on SQLite or PostgreSQL.

A callback is placed at most once, whatever happens to a process or node: it is claimed
(status `dialing`, committed) before its first INVITE leaves. On SQLite the claim runs in a
`BEGIN IMMEDIATE` transaction (one writer at a time); on PostgreSQL it locks the due rows
`FOR UPDATE SKIP LOCKED`, so two nodes claiming at once take disjoint rows. Each claim names
its worker (`<node>/worker-<i>`). A callback left `dialing` by a worker that died (its
supervisor saw it die, or, with several nodes, another node saw it stop beating) becomes
`interrupted` and is never dialled again on its own (the site is told, sees it in its
history and can place it again from the admin page).

Statuses: scheduled -> dialing -> done | failed | cancelled; dialing -> scheduled (a retry
later); dialing -> interrupted (after a crash); failed | interrupted -> scheduled (placed
again by the site owner).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.storage.tables import call_records, callback_events, callbacks

FINAL = ("done", "failed", "cancelled", "interrupted")
PLACEABLE_AGAIN = ("failed", "interrupted")


@dataclass(frozen=True)
class Callback:
    id: str
    site: str
    number: str
    details: dict
    due_at: float
    status: str
    attempts: int
    created_at: float
    history: tuple[tuple[float, str, str], ...] = field(default=())

    def public(self) -> dict:
        """What the page and the site owner's form may see (no internal detail)."""
        return {
            "id": self.id,
            "site": self.site,
            "status": self.status,
            "due_at": self.due_at,
            "attempts": self.attempts,
            # The reason's words only ("operator not reached"): what follows a colon can
            # quote the far end (an SDP line, a trunk's address) and stays in the log.
            "history": [
                {"at": at, "event": event, "detail": (detail or "").split(":", 1)[0]}
                for at, event, detail in self.history
            ],
        }

    def admin(self) -> dict:
        """What the site owner sees (docs/admin.md): the number and details too."""
        return {
            **self.public(),
            "number": self.number,
            "name": self.details.get("name", ""),
            "page": self.details.get("page", ""),
            "reason": self.details.get("reason", ""),
            "created_at": self.created_at,
            "history": [
                {"at": at, "event": event, "detail": detail or ""}
                for at, event, detail in self.history
            ],
        }


_COLUMNS = (
    callbacks.c.id,
    callbacks.c.site,
    callbacks.c.number,
    callbacks.c.details,
    callbacks.c.due_at,
    callbacks.c.status,
    callbacks.c.attempts,
    callbacks.c.created_at,
)


class CallbackStore:
    """The callbacks of the gateway's database (gateway.storage.Database.callbacks)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def interrupt_left_dialing(
        self, now: float, owner: str, detail: str = "the gateway stopped during the call"
    ) -> list[Callback]:
        """Mark `interrupted` what `owner` (a worker's stable name, `<node>/worker-<i>`)
        left `dialing`: it died during those calls. Other workers' claims are left alone.
        Returns the callbacks marked, to tell their sites."""
        async with self._engine.begin() as db:
            ids = await _mark_interrupted(db, now, callbacks.c.claimed_by == owner, detail)
        return [c for c in [await self.get(i) for i in ids] if c is not None]

    async def dialing_claimers(self) -> set[str]:
        """The workers that hold callbacks `dialing` (alive or not)."""
        query = select(callbacks.c.claimed_by).where(callbacks.c.status == "dialing").distinct()
        async with self._engine.connect() as db:
            return {row.claimed_by for row in await db.execute(query) if row.claimed_by}

    async def add(
        self, *, site: str, number: str, details: dict, due_at: float, now: float
    ) -> Callback:
        callback_id = secrets.token_urlsafe(12)
        async with self._engine.begin() as db:
            await db.execute(
                insert(callbacks).values(
                    id=callback_id,
                    site=site,
                    number=number,
                    details=json.dumps(details),
                    due_at=due_at,
                    status="scheduled",
                    created_at=now,
                )
            )
            await _event(db, callback_id, now, "requested")
        found = await self.get(callback_id)
        assert found is not None
        return found

    async def get(self, callback_id: str) -> Callback | None:
        async with self._engine.connect() as db:
            row = (await db.execute(select(*_COLUMNS).where(callbacks.c.id == callback_id))).first()
            if row is None:
                return None
            history = await _history(db, [callback_id])
        return _callback(row, history.get(callback_id, ()))

    async def find(
        self,
        *,
        site: str | None = None,
        status: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        outcome: str | None = None,
    ) -> list[Callback]:
        """Newest first (by the time they were asked for), with their histories. `outcome`
        picks those whose call record has it (placed and over)."""
        query = select(*_COLUMNS).order_by(callbacks.c.created_at.desc()).limit(limit)
        if outcome is not None:
            recorded = select(call_records.c.id).where(call_records.c.outcome == outcome)
            query = query.where(callbacks.c.id.in_(recorded))
        if site is not None:
            query = query.where(callbacks.c.site == site)
        if status is not None:
            query = query.where(callbacks.c.status == status)
        if since is not None:
            query = query.where(callbacks.c.created_at >= since)
        if until is not None:
            query = query.where(callbacks.c.created_at < until)
        async with self._engine.connect() as db:
            rows = (await db.execute(query)).all()
            history = await _history(db, [row.id for row in rows])
        return [_callback(row, history.get(row.id, ())) for row in rows]

    async def claim_due(self, now: float, owner: str, limit: int = 10) -> list[Callback]:
        """Take up to `limit` due callbacks for `owner`: each is returned to one claimer."""
        due = (
            select(callbacks.c.id)
            .where((callbacks.c.status == "scheduled") & (callbacks.c.due_at <= now))
            .order_by(callbacks.c.due_at)
            .limit(limit)
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite: BEGIN IMMEDIATE
        )
        async with self._engine.begin() as db:
            ids = list((await db.execute(due)).scalars())
            if ids:
                await db.execute(
                    update(callbacks)
                    .where(callbacks.c.id.in_(ids))
                    .values(status="dialing", claimed_by=owner, attempts=callbacks.c.attempts + 1)
                )
                await db.execute(
                    insert(callback_events),
                    [{"callback_id": i, "at": now, "event": "dialing", "detail": ""} for i in ids],
                )
        return [c for c in [await self.get(i) for i in ids] if c is not None]

    async def record(self, callback_id: str, event: str, detail: str, now: float) -> None:
        async with self._engine.begin() as db:
            await _event(db, callback_id, now, event, detail)

    async def finish(self, callback_id: str, status: str, detail: str, now: float) -> None:
        if status not in FINAL:
            raise ValueError(f"not a final status: {status}")
        await self._set_status(callback_id, status, None, detail, now)

    async def retry_at(self, callback_id: str, due_at: float, detail: str, now: float) -> None:
        await self._set_status(callback_id, "scheduled", due_at, detail, now)

    async def _set_status(
        self, callback_id: str, status: str, due_at: float | None, detail: str, now: float
    ) -> None:
        values: dict[str, Any] = {"status": status}
        if due_at is not None:
            values["due_at"] = due_at
        async with self._engine.begin() as db:
            await db.execute(update(callbacks).where(callbacks.c.id == callback_id).values(values))
            await _event(db, callback_id, now, status, detail)

    async def cancel(self, callback_id: str, now: float, by: str = "by the visitor") -> str | None:
        """Cancel a callback that is still waiting for its time. Returns its status after
        (`cancelled`, or the one that kept it from being cancelled), None if unknown."""
        return await self._change(callback_id, ("scheduled",), "cancelled", None, by, now)

    async def place_again(self, callback_id: str, now: float) -> str | None:
        """Schedule a failed or interrupted callback again, due now, with a fresh count of
        attempts (the site owner asked). Returns its status after (`scheduled`, or the one
        that kept it from being placed again), None if unknown."""
        return await self._change(
            callback_id, PLACEABLE_AGAIN, "scheduled", now, "placed again by the site", now
        )

    async def _change(
        self,
        callback_id: str,
        allowed: Sequence[str],
        status: str,
        due_at: float | None,
        detail: str,
        now: float,
    ) -> str | None:
        values: dict[str, Any] = {"status": status}
        if due_at is not None:
            values.update(due_at=due_at, attempts=0, claimed_by=None)
        async with self._engine.begin() as db:
            changed = await db.execute(
                update(callbacks)
                .where((callbacks.c.id == callback_id) & callbacks.c.status.in_(allowed))
                .values(values)
            )
            if changed.rowcount:
                await _event(db, callback_id, now, status, detail)
            row = (
                await db.execute(select(callbacks.c.status).where(callbacks.c.id == callback_id))
            ).first()
        return None if row is None else row.status

    async def count_for_number(self, number: str, since: float) -> int:
        query = select(func.count()).where(
            (callbacks.c.number == number) & (callbacks.c.created_at >= since)
        )
        async with self._engine.connect() as db:
            return int((await db.execute(query)).scalar_one())

    async def delete(self, callback_id: str) -> bool:
        """Forget one callback and its history (a visitor's request to be forgotten)."""
        async with self._engine.begin() as db:
            await db.execute(
                delete(callback_events).where(callback_events.c.callback_id == callback_id)
            )
            return bool(
                (await db.execute(delete(callbacks).where(callbacks.c.id == callback_id))).rowcount
            )

    async def purge(self, site: str, before: float) -> int:
        """Forget the site's finished callbacks asked for before `before` (retention)."""
        old = select(callbacks.c.id).where(
            (callbacks.c.site == site)
            & (callbacks.c.created_at < before)
            & callbacks.c.status.in_(FINAL)
        )
        async with self._engine.begin() as db:
            await db.execute(delete(callback_events).where(callback_events.c.callback_id.in_(old)))
            return (await db.execute(delete(callbacks).where(callbacks.c.id.in_(old)))).rowcount


async def _event(
    db: AsyncConnection, callback_id: str, now: float, event: str, detail: str = ""
) -> None:
    await db.execute(
        insert(callback_events).values(callback_id=callback_id, at=now, event=event, detail=detail)
    )


async def _history(db: AsyncConnection, ids: list[str]) -> dict[str, list[tuple[float, str, str]]]:
    history: dict[str, list[tuple[float, str, str]]] = {}
    if not ids:
        return history
    rows = await db.execute(
        select(
            callback_events.c.callback_id,
            callback_events.c.at,
            callback_events.c.event,
            callback_events.c.detail,
        )
        .where(callback_events.c.callback_id.in_(ids))
        .order_by(callback_events.c.seq)
    )
    for row in rows:
        history.setdefault(row.callback_id, []).append((row.at, row.event, row.detail))
    return history


def _callback(row: Any, history: Sequence[tuple[float, str, str]]) -> Callback:
    return Callback(
        row.id,
        row.site,
        row.number,
        json.loads(row.details),
        row.due_at,
        row.status,
        row.attempts,
        row.created_at,
        tuple(history),
    )


async def _mark_interrupted(db: AsyncConnection, now: float, where: Any, detail: str) -> list[str]:
    """Callbacks left `dialing` by a worker that stopped (`where` picks its claims): they
    are never dialled again, so nobody is called twice."""
    stale = list(
        (
            await db.execute(
                select(callbacks.c.id)
                .where((callbacks.c.status == "dialing") & where)
                .with_for_update()
            )
        ).scalars()
    )
    if stale:
        await db.execute(
            update(callbacks).where(callbacks.c.id.in_(stale)).values(status="interrupted")
        )
        await db.execute(
            insert(callback_events),
            [
                {"callback_id": i, "at": now, "event": "interrupted", "detail": detail}
                for i in stale
            ],
        )
    return stale
