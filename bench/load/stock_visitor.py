"""A visitor that is a stock aiortc peer (`--generator-media aiortc`): an independent client.

The other visitors (bench/load/visitor.py) look like Chromium on the wire and carry their
media on our own path. This one uses only aiortc's public media path, as an aiortc
application would, so that the gateway is also judged by a client that is not ours:

- the offer is aiortc's own (`createOffer()`; G.711 only, via `setCodecPreferences`),
  its candidates in it (nothing trickled);
- the audio is a `MediaStreamTrack` whose `recv()` paces itself like aiortc's
  `AudioStreamTrack` (sleeps to the call's next 20 ms slot, each call on its own phase)
  and returns the pre-encoded PCMU frames as `av.Packet`, which aiortc's sender packs
  without encoding; no send jitter is added;
- aiortc's RTCP (SR/RR every 0.5-1.5 s) and aioice's consent checks (every 5 s) and its
  SRTP profile choice are left as they are; only the host candidates are limited to
  127.0.0.1 (aioice skips loopback addresses);
- the echo is read from the remote track (`recv()`: aiortc's jitter buffer and decoder
  thread), so frames on time, the round trip of the tone onsets and the tone's frequency
  are measured on decoded frames after aiortc's jitter buffer: its delay (4 frames of
  prefetch) is in the round trip, and a frame it dropped counts as lost.

What Visitor measures and this one does not: the audio level header extension and the
RTCP reports are aiortc's, not Chromium's, so the server sees fewer and other packets
than from a browser (bench/load/capture.py counts them).
"""

from __future__ import annotations

import asyncio
import fractions
import time

import aioice.ice
import av
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .browser_media import FRAME
from .visitor import Visitor

HOST = "127.0.0.1"
PCMU_TIME_BASE = fractions.Fraction(1, 8000)
SAMPLES = 160  # one 20 ms PCMU frame


def stock_ice() -> None:
    """aioice on loopback: host candidates on 127.0.0.1 (aioice skips loopback); nothing
    else of aiortc's or aioice's behaviour is changed."""
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [HOST]


class PacedPcmuTrack(MediaStreamTrack):
    """The visitor's voice: its PCMU frames, one per 20 ms on the call's own clock."""

    kind = "audio"

    def __init__(self, visitor: StockVisitor) -> None:
        super().__init__()
        self.visitor = visitor
        self.k = 0
        self.first_due: float | None = None

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        visitor = self.visitor
        if self.first_due is None:
            self.first_due = visitor.first_due(time.monotonic())
        k = self.k
        due = self.first_due + k * FRAME
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        now = time.monotonic()
        visitor.lateness.note(now, now - due)
        packet = av.Packet(visitor.frames[k % len(visitor.frames)])
        packet.pts = k * SAMPLES
        packet.time_base = PCMU_TIME_BASE
        self.k = k + 1
        visitor.on_sent(k, now)
        return packet


class StockMedia:
    """The call's media once connected: aiortc sends the track; the echo is read here."""

    def __init__(self, visitor: StockVisitor, remote: MediaStreamTrack) -> None:
        self._reading = asyncio.ensure_future(self._read(visitor, remote))

    @staticmethod
    async def _read(visitor: StockVisitor, remote: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await remote.recv()
            except MediaStreamError:
                return
            visitor.on_echo(frame.pts, frame.to_ndarray().reshape(-1))

    def stop(self) -> None:
        self._reading.cancel()


class StockVisitor(Visitor):
    """One call placed by a stock aiortc peer connection (G.711 only)."""

    async def _negotiate(self, pc: RTCPeerConnection) -> tuple[float, str]:
        if self.codec != "pcmu":
            raise ValueError("the stock aiortc visitor sends G.711 (pcmu) only")
        self._track = PacedPcmuTrack(self)
        self._transceiver = pc.addTransceiver(self._track, direction="sendrecv")
        self._transceiver.setCodecPreferences(
            [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.name == "PCMU"]
        )
        await pc.setLocalDescription(await pc.createOffer())
        started = time.monotonic()
        self.stage = "waiting for the answer"
        answer = await self.signaling.call(pc.localDescription.sdp, [])
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        return started, answer

    def _start_media(self, pc: RTCPeerConnection, answer: str) -> None:
        self.media = StockMedia(self, self._transceiver.receiver.track)


__all__ = ["PacedPcmuTrack", "StockVisitor", "stock_ice"]
