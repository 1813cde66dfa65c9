"""Voicemails: the voice messages visitors left when nobody could answer, one row each with
the name of its audio file (Ogg/Opus in the state directory's `voicemail/`), kept
`retention_days` per site and listed for the site owner (docs/admin.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage.tables import voicemails


@dataclass(frozen=True)
class Voicemail:
    id: str
    site: str
    started_at: float  # when the recording began
    received_at: float  # when it was saved
    seconds: float  # its length
    size: int  # bytes of the file
    file: str  # the file's name in the voicemail folder
    call_id: str | None = None  # the call nobody answered, when one came first
    client: str = ""
    page: str = ""
    visitor_name: str = ""
    visitor_source: str = ""

    def public(self) -> dict[str, Any]:
        """The admin API's JSON (the file's name stays inside)."""
        values = asdict(self)
        values.pop("file")
        return values


class VoicemailStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, voicemail: Voicemail) -> None:
        async with self._engine.begin() as db:
            await db.execute(insert(voicemails).values(asdict(voicemail)))

    async def get(self, voicemail_id: str) -> Voicemail | None:
        async with self._engine.connect() as db:
            row = (
                await db.execute(select(voicemails).where(voicemails.c.id == voicemail_id))
            ).first()
        return None if row is None else Voicemail(**dict(row._mapping))

    async def find(self, *, site: str | None = None, limit: int = 100) -> list[Voicemail]:
        """Newest first."""
        query = select(voicemails).order_by(voicemails.c.received_at.desc()).limit(limit)
        if site is not None:
            query = query.where(voicemails.c.site == site)
        async with self._engine.connect() as db:
            rows = (await db.execute(query)).all()
        return [Voicemail(**dict(row._mapping)) for row in rows]

    async def delete(self, voicemail_id: str) -> Voicemail | None:
        """Forget one voicemail's row; the row it was (its file is the caller's to remove)."""
        async with self._engine.begin() as db:
            row = (
                await db.execute(select(voicemails).where(voicemails.c.id == voicemail_id))
            ).first()
            if row is None:
                return None
            await db.execute(delete(voicemails).where(voicemails.c.id == voicemail_id))
        return Voicemail(**dict(row._mapping))

    async def purge(self, site: str, before: float) -> list[str]:
        """Forget the site's voicemails received before `before` (retention); the names of
        their files, for the caller to remove."""
        condition = (voicemails.c.site == site) & (voicemails.c.received_at < before)
        async with self._engine.begin() as db:
            files = [
                row.file for row in (await db.execute(select(voicemails.c.file).where(condition)))
            ]
            await db.execute(delete(voicemails).where(condition))
        return files
