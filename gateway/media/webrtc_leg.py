"""The browser's leg of a call: one aiortc peer connection, used at the RTP level.

aiortc is kept for what it does well (ICE, DTLS-SRTP keys, RTCP) and bypassed where it
would cost latency or CPU (DESIGN.md): once connected, audio RTP goes straight over the ICE
pair with aiortc's SRTP keys (`SrtpAudioChannel`), received frames are handed to the bridge
as they arrive (never through aiortc's fixed jitter buffer and decoder thread), and frames
are sent already encoded. Should that take-over fail (a changed aiortc), aiortc's own path
carries the audio: its receiver is tapped before the jitter buffer and its sender is fed
encoded frames (`av.Packet`), so it never encodes in a thread either.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence

import aioice.ice
import av
from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.exceptions import InvalidAccessError, InvalidStateError, OperationError
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.sdp import candidate_from_sdp

from gateway.config.legs import BrowserLegSettings
from gateway.media.dtls_certificate import share_certificate
from gateway.media.ice_mux import IceMux
from gateway.media.ice_policy import CandidatePolicy, CheckBudget
from gateway.media.ice_servers import IceServers
from gateway.media.quality import LegQuality
from gateway.media.srtp_channel import SrtpAudioChannel
from gateway.media.transcoder import AudioCodec, audio_codec

logger = logging.getLogger(__name__)

# Frames waiting for aiortc's sender; more means the sender is stalled (not connected yet):
# older audio is dropped rather than played late.
MAX_QUEUED_FRAMES = 5


def use_host_addresses(addresses: Sequence[str]) -> None:
    """Make aioice gather host candidates on exactly these addresses.

    aioice gathers on every interface except 127.0.0.1; the gateway needs the configured
    set instead: loopback in tests, the public address on a server.
    """
    chosen = list(addresses)
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: list(chosen)


class OutboundAudioTrack(MediaStreamTrack):
    """An audio track whose frames are already encoded: aiortc only packetizes them."""

    kind = "audio"

    def __init__(self, clock_rate: int) -> None:
        super().__init__()
        self._time_base = fractions.Fraction(1, clock_rate)
        self._queue: deque[av.Packet] = deque(maxlen=MAX_QUEUED_FRAMES)
        self._ready = asyncio.Event()

    def push(self, payload: bytes, timestamp: int) -> None:
        packet = av.Packet(payload)
        packet.pts = timestamp
        packet.time_base = self._time_base
        self._queue.append(packet)
        self._ready.set()

    async def recv(self) -> av.Packet:
        while not self._queue:
            if self.readyState != "live":
                raise MediaStreamError
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()

    def stop(self) -> None:
        super().stop()
        self._ready.set()


# The Opus fmtp parameters of an answer to a browser whose calls reach narrowband phones.
NARROWBAND_OPUS = {"maxplaybackrate": 8000, "sprop-maxcapturerate": 8000}


class WebRtcLeg:
    """Answers the browser's offer and exchanges encoded audio frames with it.

    Candidates the browser signals (in the offer or trickled) pass `CandidatePolicy`, and
    the agent's connectivity checks are bounded by a `CheckBudget` (gateway.media.ice_policy).
    """

    def __init__(
        self,
        settings: BrowserLegSettings,
        *,
        clock: Callable[[], float] = time.time,
        ice_mux: IceMux | None = None,
    ) -> None:
        """`ice_mux`: the worker's shared ICE port (`[ice] port`); None: aioice binds
        sockets of the leg's own."""
        servers = [
            RTCIceServer(urls=s["urls"], username=s.get("username"), credential=s.get("credential"))
            for s in IceServers(
                settings.ice_servers, settings.turn_credential_lifetime, clock=clock
            ).for_gateway()
        ]
        # An explicit list, even empty: aiortc falls back to a public STUN server otherwise.
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
        share_certificate(self.pc)  # one DTLS certificate and context per worker
        self._ice_mux = ice_mux
        self._browser_codecs = [c.lower() for c in settings.codecs]
        self._narrowband = settings.narrowband_phones
        self.candidates = CandidatePolicy(settings.denied_candidate_networks)
        self.checks = CheckBudget(settings.max_checks_per_call)
        self.codec: AudioCodec | None = None
        self._track: OutboundAudioTrack | None = None
        self._channel: SrtpAudioChannel | None = None
        # Until connected, frames are dropped; then they go over the channel, or through
        # aiortc's sender if the channel could not take over.
        self._send_through_aiortc = False
        self._pts = 0
        self.on_packet: Callable[[bytes | memoryview, int], None] | None = None
        self.on_failed: Callable[[str], None] | None = None
        self.connected = asyncio.Event()
        self._closed = False
        # Called before this leg changes while its path runs in C (gateway.media.native_relay).
        self.native_guard: Callable[[], None] | None = None
        self.pc.on("connectionstatechange", self._on_state)

    async def answer(self, offer_sdp: str) -> str:
        """Apply the browser's offer; return our answer (ICE gathered). Raises ValueError."""
        offer_sdp, dropped = self.candidates.filter_offer(offer_sdp)
        if dropped:
            logger.debug("%d candidates of the offer dropped (ice_policy)", dropped)
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        except OperationError as exc:
            raise ValueError(f"unusable SDP offer: {exc}") from None
        except (
            ValueError,
            AssertionError,
            KeyError,
            IndexError,
            TypeError,
            InvalidAccessError,
            InvalidStateError,
        ) as exc:
            # aiortc's SDP parser reports malformed input with whatever it hit.
            raise ValueError(f"malformed SDP offer: {exc!r}") from None
        # Before the answer starts them: every check of this call is counted.
        self.checks.apply(self._ice_connections())
        audio = [t for t in self.pc.getTransceivers() if t.kind == "audio"]
        if len(audio) != 1:
            raise ValueError("the offer must have exactly one audio stream")
        transceiver = audio[0]
        if self._ice_mux is not None:
            # Before the answer names our username fragment and gathering binds sockets.
            self._ice_mux.adopt(transceiver.sender.transport.transport.iceGatherer._connection)
        chosen = self._choose_codec(transceiver._codecs)
        if chosen is None:
            raise ValueError("the offer has no audio codec the gateway accepts")
        # One codec in the answer: the browser cannot switch codecs mid-call under us.
        transceiver._codecs = [chosen]
        if self._narrowband and chosen.mimeType.lower() == "audio/opus":
            # RFC 7587: we play (and capture) no more than 8 kHz-sampled audio, since the
            # phone takes no more; Chromium then limits its encoder to narrowband
            # (OPUS_SET_MAX_BANDWIDTH), cheaper to decode, with nothing lost to the phone.
            chosen.parameters = {**chosen.parameters, **NARROWBAND_OPUS}
        self.codec = audio_codec(chosen.mimeType.split("/", 1)[1])
        self._track = OutboundAudioTrack(chosen.clockRate)
        transceiver.sender.replaceTrack(self._track)
        self._channel = SrtpAudioChannel(
            transceiver, chosen.payloadType, self.on_packet, clock_rate=chosen.clockRate
        )
        transceiver.direction = "sendrecv"
        self._tap_receiver(transceiver.receiver)
        answer = await self.pc.createAnswer()
        await self.pc.setLocalDescription(answer)
        return self.pc.localDescription.sdp

    def _ice_connections(self) -> list[aioice.Connection]:
        """The aioice connections of the peer connection (one with BUNDLE)."""
        transports = [t.receiver.transport for t in self.pc.getTransceivers()]
        if self.pc.sctp is not None:
            transports.append(self.pc.sctp.transport)
        return [dtls.transport.iceGatherer._connection for dtls in transports if dtls is not None]

    def _choose_codec(self, common: Sequence):
        """The first codec of our policy that the browser offered (aiortc has already
        intersected the offer with what it supports, keeping the browser's payload types)."""
        for name in self._browser_codecs:
            for codec in common:
                if codec.mimeType.lower().split("/", 1)[1] == name:
                    return codec
        return None

    def _tap_receiver(self, receiver) -> None:
        """Take packets before aiortc's jitter buffer, and stop its decoder thread."""

        async def handle_rtp_packet(packet, arrival_time_ms: int) -> None:
            if self.on_packet is not None and packet.payload:
                self.on_packet(packet.payload, packet.timestamp)

        receiver._handle_rtp_packet = handle_rtp_packet
        original_receive = receiver.receive

        async def receive(parameters) -> None:
            await original_receive(parameters)
            # The decoder thread would only decode frames nobody reads.
            receiver._RTCRtpReceiver__stop_decoder()

        receiver.receive = receive

    def listen(self, handler: Callable[[bytes | memoryview, int], None] | None) -> None:
        """Hand each received audio payload and its RTP timestamp to `handler` (the payload
        may be a view valid only until the handler returns)."""
        if self.native_guard is not None:
            self.native_guard()
        self.on_packet = handler
        if self._channel is not None:
            self._channel.on_packet = handler

    def send(self, payload: bytes | memoryview, frames: int | None = 1) -> None:
        """Queue one encoded 20 ms frame for the browser, `frames` slots after the previous
        one (more than 1 leaves a gap for frames lost upstream; None counts as 1)."""
        if self.native_guard is not None:
            self.native_guard()
        if self._closed or self._channel is None or self.codec is None:
            return  # (the codec, the track and the channel are set together by answer())
        self._pts += (frames or 1) * self.codec.frame_ticks
        if self._channel.attached:
            self._channel.send(payload, self._pts, marker=self._channel.packets_sent == 0)
        elif self._send_through_aiortc and self._track is not None:
            self._track.push(bytes(payload), self._pts)

    async def add_candidate(
        self, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None
    ) -> None:
        """A trickled browser candidate ("candidate:..." line). Raises ValueError."""
        text = candidate.removeprefix("candidate:")
        if not text:
            return  # end of candidates: aioice checks what it has either way
        try:
            parsed = candidate_from_sdp(text)
        except (AssertionError, ValueError, IndexError) as exc:
            raise ValueError(f"malformed ICE candidate: {exc}") from None
        if not self.candidates.allows(parsed.ip):
            return  # mDNS names, denied networks (gateway.media.ice_policy)
        parsed.sdpMid = sdp_mid
        parsed.sdpMLineIndex = sdp_mline_index
        await self.pc.addIceCandidate(parsed)

    def _on_state(self) -> None:
        state = self.pc.connectionState
        if state == "connected":
            if self._channel is not None and not self._channel.attached:
                self._send_through_aiortc = not self._channel.attach()
                if self._send_through_aiortc:
                    logger.warning("audio goes through aiortc's media path (slower)")
            self.connected.set()
        elif state in ("failed", "closed") and not self._closed and self.on_failed is not None:
            self.on_failed(state)

    def quality(self) -> LegQuality | None:
        """The browser leg's media so far (None before an answer): what reached us, and
        what the browser reported over RTCP about what we sent (aiortc keeps its last
        reception report and the round trip it measured from it)."""
        channel, codec = self._channel, self.codec
        if channel is None or codec is None:
            return None
        remote = None
        sender = channel._transceiver.sender
        stats = getattr(sender, "_RTCRtpSender__stats", None)
        if stats is not None:
            remote = next((s for s in stats.values() if s.type == "remote-inbound-rtp"), None)
        sent = channel.packets_sent
        reception = channel.reception  # aiortc's statistics of the browser's stream
        return LegQuality.measure(
            codec.name,
            sent=sent,
            received=reception.packets_received if reception is not None else 0,
            lost_here=reception.packets_lost if reception is not None else 0,
            jitter_here=reception.jitter / codec.clock_rate if reception is not None else 0.0,
            lost_there=(remote.packetsLost / sent) if remote is not None and sent else None,
            jitter_there=(remote.jitter / codec.clock_rate) if remote is not None else None,
            round_trip=remote.roundTripTime if remote is not None else None,
        )

    async def close(self) -> None:
        if self._closed:
            return
        if self.native_guard is not None:
            self.native_guard()
        self._closed = True
        if self._channel is not None:
            self._channel.detach()
        if self._track is not None:
            self._track.stop()
        with contextlib.suppress(Exception):
            await self.pc.close()
