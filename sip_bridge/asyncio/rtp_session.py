"""`RtpSession`: the asyncio RTP/RTCP endpoint of one SIP call leg.

One session owns a UDP socket pair (RTP on an even port, RTCP on the next), sends
from the port it receives on (symmetric RTP), and glues the sans-I/O parts
together: packetizer, codec, jitter buffer, loss concealment, RFC 4733 events,
RTCP statistics. Media is pushed with `send_payload()`/`send_pcm()` and pulled
with `read_payload()`/`read_pcm()`, one frame per packet time, by the caller's
own clock (see `player.py` for a paced player and recorder).

Source latching: until the first valid RTP packet is accepted, packets are taken
from the address the SDP gave (or from anywhere when `latch_any_source` is set,
for peers behind NAT); from then on only that address is heard and media is sent
back to it. Packets from every other address are dropped and counted
(`stats.foreign_source_dropped`), which closes the "RTP bleed" hole.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sip_bridge.asyncio.rtp_ports import RtpPortsExhaustedError, bind_port_pair
from sip_bridge.rtp.codecs import (
    BYTE_PER_TICK,
    AudioDecoder,
    AudioEncoder,
    CodecInfo,
    codec_by_name,
)
from sip_bridge.rtp.concealment import LossConcealer
from sip_bridge.rtp.dtmf import (
    DTMF_DIGITS,
    DtmfDigit,
    DtmfPacket,
    DtmfParseError,
    DtmfReceiver,
    dtmf_event_packets,
)
from sip_bridge.rtp.g722 import G722Error
from sip_bridge.rtp.jitter import LOST, JitterBuffer, JitterBufferStats, PlayoutGap
from sip_bridge.rtp.packet import RtpPacketizer, RtpParseError, is_rtcp, parse_rtp
from sip_bridge.rtp.repacketize import Repacketizer
from sip_bridge.rtp.rtcp import (
    Bye,
    ReceiverReport,
    ReceptionStatistics,
    RtcpPacket,
    RtcpParseError,
    SenderReport,
    build_rtcp,
    cname_chunk,
    ntp_timestamp,
    parse_rtcp,
    round_trip_time,
)

__all__ = ["DIRECTIONS", "RtpPortsExhaustedError", "RtpSession", "RtpSessionStats"]

Address = tuple[str, int]

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
COMFORT_NOISE_PT = 13  # RFC 3389: silence; nothing to play
# A gap between frames from the caller longer than this is a pause of the source
# (mute, hold, silence), not scheduling jitter; a paced caller that falls behind
# less than this catches up with a burst, whose frames must stay contiguous.
_PAUSE_SECONDS = 0.25


@dataclass(slots=True)
class RtpSessionStats:
    """Counters of one session; `jitter` is the live jitter buffer's stats."""

    packets_sent: int = 0
    octets_sent: int = 0
    packets_received: int = 0
    malformed_rtp: int = 0
    malformed_rtcp: int = 0
    malformed_dtmf: int = 0
    foreign_source_dropped: int = 0
    unexpected_payload_type: int = 0
    comfort_noise: int = 0
    ssrc_changes: int = 0
    dtmf_digits_received: int = 0
    dtmf_events_sent: int = 0
    rtcp_sent: int = 0
    rtcp_received: int = 0
    bye_received: bool = False
    # From the reception reports the peer sent about our stream:
    remote_fraction_lost: float | None = None
    remote_cumulative_lost: int | None = None
    remote_jitter: float | None = None  # seconds
    round_trip_time: float | None = None  # seconds
    jitter: JitterBufferStats = field(default_factory=JitterBufferStats)


class _Endpoint(asyncio.DatagramProtocol):
    """Forwards datagrams of one socket to the session; tells when it is closed."""

    def __init__(self, on_datagram: Callable[[bytes, tuple], None]) -> None:
        self.on_datagram = on_datagram
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable from a peer not listening yet: UDP carries on.
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class RtpSession:
    """RTP/RTCP endpoint of one call leg; create with `await RtpSession.open(...)`."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        rtp_transport: asyncio.DatagramTransport,
        rtp_endpoint: _Endpoint,
        rtcp_transport: asyncio.DatagramTransport,
        rtcp_endpoint: _Endpoint,
        local_address: Address,
        cname: str,
    ) -> None:
        self._loop = loop
        self._rtp_transport = rtp_transport
        self._rtp_endpoint = rtp_endpoint
        self._rtcp_transport = rtcp_transport
        self._rtcp_endpoint = rtcp_endpoint
        self.local_host, self.local_port = local_address
        self.local_rtcp_port = self.local_port + 1
        self.cname = cname
        self._stats = RtpSessionStats()
        self.received_digits: asyncio.Queue[DtmfDigit] = asyncio.Queue()
        self.on_dtmf: Callable[[DtmfDigit], None] | None = None
        self.on_media_timeout: Callable[[], None] | None = None
        self.on_bye: Callable[[], None] | None = None
        # Relay mode: when set, each audio packet is handed over on arrival (payload,
        # timestamp) instead of entering the jitter buffer. A bridge forwarding to another
        # leg adds no buffering delay of its own; the far endpoint's buffer absorbs jitter.
        self.on_audio_packet: Callable[[memoryview, int], None] | None = None
        # Called before anything here changes while a native relay (gateway.media.
        # native_relay) carries this session's audio: it hands the state back first.
        self.native_guard: Callable[[], None] | None = None
        self._started = False
        self._closed = False
        self._tasks: set[asyncio.Task] = set()
        self._dtmf_lock = asyncio.Lock()

    # -- lifecycle ------------------------------------------------------------------

    @classmethod
    async def open(
        cls, host: str, port_range: tuple[int, int], *, cname: str | None = None
    ) -> RtpSession:
        """Bind the next free RTP/RTCP port pair on `host` within `port_range`.

        Raises `RtpPortsExhaustedError` when the range has no free pair.
        """
        loop = asyncio.get_running_loop()
        rtp_socket, rtcp_socket = bind_port_pair(host, port_range)
        try:
            rtp_transport, rtp_endpoint = await loop.create_datagram_endpoint(
                lambda: _Endpoint(_ignore), sock=rtp_socket
            )
        except BaseException:
            rtp_socket.close()
            rtcp_socket.close()
            raise
        try:
            rtcp_transport, rtcp_endpoint = await loop.create_datagram_endpoint(
                lambda: _Endpoint(_ignore), sock=rtcp_socket
            )
        except BaseException:
            rtp_transport.close()
            rtcp_socket.close()
            raise
        local_address = rtp_socket.getsockname()[:2]
        session = cls(
            loop,
            rtp_transport,
            rtp_endpoint,
            rtcp_transport,
            rtcp_endpoint,
            local_address,
            # RFC 7022: a random CNAME, which reveals nothing about the host.
            cname or f"{random.getrandbits(96):024x}",
        )
        rtp_endpoint.on_datagram = session._on_rtp_datagram
        rtcp_endpoint.on_datagram = session._on_rtcp_datagram
        return session

    def start(
        self,
        remote: Address | None,
        codec: str = "PCMU",
        *,
        send_payload_type: int | None = None,
        recv_payload_type: int | None = None,
        dtmf_send_pt: int | None = 101,
        dtmf_recv_pt: int | None = 101,
        ptime: int = 20,
        remote_rtcp: Address | None = None,
        rtcp_mux: bool = False,
        remote_direction: str = "sendrecv",
        latch_any_source: bool = False,
        media_timeout: float | None = None,
        rtcp_interval: float = 5.0,
        jitter_min_delay: float = 0.02,
        jitter_max_delay: float = 0.2,
    ) -> None:
        """Start media with the negotiated parameters.

        `remote` is the SDP address (None: learn it from the first packet).
        `remote_direction` is the direction attribute of the remote SDP: we send
        only if the remote receives (sendrecv/recvonly), and the media timeout is
        armed only while it sends (sendrecv), so holds do not end the call.
        """
        if self._closed:
            raise RuntimeError("RTP session is closed")
        if self._started:
            raise RuntimeError("RTP session already started; use update_remote()")
        if remote_direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {remote_direction!r}")
        self._jitter_delays = (jitter_min_delay, jitter_max_delay)
        self._packetizer = RtpPacketizer(0)
        self._configure_codec(
            codec, send_payload_type, recv_payload_type, dtmf_send_pt, dtmf_recv_pt, ptime
        )
        self._next_timestamp = random.getrandbits(32)
        self._last_send_time: float | None = None
        self._last_report_packets = 0
        self._dtmf_active = False
        self._last_relay_timestamp: int | None = None
        self._reception: ReceptionStatistics | None = None
        self._last_rtp_time = 0.0
        self._rtcp_interval = rtcp_interval
        self._rtcp_mux = rtcp_mux
        self._latch_any = latch_any_source
        self._media_timeout = media_timeout
        self._set_remote(remote, remote_rtcp, remote_direction)
        self._started = True
        self._spawn(self._rtcp_loop())
        if media_timeout is not None:
            self._spawn(self._watchdog_loop())

    def _configure_codec(
        self,
        codec: str,
        send_payload_type: int | None,
        recv_payload_type: int | None,
        dtmf_send_pt: int | None,
        dtmf_recv_pt: int | None,
        ptime: int,
    ) -> None:
        info = codec_by_name(codec)
        self.codec: CodecInfo = info
        self.ptime = ptime
        self.frame_samples = info.samples_per_frame(ptime)
        self._ptime_seconds = ptime / 1000
        self._timestamp_step = info.timestamp_step(ptime)
        self._send_pt = info.payload_type if send_payload_type is None else send_payload_type
        self._recv_pt = info.payload_type if recv_payload_type is None else recv_payload_type
        self._dtmf_send_pt = dtmf_send_pt
        self._dtmf_recv_pt = dtmf_recv_pt
        self._encoder: AudioEncoder = info.create_encoder(ptime)
        self._decoder: AudioDecoder = info.create_decoder()
        self._concealer = LossConcealer(self.frame_samples, info.sample_rate)
        self._jitter: JitterBuffer[memoryview] = JitterBuffer(
            info.clock_rate,
            self._timestamp_step,
            min_delay=self._jitter_delays[0],
            max_delay=self._jitter_delays[1],
        )
        self._stats.jitter = self._jitter.stats
        self._dtmf_receiver = DtmfReceiver(info.clock_rate)
        self._packetizer.payload_type = self._send_pt
        # Relayed frames are 20 ms; a peer that asked for another packet time gets its
        # packets re-cut where the codec allows it (one byte per RTP tick).
        self._byte_per_tick = info.name.upper() in BYTE_PER_TICK
        self._relay_frame_ticks = info.timestamp_step(20)
        self._repacketizer = (
            Repacketizer(self._timestamp_step) if self._byte_per_tick and ptime != 20 else None
        )

    def change_codec(
        self,
        codec: str,
        *,
        send_payload_type: int | None = None,
        recv_payload_type: int | None = None,
        dtmf_send_pt: int | None = None,
        dtmf_recv_pt: int | None = None,
        ptime: int = 20,
    ) -> None:
        """Apply a re-INVITE that changed the codec or the packet time: encoder, decoder,
        payload types and jitter buffer are replaced; the SSRC and sequence numbers go on,
        and the next packet carries the marker bit (a new talkspurt for the receiver)."""
        if self.native_guard is not None:
            self.native_guard()
        self._require_started()
        self._configure_codec(
            codec, send_payload_type, recv_payload_type, dtmf_send_pt, dtmf_recv_pt, ptime
        )
        self._reception = None
        self._last_relay_timestamp = None
        self._last_send_time = None

    def update_remote(
        self,
        remote: Address | None,
        *,
        remote_rtcp: Address | None = None,
        remote_direction: str = "sendrecv",
    ) -> None:
        """Apply a re-INVITE: new remote address and/or direction.

        A changed address drops the latch: the next packet from the new SDP
        address (or any, with `latch_any_source`) is latched afresh.
        """
        if self.native_guard is not None:
            self.native_guard()
        self._require_started()
        if remote_direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {remote_direction!r}")
        self._set_remote(remote, remote_rtcp, remote_direction)

    def _set_remote(
        self, remote: Address | None, remote_rtcp: Address | None, direction: str
    ) -> None:
        if not self._started or remote != self._remote:
            self._remote: Address | None = remote
            self._latched: Address | None = None
            self._send_address = remote
            self._rtcp_latched: Address | None = None
        self._remote_rtcp = remote_rtcp
        self._remote_direction = direction
        self._sending = direction in ("sendrecv", "recvonly")
        # Hold or resume: the silence before now must not count toward the timeout.
        self._timeout_reference = self._loop.time()
        self._timeout_fired = False

    async def close(self) -> None:
        """Send RTCP BYE, stop every task, and close both sockets (idempotent)."""
        if self._closed:
            return
        if self.native_guard is not None:
            self.native_guard()
        self._closed = True
        if self._started:
            with contextlib.suppress(OSError):
                self._send_rtcp(goodbye=True)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._rtp_transport.close()
        self._rtcp_transport.close()
        await asyncio.gather(self._rtp_endpoint.closed, self._rtcp_endpoint.closed)

    async def __aenter__(self) -> RtpSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def stats(self) -> RtpSessionStats:
        """Counters of this session (sent counters are read from the packetizer)."""
        if self._started:
            self._stats.packets_sent = self._packetizer.packets_sent
            self._stats.octets_sent = self._packetizer.octets_sent
        return self._stats

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def remote_address(self) -> Address | None:
        """Where media goes: the latched source, else the SDP address."""
        return self._send_address if self._started else None

    @property
    def reception(self) -> ReceptionStatistics | None:
        """RFC 3550 statistics of the current remote source (None before any RTP)."""
        return self._reception if self._started else None

    @property
    def target_delay(self) -> float:
        """The jitter buffer's current target delay in seconds."""
        self._require_started()
        return self._jitter.target_delay

    def _require_started(self) -> None:
        if not self._started:
            raise RuntimeError("RTP session not started")
        if self._closed:
            raise RuntimeError("RTP session is closed")

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- sending --------------------------------------------------------------------

    def _advance_clock(self, now: float) -> bool:
        """Keep the RTP clock in step with real time across pauses of the source.

        Returns True if the stream resumes after a pause (the packet gets the
        marker bit, RFC 3551 section 4.1).
        """
        last = self._last_send_time
        self._last_send_time = now
        if last is None:
            return True
        if now - last > _PAUSE_SECONDS:
            frames_elapsed = round((now - last) / self._ptime_seconds)
            self._next_timestamp += (frames_elapsed - 1) * self._timestamp_step
            return True
        return False

    def send_payload(
        self, payload: bytes | bytearray | memoryview, samples: int | None = None
    ) -> bool:
        """Send one already-encoded frame (the G.711 relay path).

        `samples` is how far the frame advances the RTP clock (clock-rate units;
        default one packet time). Returns False when nothing was sent: no remote
        yet, the remote does not receive (hold), or a DTMF event is on the wire.
        """
        if self.native_guard is not None:
            self.native_guard()
        if self._dtmf_active or not self._started or self._closed:
            return False
        marker = self._advance_clock(self._loop.time())
        timestamp = self._next_timestamp
        self._next_timestamp = timestamp + (self._timestamp_step if samples is None else samples)
        address = self._send_address
        if address is None or not self._sending:
            return False
        self._rtp_transport.sendto(self._packetizer.build(payload, timestamp, marker), address)
        return True

    def relay_payload(self, payload: bytes | bytearray | memoryview, elapsed: int | None) -> bool:
        """Send a frame that arrived from the other leg of a bridge, as it arrived.

        `elapsed` is how many RTP ticks (our clock) the source's own timestamps advanced
        since the previous relayed frame: a frame lost upstream leaves the same gap here,
        so the far end conceals it instead of playing the next frame early. None (first
        frame, new source), a step backwards or a jump over a second re-anchors the
        timestamps on the real-time clock, as `send_payload` does.
        """
        if self.native_guard is not None:
            self.native_guard()
        if self._dtmf_active or not self._started or self._closed:
            return False
        now = self._loop.time()
        last = self._last_relay_timestamp
        if last is None or elapsed is None or not 0 < elapsed <= self.codec.clock_rate:
            marker = self._advance_clock(now)
            timestamp = self._next_timestamp
        else:
            marker = False
            timestamp = (last + elapsed) & 0xFFFFFFFF
            self._last_send_time = now
        self._last_relay_timestamp = timestamp
        ticks = len(payload) if self._byte_per_tick else self._relay_frame_ticks
        self._next_timestamp = timestamp + ticks
        address = self._send_address
        if address is None or not self._sending:
            return False
        if self._repacketizer is None:
            self._rtp_transport.sendto(self._packetizer.build(payload, timestamp, marker), address)
            return True
        for chunk, chunk_timestamp, chunk_marker in self._repacketizer.push(
            payload, timestamp, marker
        ):
            self._rtp_transport.sendto(
                self._packetizer.build(chunk, chunk_timestamp, chunk_marker), address
            )
        return True

    def send_pcm(self, pcm: np.ndarray) -> bool:
        """Encode one frame of int16 PCM (codec sample rate, one ptime) and send it."""
        if self._dtmf_active or not self._started or self._closed:
            return False
        payload = self._encoder.encode(pcm)
        if not payload:  # an encoder filling its first frame (Opus)
            self._advance_clock(self._loop.time())
            self._next_timestamp += self._timestamp_step
            return False
        return self.send_payload(payload)

    async def send_dtmf(self, digits: str, duration_ms: int = 160, volume: int = 10) -> None:
        """Send digits as RFC 4733 events, one after another, 60 ms apart.

        While an event is on the wire, audio frames given to `send_*` are not sent,
        but the RTP clock keeps running, so audio resumes at the right timestamp.
        """
        self._require_started()
        if self._dtmf_send_pt is None:
            raise RuntimeError("the peer did not negotiate telephone-event")
        for digit in digits:
            if digit.upper() not in DTMF_DIGITS:
                raise ValueError(f"not a DTMF digit: {digit!r}")
        async with self._dtmf_lock:
            for index, digit in enumerate(digits):
                if index:
                    await asyncio.sleep(0.06)  # inter-digit pause: audio flows again
                if self._closed:
                    return
                packets = dtmf_event_packets(
                    digit,
                    duration_ms=duration_ms,
                    ptime_ms=self.ptime,
                    clock_rate=self.codec.clock_rate,
                    volume=volume,
                )
                await self._send_dtmf_event(packets)

    async def _send_dtmf_event(self, packets: list[DtmfPacket]) -> None:
        if self.native_guard is not None:
            self.native_guard()
        loop = self._loop
        start_time = loop.time()
        self._advance_clock(start_time)
        event_timestamp = self._next_timestamp
        self._dtmf_active = True
        self._last_relay_timestamp = None  # relayed audio re-anchors after the event
        if self._repacketizer is not None:  # a half-filled packet would come out late
            self._repacketizer = Repacketizer(self._timestamp_step)
        try:
            for index, packet in enumerate(packets):
                if index:
                    await _sleep_until(loop, start_time + index * self._ptime_seconds)
                if self._closed:
                    return
                # The event takes the audio slots it covers, one per packet.
                self._next_timestamp = event_timestamp + (index + 1) * self._timestamp_step
                self._last_send_time = loop.time()
                address = self._send_address
                if address is None or not self._sending:
                    continue
                datagram = self._packetizer.build(
                    packet.payload,
                    event_timestamp + packet.timestamp_offset,
                    packet.marker,
                    self._dtmf_send_pt,
                )
                self._rtp_transport.sendto(datagram, address)
            self._stats.dtmf_events_sent += 1
        finally:
            self._dtmf_active = False

    # -- receiving ------------------------------------------------------------------

    def _on_rtp_datagram(self, data: bytes, addr: tuple) -> None:
        if not self._started or self._closed:
            return
        if is_rtcp(data):
            self._on_rtcp_datagram(data, addr)
            return
        try:
            packet = parse_rtp(data)
        except RtpParseError:
            self._stats.malformed_rtp += 1
            return
        latched = self._latched
        if latched is None:
            remote = self._remote
            if not (
                self._latch_any or remote is None or (addr[0] == remote[0] and addr[1] == remote[1])
            ):
                self._stats.foreign_source_dropped += 1
                return
            latched = self._latched = (addr[0], addr[1])
            self._send_address = latched
        elif addr[0] != latched[0] or addr[1] != latched[1]:
            self._stats.foreign_source_dropped += 1
            return
        now = self._loop.time()
        self._stats.packets_received += 1
        self._last_rtp_time = now
        self._timeout_fired = False
        payload_type = packet.payload_type
        if payload_type == self._recv_pt:
            reception = self._reception
            if reception is None or packet.ssrc != reception.ssrc:
                reception = self._on_new_source(packet.ssrc)
            reception.on_packet(packet.sequence_number, packet.timestamp, now)
            if self.on_audio_packet is not None:
                self.on_audio_packet(packet.payload, packet.timestamp)
            else:
                self._jitter.put(
                    packet.sequence_number, packet.timestamp, packet.payload, now, packet.marker
                )
            # Audio can only complete a telephone event still waiting for its end.
            dtmf = self._dtmf_receiver
            if not dtmf.awaiting_end:
                return
            digits = dtmf.audio_resumed(packet.timestamp)
        elif payload_type == self._dtmf_recv_pt:
            # Some gateways send events under an SSRC of their own: events never
            # count as a change of the audio source.
            reception = self._reception
            if reception is not None and packet.ssrc == reception.ssrc:
                reception.on_packet(packet.sequence_number, packet.timestamp, now)
            try:
                digits = self._dtmf_receiver.receive(packet.timestamp, packet.payload)
            except DtmfParseError:
                self._stats.malformed_dtmf += 1
                return
        elif payload_type == COMFORT_NOISE_PT:
            self._stats.comfort_noise += 1
            return
        else:
            self._stats.unexpected_payload_type += 1
            return
        if digits:
            self._deliver_digits(digits)

    def _on_new_source(self, ssrc: int) -> ReceptionStatistics:
        if self._reception is not None:
            self._stats.ssrc_changes += 1
            self._jitter.reset()
            digits = self._dtmf_receiver.flush()
            if digits:
                self._deliver_digits(digits)
            self._dtmf_receiver = DtmfReceiver(self.codec.clock_rate)
        # RFC 3550 A.1 probation would drop the first packet of a new source; we
        # have already vetted the source by address, so count from the first.
        self._reception = ReceptionStatistics(ssrc, self.codec.clock_rate, probation=0)
        return self._reception

    def _deliver_digits(self, digits: tuple[DtmfDigit, ...]) -> None:
        for digit in digits:
            self._stats.dtmf_digits_received += 1
            self.received_digits.put_nowait(digit)
            if self.on_dtmf is not None:
                self.on_dtmf(digit)

    def read_payload(self, now: float | None = None) -> memoryview | PlayoutGap | None:
        """Pull the next received frame: its payload, `LOST` (conceal), or None.

        Call once per packet time. None means there is no stream to play now.
        """
        if not self._started:
            return None
        return self._jitter.get(self._loop.time() if now is None else now)

    def read_pcm(self, now: float | None = None) -> np.ndarray:
        """Pull the next received frame decoded: always one ptime of int16 PCM.

        Lost frames are concealed; with no stream, the concealment fades out into
        silence.
        """
        if not self._started:
            raise RuntimeError("RTP session not started")
        payload = self._jitter.get(self._loop.time() if now is None else now)
        if payload is None:
            if self._concealer.concealing:
                return self._concealer.conceal()
            return np.zeros(self.frame_samples, np.int16)
        if payload is LOST:
            return self._concealer.conceal()
        try:
            pcm = self._decoder.decode(payload)
        except G722Error:
            return self._concealer.conceal()
        if len(pcm) == 0:
            return self._concealer.conceal()
        return self._concealer.good_frame(pcm)

    # -- RTCP -----------------------------------------------------------------------

    def _on_rtcp_datagram(self, data: bytes, addr: tuple) -> None:
        if not self._started or self._closed:
            return
        # RTCP is accepted from the host media comes from (any port: RTCP has its own).
        expected_host = (self._latched or self._remote or (None,))[0]
        if expected_host is not None and addr[0] != expected_host and not self._latch_any:
            self._stats.foreign_source_dropped += 1
            return
        try:
            packets = parse_rtcp(data)
        except RtcpParseError:
            self._stats.malformed_rtcp += 1
            return
        self._stats.rtcp_received += 1
        if self._rtcp_latched is None and not self._rtcp_mux:
            self._rtcp_latched = (addr[0], addr[1])
        now = self._loop.time()
        for packet in packets:
            self._on_rtcp_packet(packet, now)

    def _on_rtcp_packet(self, packet: RtcpPacket, now: float) -> None:
        if isinstance(packet, SenderReport | ReceiverReport):
            if (
                isinstance(packet, SenderReport)
                and self._reception is not None
                and packet.ssrc == self._reception.ssrc
            ):
                self._reception.on_sender_report(packet, now)
            for block in packet.reports:
                if block.ssrc == self._packetizer.ssrc:
                    self._stats.remote_fraction_lost = block.fraction_lost / 256
                    self._stats.remote_cumulative_lost = block.cumulative_lost
                    self._stats.remote_jitter = block.jitter / self.codec.clock_rate
                    rtt = round_trip_time(block, time.time())
                    if rtt is not None:
                        self._stats.round_trip_time = rtt
        elif (
            isinstance(packet, Bye)
            and self._reception is not None
            and self._reception.ssrc in packet.ssrcs
        ):
            self._stats.bye_received = True
            if self.on_bye is not None:
                self.on_bye()

    def _rtcp_destination(self) -> tuple[asyncio.DatagramTransport, Address] | None:
        if self._rtcp_mux:
            address = self._send_address
            return (self._rtp_transport, address) if address else None
        if self._rtcp_latched is not None:
            return self._rtcp_transport, self._rtcp_latched
        if self._remote_rtcp is not None:
            return self._rtcp_transport, self._remote_rtcp
        address = self._send_address
        if address is None:
            return None
        return self._rtcp_transport, (address[0], address[1] + 1)

    def _send_rtcp(self, goodbye: bool = False) -> None:
        destination = self._rtcp_destination()
        if destination is None:
            return
        now = self._loop.time()
        ssrc = self._packetizer.ssrc
        reports = () if self._reception is None else (self._reception.report_block(now),)
        packets: list[RtcpPacket] = []
        if self._packetizer.packets_sent > self._last_report_packets:
            self._last_report_packets = self._packetizer.packets_sent
            elapsed = 0.0 if self._last_send_time is None else now - self._last_send_time
            rtp_now = self._next_timestamp + int(
                (elapsed - self._ptime_seconds) * self.codec.clock_rate
            )
            packets.append(
                SenderReport(
                    ssrc,
                    ntp_timestamp(time.time()),
                    rtp_now & 0xFFFFFFFF,
                    self._packetizer.packets_sent,
                    self._packetizer.octets_sent,
                    reports,
                )
            )
        else:
            packets.append(ReceiverReport(ssrc, reports))
        packets.append(cname_chunk(ssrc, self.cname))
        if goodbye:
            packets.append(Bye((ssrc,)))
        transport, address = destination
        transport.sendto(build_rtcp(packets), address)
        self._stats.rtcp_sent += 1

    async def _rtcp_loop(self) -> None:
        # RFC 3550 section 6.2: randomized interval; the first report comes sooner.
        delay = self._rtcp_interval * random.uniform(0.25, 0.75)
        while True:
            await asyncio.sleep(delay)
            with contextlib.suppress(OSError):
                self._send_rtcp()
            delay = self._rtcp_interval * random.uniform(0.5, 1.5)

    # -- media timeout --------------------------------------------------------------

    async def _watchdog_loop(self) -> None:
        timeout = self._media_timeout
        assert timeout is not None
        period = min(1.0, timeout / 4)
        while True:
            await asyncio.sleep(period)
            if self._timeout_fired or self._remote_direction != "sendrecv":
                continue
            last = max(self._timeout_reference, self._last_rtp_time)
            if self._loop.time() - last >= timeout:
                self._timeout_fired = True
                if self.on_media_timeout is not None:
                    self.on_media_timeout()


def _ignore(data: bytes, addr: tuple) -> None:
    """Placeholder receiver until the session object exists."""


async def _sleep_until(loop: asyncio.AbstractEventLoop, deadline: float) -> None:
    delay = deadline - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)
