"""Stored callback requests (Request-a-Call), on SQLite or PostgreSQL.

A callback is placed at most once, whatever happens to a process or node: it is claimed
(status `dialing`, committed) before its first INVITE leaves, and a claim succeeds for one
claimer only. The scheduler reads the due callbacks (`due`), takes each one's place in the
limits (the ledger every node shares), and only then claims it (`claim`); a claim runs in
one transaction that locks the row: on SQLite every transaction is `BEGIN IMMEDIATE` (one
writer at a time), on PostgreSQL the row is locked `FOR UPDATE SKIP LOCKED`, so when two
nodes claim the same callback at once the second finds it locked (or no longer scheduled)
and leaves it, never waiting. Each claim names its worker (`<node>/worker-<i>`). A callback
left `dialing` by a worker that died (that worker's next life, its supervisor, or, with
several nodes, another node that saw it stop beating) becomes `interrupted` and is never
dialled again on its own (the site is told, sees it in its history and can place it again
from the admin page).

Statuses and the moves between them are gateway.storage.callback_lifecycle's: a move it does
not list is not made (`finish`, `retry_at`, `cancel` and `place_again` answer whether it
was, or the status that kept it from being made).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.storage.callback_lifecycle import (
    FINAL,
    PLACEABLE_AGAIN,
    CallbackEvent,
    CallbackStatus,
    sources,
)
from gateway.storage.tables import call_records, callback_events, callbacks

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Callback:
    id: str
    site: str
    number: str
    details: dict
    due_at: float
    status: CallbackStatus
    attempts: int
    created_at: float
    history: tuple[tuple[float, str, str], ...] = field(default=())

    def public(self) -> dict:
        """What the page and the site owner's form may see (no internal detail)."""
        return {
            "id": self.id,
            "site": self.site,
            "status": self.status.value,
            "final": self.status.final,
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
        query = (
            select(callbacks.c.claimed_by)
            .where(callbacks.c.status == CallbackStatus.DIALING.value)
            .distinct()
        )
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
                    status=CallbackStatus.SCHEDULED.value,
                    created_at=now,
                )
            )
            await _event(db, callback_id, now, CallbackEvent.REQUESTED)
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
            query = query.where(callbacks.c.status == str(status))
        if since is not None:
            query = query.where(callbacks.c.created_at >= since)
        if until is not None:
            query = query.where(callbacks.c.created_at < until)
        return await self._read(query)

    async def due(
        self, now: float, limit: int = 10, skip_sites: frozenset[str] = frozenset()
    ) -> list[Callback]:
        """Scheduled callbacks whose time has come, oldest first, but those of `skip_sites`.
        Nothing is claimed: a worker takes one with `claim` once it may place it."""
        query = (
            select(*_COLUMNS)
            .where(
                (callbacks.c.status == CallbackStatus.SCHEDULED.value) & (callbacks.c.due_at <= now)
            )
            .order_by(callbacks.c.due_at)
            .limit(limit)
        )
        if skip_sites:
            query = query.where(callbacks.c.site.not_in(sorted(skip_sites)))
        return await self._read(query)

    async def claim(self, callback_id: str, owner: str, now: float) -> Callback | None:
        """Claim a callback that is scheduled and due at `now` for `owner` (`dialing`, one
        more attempt), in one transaction: None when it is not (claimed by another worker
        first, cancelled, or tried meanwhile and due later), or while another claims it."""
        mine = (
            select(callbacks.c.id)
            .where(
                (callbacks.c.id == callback_id)
                & (callbacks.c.status == CallbackStatus.SCHEDULED.value)
                & (callbacks.c.due_at <= now)
            )
            .with_for_update(skip_locked=True)  # PostgreSQL; SQLite: BEGIN IMMEDIATE
        )
        async with self._engine.begin() as db:
            if (await db.execute(mine)).first() is None:
                return None
            await db.execute(
                update(callbacks)
                .where(callbacks.c.id == callback_id)
                .values(
                    status=CallbackStatus.DIALING.value,
                    claimed_by=owner,
                    attempts=callbacks.c.attempts + 1,
                )
            )
            await _event(db, callback_id, now, CallbackEvent.DIALING)
        return await self.get(callback_id)

    async def record(self, callback_id: str, event: CallbackEvent, detail: str, now: float) -> None:
        async with self._engine.begin() as db:
            await _event(db, callback_id, now, event, detail)

    async def note_waiting(self, callback_id: str, detail: str, now: float) -> None:
        """Record that a due callback waits for a free line, once per wait: nothing when the
        last event already says so (workers that find it waiting again add nothing), nor
        once it is no longer scheduled."""
        scheduled = (
            select(callbacks.c.id)
            .where(
                (callbacks.c.id == callback_id)
                & (callbacks.c.status == CallbackStatus.SCHEDULED.value)
            )
            .with_for_update()  # one worker at a time reads and writes its last event
        )
        last = (
            select(callback_events.c.event, callback_events.c.detail)
            .where(callback_events.c.callback_id == callback_id)
            .order_by(callback_events.c.seq.desc())
            .limit(1)
        )
        async with self._engine.begin() as db:
            if (await db.execute(scheduled)).first() is None:
                return
            row = (await db.execute(last)).first()
            if row is None or (row.event, row.detail) != (CallbackEvent.WAITING.value, detail):
                await _event(db, callback_id, now, CallbackEvent.WAITING, detail)

    async def finish(
        self, callback_id: str, status: CallbackStatus, detail: str, now: float
    ) -> bool:
        """Move to a final status; whether it was made (never from another final one)."""
        status = CallbackStatus(status)
        if not status.final:
            raise ValueError(f"not a final status: {status}")
        return await self._move(callback_id, status, sources(status), {}, detail, now)

    async def retry_at(self, callback_id: str, due_at: float, detail: str, now: float) -> bool:
        """Back to `scheduled` for another try at `due_at`; whether it was made."""
        target = CallbackStatus.SCHEDULED
        return await self._move(
            callback_id, target, sources(target), {"due_at": due_at}, detail, now
        )

    async def _move(
        self,
        callback_id: str,
        status: CallbackStatus,
        allowed: Iterable[CallbackStatus],
        values: dict[str, Any],
        detail: str,
        now: float,
    ) -> bool:
        async with self._engine.begin() as db:
            moved = await _move(db, callback_id, status, allowed, values, detail, now)
        if not moved:
            logger.warning("callback %s: not moved to %s", callback_id, status)
        return moved

    async def cancel(
        self, callback_id: str, now: float, by: str = "by the visitor"
    ) -> CallbackStatus | None:
        """Cancel a callback that is still waiting for its time. Returns its status after
        (`cancelled`, or the one that kept it from being cancelled), None if unknown."""
        target = CallbackStatus.CANCELLED
        return await self._change(callback_id, target, sources(target), {}, by, now)

    async def place_again(self, callback_id: str, now: float) -> CallbackStatus | None:
        """Schedule a failed or interrupted callback again, due now, with a fresh count of
        attempts (the site owner asked). Returns its status after (`scheduled`, or the one
        that kept it from being placed again), None if unknown."""
        return await self._change(
            callback_id,
            CallbackStatus.SCHEDULED,
            PLACEABLE_AGAIN,
            {"due_at": now, "attempts": 0, "claimed_by": None},
            "placed again by the site",
            now,
        )

    async def _change(
        self,
        callback_id: str,
        status: CallbackStatus,
        allowed: Iterable[CallbackStatus],
        values: dict[str, Any],
        detail: str,
        now: float,
    ) -> CallbackStatus | None:
        async with self._engine.begin() as db:
            await _move(db, callback_id, status, allowed, values, detail, now)
            row = (
                await db.execute(select(callbacks.c.status).where(callbacks.c.id == callback_id))
            ).first()
        return None if row is None else CallbackStatus(row.status)

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
            & callbacks.c.status.in_(_names(FINAL))
        )
        async with self._engine.begin() as db:
            await db.execute(delete(callback_events).where(callback_events.c.callback_id.in_(old)))
            return (await db.execute(delete(callbacks).where(callbacks.c.id.in_(old)))).rowcount

    async def _read(self, query: Any) -> list[Callback]:
        async with self._engine.connect() as db:
            rows = (await db.execute(query)).all()
            history = await _history(db, [row.id for row in rows])
        return [_callback(row, history.get(row.id, ())) for row in rows]


def _names(statuses: Iterable[CallbackStatus]) -> list[str]:
    return sorted(status.value for status in statuses)


async def _move(
    db: AsyncConnection,
    callback_id: str,
    status: CallbackStatus,
    allowed: Iterable[CallbackStatus],
    values: dict[str, Any],
    detail: str,
    now: float,
) -> bool:
    """Move a callback to `status` if it is in one of the `allowed` ones, recording the move
    in its history (inside the caller's transaction); whether it moved. The condition is in
    the UPDATE itself: of two concurrent moves, the second finds the row changed and makes
    none (PostgreSQL re-reads a row another transaction updated; SQLite runs one at a time)."""
    moved = await db.execute(
        update(callbacks)
        .where((callbacks.c.id == callback_id) & callbacks.c.status.in_(_names(allowed)))
        .values(status=status.value, **values)
    )
    if moved.rowcount:
        await _event(db, callback_id, now, CallbackEvent(status.value), detail)
    return bool(moved.rowcount)


async def _event(
    db: AsyncConnection, callback_id: str, now: float, event: CallbackEvent, detail: str = ""
) -> None:
    await db.execute(
        insert(callback_events).values(
            callback_id=callback_id, at=now, event=event.value, detail=detail
        )
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
        CallbackStatus(row.status),
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
                .where((callbacks.c.status == CallbackStatus.DIALING.value) & where)
                .with_for_update()
            )
        ).scalars()
    )
    target = CallbackStatus.INTERRUPTED
    moved = [
        await _move(db, callback_id, target, sources(target), {}, detail, now)
        for callback_id in stale
    ]
    return [i for i, was_moved in zip(stale, moved, strict=True) if was_moved]
