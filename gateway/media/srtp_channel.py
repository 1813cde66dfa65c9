"""RTP of one aiortc audio transceiver, sent and received straight over its ICE pair.

aiortc costs about 1 ms of Python per 20 ms frame per peer connection (DESIGN.md): each
datagram goes through a STUN parse that fails, an asyncio queue, a task switch, its RTP
object model and header-extension maps, and each frame sent through a track, an encoder
`pack`, a packet object and three awaits. A gateway relaying encoded frames needs none of
that. Once DTLS is up, this takes the SRTP sessions aiortc derived from the handshake and the
ICE pair aioice nominated, and moves the audio itself:

- receiving: SRTP datagrams on the pair's socket are unprotected in place in one buffer and
  handed on (payload, RTP timestamp) within the same call; STUN, DTLS and SRTCP still go to
  aiortc, which keeps ICE consent, the DTLS close and RTCP working. Each packet is counted
  (sequence, arrival: loss and jitter) in the statistics aiortc's RTCP receiver reports are
  built from, so the browser learns how its audio reaches us (getStats' remote-inbound-rtp:
  loss, jitter and round trip), as it would from any WebRTC peer.
- sending: the header (with the MID extension when negotiated) is written once into one
  buffer; per frame only sequence number, timestamp and payload change, the packet is
  protected in place and sent from that buffer.

It reaches into private parts of aiortc 1.16, aioice 0.13 and pylibsrtp 1.0 (pinned in
constraints.txt): `RTCDtlsTransport._tx_srtp/_rx_srtp`, `Connection._nominated/_protocols`,
and libsrtp through pylibsrtp's cffi binding. `attach` checks what it needs and returns
False (the caller keeps aiortc's own path) if a version change moved it.
"""

from __future__ import annotations

import logging
import random
import struct
import time
from collections.abc import Callable
from typing import Any

from aioice.ice import Connection
from aioice.turn import TurnTransport
from aiortc import RTCRtpTransceiver
from aiortc.clock import current_ntp_time
from aiortc.rtcrtpreceiver import StreamStatistics
from pylibsrtp import Session
from pylibsrtp._binding import ffi, lib

__all__ = ["SrtpAudioChannel"]

logger = logging.getLogger(__name__)

MID_EXTENSION_URI = "urn:ietf:params:rtp-hdrext:sdes:mid"
_BUFFER_SIZE = 1500
_SRTP_TRAILER = 16  # libsrtp's SRTP_MAX_TRAILER_LEN
_HEADER = struct.Struct("!BBHII")
_SEQ_TS = struct.Struct("!HI")
_EXTENSION_HEADER = struct.Struct("!HH")
# How often aiortc's own RTCP sender reports get our counters (every 50 frames: 1 s).
_REPORT_EVERY = 50

PacketHandler = Callable[[memoryview, int], None]


class ChannelReception(StreamStatistics):
    """The browser's stream as it reached us, in the fields aiortc's RTCP receiver reports
    read (RFC 3550 A.1, A.8), kept at the cost of two integer steps per packet.

    `SrtpAudioChannel._receive` counts each packet and follows the highest sequence number
    itself (no call, no packet object); what the reports derive from those (expected,
    lost, fraction lost) aiortc computes per report. The interarrival jitter needs an
    arrival time, so it is estimated on every `JITTER_EVERY`-th packet: the transit time
    of packets 8 frames apart varies as that of neighbours does when delays are
    independent, and the estimate (RFC 3550's gain of 1/16 per sample) settles over ~16
    samples (2.5 s of 20 ms frames), within the 5 s between Chromium's reports.
    """

    JITTER_EVERY = 8  # a power of two: `received & (JITTER_EVERY - 1)` picks the samples

    def __init__(self, clockrate: int, first_sequence: int) -> None:
        super().__init__(clockrate)
        self.base_seq = self.max_seq = first_sequence  # the first packet: counted, no step

    def sample(self, timestamp: int) -> None:
        """Update the jitter with a packet of this RTP timestamp arriving now."""
        arrival = int(time.time() * self._clockrate)
        last_arrival, last_timestamp = self._last_arrival, self._last_timestamp
        if last_arrival is not None and last_timestamp is not None and timestamp != last_timestamp:
            transit_change = abs(
                (arrival - last_arrival) - ((timestamp - last_timestamp) & 0xFFFFFFFF)
            )
            self._jitter_q4 += transit_change - ((self._jitter_q4 + 8) >> 4)
        self._last_arrival = arrival
        self._last_timestamp = timestamp


class SrtpAudioChannel:
    """Sends and receives the audio RTP of one transceiver, bypassing aiortc's media path.

    Create with the transceiver and the negotiated payload type; call `attach()` once the
    peer connection is connected. Until then `send` drops frames (older audio is not worth
    playing late). Received payloads are views into a reused buffer: valid only until the
    handler returns; while `on_packet` is None, received audio is discarded unread.
    """

    def __init__(
        self,
        transceiver: RTCRtpTransceiver,
        payload_type: int,
        on_packet: PacketHandler | None,
        *,
        clock_rate: int = 8000,
    ) -> None:
        self._transceiver = transceiver
        self._payload_type = payload_type
        self.on_packet = on_packet
        # The browser's stream as it reached us (RFC 3550 A.1, A.8), reported over RTCP.
        self._clock_rate = clock_rate
        self.reception: ChannelReception | None = None
        self._reception_ssrc = -1
        self.attached = False
        self.packets_sent = 0
        # Frames `send` dropped once attached: too big for one datagram, or not sendable.
        self.send_drops = 0
        # The outgoing packet, built here and protected in place.
        self._tx = ffi.new("unsigned char[]", _BUFFER_SIZE)
        self._tx_view = memoryview(ffi.buffer(self._tx))
        self._tx_length = ffi.new("int *")
        self._rx = ffi.new("unsigned char[]", _BUFFER_SIZE)
        self._rx_view = memoryview(ffi.buffer(self._rx))
        self._rx_length = ffi.new("int *")
        self._header_size = 12
        self._sequence = 0
        self._octets = 0
        self._last_timestamp = 0
        self._connection: Connection  # set by attach(); send() checks attached first
        # pylibsrtp's sessions own the libsrtp contexts (freed when they are collected):
        # held here so that the raw pointers below never outlive them.
        self._tx_srtp: Session | None = None
        self._rx_srtp: Session | None = None
        self._tx_session = None
        self._rx_session = None
        self._protocols: list = []
        # Called before this channel changes while its path runs in C (NativeRelay).
        self.native_guard: Callable[[], None] | None = None

    # ------------------------------------------------------------------ set-up
    def attach(self) -> bool:
        """Take over the transceiver's RTP (after DTLS connected). False if it cannot."""
        if self.attached:
            return True
        try:
            return self._attach()
        except Exception:
            # Whatever a changed aiortc does here, its own path still works: fall back to it.
            logger.exception("cannot take over the audio RTP from aiortc")
            self._unhook()
            return False

    def _attach(self) -> bool:
        sender = self._transceiver.sender
        dtls = sender.transport
        try:
            tx, rx = dtls._tx_srtp, dtls._rx_srtp
            connection = dtls.transport._connection
            pair = connection._nominated.get(1)
            protocols = list(connection._protocols)
            ssrc = sender._ssrc
        except AttributeError:
            return False
        if tx is None or rx is None or pair is None or not protocols:
            return False
        self._write_header(ssrc, self._mid_extension())
        self._tx_srtp, self._rx_srtp = tx, rx
        self._tx_session = tx._srtp[0]
        self._rx_session = rx._srtp[0]
        self._connection = connection
        self._sender = sender
        self._sequence = random.getrandbits(16)
        for protocol in protocols:
            self._hook(protocol)
        self.attached = True
        return True

    def _mid_extension(self) -> bytes:
        """The RFC 8285 one-byte header extension carrying our MID, if negotiated."""
        mid = self._transceiver.mid
        extension_id = next(
            (
                e.id
                for e in self._transceiver._headerExtensions
                if e.uri == MID_EXTENSION_URI and 0 < e.id < 15
            ),
            None,
        )
        if not mid or extension_id is None:
            return b""
        value = mid.encode()[:16]
        element = bytes([(extension_id << 4) | (len(value) - 1)]) + value
        element += bytes(-len(element) % 4)
        return _EXTENSION_HEADER.pack(0xBEDE, len(element) // 4) + element

    def _write_header(self, ssrc: int, extension: bytes) -> None:
        first = 0x90 if extension else 0x80
        _HEADER.pack_into(self._tx_view, 0, first, self._payload_type, 0, 0, ssrc)
        self._tx_view[12 : 12 + len(extension)] = extension
        self._header_size = 12 + len(extension)

    def _hook(self, protocol) -> None:
        """Route SRTP datagrams of this socket to us; everything else as before."""
        original = protocol.datagram_received
        receive = self._receive

        def datagram_received(data: bytes, addr: tuple) -> None:
            # RFC 7983: 128-191 is RTP or RTCP; RTCP packet types 192-223 sit where RTP
            # keeps marker+payload type, so those go to aiortc.
            if 127 < data[0] < 192 and len(data) > 12 and not 191 < data[1] < 224:
                receive(data)
            else:
                original(data, addr)

        protocol.datagram_received = datagram_received
        self._protocols.append(protocol)

    def detach(self) -> None:
        """Give the sockets back to aiortc (before it closes them)."""
        if self.native_guard is not None:
            self.native_guard()
        self._unhook()
        self.attached = False
        self.on_packet = None

    def _unhook(self) -> None:
        for protocol in self._protocols:
            # Drop our instance attribute: the class's method shows through again.
            vars(protocol).pop("datagram_received", None)
        self._protocols.clear()

    # ------------------------------------------------------------------ receiving
    def _receive(self, data: bytes) -> None:
        on_packet = self.on_packet
        size = len(data)
        if on_packet is None or size > _BUFFER_SIZE:
            return
        view = self._rx_view
        view[:size] = data
        length = self._rx_length
        length[0] = size
        if lib.srtp_unprotect(self._rx_session, self._rx, length) != 0:
            return  # replayed, forged, or not for this session
        self._deliver(view, length[0])

    def deliver_plain(self, packet: bytes) -> None:
        """An RTP packet of this channel already unprotected (by the native relay, which
        leaves it to this path): counted and handed on as `_receive` does."""
        size = len(packet)
        if self.on_packet is None or size > _BUFFER_SIZE:
            return
        view = self._rx_view
        view[:size] = packet
        self._deliver(view, size)

    def _deliver(self, view: memoryview, end: int) -> None:
        on_packet = self.on_packet
        if on_packet is None or end < 12:
            return
        first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(view)
        if (second & 0x7F) != self._payload_type:
            return
        if ssrc != self._reception_ssrc:
            self._count_source(ssrc, sequence)
        reception = self.reception
        received = reception.packets_received + 1  # type: ignore[union-attr]
        reception.packets_received = received  # type: ignore[union-attr]
        highest = reception.max_seq  # type: ignore[union-attr]
        if 0 < (sequence - highest) & 0xFFFF < 0x8000:  # in order, or after a loss
            if sequence < highest:
                reception.cycles += 0x10000  # type: ignore[union-attr]
            reception.max_seq = sequence  # type: ignore[union-attr]
            if not received & (ChannelReception.JITTER_EVERY - 1):
                reception.sample(timestamp)  # type: ignore[union-attr]
        offset = 12 + 4 * (first & 0x0F)
        if first & 0x10:
            if offset + 4 > end:
                return
            offset += 4 + 4 * _EXTENSION_HEADER.unpack_from(view, offset)[1]
        if first & 0x20:
            end -= view[end - 1]
        if offset >= end:
            return
        on_packet(view[offset:end], timestamp)

    def _count_source(self, ssrc: int, first_sequence: int) -> None:
        """A new stream from the browser: counted where aiortc's RTCP receiver reports
        look (when a changed aiortc has moved that table, counted but not reported)."""
        self.reception = ChannelReception(self._clock_rate, first_sequence)
        self._reception_ssrc = ssrc
        streams = getattr(self._transceiver.receiver, "_RTCRtpReceiver__remote_streams", None)
        if isinstance(streams, dict):
            streams.clear()  # the stream it replaces is over: no more reports of it
            streams[ssrc] = self.reception

    # ------------------------------------------------------------------ sending
    def send(self, payload: bytes | memoryview, timestamp: int, marker: bool = False) -> bool:
        """Send one encoded frame with this RTP timestamp. False if not sent: not attached
        yet, or dropped (counted in `send_drops`), e.g. a phone's payload too big for one
        datagram."""
        # (No native_guard here: its one caller, WebRtcLeg.send, has called it already.)
        if not self.attached:
            return False
        size = len(payload)
        header = self._header_size
        end = header + size
        if end + _SRTP_TRAILER > _BUFFER_SIZE:
            self.send_drops += 1
            return False
        view = self._tx_view
        sequence = self._sequence
        view[1] = (0x80 | self._payload_type) if marker else self._payload_type
        timestamp &= 0xFFFFFFFF
        _SEQ_TS.pack_into(view, 2, sequence, timestamp)
        view[header:end] = payload
        length = self._tx_length
        length[0] = end
        pair = self._connection._nominated.get(1)
        if pair is None or lib.srtp_protect(self._tx_session, self._tx, length) != 0:
            self.send_drops += 1
            return False
        transport = pair.protocol.transport
        packet = view[: length[0]]
        # aioice types it as a DatagramTransport; a relayed pair's is its TurnTransport.
        is_turn = type(transport) is TurnTransport  # type: ignore[comparison-overlap]
        transport.sendto(bytes(packet) if is_turn else packet, pair.remote_addr)
        self._sequence = (sequence + 1) & 0xFFFF
        self._last_timestamp = timestamp
        self._octets += size
        self.packets_sent += 1
        if self.packets_sent % _REPORT_EVERY == 0:
            self._update_sender_reports()
        return True

    def _update_sender_reports(self) -> None:
        """Keep aiortc's RTCP sender reports (which it still sends) true to what we sent."""
        sender: Any = self._sender  # aiortc's name-mangled counters, unseen by mypy
        sender._RTCRtpSender__packet_count = self.packets_sent
        sender._RTCRtpSender__octet_count = self._octets
        sender._RTCRtpSender__rtp_timestamp = self._last_timestamp
        sender._RTCRtpSender__ntp_timestamp = current_ntp_time()
