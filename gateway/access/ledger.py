"""What the workers (and nodes) of one service count together, so that abuse limits hold for
the whole service: the `Ledger`.

Each worker is a whole gateway (gateway/process/supervisor.py), and a balancer spreads a
visitor's connections over workers and nodes. Counted per worker, a visitor would get N
times the calls of `calls_per_client_*`, a site N times its `daily_call_minutes`, and a call
token or a solved proof of work N uses. So the facts these limits rest on are kept in one
place every worker reaches, chosen by `[storage] redis` (`open_ledger`, the one place):

- empty: `SqliteLedger`, one small SQLite file in the machine's state directory, which
  the workers of that machine open (a single process without workers: in memory);
- `redis://...`: `gateway.access.redis_ledger.RedisLedger`, one Redis for every node.

Both keep the same facts: the calls admitted (owner, site, visitor, started, answered,
ended), from which come the live calls per site and per visitor, the starts in the rate
windows and the talk minutes of the spend guard; the pre-call checks (they have limits of
their own); and single-use keys (call-token nonces, solved challenges, ratings) until they
expire.

Admission reads the facts and adds the call in one transaction (`admit_call`): the caller's
`decide` sees the facts and raises to refuse, so two workers cannot both admit the last call
a limit allows. The decision is the caller's (gateway.access.admission), the same whatever
keeps the facts. A worker that dies leaves its live calls behind: whoever ends its calls
releases them (`release`). Times are wall-clock seconds, passed in.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

DAY = 24 * 3600.0
HOUR = 3600.0
PRUNE_EVERY = 60.0  # seconds between deletions of rows no window can see any more


class LedgerUnavailable(Exception):
    """The ledger cannot be reached (Redis down); the message says which and why."""


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What a call's admission is decided on, read in the transaction that adds it."""

    site_calls: int  # calls of the site going on, on every worker and node
    client_calls: int  # calls of the visitor going on (all sites)
    talk_seconds: float  # the site's talk in the last 24 hours, calls talking now included
    starts: tuple[
        float, ...
    ]  # when the visitor's calls of the site started, last 24 h, oldest first


@dataclass(frozen=True, slots=True)
class CheckFacts:
    """What a pre-call check's admission is decided on."""

    live: int  # the visitor's checks going on
    starts: tuple[float, ...]  # when the visitor's checks started in the last hour, oldest first


class Ledger(Protocol):
    """The facts the limits of the whole service rest on; `owner` names this worker."""

    owner: str

    async def admit_call(
        self,
        site: str,
        client: str,
        now: float,
        decide: Callable[[CallFacts], None],
        *,
        lasts: float,
    ) -> str:
        """Read the facts, let `decide` raise to refuse, else add the call and return its
        key. `lasts`: seconds the call cannot outlast (ringing plus the maximum duration),
        after which it stops counting even if nobody said it ended. Raises
        LedgerUnavailable."""
        ...

    async def count_request(
        self, site: str, client: str, now: float, decide: Callable[[CallFacts], None]
    ) -> None:
        """A Request-a-Call request: counted as a call that started and ended now, in the
        same transaction as `decide`'s look at the facts."""
        ...

    async def call_answered(self, call: str, now: float) -> None:
        """The call talks from `now` (no effect once it ended)."""
        ...

    async def call_ended(self, call: str, now: float, answered_at: float | None) -> None:
        """The call is over (it talked from `answered_at`, if it was answered). In any order
        with `call_answered`: each sees what the other did."""
        ...

    async def talk_seconds(self, site: str, since: float, now: float) -> float:
        """The site's talk: whole calls that ended after `since`, plus the calls talking
        now up to `now` (a trunk bills a call when it ends)."""
        ...

    async def live_calls(
        self, now: float, *, site: str | None = None, client: str | None = None
    ) -> int:
        """Calls of every worker not yet ended at `now`, of `site` and/or from `client`."""
        ...

    async def admit_check(
        self, client: str, now: float, decide: Callable[[CheckFacts], None], *, lasts: float
    ) -> str:
        """`admit_call` for a pre-call check."""
        ...

    async def check_ended(self, check: str, now: float) -> None: ...

    async def first_use(self, key: str, expires: float, now: float) -> bool:
        """Whether `key` is used for the first time (and is now remembered until
        `expires`); False when any worker used it before."""
        ...

    async def release(self, owner: str, now: float) -> int:
        """End the live calls and checks `owner` left (it died); how many calls."""
        ...

    async def close(self) -> None: ...


# ---------------------------------------------------------------------------- SQLite
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


class SqliteLedger:
    """The ledger of one machine: an SQLite file its workers open (WAL, `synchronous=OFF`:
    readers never wait and a write costs tens of microseconds; nothing here must survive a
    power cut). Transactions are `BEGIN IMMEDIATE`, one writer at a time. Its work is
    local and short, so it runs on the event loop's thread."""

    def __init__(self, connection: sqlite3.Connection, owner: str) -> None:
        self._db = connection
        self.owner = owner
        self._next_prune = -math.inf
        self._in_transaction = False

    @classmethod
    def open(cls, path: Path, owner: str) -> SqliteLedger:
        """The machine's ledger at `path` (created if missing)."""
        # The timeout only matters when workers write at the same instant: then a
        # transaction waits for the other's few microseconds instead of failing.
        connection = sqlite3.connect(path, timeout=5.0, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=OFF")
        connection.executescript(_SCHEMA)
        return cls(connection, owner)

    @classmethod
    def in_memory(cls, owner: str = "this process") -> SqliteLedger:
        """A ledger for one process alone."""
        connection = sqlite3.connect(":memory:", isolation_level=None)
        connection.executescript(_SCHEMA)
        return cls(connection, owner)

    async def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
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
    async def admit_call(
        self,
        site: str,
        client: str,
        now: float,
        decide: Callable[[CallFacts], None],
        *,
        lasts: float,
    ) -> str:
        with self._transaction():
            decide(self._call_facts(site, client, now))
            return str(self._add_call(site, client, now))

    async def count_request(
        self, site: str, client: str, now: float, decide: Callable[[CallFacts], None]
    ) -> None:
        with self._transaction():
            decide(self._call_facts(site, client, now))
            row = self._add_call(site, client, now)
            self._db.execute("UPDATE calls SET ended = ? WHERE id = ?", (now, row))

    def _call_facts(self, site: str, client: str, now: float) -> CallFacts:
        return CallFacts(
            site_calls=self._live(site=site),
            client_calls=self._live(client=client),
            talk_seconds=self._talk(site, now - DAY, now),
            starts=tuple(
                started
                for (started,) in self._db.execute(
                    "SELECT started FROM calls WHERE site = ? AND client = ? AND started > ? "
                    "ORDER BY started",
                    (site, client, now - DAY),
                )
            ),
        )

    def _live(self, *, site: str | None = None, client: str | None = None) -> int:
        query = "SELECT count(*) FROM calls WHERE ended IS NULL"
        args: list[str] = []
        if site is not None:
            query += " AND site = ?"
            args.append(site)
        if client is not None:
            query += " AND client = ?"
            args.append(client)
        return self._db.execute(query, args).fetchone()[0]

    def _talk(self, site: str, since: float, now: float) -> float:
        (seconds,) = self._db.execute(
            "SELECT coalesce(sum(max(0, coalesce(ended, ?) - answered)), 0) FROM calls "
            "WHERE site = ? AND answered IS NOT NULL AND (ended IS NULL OR ended > ?)",
            (now, site, since),
        ).fetchone()
        return float(seconds)

    def _add_call(self, site: str, client: str, now: float) -> int:
        self._prune(now)
        cursor = self._db.execute(
            "INSERT INTO calls (owner, site, client, started) VALUES (?, ?, ?, ?)",
            (self.owner, site, client, now),
        )
        assert cursor.lastrowid is not None
        return cursor.lastrowid

    async def live_calls(
        self, now: float, *, site: str | None = None, client: str | None = None
    ) -> int:
        return self._live(site=site, client=client)

    async def talk_seconds(self, site: str, since: float, now: float) -> float:
        return self._talk(site, since, now)

    async def call_answered(self, call: str, now: float) -> None:
        self._db.execute(
            "UPDATE calls SET answered = ? WHERE id = ? AND answered IS NULL AND ended IS NULL",
            (now, int(call)),
        )

    async def call_ended(self, call: str, now: float, answered_at: float | None) -> None:
        self._db.execute(
            "UPDATE calls SET ended = ?, answered = coalesce(answered, ?) "
            "WHERE id = ? AND ended IS NULL",
            (now, answered_at, int(call)),
        )

    async def release(self, owner: str, now: float) -> int:
        ended = 0
        for table in ("checks", "calls"):
            cursor = self._db.execute(
                f"UPDATE {table} SET ended = ? WHERE ended IS NULL AND owner = ?", (now, owner)
            )
            ended = cursor.rowcount
        return ended

    def release_all(self, now: float) -> int:
        """End every live call and check (the machine's supervisor starts: nothing runs)."""
        self._db.execute("UPDATE checks SET ended = ? WHERE ended IS NULL", (now,))
        return self._db.execute("UPDATE calls SET ended = ? WHERE ended IS NULL", (now,)).rowcount

    # ------------------------------------------------------------------ pre-call checks
    async def admit_check(
        self, client: str, now: float, decide: Callable[[CheckFacts], None], *, lasts: float
    ) -> str:
        with self._transaction():
            live = self._db.execute(
                "SELECT count(*) FROM checks WHERE client = ? AND ended IS NULL", (client,)
            ).fetchone()[0]
            starts = tuple(
                started
                for (started,) in self._db.execute(
                    "SELECT started FROM checks WHERE client = ? AND started > ? ORDER BY started",
                    (client, now - HOUR),
                )
            )
            decide(CheckFacts(live, starts))
            self._prune(now)
            cursor = self._db.execute(
                "INSERT INTO checks (owner, client, started) VALUES (?, ?, ?)",
                (self.owner, client, now),
            )
            return str(cursor.lastrowid)

    async def check_ended(self, check: str, now: float) -> None:
        self._db.execute(
            "UPDATE checks SET ended = ? WHERE id = ? AND ended IS NULL", (now, int(check))
        )

    # ------------------------------------------------------------------ single use
    async def first_use(self, key: str, expires: float, now: float) -> bool:
        self._prune(now)
        cursor = self._db.execute(
            "INSERT INTO used (key, expires) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
            (key, expires),
        )
        return cursor.rowcount == 1

    # What the machine's ledger holds, for diagnostics and tests.
    def starts(self, site: str, client: str, since: float) -> list[float]:
        """When the calls of `site` from `client` started after `since`, oldest first."""
        rows = self._db.execute(
            "SELECT started FROM calls WHERE site = ? AND client = ? AND started > ? "
            "ORDER BY started",
            (site, client, since),
        )
        return [started for (started,) in rows]

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
