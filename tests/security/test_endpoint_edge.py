"""The asyncio side of the SIP edge, over real sockets: resolved names feed the response
check, a core failure never closes the socket, and bad ports never reach `sendto`."""

from __future__ import annotations

import asyncio
import socket

from sip_bridge.asyncio.endpoint import SipEndpoint
from sip_bridge.events import CallAnswered
from sip_bridge.useragent import UserAgent, UserAgentConfig

HOST = "127.0.0.1"
OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 20000 RTP/AVP 0\r\n"
)


def options(port: int, branch: str) -> bytes:
    return (
        f"OPTIONS sip:gateway@{HOST} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {HOST}:{port};branch=z9hG4bK{branch};rport\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:x@{HOST}>;tag=1\r\nTo: <sip:gateway@{HOST}>\r\n"
        f"Call-ID: {branch}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def test_a_call_to_a_host_name_is_answered_through_the_resolution(sipp_factory):
    # The core only accepts responses from the destination; the destination is a name
    # here, so this works only if the transport reports what "localhost" resolved to.
    uas = sipp_factory("uas_answer_echo")
    async with await SipEndpoint.open(UserAgentConfig(address=(HOST, 0))) as endpoint:
        call = await endpoint.invite(f"sip:operator@localhost:{uas.port}", sdp=OFFER)
        await call.wait_for(CallAnswered, timeout=5)
        call.hangup()
        await asyncio.wait_for(call.ended, 5)
        assert endpoint.ua.counters["spoofed_responses"] == 0
    await uas.assert_passed_async()


async def test_a_failure_in_the_core_is_logged_and_the_socket_stays_open(monkeypatch, caplog):
    async with await SipEndpoint.open(UserAgentConfig(address=(HOST, 0))) as endpoint:
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind((HOST, 0))
        peer.settimeout(2.0)
        port = peer.getsockname()[1]
        real = UserAgent.receive_datagram

        def broken(self, data, addr, now):
            if b"boom" in data:
                raise KeyError("a bug")
            return real(self, data, addr, now)

        monkeypatch.setattr(UserAgent, "receive_datagram", broken)
        try:
            peer.sendto(options(port, "boom"), endpoint.local_address)
            peer.sendto(options(port, "fine"), endpoint.local_address)
            reply = await asyncio.to_thread(peer.recv, 65536)
        finally:
            peer.close()
        assert reply.startswith(b"SIP/2.0 200") and b"z9hG4bKfine" in reply
        assert endpoint.internal_errors == 1
        assert b"KeyError" not in reply and b"boom" not in reply
        assert "not processed" in caplog.text


async def test_a_port_out_of_range_is_not_sent_to():
    async with await SipEndpoint.open(UserAgentConfig(address=(HOST, 0))) as endpoint:
        transport = endpoint._transport
        transport.send(b"x", (HOST, 70000))  # asyncio would close the socket on this
        transport.send(b"x", (HOST, 0))
        peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        peer.bind((HOST, 0))
        peer.settimeout(2.0)
        try:
            port = peer.getsockname()[1]
            peer.sendto(options(port, "after"), endpoint.local_address)
            reply = await asyncio.to_thread(peer.recv, 65536)
        finally:
            peer.close()
        assert reply.startswith(b"SIP/2.0 200")
