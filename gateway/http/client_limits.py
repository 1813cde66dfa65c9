"""What one client address may take of the HTTP face (issue 11: 1,000 sockets from one
address in 1.4 s, call tokens without a throttle, slowloris connections held for ever).

Two sans-I/O counters (no clock of their own, no sockets), and the middleware that
applies the socket cap:

- `OpenPerClient`: things a client holds open at once (TCP connections in
  gateway.http.listener, socket.io connections in `socket_cap`), at most `limit` each;
- `RatePerClient`: a token bucket per client (`POST /api/token`), `limit` at once, then
  `limit` a minute.

A client is its address as the limits count visitors (`client_key`: an IPv6 /64 counts as
one). Counts are per worker process: the kernel spreads a client's connections over the
workers, so a machine holds up to workers x `limit`.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from gateway.access.admission import client_key
from gateway.api import Refusal

logger = logging.getLogger(__name__)

MAX_TRACKED_CLIENTS = 100_000  # buckets kept; the least recently used go first
SOCKET_IO_PREFIX = "/socket.io/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ClientLimitRefused(Refusal):
    """A client past one of these limits (HTTP 429, with Retry-After)."""

    status = 429

    def __init__(self, code: str, message: str, *, retry_after: float) -> None:
        super().__init__(code, message, retry_after=retry_after)


class OpenPerClient:
    """How many things each client holds open, at most `limit`."""

    def __init__(self, limit: int, what: str, key: str) -> None:
        self.limit = limit
        self.what = what  # for the log: "connections"
        self.key = key  # the setting, for the log: "http.connections_per_client"
        self._open: dict[str, int] = {}
        self._refusing: set[str] = set()  # clients refused since they were last below

    def open(self, address: str) -> bool:
        """Count one more for `address`; False (and nothing counted) past the limit."""
        client = client_key(address)
        count = self._open.get(client, 0)
        if count >= self.limit:
            if client not in self._refusing:
                self._refusing.add(client)
                logger.warning(
                    "client %s holds %d %s: more are refused (%s)",
                    client,
                    count,
                    self.what,
                    self.key,
                )
            return False
        self._open[client] = count + 1
        return True

    def close(self, address: str) -> None:
        client = client_key(address)
        count = self._open.get(client, 0) - 1
        if count > 0:
            self._open[client] = count
        else:
            self._open.pop(client, None)
        if count < self.limit:
            self._refusing.discard(client)

    def held(self, address: str) -> int:
        return self._open.get(client_key(address), 0)


class RatePerClient:
    """A token bucket per client: `limit` at once, refilled at `limit` per `period`."""

    def __init__(self, limit: int, period: float = 60.0) -> None:
        self.limit = limit
        self.rate = limit / period  # per second
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # level, time

    def take(self, address: str, now: float) -> float:
        """0 when `address` may go on (and it is counted); else the seconds to wait."""
        client = client_key(address)
        level, then = self._buckets.pop(client, (float(self.limit), now))
        level = min(float(self.limit), level + (now - then) * self.rate)
        if level >= 1:
            level -= 1
            wait = 0.0
        else:
            wait = (1 - level) / self.rate
        self._buckets[client] = (level, now)
        while len(self._buckets) > MAX_TRACKED_CLIENTS:
            self._buckets.popitem(last=False)  # a full bucket is what a new one would be
        return wait


def socket_cap(sockets: OpenPerClient) -> Middleware:
    """Middleware: socket.io requests (websocket only: one request per connection, for
    its whole life) counted per visitor address (`request.remote`, behind trusted
    proxies the visitor's); one past the limit is refused before the upgrade."""

    @web.middleware
    async def cap_sockets(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.path.startswith(SOCKET_IO_PREFIX):
            return await handler(request)
        address = request.remote or "unknown"
        if not sockets.open(address):
            raise ClientLimitRefused(
                "too_many_sockets",
                f"at most {sockets.limit} connections from one address; close one first",
                retry_after=5,
            )
        try:
            return await handler(request)
        finally:
            sockets.close(address)

    return cap_sockets
