"""The Redis server of several nodes (`[storage] redis`): what the nodes of one service count
and publish together, fast and with expiry (gateway.access.redis_ledger: limits, the spend
guard and single-use keys; gateway.storage.live: calls in progress; gateway.storage.presence:
heartbeats and the SIP dialogs a dead node leaves).

One Redis server (or a primary behind Sentinel or a managed service), not Redis Cluster:
admission reads and writes several keys in one transaction. Every key starts with
`gateway:` so a Redis shared with other programs stays tidy; two services on one server use
two database numbers (`redis://host:6379/1`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    import redis.asyncio as aioredis

PREFIX = "gateway:"
CONNECT_TIMEOUT = 2.0  # seconds: a Redis that does not answer is down, for a call's set-up
COMMAND_TIMEOUT = 2.0
MAX_CONNECTIONS = 64  # per process
POOL_WAIT = 5.0  # seconds a command waits for a free connection of the pool

__all__ = ["PREFIX", "RedisUrl", "connect", "describe"]


@dataclass(frozen=True, slots=True)
class RedisUrl:
    """A `[storage] redis` value, checked: `redis://[user:password@]host[:port][/db]`, or
    `rediss://` for TLS."""

    text: str

    @classmethod
    def parse(cls, text: str) -> RedisUrl:
        """Raises ValueError with the reason in words (never the password)."""
        try:
            parts = urlsplit(text)
            port = parts.port
        except ValueError:
            raise ValueError("not a Redis URL (redis://host:6379/0)") from None
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError('expected "redis://host:port/db" or "rediss://..." (TLS)')
        if not parts.hostname:
            raise ValueError("a Redis URL must name its host (redis://host:6379/0)")
        if port == 0:
            raise ValueError("the Redis port must be 1-65535")
        database = parts.path.strip("/")
        if database and not (database.isdigit() and int(database) < 10_000):
            raise ValueError(f"the database number must be a whole number, not {database!r}")
        if parts.query or parts.fragment:
            raise ValueError("a Redis URL takes no options here (?...)")
        return cls(text)

    def redacted(self) -> str:
        """The URL without its password, for logs and errors."""
        parts = urlsplit(self.text)
        if parts.password is None:
            return self.text
        user = parts.username or ""
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return parts._replace(netloc=netloc).geturl()


def connect(url: RedisUrl) -> aioredis.Redis:
    """A client (a pool of connections, opened on first use) with short timeouts: a Redis
    that does not answer fails a call's admission in seconds, not minutes. When every
    pooled connection is busy (a burst of calls), a command waits for one rather than
    failing.

    The redis client is imported here, not with this module (which the configuration
    needs for `RedisUrl`): a gateway without Redis does without its ~6 MB per process
    (docs/benchmark.md, Memory)."""
    import redis.asyncio as aioredis

    pool = aioredis.BlockingConnectionPool.from_url(
        url.text,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=COMMAND_TIMEOUT,
        decode_responses=True,
        health_check_interval=30,
    )
    return aioredis.Redis.from_pool(pool)  # closing the client closes its pool


def describe(url: RedisUrl, exc: BaseException) -> str:
    """Words for a failure, without the password."""
    return f"Redis {url.redacted()}: {exc or type(exc).__name__}"
