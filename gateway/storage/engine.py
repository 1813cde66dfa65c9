"""The one database of a gateway, chosen by `[storage] database`: an embedded SQLite file
(`sqlite:///var/gateway.db`, the default) or PostgreSQL (`postgresql://user@host/db`).

SQLAlchemy Core 2 (asyncio) speaks both through one set of queries: aiosqlite runs SQLite
on a thread off the event loop, asyncpg speaks PostgreSQL's protocol natively. The two
differ where concurrency is decided, and this module hides it:

- SQLite: WAL mode (readers never wait), `synchronous=FULL` (a committed claim survives a
  crash), and every transaction is `BEGIN IMMEDIATE`, so two processes never both read
  "scheduled" and both claim: the second waits for the first to commit (`busy_timeout`).
- PostgreSQL: read committed; claims lock their rows with `FOR UPDATE SKIP LOCKED`, so
  each row is taken by exactly one node and nobody waits for another's rows.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

BUSY_TIMEOUT_MS = 10_000  # how long an SQLite writer waits for another's transaction
CONNECT_TIMEOUT = 5.0  # seconds to connect to PostgreSQL before giving up


class StorageError(Exception):
    """The database cannot be used: a bad URL, a schema of another version, a server down."""


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    """A `[storage] database` value, checked: `kind` is "sqlite" or "postgresql"."""

    text: str
    kind: str
    path: Path | None = None  # the SQLite file (relative: to the working directory)

    @classmethod
    def parse(cls, text: str) -> DatabaseUrl:
        """Raises ValueError with the reason in words."""
        if text.startswith("sqlite:///"):
            rest = text.removeprefix("sqlite:///")
            if not rest or rest.startswith("?") or "?" in rest:
                raise ValueError("sqlite:/// must be followed by a file path, without options")
            return cls(text, "sqlite", Path(rest))
        if text.startswith(("postgresql://", "postgres://")):
            try:
                url = make_url(text.replace("postgres://", "postgresql://", 1))
            except Exception as exc:  # SQLAlchemy's ArgumentError and friends
                raise ValueError(f"not a PostgreSQL URL: {exc}") from None
            if not url.database:
                raise ValueError("a PostgreSQL URL must name its database (postgresql://.../db)")
            return cls(text, "postgresql")
        raise ValueError('expected "sqlite:///<file>" or "postgresql://user@host:port/database"')

    def sqlalchemy_url(self) -> URL:
        if self.kind == "sqlite":
            assert self.path is not None
            return URL.create("sqlite+aiosqlite", database=str(self.path))
        url = make_url(self.text.replace("postgres://", "postgresql://", 1))
        return url.set(drivername="postgresql+asyncpg")

    def redacted(self) -> str:
        """The URL without its password, for logs and errors."""
        if self.kind == "sqlite":
            return self.text
        return make_url(self.text.replace("postgres://", "postgresql://", 1)).render_as_string(
            hide_password=True
        )


def create_engine(url: DatabaseUrl) -> AsyncEngine:
    """An engine for `url`, with SQLite set up as the module docstring says (its folder is
    created when missing)."""
    if url.kind == "sqlite":
        assert url.path is not None
        url.path.parent.mkdir(parents=True, exist_ok=True)
        if not url.path.exists():
            # Call records name visitors: the file (and SQLite's -wal and -shm, which take
            # its mode) is for the gateway's user only.
            os.close(os.open(url.path, os.O_CREAT | os.O_WRONLY, 0o600))
        engine = create_async_engine(url.sqlalchemy_url())
        _sqlite_transactions(engine)
        return engine
    return create_async_engine(
        url.sqlalchemy_url(),
        pool_size=5,
        max_overflow=5,
        pool_pre_ping=True,
        # A server that does not answer fails a connection in seconds (asyncpg waits a
        # minute by default): a call's set-up must not hang on it.
        connect_args={"timeout": CONNECT_TIMEOUT},
    )


def _sqlite_transactions(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def connect(dbapi_connection, record) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, start transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
