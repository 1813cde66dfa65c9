"""Call records: one per browser call and per callback placed, kept `retention_days` per
site, listed for the site owner (docs/admin.md), and forgotten on a visitor's request.

A record is read with the visitor's rating of its call, if any (gateway.storage.ratings:
kept in a table of its own, as it may come before the record), and forgotten with it."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Select, delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage.tables import call_ratings, call_records

# How a call ended, for the site owner: the visitor talked to someone; nobody answered
# (busy, no answer, declined); the visitor gave up while it rang; a limit or the site's
# hours refused it; or something failed (unreachable, no media, a bug).
OUTCOMES = ("answered", "missed", "abandoned", "refused", "failed")
KINDS = ("call", "callback")


@dataclass(frozen=True)
class CallRecord:
    """One call or callback, as docs/admin.md describes each field."""

    id: str
    kind: str  # call | callback
    site: str
    started_at: float
    outcome: str
    answered_at: float | None = None
    ended_at: float | None = None
    ring_seconds: float | None = None
    talk_seconds: float | None = None
    end_cause: str = ""
    end_detail: str = ""
    destination: str | None = None
    client: str = ""
    number: str | None = None
    page: str = ""
    visitor_name: str = ""
    visitor_reason: str = ""
    visitor_source: str = ""  # a call link's ?source= tag
    source: str = ""
    worker: str = ""
    codecs: dict[str, str] = field(default_factory=dict)
    quality: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The visitor's rating of the call (1-5) and comment, when they gave one (read only:
    # kept by gateway.storage.ratings).
    rating: int | None = None
    rating_comment: str = ""
    rated_at: float | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"not an outcome: {self.outcome!r}")
        if self.kind not in KINDS:
            raise ValueError(f"not a kind of record: {self.kind!r}")

    def public(self) -> dict[str, Any]:
        """The JSON of the admin API."""
        return asdict(self)


class RecordStore:
    """The call records of the gateway's database (gateway.storage.Database.records)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, record: CallRecord) -> None:
        values = asdict(record)
        for name in _RATING_FIELDS:
            del values[name]
        values["codecs"] = json.dumps(record.codecs)
        values["quality"] = json.dumps(record.quality)
        async with self._engine.begin() as db:
            # A callback placed again by the site owner ends with a new record of itself.
            await db.execute(delete(call_records).where(call_records.c.id == record.id))
            await db.execute(insert(call_records).values(values))

    async def get(self, record_id: str) -> CallRecord | None:
        async with self._engine.connect() as db:
            row = (await db.execute(_with_rating().where(call_records.c.id == record_id))).first()
        return None if row is None else _record(row)

    async def find(
        self,
        *,
        site: str | None = None,
        outcome: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        kind: str | None = None,
    ) -> list[CallRecord]:
        """Newest first; `since` inclusive, `until` exclusive, on the start time."""
        query = _with_rating().order_by(call_records.c.started_at.desc()).limit(limit)
        if site is not None:
            query = query.where(call_records.c.site == site)
        if outcome is not None:
            query = query.where(call_records.c.outcome == outcome)
        if kind is not None:
            query = query.where(call_records.c.kind == kind)
        if since is not None:
            query = query.where(call_records.c.started_at >= since)
        if until is not None:
            query = query.where(call_records.c.started_at < until)
        async with self._engine.connect() as db:
            rows = (await db.execute(query)).all()
        return [_record(row) for row in rows]

    async def delete(self, record_id: str) -> CallRecord | None:
        """Forget one record; the record it was, or None when there was none."""
        async with self._engine.begin() as db:
            row = (await db.execute(_with_rating().where(call_records.c.id == record_id))).first()
            await db.execute(delete(call_ratings).where(call_ratings.c.call_id == record_id))
            if row is None:
                return None
            await db.execute(delete(call_records).where(call_records.c.id == record_id))
        return _record(row)

    async def purge(self, site: str, before: float) -> int:
        """Forget the site's records of calls started before `before` (retention), with
        their ratings (and ratings taken before `before` whose record never came)."""
        purged = (call_records.c.site == site) & (call_records.c.started_at < before)
        async with self._engine.begin() as db:
            await db.execute(
                delete(call_ratings).where(
                    (call_ratings.c.site == site)
                    & or_(
                        call_ratings.c.rated_at < before,
                        call_ratings.c.call_id.in_(select(call_records.c.id).where(purged)),
                    )
                )
            )
            result = await db.execute(delete(call_records).where(purged))
        return result.rowcount


_RATING_FIELDS = ("rating", "rating_comment", "rated_at")


def _with_rating() -> Select[Any]:
    """Records, each with its call's rating (NULL when none): still one row per record."""
    return select(
        call_records,
        call_ratings.c.rating,
        call_ratings.c.comment.label("rating_comment"),
        call_ratings.c.rated_at,
    ).select_from(call_records.outerjoin(call_ratings, call_ratings.c.call_id == call_records.c.id))


def _record(row: Any) -> CallRecord:
    values = dict(row._mapping)
    values["rating_comment"] = values["rating_comment"] or ""
    values["codecs"] = json.loads(values["codecs"] or "{}")
    values["quality"] = json.loads(values["quality"] or "{}")
    return CallRecord(**values)
