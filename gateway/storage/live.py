"""Calls in progress, as every worker (and node) publishes them: one entry per call from its
start to its end, so the admin page and `/api/admin/live` see the calls of all workers and
nodes. Two registries, one interface (`LiveRegistry`):

- `LiveCalls`: the `live_calls` table of the database (one machine, or nodes without Redis);
- `RedisLiveCalls`: in Redis (`[storage] redis`), next to the nodes' heartbeats.

Entries name their worker (`<node>/worker-<i>`): a worker that dies leaves its entries, and
whoever ends its calls turns them into records and removes them (`of_worker`,
`forget_worker`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage.redis_server import PREFIX
from gateway.storage.tables import live_calls

if TYPE_CHECKING:  # redis is imported only with `[storage] redis` (gateway.process.shared)
    import redis.asyncio as aioredis


@dataclass(frozen=True)
class LiveCall:
    id: str
    kind: str  # call | callback
    worker: str
    site: str
    state: str  # connecting, ringing, early_media, answered, on_hold; for callbacks: its step
    started_at: float
    updated_at: float
    answered_at: float | None = None
    destination: str | None = None
    client: str = ""
    page: str = ""
    visitor_name: str = ""

    def public(self) -> dict[str, Any]:
        return asdict(self)


_FIELDS = frozenset(f.name for f in fields(LiveCall))


class LiveRegistry(Protocol):
    async def started(self, call: LiveCall) -> None: ...

    async def changed(
        self,
        call_id: str,
        state: str,
        now: float,
        *,
        answered_at: float | None = None,
        destination: str | None = None,
    ) -> None: ...

    async def ended(self, call_id: str) -> None: ...

    async def of_worker(self, worker: str) -> list[LiveCall]:
        """The entries `worker` left, oldest first."""
        ...

    async def forget_worker(self, worker: str) -> int:
        """Remove the entries of `worker`: its calls are over."""
        ...

    async def workers(self) -> set[str]:
        """The workers that have entries."""
        ...

    async def all(self, site: str | None = None) -> list[LiveCall]:
        """Oldest first."""
        ...


class LiveCalls:
    """The registry in the database's `live_calls` table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def started(self, call: LiveCall) -> None:
        async with self._engine.begin() as db:
            await db.execute(insert(live_calls).values(asdict(call)))

    async def changed(
        self,
        call_id: str,
        state: str,
        now: float,
        *,
        answered_at: float | None = None,
        destination: str | None = None,
    ) -> None:
        values: dict[str, Any] = {"state": state, "updated_at": now}
        if answered_at is not None:
            values["answered_at"] = answered_at
        if destination is not None:
            values["destination"] = destination
        async with self._engine.begin() as db:
            await db.execute(update(live_calls).where(live_calls.c.id == call_id).values(values))

    async def ended(self, call_id: str) -> None:
        async with self._engine.begin() as db:
            await db.execute(delete(live_calls).where(live_calls.c.id == call_id))

    async def of_worker(self, worker: str) -> list[LiveCall]:
        query = (
            select(live_calls)
            .where(live_calls.c.worker == worker)
            .order_by(live_calls.c.started_at)
        )
        async with self._engine.connect() as db:
            rows = (await db.execute(query)).all()
        return [LiveCall(**dict(row._mapping)) for row in rows]

    async def forget_worker(self, worker: str) -> int:
        async with self._engine.begin() as db:
            query = delete(live_calls).where(live_calls.c.worker == worker)
            return (await db.execute(query)).rowcount

    async def workers(self) -> set[str]:
        async with self._engine.connect() as db:
            rows = await db.execute(select(live_calls.c.worker).distinct())
            return {row.worker for row in rows}

    async def all(self, site: str | None = None) -> list[LiveCall]:
        query = select(live_calls).order_by(live_calls.c.started_at)
        if site is not None:
            query = query.where(live_calls.c.site == site)
        async with self._engine.connect() as db:
            rows = (await db.execute(query)).all()
        return [LiveCall(**dict(row._mapping)) for row in rows]


# A call's entry outlives no call: the longest call is bounded by its site's maximum
# duration (hours at most); an entry a dead worker left is removed when its calls are ended.
ENTRY_LIFETIME = 2 * 24 * 3600


class RedisLiveCalls:
    """The registry in Redis: `live:<id>` holds a call's entry (JSON), `live` orders the
    calls by their start, `live-worker:<worker>` lists a worker's."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._redis = client

    @staticmethod
    def _key(call_id: str) -> str:
        return f"{PREFIX}live:{call_id}"

    async def started(self, call: LiveCall) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key(call.id), json.dumps(asdict(call)), ex=ENTRY_LIFETIME)
            pipe.zadd(f"{PREFIX}live", {call.id: call.started_at})
            pipe.sadd(f"{PREFIX}live-worker:{call.worker}", call.id)
            pipe.sadd(f"{PREFIX}live-workers", call.worker)
            await pipe.execute()

    async def changed(
        self,
        call_id: str,
        state: str,
        now: float,
        *,
        answered_at: float | None = None,
        destination: str | None = None,
    ) -> None:
        # One writer per call (its worker's history, in order): read, change, write back.
        text = await self._redis.get(self._key(call_id))
        if text is None:
            return
        entry = json.loads(text)
        entry.update(state=state, updated_at=now)
        if answered_at is not None:
            entry["answered_at"] = answered_at
        if destination is not None:
            entry["destination"] = destination
        await self._redis.set(self._key(call_id), json.dumps(entry), ex=ENTRY_LIFETIME, xx=True)

    async def ended(self, call_id: str) -> None:
        text = await self._redis.get(self._key(call_id))
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._key(call_id))
            pipe.zrem(f"{PREFIX}live", call_id)
            if text is not None:
                pipe.srem(f"{PREFIX}live-worker:{json.loads(text)['worker']}", call_id)
            await pipe.execute()

    async def of_worker(self, worker: str) -> list[LiveCall]:
        ids = await self._redis.smembers(f"{PREFIX}live-worker:{worker}")
        return await self._entries(sorted(str(i) for i in ids))

    async def forget_worker(self, worker: str) -> int:
        ids = [str(i) for i in await self._redis.smembers(f"{PREFIX}live-worker:{worker}")]
        async with self._redis.pipeline(transaction=True) as pipe:
            for call_id in ids:
                pipe.delete(self._key(call_id))
            if ids:
                pipe.zrem(f"{PREFIX}live", *ids)
            pipe.delete(f"{PREFIX}live-worker:{worker}")
            pipe.srem(f"{PREFIX}live-workers", worker)
            await pipe.execute()
        return len(ids)

    async def workers(self) -> set[str]:
        return {str(w) for w in await self._redis.smembers(f"{PREFIX}live-workers")}

    async def all(self, site: str | None = None) -> list[LiveCall]:
        ids = [str(i) for i in await self._redis.zrange(f"{PREFIX}live", 0, -1)]
        calls = await self._entries(ids)
        return [c for c in calls if site is None or c.site == site]

    async def _entries(self, ids: list[str]) -> list[LiveCall]:
        if not ids:
            return []
        texts = await self._redis.mget([self._key(i) for i in ids])
        calls = []
        for text in texts:
            if text is None:
                continue  # ended meanwhile
            entry = json.loads(text)
            calls.append(LiveCall(**{k: v for k, v in entry.items() if k in _FIELDS}))
        calls.sort(key=lambda call: call.started_at)
        return calls
