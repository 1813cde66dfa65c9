"""What a gateway's workers and nodes share besides the database, chosen in one place from
`[storage]` (`SharedState.open`):

- `[storage] redis` empty: the limits' facts in the machine's ledger file (with workers) or
  in memory (one process); calls in progress in the database's `live_calls` table; no
  heartbeats (one machine: its supervisor sees a worker die).
- `[storage] redis = "redis://..."`: the limits' facts, single-use keys, calls in progress
  and the workers' heartbeats with the SIP dialogs they would leave, all in that Redis, for
  every node (gateway.access.redis_ledger, gateway.storage.live, gateway.storage.presence).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.access.ledger import Ledger, SqliteLedger
from gateway.config import GatewayConfig
from gateway.storage import Database, LiveRegistry, RedisLiveCalls, StorageError
from gateway.storage.presence import Presence
from gateway.storage.redis_server import connect, describe

if TYPE_CHECKING:
    import redis.asyncio as aioredis

logger = logging.getLogger(__name__)


@dataclass
class SharedState:
    """`owner`: this worker's name (`<node>/worker-<i>`, `<node>/gateway`)."""

    node: str
    owner: str
    ledger: Ledger
    redis: aioredis.Redis | None = None
    presence: Presence | None = None

    @classmethod
    async def open(
        cls, config: GatewayConfig, *, node: str, owner: str, ledger_file: Path | None
    ) -> SharedState:
        """`ledger_file`: the machine's ledger (workers of a supervisor), None: in memory.
        Raises StorageError when Redis is configured and does not answer."""
        url = config.storage.redis
        if url is None:
            ledger: Ledger = (
                SqliteLedger.open(ledger_file, owner)
                if ledger_file is not None
                else SqliteLedger.in_memory(owner)
            )
            return cls(node, owner, ledger)
        # Only now: without Redis, the process does without the client (~6 MB).
        from redis.exceptions import RedisError

        from gateway.access.redis_ledger import RedisLedger

        client = connect(url)
        try:
            await client.ping()
        except (RedisError, OSError) as exc:
            with contextlib.suppress(Exception):
                await client.aclose()
            raise StorageError(describe(url, exc)) from None
        return cls(
            node,
            owner,
            RedisLedger(client, owner, describe=url.redacted()),
            client,
            Presence(client),
        )

    def live_registry(self, database: Database) -> LiveRegistry:
        """Where calls in progress are published and listed."""
        return RedisLiveCalls(self.redis) if self.redis is not None else database.live

    async def close(self) -> None:
        await self.ledger.close()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()
