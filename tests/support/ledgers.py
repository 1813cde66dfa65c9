"""Ledgers for the limits' tests, on both stores a gateway uses (gateway.access.ledger):
the machine's SQLite file and a real Redis (tests/support/redis_server.py). `ledger_factory`
makes ledgers of several "workers" on one store, as worker processes or nodes have."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from gateway.access.ledger import Ledger, SqliteLedger
from gateway.access.redis_ledger import RedisLedger
from gateway.storage.redis_server import RedisUrl, connect

from . import redis_server as redis_servers

LedgerFactory = Callable[[str], Awaitable[Ledger]]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[redis_servers.RedisServer]:
    if not redis_servers.available():
        pytest.fail("redis-server is not installed: run scripts/install-system-deps")
    with redis_servers.redis_server() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: redis_servers.RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture(params=["sqlite", "redis"])
async def ledger_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[LedgerFactory]:
    """`await ledger_factory(owner)`: a ledger of worker `owner`, sharing its store with
    every other ledger the test makes."""
    opened: list[Ledger] = []
    clients = []
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None

    async def make(owner: str) -> Ledger:
        ledger: Ledger
        if url is None:
            ledger = SqliteLedger.open(tmp_path / "ledger.sqlite3", owner)
        else:
            client = connect(RedisUrl.parse(url))
            clients.append(client)
            ledger = RedisLedger(client, owner)
        opened.append(ledger)
        return ledger

    yield make
    for ledger in opened:
        await ledger.close()
    for client in clients:
        await client.aclose()


@pytest.fixture
async def ledger(ledger_factory: LedgerFactory) -> Ledger:
    """One worker's ledger, on each store."""
    return await ledger_factory("node/worker-0")
