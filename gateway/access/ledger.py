"""What the workers of one machine count together, so that abuse limits hold per machine.

Each worker is a whole gateway (gateway/process/supervisor.py), and the kernel spreads a visitor's
connections over them. Counted per worker, a visitor would get N times the calls of
`calls_per_client_*`, a site N times its `daily_call_minutes`, and a call token or a solved
proof of work N uses. So the facts these limits rest on live in one small SQLite database
that every worker opens:

- `calls`: one row per admitted call (owner worker, site, visitor, started, answered,
  ended). Live calls per site and per visitor, call starts in the rate windows and the
  talk minutes of the spend guard are queries over it.
- `used`: single-use things (call-token nonces, solved challenges) until they expire.
- `checks`: one row per pre-call check (owner worker, visitor, started, ended): not calls,
  with limits of their own (gateway.calls.precheck).

Admission reads and writes in one `BEGIN IMMEDIATE` transaction (`transaction()`), so two
workers cannot both admit the last call a limit allows. WAL mode with `synchronous=OFF`:
readers never wait and a write costs tens of microseconds (nothing here must survive a
power cut; a crash of the machine forgets at most the last moments). A worker that dies
leaves its live rows behind: the supervisor ends them (`release`) before it starts the
worker again. With a single process the same code runs on an in-memory database.

Times are wall-clock seconds, passed in (the callers' clocks).
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path

DAY = 24 * 3600.0
PRUNE_EVERY = 60.0  # seconds between deletions of rows no window can see any more

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    site TEXT NOT NULL,
    client TEXT NOT NULL,
    started REAL NOT NULL,
    answered REAL,
    ended REAL
);
CREATE INDEX IF NOT EXISTS calls_started ON calls (site, client, started);
CREATE INDEX IF NOT EXISTS calls_live ON calls (owner) WHERE ended IS NULL;
CREATE INDEX IF NOT EXISTS calls_talk ON calls (site, ended);
CREATE TABLE IF NOT EXISTS checks (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    client TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL
);
CREATE INDEX IF NOT EXISTS checks_client ON checks (client, started);
CREATE TABLE IF NOT EXISTS used (
    key TEXT PRIMARY KEY,
    expires REAL NOT NULL
) WITHOUT ROWID;
"""


class SharedLedger:
    """Call rows and single-use keys shared by the workers; `owner` names this worker."""

    def __init__(self, connection: sqlite3.Connection, owner: str) -> None:
        self._db = connection
        self.owner = owner
        self._next_prune = -math.inf
        self._in_transaction = False

    @classmethod
    def open(cls, path: Path, owner: str) -> SharedLedger:
        """The machine's ledger at `path` (created if missing)."""
        # The timeout only matters when workers write at the same instant: then a
        # transaction waits for the other's few microseconds instead of failing.
        connection = sqlite3.connect(path, timeout=5.0, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=OFF")
        connection.executescript(_SCHEMA)
        return cls(connection, owner)

    @classmethod
    def in_memory(cls) -> SharedLedger:
        """A ledger for one process alone."""
        connection = sqlite3.connect(":memory:", isolation_level=None)
        connection.executescript(_SCHEMA)
        return cls(connection, "this process")

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Reads and writes no other worker can interleave with; rolled back on error."""
        if self._in_transaction:
            raise RuntimeError("the ledger's transactions do not nest")
        self._db.execute("BEGIN IMMEDIATE")
        self._in_transaction = True
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        else:
            self._db.execute("COMMIT")
        finally:
            self._in_transaction = False

    # ------------------------------------------------------------------ calls
    def live_calls(self, *, site: str | None = None, client: str | None = None) -> int:
        """Calls of all workers not yet ended, of `site` and/or from `client`."""
        query = "SELECT count(*) FROM calls WHERE ended IS NULL"
        args: list[str] = []
        if site is not None:
            query += " AND site = ?"
            args.append(site)
        if client is not None:
            query += " AND client = ?"
            args.append(client)
        return self._db.execute(query, args).fetchone()[0]

    def starts(self, site: str, client: str, since: float) -> list[float]:
        """When the calls of `site` from `client` started after `since`, oldest first."""
        rows = self._db.execute(
            "SELECT started FROM calls WHERE site = ? AND client = ? AND started > ? "
            "ORDER BY started",
            (site, client, since),
        )
        return [started for (started,) in rows]

    def talk_seconds(self, site: str, since: float, now: float) -> float:
        """Talk time of `site`: whole calls that ended after `since`, plus the calls
        talking now up to `now` (a trunk bills a call when it ends)."""
        (seconds,) = self._db.execute(
            "SELECT coalesce(sum(max(0, coalesce(ended, ?) - answered)), 0) FROM calls "
            "WHERE site = ? AND answered IS NOT NULL AND (ended IS NULL OR ended > ?)",
            (now, site, since),
        ).fetchone()
        return float(seconds)

    def add_call(self, site: str, client: str, now: float) -> int:
        """A call admitted now; returns its row for `answered` and `ended`."""
        self._prune(now)
        cursor = self._db.execute(
            "INSERT INTO calls (owner, site, client, started) VALUES (?, ?, ?, ?)",
            (self.owner, site, client, now),
        )
        assert cursor.lastrowid is not None  # set by every INSERT
        return cursor.lastrowid

    def answered(self, call: int, now: float) -> None:
        self._db.execute(
            "UPDATE calls SET answered = ? WHERE id = ? AND answered IS NULL AND ended IS NULL",
            (now, call),
        )

    def ended(self, call: int, now: float) -> float:
        """The call is over; returns the seconds it talked (0 if never answered)."""
        self._db.execute("UPDATE calls SET ended = ? WHERE id = ? AND ended IS NULL", (now, call))
        row = self._db.execute("SELECT answered, ended FROM calls WHERE id = ?", (call,)).fetchone()
        if row is None or row[0] is None:
            return 0.0
        return max(0.0, row[1] - row[0])

    def release(self, owner: str | None, now: float) -> int:
        """End the live calls (and pre-call checks) `owner` left (every owner's with None);
        how many calls."""
        ended = 0
        for table in ("checks", "calls"):
            if owner is None:
                cursor = self._db.execute(
                    f"UPDATE {table} SET ended = ? WHERE ended IS NULL", (now,)
                )
            else:
                cursor = self._db.execute(
                    f"UPDATE {table} SET ended = ? WHERE ended IS NULL AND owner = ?",
                    (now, owner),
                )
            ended = cursor.rowcount
        return ended

    # ------------------------------------------------------------------ pre-call checks
    def live_checks(self, client: str) -> int:
        """Pre-call checks of `client` going on, on any worker."""
        query = "SELECT count(*) FROM checks WHERE client = ? AND ended IS NULL"
        return self._db.execute(query, (client,)).fetchone()[0]

    def check_starts(self, client: str, since: float) -> list[float]:
        """When the pre-call checks of `client` started after `since`, oldest first."""
        rows = self._db.execute(
            "SELECT started FROM checks WHERE client = ? AND started > ? ORDER BY started",
            (client, since),
        )
        return [started for (started,) in rows]

    def add_check(self, client: str, now: float) -> int:
        """A pre-call check started now; returns its row for `check_ended`."""
        self._prune(now)
        cursor = self._db.execute(
            "INSERT INTO checks (owner, client, started) VALUES (?, ?, ?)",
            (self.owner, client, now),
        )
        assert cursor.lastrowid is not None  # set by every INSERT
        return cursor.lastrowid

    def check_ended(self, check: int, now: float) -> None:
        self._db.execute("UPDATE checks SET ended = ? WHERE id = ? AND ended IS NULL", (now, check))

    # ------------------------------------------------------------------ single use
    def first_use(self, key: str, expires: float, now: float) -> bool:
        """Whether `key` is used for the first time (and is now remembered until
        `expires`); False when any worker used it before."""
        self._prune(now)
        cursor = self._db.execute(
            "INSERT INTO used (key, expires) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            (key, expires),
        )
        return cursor.rowcount == 1

    def remembered(self) -> int:
        """How many single-use keys are remembered (expired ones go within a minute)."""
        return self._db.execute("SELECT count(*) FROM used").fetchone()[0]

    def _prune(self, now: float) -> None:
        if now < self._next_prune:
            return
        self._next_prune = now + PRUNE_EVERY
        # Rows no window can see any more: the longest window is a day.
        self._db.execute(
            "DELETE FROM calls WHERE ended IS NOT NULL AND ended < ? AND started < ?",
            (now - DAY, now - DAY),
        )
        self._db.execute("DELETE FROM checks WHERE ended IS NOT NULL AND started < ?", (now - DAY,))
        self._db.execute("DELETE FROM used WHERE expires < ?", (now,))
