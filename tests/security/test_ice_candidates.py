"""ICE candidates are addresses a page asks the gateway to send STUN to: bounded and filtered.

Against a real gateway (in this process, on loopback) with python-socketio as the page and
a UDP sink bound to every 127/8 address on one port as the attacker's target; SIPp answers
the SIP leg. The sink counts what the gateway really sent (STUN requests, by transaction).
"""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiortc import RTCSessionDescription

from tests.e2e.test_browser_call import assert_all_released
from tests.e2e.test_signaling_abuse import answered, connect, real_offer
from tests.support.ports import free_udp_port

HOST_ROUTE = 250  # distinct 127.x.y.1 addresses: y in 1..250


class StunSink(asyncio.DatagramProtocol):
    """Counts datagrams and distinct STUN transactions sent to it (on any 127/8 address)."""

    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0
        self.transactions: set[bytes] = set()

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.packets += 1
        self.bytes += len(data)
        if len(data) >= 20 and data[4:8] == b"\x21\x12\xa4\x42":  # STUN magic cookie
            self.transactions.add(data[8:20])


@pytest.fixture
async def sink():
    port = free_udp_port()
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))  # every 127/8 address of the loopback-only namespace
    transport, protocol = await loop.create_datagram_endpoint(StunSink, sock=sock)
    protocol.port = port
    yield protocol
    transport.close()


def with_candidates(offer: str, lines: list[str]) -> str:
    """The offer with its own candidates replaced by `lines` (a=candidate:...)."""
    kept = [line for line in offer.split("\r\n") if not line.startswith("a=candidate:")]
    at = next(i for i, line in enumerate(kept) if line.startswith("a=mid:"))
    return "\r\n".join(kept[:at] + lines + kept[at:])


def sink_candidates(port: int, count: int, first: int = 0) -> list[str]:
    # Above any real host candidate's priority: an agent checks these first.
    return [
        f"a=candidate:{i} 1 udp {2147483000 - i} "
        f"127.{1 + i // HOST_ROUTE}.{i % HOST_ROUTE + 1}.1 {port} typ host"
        for i in range(first, first + count)
    ]


async def until(condition, what: str, timeout: float = 20.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


async def test_an_offer_with_1054_candidates_is_refused_and_sends_no_stun(gateway_factory, sink):
    # The attack of issue 11: 64 KB, 1,054 candidates at addresses the attacker chose.
    gateway = await gateway_factory(destination="sip:nobody@127.0.0.1:9")
    client = await connect(gateway)
    pc, offer = await real_offer()
    try:
        flood = with_candidates(offer, sink_candidates(sink.port, 1054))
        assert len(flood.encode()) <= 64 * 1024
        ack = await client.call("call:start", {"sdp": flood}, timeout=30)
        assert ack["ok"] is False
        assert ack["error"]["code"] == "too_many_candidates"
        assert "1054 candidates" in ack["error"]["message"]
        assert not gateway.calls.calls
        # The connection is still usable: a normal offer is answered.
        ack = await client.call("call:start", {"sdp": offer}, timeout=10)
        assert ack["ok"] is True, ack
        await client.call("call:hangup", {}, timeout=5)
        assert sink.packets == 0
    finally:
        await pc.close()
        await client.disconnect()


async def test_denied_and_mdns_candidates_are_never_checked_and_the_call_still_connects(
    gateway_factory, sipp_factory, sink
):
    # Defaults: this machine's networks (all of 127/8 here) and link-local are denied, so
    # even the peer's own 127.0.0.1 candidate is dropped: ICE must come up from its checks.
    uas = sipp_factory("uas_answer_echo", rtp_echo=True)
    gateway = await gateway_factory(destination=uas.uri)
    client = await connect(gateway)
    pc, offer = await real_offer()  # aiortc: a real ICE peer on 127.0.0.1
    theirs = [line for line in offer.split("\r\n") if line.startswith("a=candidate:")]
    extra = [
        *sink_candidates(sink.port, 40),
        "a=candidate:7 1 udp 2122260223 5f1c2b8e-1111-4b2a-9c3d-0123456789ab.local 9 typ host",
        "a=candidate:8 1 udp 2122260223 169.254.10.20 40000 typ host",
        "a=candidate:9 1 udp 2122260223 fe80::1 40000 typ host",
        "a=candidate:10 1 udp 2122260223 224.0.0.251 5353 typ host",
        "a=end-of-candidates",
    ]
    try:
        ack = await client.call(
            "call:start", {"sdp": with_candidates(offer, theirs + extra)}, timeout=10
        )
        assert ack["ok"] is True, ack
        await pc.setRemoteDescription(RTCSessionDescription(ack["sdp"], "answer"))
        # Trickled candidates are held to the same rule.
        for line in sink_candidates(sink.port, 5, first=40):
            ack = await client.call(
                "call:candidate",
                {"candidate": line.removeprefix("a="), "sdpMid": "0", "sdpMLineIndex": 0},
                timeout=5,
            )
            assert ack["ok"] is True
        await answered(client)
        (call,) = gateway.calls.calls.values()
        await asyncio.wait_for(call.webrtc.connected.wait(), 20)
        assert sink.packets == 0
        remote = [c for conn in call.webrtc._ice_connections() for c in conn.remote_candidates]
        # Only what the peer's own checks taught the gateway (peer-reflexive).
        assert remote and {(c.type, c.host) for c in remote} == {("prflx", "127.0.0.1")}
        assert await client.call("call:hangup", {}, timeout=5) == {"ok": True}
        await uas.assert_passed_async()
        await assert_all_released(gateway)
    finally:
        await pc.close()
        await client.disconnect()


async def test_the_connectivity_checks_of_a_call_are_capped(gateway_factory, sipp_factory, sink):
    uas = sipp_factory("uas_answer_echo", rtp_echo=True)
    gateway = await gateway_factory(
        destination=uas.uri,
        ice_extra="denied_candidate_networks = []\nmax_checks_per_call = 10",
    )
    client = await connect(gateway)
    pc, offer = await real_offer()
    await pc.close()  # nobody answers the checks: every one is retransmitted, then fails
    try:
        ack = await client.call(
            "call:start",
            {"sdp": with_candidates(offer, sink_candidates(sink.port, 64))},
            timeout=10,
        )
        assert ack["ok"] is True, ack
        (call,) = gateway.calls.calls.values()
        budget = call.webrtc.checks
        # One pair per candidate; the agent takes one every 20 ms.
        await until(lambda: budget.started + budget.refused >= 64, "every pair was taken")
        assert budget.started == 10
        await until(lambda: len(sink.transactions) >= 10, "the checks reached the sink")
        assert len(sink.transactions) == 10
        await client.call("call:hangup", {}, timeout=5)
        await assert_all_released(gateway)
    finally:
        await client.disconnect()
