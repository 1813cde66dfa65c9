"""Visitors' ratings of their calls (gateway.calls.ratings takes them): one per call, in
`call_ratings`, keyed by the call's id, which is its record's id.

A rating is written as soon as it is taken, whether or not the call's record is there yet
(the call history writes records from a queue, so the rating usually comes first): the
record and its rating meet when read (`RecordStore` joins them), and are forgotten together.
The primary key keeps each call rated once, whichever worker or node took the rating.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage.tables import call_ratings


@dataclass(frozen=True, slots=True)
class CallRating:
    call_id: str
    site: str
    rating: int  # 1-5
    comment: str  # cleaned and bounded by the taker; "" for none
    rated_at: float


class RatingStore:
    """The ratings of the gateway's database (gateway.storage.Database.ratings)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, rating: CallRating) -> bool:
        """Keep `rating`; False (and nothing changed) when its call was rated already."""
        try:
            async with self._engine.begin() as db:
                await db.execute(
                    insert(call_ratings).values(
                        call_id=rating.call_id,
                        site=rating.site,
                        rating=rating.rating,
                        comment=rating.comment,
                        rated_at=rating.rated_at,
                    )
                )
        except IntegrityError:
            async with self._engine.connect() as db:
                taken = (
                    await db.execute(
                        select(call_ratings.c.call_id).where(
                            call_ratings.c.call_id == rating.call_id
                        )
                    )
                ).first()
            if taken is None:
                raise  # not a second rating: a value the table refuses
            return False
        return True

    async def get(self, call_id: str) -> CallRating | None:
        async with self._engine.connect() as db:
            row = (
                await db.execute(select(call_ratings).where(call_ratings.c.call_id == call_id))
            ).first()
        return None if row is None else CallRating(**row._mapping)
