"""Stored callback requests (Request-a-Call): SQLite by default, behind a small interface.

A callback is placed at most once, whatever happens to the process: it is claimed (status
`dialing`, committed) before its first INVITE leaves, and a callback found `dialing` when the
store opens belonged to a process that died mid-call: it becomes `interrupted` and is never
dialled again on its own (the site sees it in its history and can ask again).

Statuses and the moves between them are gateway.callbacks.lifecycle's: a move it does not
list is not made (`finish`, `retry_at` and `cancel` answer whether it was).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from gateway.callbacks.lifecycle import CallbackEvent, CallbackStatus, sources

logger = logging.getLogger(__name__)

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


class CallbackStore(Protocol):
    """What the gateway needs of a store; a PostgreSQL one implements the same."""

    async def add(
        self, *, site: str, number: str, details: dict, due_at: float, now: float
    ) -> Callback: ...
    async def get(self, callback_id: str) -> Callback | None: ...
    async def due(
        self, now: float, limit: int = 10, skip_sites: frozenset[str] = frozenset()
    ) -> list[Callback]: ...
    async def claim(self, callback_id: str, owner: str, now: float) -> Callback | None: ...
    async def claim_due(self, now: float, owner: str, limit: int = 10) -> list[Callback]: ...
    async def record(
        self, callback_id: str, event: CallbackEvent, detail: str, now: float
    ) -> None: ...
    async def note_waiting(self, callback_id: str, detail: str, now: float) -> None: ...
    async def finish(
        self, callback_id: str, status: CallbackStatus, detail: str, now: float
    ) -> bool: ...
    async def retry_at(self, callback_id: str, due_at: float, detail: str, now: float) -> bool: ...
    async def cancel(self, callback_id: str, now: float) -> CallbackStatus | None: ...
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
                    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        callback_id,
                        site,
                        number,
                        json.dumps(details),
                        due_at,
                        CallbackStatus.SCHEDULED,
                        now,
                    ),
                )
                _event(db, callback_id, now, CallbackEvent.REQUESTED)

        await self._run(insert)
        added = await self.get(callback_id)
        assert added is not None
        return added

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
            row[0],
            row[1],
            row[2],
            json.loads(row[3]),
            row[4],
            CallbackStatus(row[5]),
            row[6],
            row[7],
            history,
        )

    async def due(
        self, now: float, limit: int = 10, skip_sites: frozenset[str] = frozenset()
    ) -> list[Callback]:
        """Scheduled callbacks whose time has come, oldest first, but those of `skip_sites`
        (not claimed: see `claim`)."""

        def select() -> list[str]:
            marks = ", ".join("?" * len(skip_sites))
            return [
                row[0]
                for row in self._connection().execute(
                    "SELECT id FROM callbacks WHERE status = ? AND due_at <= ?"
                    + (f" AND site NOT IN ({marks})" if skip_sites else "")
                    + " ORDER BY due_at LIMIT ?",
                    (CallbackStatus.SCHEDULED, now, *sorted(skip_sites), limit),
                )
            ]

        ids = await self._run(select)
        return [c for c in [await self.get(i) for i in ids] if c is not None]

    async def claim(self, callback_id: str, owner: str, now: float) -> Callback | None:
        """Claim a due callback for `owner` (`dialing`, one more attempt), in one
        transaction: None when another worker claimed it first (or it was cancelled)."""

        def update() -> bool:
            db = self._connection()
            with _transaction(db):
                return _claim(db, callback_id, owner, now)

        return await self.get(callback_id) if await self._run(update) else None

    async def claim_due(self, now: float, owner: str, limit: int = 10) -> list[Callback]:
        """Claim up to `limit` due callbacks at once (oldest first)."""

        def claim() -> list[str]:
            db = self._connection()
            with _transaction(db):
                ids = [
                    row[0]
                    for row in db.execute(
                        "SELECT id FROM callbacks WHERE status = ? AND due_at <= ?"
                        " ORDER BY due_at LIMIT ?",
                        (CallbackStatus.SCHEDULED, now, limit),
                    )
                ]
                return [i for i in ids if _claim(db, i, owner, now)]

        ids = await self._run(claim)
        return [c for c in [await self.get(i) for i in ids] if c is not None]

    async def record(self, callback_id: str, event: CallbackEvent, detail: str, now: float) -> None:
        def insert() -> None:
            _event(self._connection(), callback_id, now, event, detail)

        await self._run(insert)

    async def note_waiting(self, callback_id: str, detail: str, now: float) -> None:
        """Record that a due callback waits for a free line, once per wait (workers that
        find it waiting again add nothing)."""

        def insert() -> None:
            db = self._connection()
            with _transaction(db):
                last = db.execute(
                    "SELECT event, detail FROM callback_events WHERE callback_id = ?"
                    " ORDER BY seq DESC LIMIT 1",
                    (callback_id,),
                ).fetchone()
                if last != (CallbackEvent.WAITING, detail):
                    _event(db, callback_id, now, CallbackEvent.WAITING, detail)

        await self._run(insert)

    async def finish(
        self, callback_id: str, status: CallbackStatus, detail: str, now: float
    ) -> bool:
        """Move to a final status; whether it was made (never from another final one)."""
        status = CallbackStatus(status)
        if not status.final:
            raise ValueError(f"not a final status: {status}")
        return await self._move(callback_id, status, None, detail, now)

    async def retry_at(self, callback_id: str, due_at: float, detail: str, now: float) -> bool:
        """Back to `scheduled` for another try at `due_at`; whether it was made."""
        return await self._move(callback_id, CallbackStatus.SCHEDULED, due_at, detail, now)

    async def _move(
        self,
        callback_id: str,
        status: CallbackStatus,
        due_at: float | None,
        detail: str,
        now: float,
    ) -> bool:
        def update() -> bool:
            db = self._connection()
            with _transaction(db):
                moved = _move(db, callback_id, status, now, detail, due_at=due_at)
                if not moved:
                    logger.warning("callback %s: not moved to %s", callback_id, status)
                return moved

        return await self._run(update)

    async def cancel(self, callback_id: str, now: float) -> CallbackStatus | None:
        """Cancel a callback that is still waiting for its time. Returns its status after
        (`cancelled`, or the one that kept it from being cancelled), None if unknown."""

        def update() -> CallbackStatus | None:
            db = self._connection()
            with _transaction(db):
                _move(db, callback_id, CallbackStatus.CANCELLED, now, "by the visitor")
                row = db.execute(
                    "SELECT status FROM callbacks WHERE id = ?", (callback_id,)
                ).fetchone()
            return None if row is None else CallbackStatus(row[0])

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
                f"SELECT id FROM callbacks WHERE status = ? AND {where}",
                (CallbackStatus.DIALING, *args),
            )
        ]
        for callback_id in stale:
            _move(
                db,
                callback_id,
                CallbackStatus.INTERRUPTED,
                now,
                "the gateway stopped during the call",
            )
    return len(stale)


def _move(
    db: sqlite3.Connection,
    callback_id: str,
    status: CallbackStatus,
    now: float,
    detail: str = "",
    *,
    due_at: float | None = None,
) -> bool:
    """Move a callback to `status` if the lifecycle allows it from where it is, recording
    the move in its history (inside the caller's transaction); whether it moved."""
    allowed = sorted(sources(status))
    marks = ", ".join("?" * len(allowed))
    moved = db.execute(
        f"UPDATE callbacks SET status = ?, due_at = coalesce(?, due_at)"
        f" WHERE id = ? AND status IN ({marks})",
        (status, due_at, callback_id, *allowed),
    ).rowcount
    if moved:
        _event(db, callback_id, now, CallbackEvent(status.value), detail)
    return bool(moved)


def _claim(db: sqlite3.Connection, callback_id: str, owner: str, now: float) -> bool:
    moved = db.execute(
        "UPDATE callbacks SET status = ?, claimed_by = ?, attempts = attempts + 1"
        " WHERE id = ? AND status = ?",
        (CallbackStatus.DIALING, owner, callback_id, CallbackStatus.SCHEDULED),
    ).rowcount
    if moved:
        _event(db, callback_id, now, CallbackEvent.DIALING)
    return bool(moved)


def _event(
    db: sqlite3.Connection, callback_id: str, now: float, event: CallbackEvent, detail: str = ""
) -> None:
    db.execute(
        "INSERT INTO callback_events (callback_id, at, event, detail) VALUES (?, ?, ?, ?)",
        (callback_id, now, event, detail),
    )


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT: one writer at a time, all or nothing."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, kind, value, traceback) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")
