"""The outbox: events waiting for delivery, kept in the gateway's database so that none is
lost to a restart, and handed out so that each is delivered at least once.

`Outbox` is what the notification side needs of a store; the gateway's database implements
it. `claim_due` leases what is due (pushes its `next_attempt_at` past a lease and counts an
attempt) so that two workers never deliver one row at once, and a worker that dies
mid-delivery gives the row back when the lease runs out. A row's `id` stays the same on
every attempt: it is the `webhook-id`. A row given up has `next_attempt_at` = infinity and
no `delivered_at`.

`SqliteOutbox` is the embedded SQLite implementation.
"""

from __future__ import annotations

import asyncio
import json
import math
import secrets
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

GIVEN_UP = math.inf  # the next_attempt_at of a row that will not be tried again


@dataclass(frozen=True)
class OutboxEvent:
    """One stored delivery: an event for one receiver of one site."""

    id: str
    site: str
    type: str
    payload: dict[str, Any]
    created_at: float
    attempts: int
    next_attempt_at: float
    delivered_at: float | None
    last_error: str

    @property
    def state(self) -> str:
        """delivered | pending | given_up"""
        if self.delivered_at is not None:
            return "delivered"
        return "given_up" if self.next_attempt_at == GIVEN_UP else "pending"


class Outbox(Protocol):
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


SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,            -- JSON
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    delivered_at REAL,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (delivered_at, next_attempt_at);
"""

_COLUMNS = (
    "id, site, type, payload, created_at, attempts, next_attempt_at, delivered_at, last_error"
)


class SqliteOutbox:
    """The outbox in an SQLite file (WAL), each call on one private thread, off the loop.
    Workers of one machine may share the file: a claim is one write transaction."""

    def __init__(self, path: Path | str) -> None:
        self._path = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-db")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []

    @classmethod
    async def open(cls, path: Path | str) -> SqliteOutbox:
        outbox = cls(path)
        await outbox._run(lambda db: db.executescript(SCHEMA))
        return outbox

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self._path, isolation_level=None, timeout=10)
            connection.execute("PRAGMA journal_mode=WAL")
            self._local.connection = connection
            self._connections.append(connection)
        return connection

    async def _run(self, work: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: work(self._connection()))

    async def enqueue(
        self, site: str, type: str, payload: dict[str, Any], now: float
    ) -> OutboxEvent:
        event = OutboxEvent(
            f"msg_{secrets.token_urlsafe(18)}", site, type, payload, now, 0, now, None, ""
        )

        def insert(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO outbox (id, site, type, payload, created_at, next_attempt_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (event.id, site, type, json.dumps(payload), now, now),
            )

        await self._run(insert)
        return event

    async def claim_due(self, now: float, lease: float, limit: int = 10) -> list[OutboxEvent]:
        def claim(db: sqlite3.Connection) -> list[OutboxEvent]:
            db.execute("BEGIN IMMEDIATE")
            try:
                ids = [
                    row[0]
                    for row in db.execute(
                        "SELECT id FROM outbox WHERE delivered_at IS NULL AND next_attempt_at <= ?"
                        " ORDER BY next_attempt_at LIMIT ?",
                        (now, limit),
                    )
                ]
                marks = ",".join("?" * len(ids))
                if ids:
                    db.execute(
                        f"UPDATE outbox SET next_attempt_at = ?, attempts = attempts + 1 "
                        f"WHERE id IN ({marks})",
                        (now + lease, *ids),
                    )
                rows = (
                    db.execute(f"SELECT {_COLUMNS} FROM outbox WHERE id IN ({marks})", ids)
                    if ids
                    else []
                )
                events = [_event(row) for row in rows]
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return sorted(events, key=lambda e: e.created_at)

        return await self._run(claim)

    async def delivered(self, event_id: str, now: float) -> None:
        await self._run(
            lambda db: db.execute(
                "UPDATE outbox SET delivered_at = ?, last_error = '' WHERE id = ?",
                (now, event_id),
            )
        )

    async def failed(self, event_id: str, error: str, retry_at: float) -> None:
        await self._run(
            lambda db: db.execute(
                "UPDATE outbox SET next_attempt_at = ?, last_error = ? WHERE id = ?",
                (retry_at, error[:500], event_id),
            )
        )

    async def find(self, *, site: str | None = None, limit: int = 100) -> list[OutboxEvent]:
        def select(db: sqlite3.Connection) -> list[OutboxEvent]:
            where, args = ("WHERE site = ?", [site]) if site is not None else ("", [])
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM outbox {where} ORDER BY created_at DESC LIMIT ?",
                (*args, limit),
            )
            return [_event(row) for row in rows]

        return await self._run(select)

    async def close(self) -> None:
        def close_all(_: sqlite3.Connection) -> None:
            for connection in self._connections:
                connection.close()
            self._connections.clear()

        await self._run(close_all)
        self._executor.shutdown(wait=True)


def _event(row: tuple) -> OutboxEvent:
    values = list(row)
    values[3] = json.loads(values[3])
    return OutboxEvent(*values)
