"""The `database_url` fixture: each storage test runs once on SQLite (a file in the test's
temporary directory) and once on a real PostgreSQL 15 (tests/support/postgres.py)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.storage import Callback, CallbackStore, Database

from . import postgres

_names = itertools.count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[postgres.PostgresServer]:
    if not postgres.available():
        pytest.fail("PostgreSQL 15 is not installed: run scripts/install-system-deps")
    with postgres.postgres_server() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty database (`[storage] database`) on each engine."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.db'}"
    server = request.getfixturevalue("postgres_server")
    return server.create_database(f"test_{next(_names)}")


class CallbackStoreHandle:
    """The callback store of a database of its own (an SQLite file), closed with it."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.database.callbacks, name)

    async def close(self) -> None:
        await self.database.close()


async def open_callback_store(path: Path) -> CallbackStoreHandle:
    return CallbackStoreHandle(await Database.open(f"sqlite:///{path}"))


async def claim_due(
    store: CallbackStore | CallbackStoreHandle, now: float, owner: str, limit: int = 10
) -> list[Callback]:
    """Claim what is due at `now` as a scheduler with no limits would (`due`, then `claim`
    each): the callbacks this claimer got."""
    claimed = []
    for callback in await store.due(now, limit):
        mine = await store.claim(callback.id, owner, now)
        if mine is not None:
            claimed.append(mine)
    return claimed
