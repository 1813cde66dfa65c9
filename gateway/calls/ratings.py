"""Visitors' ratings of their calls: after an answered call, the widget may send 1 to 5 and
a comment (`POST /api/calls/<call id>/rating`, gateway.http.ratings) with the proof the
page got when the call ended (gateway.access.ratings). Each call is rated once, within
`RATING_WINDOW` of its end; the comment is cleaned and bounded like anything a visitor
types (gateway.text).

The rating is kept with the call's record in the gateway's database
(gateway.storage.ratings; the call's id is the record's id), at once: the record, written
from the call history's queue, may come later, and the two meet when read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Protocol

from gateway.access.ledger import Ledger, LedgerUnavailable
from gateway.access.ratings import RatingProofError, RatingProofs
from gateway.api import Clock, Refusal
from gateway.storage import CallRating
from gateway.text import clean_visitor_text

logger = logging.getLogger(__name__)

MAX_COMMENT_CHARS = 500
RATING_FIELDS = frozenset({"proof", "rating", "comment"})


class RatingRefused(Refusal):
    """A rating not taken: `rating_refused` (no valid proof: 403), `already_rated` (409),
    or `bad_request` (400)."""


class RatingStore(Protocol):
    """Where ratings are kept (gateway.storage.RatingStore)."""

    async def add(self, rating: CallRating) -> bool: ...

    async def get(self, call_id: str) -> CallRating | None: ...


class CallRatings:
    """Takes ratings: checks the proof, that the call was not rated yet, and the values."""

    def __init__(
        self,
        proofs: RatingProofs,
        store: RatingStore | None,
        ledger: Ledger,
        *,
        clock: Clock = time.time,
    ) -> None:
        self.proofs = proofs
        self.store = store
        self.ledger = ledger
        self.clock = clock

    def proof(self, call_id: str, site_id: str) -> str:
        """What the page is given when the answered call `call_id` ends ("" when this
        gateway keeps no ratings: no database; the widget then asks for none)."""
        if self.store is None:
            return ""
        return self.proofs.issue(call_id, site_id, self.clock())

    async def rate(self, call_id: str, body: object) -> CallRating:
        """Store the rating in `body` (`{"proof", "rating", "comment"?}`) of `call_id`."""
        if self.store is None:
            raise RatingRefused("rating_refused", "this gateway keeps no ratings", status=403)
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
        if not await self.store.add(taken):  # taken by another node
            raise RatingRefused("already_rated", "this call has been rated already", status=409)
        logger.info("call %s rated %d/5 (site %s)", call_id, rating, rated.site)
        return taken
