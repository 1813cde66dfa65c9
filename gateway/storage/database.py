"""`Database`: the engine and one store per concept, opened and migrated in one call."""

from __future__ import annotations

import logging

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage import migrate
from gateway.storage.admin import AdminStore
from gateway.storage.callbacks import CallbackStore
from gateway.storage.conversations import ConversationStore
from gateway.storage.engine import DatabaseUrl, StorageError, create_engine
from gateway.storage.live import LiveCalls
from gateway.storage.messages import MessageStore
from gateway.storage.outbox import Outbox
from gateway.storage.ratings import RatingStore
from gateway.storage.reachability import PERIOD, Reachability
from gateway.storage.records import RecordStore
from gateway.storage.registrations import RegistrationStore
from gateway.storage.voicemails import VoicemailStore

logger = logging.getLogger(__name__)


class Database:
    def __init__(self, url: DatabaseUrl, engine: AsyncEngine) -> None:
        self.url = url
        self.engine = engine
        self.callbacks = CallbackStore(engine)
        self.records = RecordStore(engine)
        self.ratings = RatingStore(engine)
        self.live = LiveCalls(engine)
        self.registrations = RegistrationStore(engine)
        self.outbox = Outbox(engine)
        self.admin = AdminStore(engine)
        self.voicemails = VoicemailStore(engine)
        self.messages = MessageStore(engine)
        self.conversations = ConversationStore(engine)
        # Whether it answers now (started by the gateway: `reachability.start()`); watched
        # only for a database server (gateway.storage.reachability).
        self.reachability = Reachability(
            engine, url.redacted(), period=None if url.kind == "sqlite" else PERIOD
        )
        self.schema: tuple[str | None, str] = (None, "")  # versions before and after opening

    @classmethod
    async def open(cls, url: DatabaseUrl | str, *, upgrade: bool = True) -> Database:
        """Connect and (with `upgrade`) migrate to the newest schema (`schema` says from
        which version to which); without it, refuse a database whose schema is not the
        newest. Raises StorageError."""
        if isinstance(url, str):
            try:
                url = DatabaseUrl.parse(url)
            except ValueError as exc:
                raise StorageError(str(exc)) from None
        engine = create_engine(url)
        schema: tuple[str | None, str] = (None, "")
        try:
            if upgrade:
                schema = before, after = await migrate.upgrade(engine)
                if before != after:
                    logger.info(
                        "database %s: schema %s -> %s", url.redacted(), before or "empty", after
                    )
            else:
                version = await migrate.current_version(engine)
                if version != migrate.head():
                    raise StorageError(
                        f"database {url.redacted()} has schema {version}, this gateway needs "
                        f"{migrate.head()}: run `python -m gateway migrate`"
                    )
                schema = (version, version)
        except (SQLAlchemyError, OSError) as exc:
            await engine.dispose()
            raise StorageError(f"database {url.redacted()}: {exc}") from exc
        except BaseException:
            await engine.dispose()
            raise
        database = cls(url, engine)
        database.schema = schema
        return database

    async def close(self) -> None:
        await self.reachability.stop()
        await self.engine.dispose()
