"""A TCP SIP listener bounds what peers can hold open, over real sockets: connections per
source and in all, a deadline for the first message, and allowed peers refused before
anything is read."""

from __future__ import annotations

import asyncio

import pytest

from sip_bridge.asyncio.endpoint import SipEndpoint
from sip_bridge.asyncio.transport import ConnectionLimits
from sip_bridge.useragent import UserAgentConfig

HOST = "127.0.0.1"

# The first-message deadline and the waits for a close are loop timers: on looptime's fake
# clock, a peer is "silent for 0.5 s" exactly, however busy the machine (loopback TCP
# delivers as it is written; only time is faked).
pytestmark = pytest.mark.looptime


def options(port: int, n: int) -> bytes:
    return (
        f"OPTIONS sip:gateway@{HOST} SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP {HOST}:{port};branch=z9hG4bKconn{n}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:x@{HOST}>;tag={n}\r\nTo: <sip:gateway@{HOST}>\r\n"
        f"Call-ID: conn-{n}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def listener(limits: ConnectionLimits, **config) -> SipEndpoint:
    return await SipEndpoint.open(
        UserAgentConfig(address=(HOST, 0), transport="tcp", **config),
        connection_limits=limits,
    )


async def closed_by_server(reader: asyncio.StreamReader, within: float = 2.0) -> bool:
    """Whether the server closed the connection (EOF) within `within` seconds."""
    try:
        return await asyncio.wait_for(reader.read(1), within) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


async def until(condition, timeout: float = 10.0) -> None:
    """Until `condition()` holds (the server notices a close on its own schedule)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def answered(reader, writer, port: int, n: int) -> bool:
    writer.write(options(port, n))
    await writer.drain()
    line = await asyncio.wait_for(reader.readline(), 2)
    return line.startswith(b"SIP/2.0 200")


async def test_more_connections_from_one_source_than_allowed_are_closed_at_once():
    async with await listener(ConnectionLimits(per_source=3, total=100)) as endpoint:
        port = endpoint.local_address[1]
        kept = [await asyncio.open_connection(HOST, port) for _ in range(3)]
        extra = [await asyncio.open_connection(HOST, port) for _ in range(2)]
        for reader, _ in extra:
            assert await closed_by_server(reader)
        for n, (reader, writer) in enumerate(kept):
            assert await answered(reader, writer, port, n)
        assert endpoint.inbound_connections == 3
        # One closes: a new one fits.
        kept[0][1].close()
        await kept[0][1].wait_closed()
        await until(lambda: endpoint.inbound_connections == 2)  # the server saw it close
        reader, writer = await asyncio.open_connection(HOST, port)
        assert await answered(reader, writer, port, 9)
        for _, w in [*kept[1:], (reader, writer), *extra]:
            w.close()


async def test_the_total_bounds_all_sources_together():
    async with await listener(ConnectionLimits(per_source=100, total=2)) as endpoint:
        port = endpoint.local_address[1]
        kept = [await asyncio.open_connection(HOST, port) for _ in range(2)]
        reader, writer = await asyncio.open_connection(HOST, port)
        assert await closed_by_server(reader)
        assert await answered(*kept[1], port, 1)
        for _, w in [*kept, (reader, writer)]:
            w.close()


async def test_a_connection_silent_past_the_deadline_is_closed_and_a_talking_one_stays():
    limits = ConnectionLimits(first_message_within=0.5)
    async with await listener(limits) as endpoint:
        port = endpoint.local_address[1]
        idle_reader, idle_writer = await asyncio.open_connection(HOST, port)
        # Half a message does not count: the deadline is for a whole one.
        idle_writer.write(options(port, 1)[:40])
        talker = await asyncio.open_connection(HOST, port)
        assert await answered(*talker, port, 2)
        assert await closed_by_server(idle_reader, within=2.0)
        assert not await closed_by_server(talker[0], within=0.8)
        assert endpoint.inbound_connections == 1
        idle_writer.close()
        talker[1].close()


async def test_a_peer_outside_allowed_peers_is_refused_before_anything_is_read():
    async with await listener(ConnectionLimits(), allowed_peers=("192.0.2.0/24",)) as endpoint:
        port = endpoint.local_address[1]
        reader, writer = await asyncio.open_connection(HOST, port)
        writer.write(options(port, 1))
        assert await closed_by_server(reader)
        assert endpoint.ua.counters["not_allowed"] == 1
        assert endpoint.inbound_connections == 0
        writer.close()


async def test_over_tls_the_limits_hold_before_any_handshake(tmp_path):
    """Connections that never start TLS are counted, refused past the limits, and closed
    at the deadline; a real TLS client still gets its OPTIONS answered."""
    from tests.sip_bridge.test_transports import self_signed

    server_ssl, client_ssl = self_signed(tmp_path)
    limits = ConnectionLimits(per_source=2, total=10, first_message_within=0.5)
    async with await SipEndpoint.open(
        UserAgentConfig(address=(HOST, 0), transport="tls"),
        server_ssl=server_ssl,
        client_ssl=client_ssl,
        connection_limits=limits,
    ) as endpoint:
        port = endpoint.local_address[1]
        silent = [await asyncio.open_connection(HOST, port) for _ in range(2)]
        extra_reader, extra_writer = await asyncio.open_connection(HOST, port)
        assert await closed_by_server(extra_reader)  # a third from this source: refused
        assert endpoint.inbound_connections == 2
        for reader, _ in silent:  # no handshake within the deadline
            assert await closed_by_server(reader, within=2.0)
        await until(lambda: endpoint.inbound_connections == 0)
        reader, writer = await asyncio.open_connection(
            HOST, port, ssl=client_ssl, server_hostname=HOST
        )
        assert await answered(reader, writer, port, 7)
        assert endpoint.inbound_connections == 1
        for _, w in [*silent, (extra_reader, extra_writer), (reader, writer)]:
            w.close()
