"""Visitors' ratings of their calls: after an answered call, the widget may send 1 to 5 and
a comment (`POST /api/calls/<call id>/rating`, gateway.http.ratings) with the proof the
page got when the call ended (gateway.access.ratings). Each call is rated once, within
`RATING_WINDOW` of its end; the comment is cleaned and bounded like anything a visitor
types (gateway.text).

Where ratings are kept: with the call's record once call records are in the gateway's
database (the call's id is the record's id). Until then, INTERIM: `SqliteRatingStore`, a
`call_ratings` table in `call-ratings.db` in the state directory (`[storage]
state_directory`; docs/embedding.md says so); the `RatingStore` interface is what moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gateway.access.ledger import Ledger, LedgerUnavailable
from gateway.access.ratings import RatingProofError, RatingProofs
from gateway.api import Clock, Refusal
from gateway.text import clean_visitor_text

logger = logging.getLogger(__name__)

MAX_COMMENT_CHARS = 500
RATING_FIELDS = frozenset({"proof", "rating", "comment"})
RATINGS_FILE = "call-ratings.db"  # INTERIM: in the state directory


class RatingRefused(Refusal):
    """A rating not taken: `rating_refused` (no valid proof: 403), `already_rated` (409),
    or `bad_request` (400)."""


@dataclass(frozen=True, slots=True)
class CallRating:
    call_id: str
    site: str
    rating: int  # 1-5
    comment: str
    rated_at: float


class RatingStore(Protocol):
    async def add(self, rating: CallRating) -> None: ...

    async def get(self, call_id: str) -> CallRating | None: ...


class CallRatings:
    """Takes ratings: checks the proof, that the call was not rated yet, and the values."""

    def __init__(
        self,
        proofs: RatingProofs,
        store: RatingStore,
        ledger: Ledger,
        *,
        clock: Clock = time.time,
    ) -> None:
        self.proofs = proofs
        self.store = store
        self.ledger = ledger
        self.clock = clock

    def proof(self, call_id: str, site_id: str) -> str:
        """What the page is given when the answered call `call_id` ends."""
        return self.proofs.issue(call_id, site_id, self.clock())

    async def rate(self, call_id: str, body: object) -> CallRating:
        """Store the rating in `body` (`{"proof", "rating", "comment"?}`) of `call_id`."""
        if not isinstance(body, Mapping):
            raise RatingRefused("bad_request", "send a JSON object")
        rating = body.get("rating")
        if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
            raise RatingRefused("bad_request", "rating must be a whole number from 1 to 5")
        comment = body.get("comment", "")
        if not isinstance(comment, str):
            raise RatingRefused("bad_request", "comment must be text")
        try:
            comment = clean_visitor_text(comment, MAX_COMMENT_CHARS)
        except ValueError as exc:
            raise RatingRefused("bad_request", f"comment {exc}") from None
        now = self.clock()
        try:
            rated = self.proofs.check(body.get("proof"), call_id, now)
        except RatingProofError as exc:
            raise RatingRefused("rating_refused", str(exc), status=403) from None
        try:
            first = await self.ledger.first_use(f"rating:{rated.call_id}", rated.expires, now)
        except LedgerUnavailable as exc:
            logger.warning("rating of call %s not taken: %s", call_id, exc)
            raise RatingRefused(
                "unavailable", "ratings cannot be taken right now", status=503
            ) from None
        if not first:
            raise RatingRefused("already_rated", "this call has been rated already", status=409)
        taken = CallRating(rated.call_id, rated.site, rating, comment, now)
        await self.store.add(taken)
        logger.info("call %s rated %d/5 (site %s)", call_id, rating, rated.site)
        return taken


class SqliteRatingStore:
    """INTERIM (see the module's docstring): ratings in their own SQLite table."""

    _SCHEMA = """
    CREATE TABLE IF NOT EXISTS call_ratings (
        call_id TEXT PRIMARY KEY,
        site TEXT NOT NULL,
        rating INTEGER NOT NULL,
        comment TEXT NOT NULL,
        rated_at REAL NOT NULL
    )
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=5.0)
        connection.execute(self._SCHEMA)
        return connection

    async def add(self, rating: CallRating) -> None:
        def write() -> None:
            with contextlib.closing(self._connect()) as db, db:
                db.execute(
                    "INSERT OR IGNORE INTO call_ratings VALUES (?, ?, ?, ?, ?)",
                    (rating.call_id, rating.site, rating.rating, rating.comment, rating.rated_at),
                )

        await asyncio.to_thread(write)

    async def get(self, call_id: str) -> CallRating | None:
        def read() -> CallRating | None:
            with contextlib.closing(self._connect()) as db:
                row = db.execute(
                    "SELECT call_id, site, rating, comment, rated_at FROM call_ratings "
                    "WHERE call_id = ?",
                    (call_id,),
                ).fetchone()
            return None if row is None else CallRating(*row)

        return await asyncio.to_thread(read)
