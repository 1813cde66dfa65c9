"""Messages visitors left for the site in writing, with a way back (a phone number or an
email address): click-to-text when nobody is there (docs/admin.md). Kept
`retention_days` per site."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage.tables import messages

CONTACT_KINDS = ("phone", "email")


@dataclass(frozen=True)
class LeftMessage:
    id: str
    site: str
    received_at: float
    text: str
    contact: str  # how to answer: a phone number or an email address
    contact_kind: str  # phone | email
    name: str = ""
    conversation_id: str | None = None  # the chat it followed, if any
    client: str = ""
    page: str = ""
    visitor_source: str = ""

    def __post_init__(self) -> None:
        if self.contact_kind not in CONTACT_KINDS:
            raise ValueError(f"not a kind of contact: {self.contact_kind!r}")

    def public(self) -> dict[str, Any]:
        """The admin API's JSON (the visitor's address stays inside)."""
        values = asdict(self)
        values.pop("client")
        return values


class MessageStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(self, message: LeftMessage) -> None:
        async with self._engine.begin() as db:
            await db.execute(insert(messages).values(asdict(message)))

    async def get(self, message_id: str) -> LeftMessage | None:
        async with self._engine.connect() as db:
            row = (await db.execute(select(messages).where(messages.c.id == message_id))).first()
        return None if row is None else LeftMessage(**dict(row._mapping))

    async def find(self, *, site: str | None = None, limit: int = 100) -> list[LeftMessage]:
        """Newest first."""
        query = select(messages).order_by(messages.c.received_at.desc()).limit(limit)
        if site is not None:
            query = query.where(messages.c.site == site)
        async with self._engine.connect() as db:
            rows = (await db.execute(query)).all()
        return [LeftMessage(**dict(row._mapping)) for row in rows]

    async def delete(self, message_id: str) -> bool:
        async with self._engine.begin() as db:
            result = await db.execute(delete(messages).where(messages.c.id == message_id))
        return result.rowcount > 0

    async def purge(self, site: str, before: float) -> int:
        """Forget the site's messages received before `before` (retention)."""
        async with self._engine.begin() as db:
            result = await db.execute(
                delete(messages).where(
                    (messages.c.site == site) & (messages.c.received_at < before)
                )
            )
        return result.rowcount
