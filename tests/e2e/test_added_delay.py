"""The delay the gateway adds to each frame, in both directions, with 2% packet loss.

A WebRTC peer (aiortc, standing in for the browser) and a SIP phone (sip_bridge) exchange
numbered G.711 frames through the real gateway; each frame's number rides in its payload, so
its one-way trip through the gateway is measured exactly. Stock aiortc would add 80 ms and,
after the first loss, ratchet to ~300 ms (DESIGN.md); the gateway must not inherit that.
"""

from __future__ import annotations

import asyncio
import fractions
import random
import statistics
import struct
import time

import av
import socketio
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from sip_bridge.asyncio.call_media import CallMedia
from sip_bridge.asyncio.endpoint import SipCall, SipEndpoint
from sip_bridge.useragent import UserAgentConfig
from tests.support.ports import free_port_block, free_udp_port

from .conftest import call_token

FRAMES = 400  # 8 s per direction
LOSS = 0.02
FRAME = 0.02
BOUND_P99 = 0.025  # seconds the gateway may add, 99th percentile
BOUND_MEDIAN = 0.010


def numbered(index: int) -> bytes:
    return struct.pack("!I", index) + bytes(156)


def number_of(payload) -> int:
    return struct.unpack_from("!I", bytes(payload[:4]))[0]


class NumberedFrames(MediaStreamTrack):
    """Sends numbered PCMU frames every 20 ms, losing 2% of them on the way."""

    kind = "audio"

    def __init__(self, lost: set[int]) -> None:
        super().__init__()
        self.sent: dict[int, float] = {}
        self._lost = lost
        self._index = 0
        self._start: float | None = None

    async def recv(self) -> av.Packet:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        while True:
            index = self._index
            self._index += 1
            await asyncio.sleep(max(0.0, self._start + index * FRAME - loop.time()))
            if index >= FRAMES:
                await asyncio.sleep(3600)
            if index in self._lost:
                continue  # lost on the visitor's network: the timestamp moves on
            packet = av.Packet(numbered(index))
            packet.pts = index * 160
            packet.time_base = fractions.Fraction(1, 8000)
            self.sent[index] = time.monotonic()
            return packet


def lost_frames(seed: int) -> set[int]:
    rng = random.Random(seed)
    return {i for i in range(FRAMES) if rng.random() < LOSS}


def delays(sent: dict[int, float], received: dict[int, float]) -> list[float]:
    return [received[i] - sent[i] for i in sorted(received) if i in sent]


async def test_added_delay_with_loss_on_either_leg(gateway_factory):
    phone_port = free_udp_port()
    rtp = free_port_block(10)
    from_browser: dict[int, float] = {}
    to_browser_sent: dict[int, float] = {}
    phone_tasks = []

    phone = await SipEndpoint.open(
        UserAgentConfig(address=("127.0.0.1", phone_port), user="operator", accept_incoming=True)
    )
    medias: list[CallMedia] = []

    async def answer(call: SipCall) -> None:
        media = await CallMedia.open("127.0.0.1", (rtp, rtp + 9), codecs=["PCMU"])
        medias.append(media)
        call.answer(media.answer(call.incoming.sdp))
        media.rtp.on_audio_packet = lambda payload, ts: from_browser.setdefault(
            number_of(payload), time.monotonic()
        )
        lost = lost_frames(2)
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.5
        previous = -1
        for index in range(FRAMES):
            await asyncio.sleep(max(0.0, start + index * FRAME - loop.time()))
            if index in lost:
                continue  # lost on the phone's network: a gap in the timestamps
            to_browser_sent[index] = time.monotonic()
            media.rtp.relay_payload(numbered(index), 160 * (index - previous))
            previous = index

    phone.on_incoming = lambda call: phone_tasks.append(asyncio.create_task(answer(call)))
    gateway = await gateway_factory(destination=f"sip:operator@127.0.0.1:{phone_port}")

    pc = RTCPeerConnection()
    track = NumberedFrames(lost_frames(1))
    pc.addTrack(track)
    to_browser: dict[int, float] = {}
    client = socketio.AsyncClient(reconnection=False)
    try:
        await pc.setLocalDescription(await pc.createOffer())
        await client.connect(
            gateway.url,
            transports=["websocket"],
            auth={"site": "shop", "token": await call_token(gateway)},
            headers={"Origin": gateway.config.http.public_origin},
        )
        ack = await client.call("call:start", {"sdp": pc.localDescription.sdp}, timeout=10)
        assert ack["ok"], ack

        (receiver,) = [t.receiver for t in pc.getTransceivers()]

        async def record(packet, arrival_time_ms) -> None:
            to_browser.setdefault(number_of(packet.payload), time.monotonic())

        receiver._handle_rtp_packet = record
        await pc.setRemoteDescription(RTCSessionDescription(ack["sdp"], "answer"))
        await asyncio.sleep(FRAMES * FRAME + 1.5)
        await client.call("call:hangup", {}, timeout=5)
    finally:
        await client.disconnect()
        await pc.close()
        for task in phone_tasks:
            task.cancel()
        for media in medias:
            await media.close()
        await phone.close()

    for name, sent, received, lost in [
        ("browser -> SIP", track.sent, from_browser, lost_frames(1)),
        ("SIP -> browser", to_browser_sent, to_browser, lost_frames(2)),
    ]:
        measured = delays(sent, received)
        assert len(measured) >= len(sent) - 3, f"{name}: frames lost in the gateway"
        assert not (set(received) & lost), f"{name}: frames appeared that were never sent"
        measured.sort()
        median = statistics.median(measured)
        p99 = measured[int(len(measured) * 0.99) - 1]
        late_half = statistics.median(
            delays({i: t for i, t in sent.items() if i > FRAMES // 2}, received)
        )
        print(
            f"{name}: {len(measured)} frames, added delay median {median * 1000:.2f} ms, "
            f"p99 {p99 * 1000:.2f} ms, second half median {late_half * 1000:.2f} ms"
        )
        assert median < BOUND_MEDIAN, f"{name}: median added delay {median * 1000:.1f} ms"
        assert p99 < BOUND_P99, f"{name}: p99 added delay {p99 * 1000:.1f} ms"
        # No ratchet: after the losses of the first half, the delay has not grown.
        assert late_half < median + 0.005
