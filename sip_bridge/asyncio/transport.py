"""asyncio transports for SIP: UDP, TCP and TLS, all behind one `send(data, address)`.

Stream transports keep one connection per peer address, reuse a connection the peer opened
for our responses (RFC 3261 §18.2.2), and cut the byte stream into messages with
`StreamFramer`. Host names are resolved here (A/AAAA through the loop's resolver), so the
sans-I/O core can work with the names it finds in URIs; every resolution is reported to
`on_resolved(name, ip)`, so the core can recognise that peer's answers by their source.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import ssl
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from sip_bridge.errors import SipParseError
from sip_bridge.message import StreamFramer

logger = logging.getLogger(__name__)

REFUSAL_LOG_INTERVAL = 10.0  # seconds between log lines about refused connections

Address = tuple[str, int]
Receiver = Callable[[bytes, Address], None]
ResolvedCallback = Callable[[str, str], None]


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_sendable(address: Address) -> bool:
    """A port the socket layer accepts: asyncio closes a datagram transport on a sendto
    that raises anything but OSError (an out-of-range port raises OverflowError)."""
    port = address[1]
    return isinstance(port, int) and 0 < port < 65536


class _Resolver:
    """Caches name → address lookups for the transport's lifetime (calls are short)."""

    def __init__(self, on_resolved: ResolvedCallback | None = None) -> None:
        self._cache: dict[str, str] = {}
        self._on_resolved = on_resolved

    async def resolve(self, host: str) -> str:
        if is_ip_literal(host):
            return host
        address = self._cache.get(host)
        if address is None:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None)
            if not infos:
                raise OSError(f"cannot resolve {host}")
            address = str(infos[0][4][0])  # an IP family's: (host, port, ...)
            self._cache[host] = address
        # Told on every use, not only the first: the core's table of names is bounded.
        if self._on_resolved is not None:
            self._on_resolved(host, address)
        return address


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """Bounds on the connections peers open to a TCP/TLS listener, so that no source can
    hold its file descriptors or park idle sockets: open connections per source address and
    in all, and how long a new connection may take to deliver its first whole message
    (a TLS handshake included). Connections we open are not counted."""

    per_source: int = 16
    total: int = 1000
    first_message_within: float = 10.0


class SipTransport:
    """What the endpoint needs from any transport."""

    local_address: Address

    def send(self, data: bytes, address: Address) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class UdpTransport(SipTransport, asyncio.DatagramProtocol):
    def __init__(
        self,
        receiver: Receiver,
        on_error: Callable[[Address], None],
        on_resolved: ResolvedCallback | None = None,
    ) -> None:
        self._receiver = receiver
        self._on_error = on_error
        self._transport: asyncio.DatagramTransport | None = None
        self._resolver = _Resolver(on_resolved)
        self._pending: set[asyncio.Task] = set()

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        receiver: Receiver,
        on_error: Callable[[Address], None],
        on_resolved: ResolvedCallback | None = None,
    ) -> UdpTransport:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_datagram_endpoint(
            lambda: cls(receiver, on_error, on_resolved), local_addr=(host, port)
        )
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)  # a datagram endpoint's
        self.local_address = transport.get_extra_info("sockname")[:2]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self._receiver(data, (addr[0], addr[1]))

    def error_received(self, exc: Exception) -> None:
        logger.debug("UDP error: %s", exc)

    def send(self, data: bytes, address: Address) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        if not is_sendable(address):
            logger.info("not sending to %s: bad port", address)
            return
        if is_ip_literal(address[0]):
            self._transport.sendto(data, address)
            return
        task = asyncio.get_running_loop().create_task(self._send_resolved(data, address))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send_resolved(self, data: bytes, address: Address) -> None:
        try:
            host = await self._resolver.resolve(address[0])
        except OSError:
            self._on_error(address)
            return
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(data, (host, address[1]))

    def close(self) -> None:
        for task in self._pending:
            task.cancel()
        if self._transport is not None:
            self._transport.close()


class _StreamConnection(asyncio.Protocol):
    def __init__(self, owner: StreamTransport, *, inbound: bool) -> None:
        self._owner = owner
        self._framer = StreamFramer()
        self.inbound = inbound  # opened by the peer (counted against ConnectionLimits)
        self.transport: asyncio.Transport | None = None
        self.peer: Address | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._handshake: asyncio.Future | None = None  # TLS, on an inbound connection
        # What came in before `start_tls` returned the TLS transport (answers need it).
        self._early: list[bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream's transport (uvloop's is one without subclassing asyncio.Transport).
        self.transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self.peer = (peer[0], peer[1])
        if self.inbound and not self._owner._admit(self):
            self.peer = None  # never registered: nothing to undo when it is lost
            transport.close()
            return
        self._owner._register(self.peer, self)
        if self.inbound:
            self._deadline = asyncio.get_running_loop().call_later(
                self._owner.limits.first_message_within, self._no_first_message
            )
            if self._owner._server_ssl is not None:
                # TLS only now, once the connection is counted: a peer over the limits
                # (or not allowed) costs no handshake, and the deadline includes it.
                self.transport.pause_reading()  # nothing raw reaches data_received
                self._early = []
                self._handshake = asyncio.ensure_future(
                    self._start_tls(self.transport, self._owner._server_ssl)
                )

    async def _start_tls(self, raw: asyncio.Transport, context: ssl.SSLContext) -> None:
        loop = asyncio.get_running_loop()
        try:
            tls = await loop.start_tls(
                raw,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=self._owner.limits.first_message_within,
            )
        except Exception as exc:  # whatever the peer did, this connection is over
            logger.info("closing SIP connection from %s: TLS handshake: %s", self.peer, exc)
            tls = None
        if tls is None or tls.is_closing():  # None: closed during the handshake
            raw.close()
            self.connection_lost(None)  # asyncio does not say so when a handshake fails
            return
        self.transport = tls
        early, self._early = self._early or [], None
        for data in early:
            self.data_received(data)

    def _no_first_message(self) -> None:
        logger.info("closing SIP connection from %s: no message in time", self.peer)
        assert self.transport is not None  # scheduled once the connection is made
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._early is not None:  # decrypted, but the TLS transport is not ours yet
            self._early.append(data)
            return
        try:
            messages = self._framer.feed(data)
        except SipParseError as exc:
            # The stream's framing is lost: nothing after this point can be trusted.
            logger.info("closing SIP connection from %s: %s", self.peer, exc.reason)
            assert self.transport is not None  # data comes once the connection is made
            self.transport.close()
            return
        if messages and self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self.peer is None:  # refused or lost: nothing it still sends is read
            return
        for message in messages:
            self._owner._receiver(message, self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self.peer is not None:  # once: a failed TLS handshake may report it twice
            self._owner._unregister(self.peer, self)
            self.peer = None


class StreamTransport(SipTransport):
    """TCP, or TLS when given an SSL context for clients (and optionally a server one)."""

    def __init__(
        self,
        receiver: Receiver,
        on_error: Callable[[Address], None],
        *,
        client_ssl: ssl.SSLContext | None = None,
        on_resolved: ResolvedCallback | None = None,
        limits: ConnectionLimits | None = None,
    ) -> None:
        self._receiver = receiver
        self._on_error = on_error
        self._client_ssl = client_ssl
        self.limits = limits if limits is not None else ConnectionLimits()
        self._inbound_per_source: Counter[str] = Counter()
        self._inbound = 0
        self._refused = 0  # connections refused since the last log line about it
        self._refusal_logged_at = -math.inf
        self._connections: dict[Address, _StreamConnection] = {}
        self._connecting: dict[Address, asyncio.Task] = {}
        self._queued: dict[Address, list[bytes]] = {}
        self._server: asyncio.Server | None = None
        self._resolver = _Resolver(on_resolved)

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        receiver: Receiver,
        on_error: Callable[[Address], None],
        *,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        on_resolved: ResolvedCallback | None = None,
        limits: ConnectionLimits | None = None,
        accepts: Callable[[str], bool] | None = None,
    ) -> StreamTransport:
        """Listen on host:port. `accepts(ip)` may refuse a connecting peer before anything
        is read (the UA's allowed peers)."""
        self = cls(
            receiver, on_error, client_ssl=client_ssl, on_resolved=on_resolved, limits=limits
        )
        self._accepts = accepts
        self._server_ssl = server_ssl  # started per connection once it is admitted
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _StreamConnection(self, inbound=True), host, port, reuse_address=True
        )
        self.local_address = self._server.sockets[0].getsockname()[:2]
        return self

    _accepts: Callable[[str], bool] | None = None
    _server_ssl: ssl.SSLContext | None = None

    def _admit(self, connection: _StreamConnection) -> bool:
        """Whether an inbound connection may stay open; counts it when it may."""
        assert connection.peer is not None  # known once the connection is made
        source = connection.peer[0]
        if self._accepts is not None and not self._accepts(source):
            why = "not an allowed peer"
        elif self._inbound >= self.limits.total:
            why = f"{self._inbound} connections open (at most {self.limits.total})"
        elif self._inbound_per_source[source] >= self.limits.per_source:
            why = f"{self.limits.per_source} connections open from this source"
        else:
            self._inbound += 1
            self._inbound_per_source[source] += 1
            return True
        # At most one line every few seconds, not one per connection of a flood.
        self._refused += 1
        now = time.monotonic()
        if now - self._refusal_logged_at >= REFUSAL_LOG_INTERVAL:
            logger.warning(
                "refusing SIP connection from %s: %s (%d refused since the last such line)",
                source,
                why,
                self._refused,
            )
            self._refusal_logged_at = now
            self._refused = 0
        return False

    def _register(self, peer: Address, connection: _StreamConnection) -> None:
        self._connections[peer] = connection

    def _unregister(self, peer: Address, connection: _StreamConnection) -> None:
        if self._connections.get(peer) is connection:
            del self._connections[peer]
        if connection.inbound:
            self._inbound -= 1
            self._inbound_per_source[peer[0]] -= 1
            if self._inbound_per_source[peer[0]] <= 0:
                del self._inbound_per_source[peer[0]]

    @property
    def inbound_connections(self) -> int:
        """Connections peers have open to us now."""
        return self._inbound

    def send(self, data: bytes, address: Address) -> None:
        if not is_sendable(address):
            logger.info("not sending to %s: bad port", address)
            return
        connection = self._connections.get(address)
        if connection is not None and connection.transport is not None:
            connection.transport.write(data)
            return
        self._queued.setdefault(address, []).append(data)
        if address not in self._connecting:
            task = asyncio.get_running_loop().create_task(self._connect(address))
            self._connecting[address] = task

    async def _connect(self, address: Address) -> None:
        loop = asyncio.get_running_loop()
        try:
            host = await self._resolver.resolve(address[0])
            server_hostname = address[0] if self._client_ssl is not None else None
            _, connection = await loop.create_connection(
                lambda: _StreamConnection(self, inbound=False),
                host,
                address[1],
                ssl=self._client_ssl,
                server_hostname=server_hostname,
            )
            # Register under the address the core asked for, which may be a name.
            self._connections[address] = connection
            assert connection.transport is not None  # the connection is made
            for data in self._queued.pop(address, []):
                connection.transport.write(data)
        except (OSError, ssl.SSLError) as exc:
            logger.info("cannot connect to %s:%s: %s", address[0], address[1], exc)
            self._queued.pop(address, None)
            self._on_error(address)
        finally:
            self._connecting.pop(address, None)

    def close(self) -> None:
        for task in self._connecting.values():
            task.cancel()
        for connection in list(self._connections.values()):
            if connection.transport is not None:
                connection.transport.close()
        self._connections.clear()
        if self._server is not None:
            self._server.close()
