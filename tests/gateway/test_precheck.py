"""Pre-call checks against a stock aiortc peer standing in for the browser, over loopback
ICE and DTLS-SRTP: the gateway echoes what it receives (the numbered frames come back, in
order), reports its reception over RTCP (the peer learns loss and round trip), and keeps
the checks within their own limits (one at a time and N an hour per address, a duration
cap, the site's choice, the worker's capacity). The rate windows run on a fake clock."""

from __future__ import annotations

import asyncio
import fractions
import ipaddress

import av
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from gateway.access.admission import LimitRefused
from gateway.access.ledger import SqliteLedger
from gateway.api import CallRefused
from gateway.calls.precheck import PreCallChecks
from gateway.config import parse_config
from gateway.media.ice_policy import CandidatePolicy
from gateway.media.webrtc_leg import use_host_addresses
from tests.gateway.clock import FakeClock

FRAMES = 100
CONFIG = """
[limits]
prechecks_per_client_hour = 2
max_precheck_duration = 3
max_calls = 3
[media]
browser_codecs = ["PCMU"]
[[sites]]
id = "shop"
destination = "sip:desk@pbx.example.com"
[sites.widget]
precheck = true
[[sites]]
id = "plain"
destination = "sip:desk@pbx.example.com"
"""
VISITOR = "192.0.2.7"


class NumberedFrames(MediaStreamTrack):
    """PCMU frames every 20 ms, each 160 bytes of its own number."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.index = 0

    async def recv(self) -> av.Packet:
        if self.index >= FRAMES:
            await asyncio.sleep(3600)
            raise MediaStreamError
        await asyncio.sleep(0.02)
        packet = av.Packet(bytes([self.index]) * 160)
        packet.pts = self.index * 160
        packet.time_base = fractions.Fraction(1, 8000)
        self.index += 1
        return packet


@pytest.fixture
def checks() -> PreCallChecks:
    use_host_addresses(["127.0.0.1"])
    config = parse_config(CONFIG)
    return PreCallChecks(config, SqliteLedger.in_memory(), clock=FakeClock())


def site(checks: PreCallChecks, site_id: str = "shop"):
    config = parse_config(CONFIG)
    return config.site(site_id)


async def offer(pc: RTCPeerConnection | None = None) -> tuple[RTCPeerConnection, str]:
    """A browser's offer with its candidates (aiortc gathers before it answers)."""
    pc = pc or RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if not pc.getTransceivers():
        pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def test_what_the_browser_sends_comes_back_and_rtcp_says_how(
    checks: PreCallChecks,
) -> None:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    track = NumberedFrames()
    pc.addTrack(track)
    echoed: list[int] = []
    try:
        _, sdp = await offer(pc)
        grant = await checks.start(site(checks), VISITOR, sdp)
        assert grant.seconds == 3.0 and grant.check_id in checks.checks
        (transceiver,) = pc.getTransceivers()

        async def record(packet, arrival_time_ms) -> None:
            echoed.append(packet.payload[0])

        transceiver.receiver._handle_rtp_packet = record
        await pc.setRemoteDescription(RTCSessionDescription(grant.answer_sdp, "answer"))
        for _ in range(300):
            report = await remote_report(pc)
            if len(echoed) >= FRAMES - 20 and report and report.roundTripTime is not None:
                break  # a report after the peer's own sender report: with a round trip
            await asyncio.sleep(0.05)
        # The frames came back as sent, in order (the first few, before the connection
        # was up, were not echoed).
        assert len(echoed) >= FRAMES - 20, echoed
        assert echoed == sorted(echoed) and len(set(echoed)) == len(echoed)
        # The gateway's receiver reports reached the peer: its loss and round trip.
        assert report is not None and report.packetsLost == 0 and report.roundTripTime >= 0
        await checks.stop(grant.check_id)
        assert checks.checks == {} and checks.ledger.live_checks("192.0.2.7") == 0
    finally:
        await pc.close()


async def remote_report(pc: RTCPeerConnection):
    (transceiver,) = pc.getTransceivers()
    stats = await transceiver.sender.getStats()
    return next((s for s in stats.values() if s.type == "remote-inbound-rtp"), None)


async def test_one_check_at_a_time_and_a_few_an_hour_per_address(
    checks: PreCallChecks,
) -> None:
    clock = checks.clock
    assert isinstance(clock, FakeClock)
    peers = []
    try:
        pc, sdp = await offer()
        peers.append(pc)
        first = await checks.start(site(checks), VISITOR, sdp)
        with pytest.raises(LimitRefused) as caught:
            await checks.start(site(checks), VISITOR, sdp)
        assert caught.value.code == "precheck_limited"
        assert "going on already" in caught.value.message
        # Another address is not held back; an IPv6 visitor counts per /64.
        pc, sdp = await offer()
        peers.append(pc)
        other = await checks.start(site(checks), "2001:db8::1", sdp)
        with pytest.raises(LimitRefused):
            await checks.start(site(checks), "2001:db8::2", sdp)
        await checks.stop(other.check_id)
        await checks.stop(first.check_id)

        clock.advance(600)
        pc, sdp = await offer()
        peers.append(pc)
        second = await checks.start(site(checks), VISITOR, sdp)
        await checks.stop(second.check_id)
        clock.advance(60)
        with pytest.raises(LimitRefused) as caught:
            await checks.start(site(checks), VISITOR, sdp)
        refusal = caught.value
        assert refusal.code == "precheck_limited" and refusal.retry_after == 3600 - 660
        assert "(limits.prechecks_per_client_hour = 2)" in refusal.detail
        clock.advance(refusal.retry_after + 1)
        third = await checks.start(site(checks), VISITOR, sdp)
        await checks.stop(third.check_id)
    finally:
        for pc in peers:
            await pc.close()


@pytest.mark.looptime  # the peer never connects: only the gateway's timer runs
async def test_the_gateway_ends_a_check_that_lasts_too_long(checks: PreCallChecks) -> None:
    pc, sdp = await offer()
    try:
        grant = await checks.start(site(checks), VISITOR, sdp)
        await asyncio.sleep(2.9)  # max_precheck_duration = 3 s, on the loop's fake clock
        assert grant.check_id in checks.checks
        await asyncio.sleep(0.2)
        assert checks.checks == {} and checks.ledger.live_checks(VISITOR) == 0
    finally:
        await pc.close()


async def test_checks_only_where_offered_and_within_the_workers_capacity() -> None:
    use_host_addresses(["127.0.0.1"])
    config = parse_config(CONFIG)
    carrying = {"calls": 0}
    checks = PreCallChecks(config, SqliteLedger.in_memory(), busy=lambda: carrying["calls"])
    pc, sdp = await offer()
    try:
        with pytest.raises(CallRefused) as caught:
            await checks.start(config.site("plain"), VISITOR, sdp)
        assert caught.value.code == "precheck_off"
        carrying["calls"] = 3  # limits.max_calls: checks and calls share it
        with pytest.raises(LimitRefused) as caught:
            await checks.start(config.site("shop"), VISITOR, sdp)
        assert caught.value.code == "busy"
        carrying["calls"] = 0
        with pytest.raises(CallRefused) as caught:
            await checks.start(config.site("shop"), VISITOR, "v=0\r\nnonsense\r\n")
        assert caught.value.code == "bad_offer"
        # A refused offer leaves nothing: no check, no live row.
        assert checks.checks == {} and checks.ledger.live_checks(VISITOR) == 0
    finally:
        await pc.close()
        await checks.close()


def test_mdns_and_denied_candidates_are_dropped_from_the_offer() -> None:
    sdp = (
        "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n"
        "a=candidate:1 1 udp 2122260223 4b1f5a8e-0e5c-4d1e-9f1e-1234567890ab.local 54321 "
        "typ host generation 0\r\n"
        "a=candidate:2 1 udp 2122260223 192.0.2.5 54322 typ host generation 0\r\n"
        "a=candidate:3 1 udp 2122260223 10.1.2.3 54323 typ host generation 0\r\n"
        "a=candidate:4 1 udp 2122260223 evil.example 54324 typ host generation 0\r\n"
        "a=end-of-candidates\r\n"
        "a=mid:0\r\n"
    )
    kept, dropped = CandidatePolicy((ipaddress.ip_network("10.0.0.0/8"),)).filter_offer(sdp)
    assert dropped == 3
    assert ".local" not in kept and "10.1.2.3" not in kept and "evil" not in kept
    assert "a=candidate:2 1 udp 2122260223 192.0.2.5 54322 typ host" in kept
    assert "end-of-candidates" not in kept  # the browser's checks may still teach us more
    assert kept.endswith("a=mid:0\r\n")
