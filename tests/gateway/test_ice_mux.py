"""`IceMux`: browser legs on one shared UDP port, against stock aiortc peers (the browsers).

Two calls at once on the port each hear only their own peer's tone and send theirs only to
it; STUN for no call (an unknown username fragment, a flood of them, malformed ones) is
dropped unanswered without touching any call. A real Chromium call through the port:
tests/e2e/test_browser_call.py (the gateway there runs with `ice.port`).
"""

from __future__ import annotations

import asyncio
import fractions
import os
import socket
import struct

import av
import numpy as np
import pytest
from aioice import stun
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from gateway.config.legs import BrowserLegSettings
from gateway.media.ice_mux import IceMux, local_ufrag
from gateway.media.webrtc_leg import WebRtcLeg, use_host_addresses
from tests.support.audio import assert_tone, tone, ulaw_decode, ulaw_encode

SECONDS = 1.5


def tone_frames(hz: float) -> list[bytes]:
    samples = tone(hz, SECONDS)
    return [bytes(ulaw_encode(samples[i : i + 160])) for i in range(0, len(samples), 160)]


class ToneTrack(MediaStreamTrack):
    """A browser's microphone: pre-encoded PCMU frames of one tone, at 20 ms."""

    kind = "audio"

    def __init__(self, hz: float) -> None:
        super().__init__()
        self.frames = tone_frames(hz)
        self.index = 0

    async def recv(self) -> av.Packet:
        if self.index >= len(self.frames):
            await asyncio.sleep(3600)
            raise MediaStreamError
        await asyncio.sleep(0.02)
        packet = av.Packet(self.frames[self.index])
        packet.pts = self.index * 160
        packet.time_base = fractions.Fraction(1, 8000)
        self.index += 1
        return packet


class Browser:
    """A stock aiortc peer that offers audio, sends a tone and records what it hears."""

    def __init__(self, hz: float) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver(ToneTrack(hz), direction="sendrecv")
        self.heard: list[np.ndarray] = []
        self.track: asyncio.Future = asyncio.get_running_loop().create_future()
        self.pc.on("track", self.track.set_result)

    async def offer(self) -> str:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def listen(self, seconds: float) -> np.ndarray:
        track = await asyncio.wait_for(self.track, 10)
        pcm = []
        while sum(len(p) for p in pcm) < seconds * 8000:
            frame = await asyncio.wait_for(track.recv(), 10)
            pcm.append(frame.to_ndarray().reshape(-1))
        return np.concatenate(pcm)


async def call(mux: IceMux, browser: Browser) -> tuple[WebRtcLeg, str]:
    leg = WebRtcLeg(BrowserLegSettings(codecs=("PCMU",)), ice_mux=mux)
    answer = await leg.answer(await browser.offer())
    await browser.pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
    return leg, answer


@pytest.fixture
async def mux():
    use_host_addresses(["127.0.0.1"])
    shared = await IceMux.open(["127.0.0.1"], 0)
    yield shared
    shared.close()


def ufrag_of(sdp: str) -> str:
    return next(line.split(":", 1)[1] for line in sdp.splitlines() if "a=ice-ufrag:" in line)


async def test_two_calls_at_once_on_one_port_each_hear_only_their_own(mux):
    ((host, port),) = mux.addresses
    browsers = [Browser(600), Browser(1400)]
    replies = {0: 900, 1: 2000}  # what each call sends back to its browser
    legs, heard = [], {0: [], 1: []}
    try:
        for i, browser in enumerate(browsers):
            leg, answer = await call(mux, browser)
            legs.append(leg)
            # The only candidate is the shared port: no socket of the call's own.
            candidates = [line for line in answer.splitlines() if "a=candidate:" in line]
            assert [c.split()[4:6] for c in candidates] == [[host, str(port)]]
            leg.listen(lambda payload, ts, i=i: heard[i].append(bytes(payload)))
        assert ufrag_of(legs[0].pc.localDescription.sdp) != ufrag_of(
            legs[1].pc.localDescription.sdp
        )
        for leg in legs:
            await asyncio.wait_for(leg.connected.wait(), 10)
        assert mux.calls == 2

        async def reply(i: int) -> None:
            for payload in tone_frames(replies[i]):
                legs[i].send(payload)
                await asyncio.sleep(0.02)

        senders = [asyncio.create_task(reply(i)) for i in range(2)]
        listened = await asyncio.gather(*(b.listen(1.0) for b in browsers))
        await asyncio.gather(*senders)
        for i in range(2):
            assert_tone(listened[i], 8000, replies[i], what=f"browser {i} heard")
            received = ulaw_decode(b"".join(heard[i]))
            assert_tone(received, 8000, (600, 1400)[i], what=f"call {i} heard")
    finally:
        for leg in legs:
            await leg.close()
        for browser in browsers:
            await browser.pc.close()
    await asyncio.sleep(0)  # the closed transports tell their protocols
    assert mux.calls == 0


def binding_request(username: str, key: bytes) -> stun.Message:
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    request.attributes["USERNAME"] = username
    request.attributes["PRIORITY"] = 1
    request.attributes["ICE-CONTROLLING"] = 1
    request.add_message_integrity(key)
    request.add_fingerprint()
    return request


async def test_checks_for_no_call_are_dropped_unanswered_and_cost_no_state(mux):
    (address,) = mux.addresses
    browser = Browser(600)
    leg, answer = await call(mux, browser)
    try:
        (shared,) = mux._sockets.values()
        # Media datagrams are dispatched in C (gateway/media/_icedemux.c); what it does not
        # know (strangers' garbage below) goes on to the Python method, which counts it.
        assert type(shared.datagram_received).__name__ == "Demux"
        tables = (dict(shared._by_ufrag), dict(shared._by_address), dict(shared._by_transaction))
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        # An unknown fragment, then a flood of random ones and of garbage.
        flood = [bytes(binding_request("nosuchcall:x", b"k" * 22))]
        for _ in range(1000):
            ufrag = os.urandom(6).hex()
            flood.append(bytes(binding_request(f"{ufrag}:{ufrag}", os.urandom(22))))
        flood += [b"", b"\x00", b"\x00\x01\x00\x00", bytes(19), os.urandom(200), b"\x17" * 50]
        ignored = mux.ignored
        for datagram in flood:
            await loop.sock_sendto(sock, datagram, address)
        # Then a check for the call with a wrong password: answered (401) in its turn.
        sentinel = binding_request(f"{ufrag_of(answer)}:x", b"wrong-password-wrong-pw")
        await loop.sock_sendto(sock, bytes(sentinel), address)
        reply = stun.parse_message(await asyncio.wait_for(loop.sock_recv(sock, 2048), 10))
        # Datagrams are handled in order: an answer to any of the flood would be first.
        assert reply.transaction_id == sentinel.transaction_id
        assert reply.attributes["ERROR-CODE"][0] == 401
        assert mux.ignored - ignored == len(flood)
        assert (
            dict(shared._by_ufrag),
            dict(shared._by_address),
            dict(shared._by_transaction),
        ) == tables
        sock.close()
    finally:
        await leg.close()
        await browser.pc.close()


def attribute(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + bytes(-len(value) % 4)


def stun_request(attributes: bytes, length: int | None = None) -> bytes:
    size = len(attributes) if length is None else length
    return struct.pack("!HHI", 1, size, 0x2112A442) + bytes(12) + attributes


@pytest.mark.parametrize(
    ("datagram", "expected"),
    [
        (stun_request(attribute(6, b"abcd:efgh")), b"abcd"),
        (stun_request(attribute(0x24, bytes(4)) + attribute(6, b"abcd:e")), b"abcd"),
        (stun_request(attribute(6, b"abcdefgh")), None),  # no colon
        (stun_request(attribute(6, b":efgh")), None),  # no fragment of ours
        (stun_request(attribute(6, b"abcd:efgh"), length=400), None),  # longer than sent
        (stun_request(attribute(6, b"abcd:efgh")[:6]), None),  # value cut short
        (stun_request(struct.pack("!HH", 6, 9000) + b"ab:cd"), None),  # value past the end
        (stun_request(attribute(0x24, bytes(4)) * 20 + attribute(6, b"abcd:e")), None),
        (stun_request(b""), None),
    ],
)
def test_the_fragment_is_read_from_bounded_stun(datagram, expected):
    assert local_ufrag(datagram) == expected
