"""The browser legs' ICE of one worker on one UDP port, demultiplexed by username fragment.

aioice binds a socket on an ephemeral port for every host candidate of every call: a
server then needs the whole ephemeral range open, and each call costs sockets and file
descriptors. As mediasoup's WebRtcServer and LiveKit do, `IceMux` binds one socket per host
address on one known port (`[ice] port`, port + i for worker i) and carries every call's
ICE, DTLS and SRTP on it:

- a STUN Binding request goes to the call whose username fragment opens its USERNAME
  (`<ours>:<theirs>`, RFC 8445 section 7.2.2); each call gets a fragment no other call of
  the port has;
- a STUN response goes to the call whose transaction it answers;
- anything else (DTLS, SRTP, SRTCP) goes by its source address to the call that
  authenticated that address: answered one of its checks, or answered ours.

A datagram for no call is dropped unanswered after reading at most a STUN header and its
attribute headers: a flood with made-up fragments costs no state, no reply, and never
reaches aioice's parser (`ignored` counts them).

aioice is not changed: each call's `aioice.Connection` gets a `MuxedStunProtocol` (a
subclass of aioice's `StunProtocol`) per host address as its host candidates, whose
transport writes to the shared socket. `adopt()` hooks the connection before it gathers;
server-reflexive candidates are asked through the shared socket, TURN relays keep their own
sockets. It reaches into aioice 0.13 (`Connection._local_username`, `_protocols`,
`get_component_candidates`), pinned in constraints.txt.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import secrets
import socket
import string
import struct
import weakref
from collections.abc import Sequence
from typing import Any

from aioice import Connection, stun
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aioice.ice import StunProtocol, server_reflexive_candidate

Demux: Any
try:  # the media datagrams' dispatch in C (gateway/media/_icedemux.c), built by make
    from gateway.media._icedemux import Demux
except ImportError:
    Demux = None

__all__ = ["IceMux", "MuxedStunProtocol"]

logger = logging.getLogger(__name__)

# Every call on one socket: room for bursts of all calls' packets (the kernel caps it at
# net.core.rmem_max / wmem_max unless raised).
SOCKET_BUFFER = 4 * 1024 * 1024
UFRAG_LENGTH = 16  # RFC 8445 asks for at least 24 bits of randomness; 16 ice-chars: 95
_UFRAG_CHARS = string.ascii_letters + string.digits

_MAGIC_COOKIE = b"\x21\x12\xa4\x42"
_BINDING_REQUEST = 0x0001
_USERNAME = 0x0006
_MAX_ATTRIBUTES = 16  # read before USERNAME; a Binding request has fewer
_ATTRIBUTE = struct.Struct("!HH")


def local_ufrag(data: bytes) -> bytes | None:
    """Our username fragment in a STUN Binding request (the part of USERNAME before the
    colon), or None. Reads at most the header and `_MAX_ATTRIBUTES` attribute headers."""
    end = 20 + ((data[2] << 8) | data[3])
    if end > len(data):
        return None
    position = 20
    for _ in range(_MAX_ATTRIBUTES):
        if position + 4 > end:
            return None
        kind, length = _ATTRIBUTE.unpack_from(data, position)
        start = position + 4
        if start + length > end:
            return None
        if kind == _USERNAME:
            colon = data.find(b":", start, start + length)
            return data[start:colon] if colon > start else None
        position = start + length + (-length % 4)
    return None


class MuxedStunProtocol(StunProtocol):
    """One ICE connection's host candidate on a shared socket: aioice's protocol, whose
    transport is the socket's, and whose authenticated peers and transactions are routed
    to it by the socket."""

    def __init__(self, receiver: Connection, port: _MuxSocket) -> None:
        super().__init__(receiver)
        self._port = port

    async def request(
        self,
        request: stun.Message,
        addr: tuple[str, int],
        integrity_key: bytes | None = None,
        retransmissions: int | None = None,
    ) -> tuple[stun.Message, tuple[str, int]]:
        transaction = request.transaction_id
        self._port.expect(transaction, self)
        try:
            response, source = await super().request(request, addr, integrity_key, retransmissions)
        finally:
            self._port.forget(transaction, self)
        if integrity_key is not None:
            # aioice accepted it only with the right MESSAGE-INTEGRITY: the peer is there.
            self._port.route(source, self)
        return response, source

    def send_stun(self, message: stun.Message, addr: tuple[str, int]) -> None:
        if (
            message.message_class == stun.Class.RESPONSE
            and message.message_method == stun.Method.BINDING
        ):
            # aioice answers a check with success only once it authenticated it.
            self._port.route(addr, self)
        super().send_stun(message, addr)


class _MuxTransport(asyncio.DatagramTransport):
    """A connection's view of the shared socket: sends are the socket's own; closing
    takes the connection off the socket, not the socket down."""

    def __init__(self, port: _MuxSocket, protocol: MuxedStunProtocol) -> None:
        super().__init__()
        self._port = port
        self._protocol = protocol
        self._closing = False
        # The shared transport's own bound method: no extra step per datagram sent.
        self.sendto = port.transport.sendto  # type: ignore[method-assign]

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._port.transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._port.leave(self._protocol)

    def abort(self) -> None:
        self.close()


class _MuxSocket(asyncio.DatagramProtocol):
    """The shared socket of one host address, and who gets what arrives on it."""

    def __init__(self, mux: IceMux) -> None:
        self._mux = mux
        self.transport: asyncio.DatagramTransport = None  # type: ignore[assignment]
        self.address: tuple[str, int] = ("", 0)
        self._ipv6 = False
        self._by_ufrag: dict[bytes, MuxedStunProtocol] = {}
        self._by_address: dict[tuple, MuxedStunProtocol] = {}
        self._by_transaction: dict[bytes, MuxedStunProtocol] = {}
        self._addresses: dict[MuxedStunProtocol, set[tuple]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sockname = transport.get_extra_info("sockname")
        self.address = (sockname[0], sockname[1])
        self._ipv6 = ":" in sockname[0]
        if Demux is not None and not self._ipv6:
            # The same lookup in C for media datagrams; the method below for the rest.
            self.datagram_received = Demux(  # type: ignore[method-assign]
                self._by_address, functools.partial(_MuxSocket.datagram_received, self)
            )
        sock = transport.get_extra_info("socket")
        if sock is not None:
            for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
                sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)

    def connection_lost(self, exc: Exception | None) -> None:
        for protocol in list(self._addresses):
            self.leave(protocol)

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP error for one peer's address: that call's consent checks notice

    # ------------------------------------------------------------------ receiving
    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if self._ipv6:
            addr = (addr[0], addr[1])
        if data and data[0] > 3:  # RFC 7983: not STUN (DTLS 20-63, RTP/RTCP 128-191)
            protocol = self._by_address.get(addr)
            if protocol is not None:
                protocol.datagram_received(data, addr)
            else:
                self._mux.ignored += 1
            return
        if len(data) < 20 or data[4:8] != _MAGIC_COOKIE:
            self._mux.ignored += 1
            return
        kind = (data[0] << 8) | data[1]
        if kind == _BINDING_REQUEST:
            ufrag = local_ufrag(data)
            protocol = self._by_ufrag.get(ufrag) if ufrag is not None else None
        elif kind & 0x0100:  # a success or error response (class bit C1)
            protocol = self._by_transaction.get(data[8:20])
        else:
            protocol = None  # indications and other requests: nothing of ICE's
        if protocol is None:
            self._mux.ignored += 1
            return
        protocol.datagram_received(data, addr)

    # ------------------------------------------------------------------ routing
    def join(self, connection: Connection, ufrag: bytes, component: int) -> MuxedStunProtocol:
        protocol = MuxedStunProtocol(connection, self)
        protocol.connection_made(_MuxTransport(self, protocol))
        host, port = self.address
        protocol.local_candidate = Candidate(
            foundation=candidate_foundation("host", "udp", host),
            component=component,
            transport="udp",
            priority=candidate_priority(component, "host"),
            host=host,
            port=port,
            type="host",
        )
        self._by_ufrag[ufrag] = protocol
        self._addresses[protocol] = set()
        return protocol

    def route(self, addr: tuple, protocol: MuxedStunProtocol) -> None:
        """Datagrams from `addr` are `protocol`'s from now on (the last to authenticate
        an address has it)."""
        addresses = self._addresses.get(protocol)
        if addresses is None:
            return  # it left already
        addr = (addr[0], addr[1])
        previous = self._by_address.get(addr)
        if previous is protocol:
            return
        if previous is not None:
            self._addresses[previous].discard(addr)
        self._by_address[addr] = protocol
        addresses.add(addr)

    def expect(self, transaction: bytes, protocol: MuxedStunProtocol) -> None:
        self._by_transaction[transaction] = protocol

    def forget(self, transaction: bytes, protocol: MuxedStunProtocol) -> None:
        if self._by_transaction.get(transaction) is protocol:
            del self._by_transaction[transaction]

    def leave(self, protocol: MuxedStunProtocol) -> None:
        addresses = self._addresses.pop(protocol, None)
        if addresses is None:
            return
        for addr in addresses:
            if self._by_address.get(addr) is protocol:
                del self._by_address[addr]
        for ufrag, owner in list(self._by_ufrag.items()):
            if owner is protocol:
                del self._by_ufrag[ufrag]
        for transaction, owner in list(self._by_transaction.items()):
            if owner is protocol:
                del self._by_transaction[transaction]
        asyncio.get_running_loop().call_soon(protocol.connection_lost, None)

    @property
    def calls(self) -> int:
        return len(self._addresses)


class IceMux:
    """One UDP port per host address for the ICE of every browser leg of this process.

    `await IceMux.open(addresses, port)`; `adopt(connection)` before a connection gathers
    (see WebRtcLeg); `await close()` at the end (the calls' ICE stops with it)."""

    def __init__(self) -> None:
        self._sockets: dict[str, _MuxSocket] = {}
        # Fragments in use, freed with their connection: unique among this port's calls.
        self._ufrags: weakref.WeakValueDictionary[str, Connection] = weakref.WeakValueDictionary()
        self.ignored = 0  # datagrams that were for no call (dropped unanswered)

    @classmethod
    async def open(cls, addresses: Sequence[str], port: int) -> IceMux:
        """Bind `port` on each address. Raises OSError (with everything closed again)."""
        mux = cls()
        try:
            for address in addresses:
                await mux.listen(address, port)
        except BaseException:
            mux.close()
            raise
        return mux

    async def listen(self, address: str, port: int) -> None:
        """Bind `port` on `address` too (0: an ephemeral port). Raises OSError."""
        family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else 0
        _, shared = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _MuxSocket(self), local_addr=(address, port), family=family
        )
        self._sockets[address] = shared

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [shared.address for shared in self._sockets.values()]

    @property
    def calls(self) -> int:
        """Connections with a candidate on the port now."""
        return max((shared.calls for shared in self._sockets.values()), default=0)

    def adopt(self, connection: Connection) -> None:
        """Give `connection` (not gathered yet) a username fragment of its own on this
        port, and its host candidates here instead of on sockets of its own."""
        while True:
            ufrag = "".join(secrets.choice(_UFRAG_CHARS) for _ in range(UFRAG_LENGTH))
            if ufrag not in self._ufrags:
                break
        self._ufrags[ufrag] = connection
        connection._local_username = ufrag
        connection.get_component_candidates = functools.partial(  # type: ignore[method-assign]
            self._gather, connection
        )

    async def _gather(
        self, connection: Connection, component: int, addresses: list[str], timeout: int = 5
    ) -> list[Candidate]:
        """Host candidates on the shared sockets, server-reflexive ones asked through
        them; TURN relays as aioice gathers them (a socket each)."""
        ufrag = connection.local_username.encode()
        protocols: list[MuxedStunProtocol] = []
        for address in addresses:
            shared = self._sockets.get(address)
            if shared is None:
                logger.warning("no ICE port bound on %s: no candidate there", address)
                continue
            protocols.append(shared.join(connection, ufrag, component))
        connection._protocols += protocols
        candidates = [protocol.local_candidate for protocol in protocols]
        reflexive = []
        if connection.stun_server is not None:
            reflexive = [
                asyncio.create_task(server_reflexive_candidate(p, connection.stun_server))
                for p in protocols
                if ipaddress.ip_address(p.local_candidate.host).version == 4
            ]
        # With no addresses, aioice's own gathering does only what it has: TURN.
        relayed = await Connection.get_component_candidates(connection, component, [], timeout)
        if reflexive:
            done, pending = await asyncio.wait(reflexive, timeout=timeout)
            for task in pending:
                task.cancel()
            candidates += [t.result()[0] for t in done if t.exception() is None]
        return candidates + relayed

    def close(self) -> None:
        for shared in self._sockets.values():
            if shared.transport is not None:
                shared.transport.close()
        self._sockets.clear()
