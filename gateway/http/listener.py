"""The HTTP server's listening socket, with a cap on the connections one address holds.

aiohttp's own sites accept every connection. Here each accepted connection is counted for
its peer address (`http.connections_per_client`, gateway.http.client_limits) before aiohttp
sees it; one past the cap is closed at once, so a client cannot pile up thousands of idle
or slowloris connections. Reverse proxies in `http.trusted_proxies` are not counted: they
carry many visitors, whom the socket cap and the other limits count by X-Forwarded-For.
How long a connection may take to send a request is aiohttp's keep-alive timeout, set by
the composition root from `http.request_timeout`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from typing import cast

from gateway.http.client_limits import OpenPerClient
from gateway.http.forwarded import Network, is_trusted


class _Counted(asyncio.Protocol):
    """One accepted connection: counted for its peer, then handed to aiohttp's protocol."""

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionCap) -> None:
        self._inner = inner
        self._guard = guard
        self._peer: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else "unknown"
        if not self._guard.admit(address):
            cast(asyncio.Transport, transport).abort()  # a stream's; aiohttp never sees it
            return
        self._peer = address
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._peer is None:
            return
        self._guard.release(self._peer)
        self._peer = None
        self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class ConnectionCap:
    """Connections per peer address, trusted proxies apart."""

    def __init__(self, per_client: int, trusted_proxies: Sequence[Network] = ()) -> None:
        self.open = OpenPerClient(per_client, "HTTP connections", "http.connections_per_client")
        self._trusted = tuple(trusted_proxies)

    def _counted(self, address: str) -> bool:
        return not is_trusted(address, self._trusted)

    def admit(self, address: str) -> bool:
        return not self._counted(address) or self.open.open(address)

    def release(self, address: str) -> None:
        if self._counted(address):
            self.open.close(address)


async def listen(
    protocol_factory: Callable[[], asyncio.Protocol],
    host: str,
    port: int,
    cap: ConnectionCap,
    *,
    reuse_port: bool = False,
) -> asyncio.Server:
    """Serve `protocol_factory` (aiohttp's `runner.server`) on host:port; `reuse_port`
    (SO_REUSEPORT) when the workers of a supervisor share the port."""
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: _Counted(protocol_factory(), cap),
        host,
        port,
        reuse_address=True,
        reuse_port=reuse_port,
        family=socket.AF_UNSPEC,
    )
