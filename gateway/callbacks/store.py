"""Stored callback requests (Request-a-Call): SQLite by default, behind a small interface.

A callback is placed at most once, whatever happens to the process: it is claimed (status
`dialing`, committed) before its first INVITE leaves, and a callback found `dialing` when the
store opens belonged to a process that died mid-call: it becomes `interrupted` and is never
dialled again on its own (the site sees it in its history and can ask again).

Statuses: scheduled -> dialing -> done | failed | cancelled; dialing -> scheduled (a retry
later); dialing -> interrupted (after a crash).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

SCHEMA = """
CREATE TABLE IF NOT EXISTS callbacks (
    id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    number TEXT NOT NULL,
    details TEXT NOT NULL,          -- JSON: name, page, reason (what the operator is told)
    due_at REAL NOT NULL,           -- seconds since the epoch
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    claimed_by TEXT
);
CREATE INDEX IF NOT EXISTS callbacks_due ON callbacks (status, due_at);
CREATE INDEX IF NOT EXISTS callbacks_number ON callbacks (number, created_at);
CREATE TABLE IF NOT EXISTS callback_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    callback_id TEXT NOT NULL REFERENCES callbacks (id),
    at REAL NOT NULL,
    event TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
"""

FINAL = ("done", "failed", "cancelled", "interrupted")


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


class CallbackStore(Protocol):
    """What the gateway needs of a store; a PostgreSQL one implements the same."""

    async def add(
        self, *, site: str, number: str, details: dict, due_at: float, now: float
    ) -> Callback: ...
    async def get(self, callback_id: str) -> Callback | None: ...
    async def claim_due(self, now: float, owner: str, limit: int = 10) -> list[Callback]: ...
    async def record(self, callback_id: str, event: str, detail: str, now: float) -> None: ...
    async def finish(self, callback_id: str, status: str, detail: str, now: float) -> None: ...
    async def retry_at(self, callback_id: str, due_at: float, detail: str, now: float) -> None: ...
    async def cancel(self, callback_id: str, now: float) -> str | None: ...
    async def count_for_number(self, number: str, since: float) -> int: ...
    async def close(self) -> None: ...


class SqliteCallbackStore:
    """SQLite in WAL mode; every call runs on one private thread, off the event loop."""

    def __init__(self, path: Path | str) -> None:
        self._path = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="callbacks-db")
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []

    @classmethod
    async def open(
        cls, path: Path | str, now: float, owner: str = "gateway"
    ) -> SqliteCallbackStore:
        """Open (creating if needed), then mark as `interrupted` what an earlier life of
        `owner` (this worker's stable name) left `dialing`: it died during those calls.
        Other workers' live claims are left alone."""
        store = cls(path)
        await store._run(store._setup, now, owner)
        return store

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self._path, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            self._local.connection = connection
            self._connections.append(connection)
        return connection

    async def _run(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    def _setup(self, now: float, owner: str) -> None:
        db = self._connection()
        db.executescript(SCHEMA)
        _mark_interrupted(db, now, "claimed_by = ?", (owner,))

    async def add(
        self, *, site: str, number: str, details: dict, due_at: float, now: float
    ) -> Callback:
        callback_id = secrets.token_urlsafe(12)

        def insert() -> None:
            db = self._connection()
            with _transaction(db):
                db.execute(
                    "INSERT INTO callbacks (id, site, number, details, due_at, status,"
                    " created_at) VALUES (?, ?, ?, ?, ?, 'scheduled', ?)",
                    (callback_id, site, number, json.dumps(details), due_at, now),
                )
                db.execute(
                    "INSERT INTO callback_events (callback_id, at, event) VALUES"
                    " (?, ?, 'requested')",
                    (callback_id, now),
                )

        await self._run(insert)
        return await self.get(callback_id)

    async def get(self, callback_id: str) -> Callback | None:
        return await self._run(self._get, callback_id)

    def _get(self, callback_id: str) -> Callback | None:
        db = self._connection()
        row = db.execute(
            "SELECT id, site, number, details, due_at, status, attempts, created_at"
            " FROM callbacks WHERE id = ?",
            (callback_id,),
        ).fetchone()
        if row is None:
            return None
        history = tuple(
            db.execute(
                "SELECT at, event, detail FROM callback_events WHERE callback_id = ? ORDER BY seq",
                (callback_id,),
            )
        )
        return Callback(
            row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6], row[7], history
        )

    async def claim_due(self, now: float, owner: str, limit: int = 10) -> list[Callback]:
        def claim() -> list[str]:
            db = self._connection()
            with _transaction(db):
                ids = [
                    row[0]
                    for row in db.execute(
                        "SELECT id FROM callbacks WHERE status = 'scheduled' AND due_at <= ?"
                        " ORDER BY due_at LIMIT ?",
                        (now, limit),
                    )
                ]
                for callback_id in ids:
                    db.execute(
                        "UPDATE callbacks SET status = 'dialing', claimed_by = ?,"
                        " attempts = attempts + 1 WHERE id = ?",
                        (owner, callback_id),
                    )
                    db.execute(
                        "INSERT INTO callback_events (callback_id, at, event) VALUES"
                        " (?, ?, 'dialing')",
                        (callback_id, now),
                    )
            return ids

        ids = await self._run(claim)
        return [c for c in [await self.get(i) for i in ids] if c is not None]

    async def record(self, callback_id: str, event: str, detail: str, now: float) -> None:
        def insert() -> None:
            self._connection().execute(
                "INSERT INTO callback_events (callback_id, at, event, detail) VALUES (?, ?, ?, ?)",
                (callback_id, now, event, detail),
            )

        await self._run(insert)

    async def finish(self, callback_id: str, status: str, detail: str, now: float) -> None:
        if status not in FINAL:
            raise ValueError(f"not a final status: {status}")
        await self._set_status(callback_id, status, None, detail, now)

    async def retry_at(self, callback_id: str, due_at: float, detail: str, now: float) -> None:
        await self._set_status(callback_id, "scheduled", due_at, detail, now)

    async def _set_status(
        self, callback_id: str, status: str, due_at: float | None, detail: str, now: float
    ) -> None:
        def update() -> None:
            db = self._connection()
            with _transaction(db):
                if due_at is None:
                    db.execute(
                        "UPDATE callbacks SET status = ? WHERE id = ?", (status, callback_id)
                    )
                else:
                    db.execute(
                        "UPDATE callbacks SET status = ?, due_at = ? WHERE id = ?",
                        (status, due_at, callback_id),
                    )
                db.execute(
                    "INSERT INTO callback_events (callback_id, at, event, detail)"
                    " VALUES (?, ?, ?, ?)",
                    (callback_id, now, status, detail),
                )

        await self._run(update)

    async def cancel(self, callback_id: str, now: float) -> str | None:
        """Cancel a callback that is still waiting for its time. Returns its status after
        (`cancelled`, or the one that kept it from being cancelled), None if unknown."""

        def update() -> str | None:
            db = self._connection()
            with _transaction(db):
                changed = db.execute(
                    "UPDATE callbacks SET status = 'cancelled' WHERE id = ? AND status = ?",
                    (callback_id, "scheduled"),
                ).rowcount
                if changed:
                    db.execute(
                        "INSERT INTO callback_events (callback_id, at, event, detail)"
                        " VALUES (?, ?, 'cancelled', 'by the visitor')",
                        (callback_id, now),
                    )
                row = db.execute(
                    "SELECT status FROM callbacks WHERE id = ?", (callback_id,)
                ).fetchone()
            return None if row is None else row[0]

        return await self._run(update)

    async def count_for_number(self, number: str, since: float) -> int:
        def count() -> int:
            return (
                self._connection()
                .execute(
                    "SELECT COUNT(*) FROM callbacks WHERE number = ? AND created_at >= ?",
                    (number, since),
                )
                .fetchone()[0]
            )

        return await self._run(count)

    async def close(self) -> None:
        def close_all() -> None:
            for connection in self._connections:
                connection.close()

        await self._run(close_all)
        self._executor.shutdown(wait=True)


def interrupt_orphans(path: Path | str, workers: int, now: float) -> int:
    """Mark `interrupted` the callbacks that workers numbered `workers` and up were placing
    when they stopped: with fewer workers now, no worker of that name will find them.
    For the supervisor, before it starts its workers; how many were marked."""
    path = Path(path)
    if not path.exists():
        return 0
    db = sqlite3.connect(path, timeout=5.0, isolation_level=None)
    try:
        current = [f"worker-{i}" for i in range(workers)]
        marks = ", ".join("?" * len(current))
        return _mark_interrupted(
            db, now, f"claimed_by LIKE 'worker-%' AND claimed_by NOT IN ({marks})", current
        )
    finally:
        db.close()


def _mark_interrupted(db: sqlite3.Connection, now: float, where: str, args: Sequence) -> int:
    """Callbacks left `dialing` by a worker that stopped (`where` picks its claims): they
    are never dialled again, so nobody is called twice."""
    with _transaction(db):
        stale = [
            row[0]
            for row in db.execute(
                f"SELECT id FROM callbacks WHERE status = 'dialing' AND {where}", args
            )
        ]
        for callback_id in stale:
            db.execute("UPDATE callbacks SET status = 'interrupted' WHERE id = ?", (callback_id,))
            db.execute(
                "INSERT INTO callback_events (callback_id, at, event, detail) "
                "VALUES (?, ?, 'interrupted', ?)",
                (callback_id, now, "the gateway stopped during the call"),
            )
    return len(stale)


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT: one writer at a time, all or nothing."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, kind, value, traceback) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")
