"""Chat conversations between a visitor and the site's operators, with their messages:
one row per conversation (who, from which page, who answered), one per message (who wrote
it, when, and for a visitor's message whether a destination took it). Kept
`retention_days` per site, listed for the site owner and forgotten on request
(docs/admin.md)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage.tables import conversation_messages, conversations

SENDERS = ("visitor", "operator")


@dataclass(frozen=True)
class ChatMessage:
    at: float
    sender: str  # visitor | operator
    text: str
    destination: str | None = None  # the operator who wrote it, or where it went
    delivery: str = ""  # a visitor's message: delivered | failed

    def __post_init__(self) -> None:
        if self.sender not in SENDERS:
            raise ValueError(f"not a sender: {self.sender!r}")


@dataclass(frozen=True)
class Conversation:
    id: str
    site: str
    started_at: float
    updated_at: float
    ended_at: float | None = None
    client: str = ""
    page: str = ""
    visitor_name: str = ""
    visitor_source: str = ""
    operator: str | None = None  # the destination that replied
    message_count: int = 0
    messages: tuple[ChatMessage, ...] = field(default=())

    def public(self) -> dict[str, Any]:
        """The admin API's JSON (the visitor's address stays inside)."""
        values = asdict(self)
        values.pop("client")
        values["messages"] = [asdict(message) for message in self.messages]
        return values


class ConversationStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def started(self, conversation: Conversation) -> None:
        values = asdict(conversation)
        values.pop("messages")
        async with self._engine.begin() as db:
            await db.execute(insert(conversations).values(values))

    async def add_message(
        self, conversation_id: str, message: ChatMessage, *, operator: str | None = None
    ) -> None:
        """A message of the conversation; `operator`: who answers it from now on."""
        async with self._engine.begin() as db:
            await db.execute(
                insert(conversation_messages).values(
                    conversation_id=conversation_id, **asdict(message)
                )
            )
            values: dict[str, Any] = {
                "updated_at": message.at,
                "message_count": conversations.c.message_count + 1,
            }
            if operator is not None:
                values["operator"] = operator
            await db.execute(
                update(conversations).where(conversations.c.id == conversation_id).values(values)
            )

    async def ended(self, conversation_id: str, now: float) -> None:
        async with self._engine.begin() as db:
            await db.execute(
                update(conversations)
                .where((conversations.c.id == conversation_id) & conversations.c.ended_at.is_(None))
                .values(ended_at=now)
            )

    async def get(self, conversation_id: str) -> Conversation | None:
        async with self._engine.connect() as db:
            row = (
                await db.execute(select(conversations).where(conversations.c.id == conversation_id))
            ).first()
            if row is None:
                return None
            rows = (
                await db.execute(
                    select(conversation_messages)
                    .where(conversation_messages.c.conversation_id == conversation_id)
                    .order_by(conversation_messages.c.seq)
                )
            ).all()
        found = [ChatMessage(r.at, r.sender, r.text, r.destination, r.delivery) for r in rows]
        return Conversation(**dict(row._mapping), messages=tuple(found))

    async def find(self, *, site: str | None = None, limit: int = 100) -> list[Conversation]:
        """Newest first, without their messages."""
        query = select(conversations).order_by(conversations.c.started_at.desc()).limit(limit)
        if site is not None:
            query = query.where(conversations.c.site == site)
        async with self._engine.connect() as db:
            rows = (await db.execute(query)).all()
        return [Conversation(**dict(row._mapping)) for row in rows]

    async def delete(self, conversation_id: str) -> bool:
        async with self._engine.begin() as db:
            await db.execute(
                delete(conversation_messages).where(
                    conversation_messages.c.conversation_id == conversation_id
                )
            )
            result = await db.execute(
                delete(conversations).where(conversations.c.id == conversation_id)
            )
        return result.rowcount > 0

    async def purge(self, site: str, before: float) -> int:
        """Forget the site's conversations started before `before` (retention)."""
        old = select(conversations.c.id).where(
            (conversations.c.site == site) & (conversations.c.started_at < before)
        )
        async with self._engine.begin() as db:
            await db.execute(
                delete(conversation_messages).where(
                    conversation_messages.c.conversation_id.in_(old)
                )
            )
            result = await db.execute(
                delete(conversations).where(
                    (conversations.c.site == site) & (conversations.c.started_at < before)
                )
            )
        return result.rowcount
