"""One visitor's audio sent and received the way Chromium does it, without Chromium's cost.

aiortc does the ICE and DTLS-SRTP handshakes (bench/load/visitor.py); once they are up, this
takes the SRTP sessions and the nominated ICE pair and does what a Chromium peer connection
puts on the wire, as measured with bench/load/capture.py against the gateway (Chromium 156):

- RTP: one 20 ms frame per packet on the call's own clock (a random phase, never the same
  tick for all calls) with a little jitter on each send; every packet carries the header
  extensions the answer accepted of those Chromium offers (audio level, MID, abs-send-time,
  transport-wide sequence number), one-byte form. Chromium keeps sending the MID.
- RTCP: two streams of reduced-size reports (rtcp-rsize), each at RFC 3550's randomized
  interval around libwebrtc's 5 s for audio: the sender's SR + SDES CNAME (no report
  block, 56 bytes), and the receiver's RR with one report block on the echo (32 bytes).
  aiortc's own RTCP loops (an SR every 0.5-1.5 s) are silenced.
- SRTP: AES_CM_128_HMAC_SHA1_80, the profile Chromium ends up with against this gateway
  (10-byte tags: 190-byte G.711 packets); `browser_like_dtls()` keeps aiortc to it.
- STUN: aiortc's ICE agent keeps checking consent on the pair; the generator sets its
  interval to Chromium's ping period of a stable connection (`CHROMIUM_PING_INTERVAL`).

Received RTP (the echo) is unprotected in place and handed on as (payload, timestamp);
RTCP and STUN still go to aiortc.

It reaches into private parts of aiortc 1.16, aioice 0.13 and pylibsrtp 1.0 (pinned), like
gateway/webrtc_media.py: `attach()` returns False when they moved.
"""

from __future__ import annotations

import asyncio
import random
import re
import struct
import time
from collections.abc import Callable, Sequence

from aiortc.clock import current_ntp_time
from pylibsrtp._binding import ffi, lib

from .window import Window

AUDIO_LEVEL = "urn:ietf:params:rtp-hdrext:ssrc-audio-level"
MID = "urn:ietf:params:rtp-hdrext:sdes:mid"
ABS_SEND_TIME = "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time"
TRANSPORT_CC = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
# Chromium's ping period for a stable, writable ICE pair: 2.5 s, measured 2.6-2.7 s.
CHROMIUM_PING_INTERVAL = 2.65
RTCP_INTERVAL = 5.0  # libwebrtc's report interval for audio, randomized 0.5-1.5 times
FRAME = 0.02

_BUFFER = 1500
_TRAILER = 16
_HEADER = struct.Struct("!BBHII")
_SEQ_TS = struct.Struct("!HI")
_SR = struct.Struct("!BBHIIIIII")  # header, sender SSRC, NTP (2), RTP ts, packets, octets
_RR = struct.Struct("!BBHIIIIIII")  # header, sender SSRC, one report block (6 words)

PacketHandler = Callable[[memoryview, int], None]


def browser_like_dtls() -> None:
    """aiortc offers the AES-GCM profiles first, which aiortc on the other side would pick;
    Chromium ends up with AES_CM_128_HMAC_SHA1_80 (measured: 10-byte SRTP tags)."""
    import aiortc.rtcdtlstransport as dtls

    dtls.SRTP_PROFILES = [dtls.SRTP_AES128_CM_SHA1_80]


def negotiated_extensions(answer_sdp: str) -> dict[str, int]:
    """URI -> id of the RTP header extensions the answer accepted."""
    return {
        uri: int(number)
        for number, uri in re.findall(r"^a=extmap:(\d+)(?:/\w+)? (\S+)", answer_sdp, re.M)
    }


def audio_levels(frames_pcm: Sequence) -> list[int]:
    """RFC 6464 levels (-dBov, 0..127) of int16 PCM frames, as the audio level extension
    carries them (with the voice activity bit for frames above silence)."""
    import numpy as np

    levels = []
    for pcm in frames_pcm:
        rms = float(np.sqrt(np.mean(np.square(pcm.astype(np.float64))))) / 32768
        level = 127 if rms <= 0 else min(127, max(0, round(-20 * np.log10(rms))))
        levels.append(level | (0x80 if level < 127 else 0))
    return levels


async def _send_nothing(*packets) -> None:
    return None


class Lateness:
    """How late a process's sends went out, within the measurement window."""

    LATE = 0.010  # a frame sent this much after its time counts as late

    def __init__(self, window: Window) -> None:
        self.window = window
        self.sends = 0
        self.late = 0
        self.max_late = 0.0
        self.late_at: list[tuple[float, float]] = []  # (when, ms late): the first 50

    def note(self, now: float, late: float) -> None:
        if now not in self.window:
            return  # set-up and hang-up bursts are not what is measured
        self.sends += 1
        if late > self.LATE:
            self.late += 1
            if len(self.late_at) < 50:
                self.late_at.append((round(now, 3), round(late * 1000, 1)))
        if late > self.max_late:
            self.max_late = late


class BrowserAudio:
    """Sends `frames` round and round on the call's own clock; reads the echo.

    `on_sent(k, now)` is called after frame k went out; `on_packet(payload, timestamp)` with
    each echoed packet (a view valid during the call)."""

    def __init__(
        self,
        transceiver,
        answer_sdp: str,
        payload_type: int,
        clock_rate: int,
        frames: Sequence[bytes],
        levels: Sequence[int],
        *,
        cname: str,
        on_packet: PacketHandler,
        on_sent: Callable[[int, float], None],
        lateness: Lateness,
        jitter: float = 0.0005,
        rng: random.Random | None = None,
    ) -> None:
        self._transceiver = transceiver
        self._extensions = negotiated_extensions(answer_sdp)
        self._payload_type = payload_type
        self._ticks = clock_rate // 50
        self._clock_rate = clock_rate
        self._frames = frames
        self._levels = levels
        self.on_packet = on_packet
        self._on_sent = on_sent
        self._lateness = lateness
        self._jitter = jitter
        self._random = rng or random.Random()
        self._cname = cname.encode()[:255]
        self._tx = ffi.new("unsigned char[]", _BUFFER)
        self._tx_view = memoryview(ffi.buffer(self._tx))
        self._tx_length = ffi.new("int *")
        self._rx = ffi.new("unsigned char[]", _BUFFER)
        self._rx_view = memoryview(ffi.buffer(self._rx))
        self._rx_length = ffi.new("int *")
        self._protocols: list = []
        self._rtcp_handles: dict[str, asyncio.TimerHandle] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.attached = False
        self.packets_sent = 0
        self._octets = 0
        self._sequence = self._random.getrandbits(16)
        self._timestamp0 = self._random.getrandbits(32)
        self._transport_sequence = self._random.getrandbits(16)
        self._k = 0
        self._due = 0.0
        # Reception, for the receiver reports.
        self.remote_ssrc: int | None = None
        self._received = 0
        self._base_sequence: int | None = None
        self._max_sequence = 0
        self._cycles = 0
        self._expected_prior = 0
        self._received_prior = 0

    # ------------------------------------------------------------------ set-up
    def attach(self) -> bool:
        """Take the transceiver's SRTP and ICE pair from aiortc (after DTLS connected)."""
        sender = self._transceiver.sender
        receiver = self._transceiver.receiver
        dtls = sender.transport
        try:
            tx, rx = dtls._tx_srtp, dtls._rx_srtp
            connection = dtls.transport._connection
            pair = connection._nominated.get(1)
            protocols = list(connection._protocols)
            self._ssrc = sender._ssrc
        except AttributeError:
            return False
        if tx is None or rx is None or pair is None or not protocols:
            return False
        # aiortc's RTCP loops keep running (their tasks end with the peer connection) but
        # send nothing: the reports go at Chromium's rate from here.
        sender._send_rtcp = receiver._send_rtcp = _send_nothing
        self._receiver = receiver
        self._tx_srtp = tx
        self._tx_session = tx._srtp[0]
        self._rx_session = rx._srtp[0]
        self._connection = connection
        self._write_header()
        for protocol in protocols:
            self._hook(protocol)
        self.attached = True
        return True

    def _write_header(self) -> None:
        """The fixed header and the extension block; the per-packet values are poked in."""
        elements = b""
        self._level_at = self._abs_at = self._twcc_at = None
        offset = 16  # after the 12-byte header and the 4-byte extension header
        # Chromium's order: the MID first, then the audio level.
        for uri, size in ((MID, 0), (AUDIO_LEVEL, 1), (ABS_SEND_TIME, 3), (TRANSPORT_CC, 2)):
            number = self._extensions.get(uri)
            if number is None or not 0 < number < 15:
                continue
            value = (self._transceiver.mid or "0").encode()[:16] if uri == MID else bytes(size)
            at = offset + len(elements) + 1
            if uri == AUDIO_LEVEL:
                self._level_at = at
            elif uri == ABS_SEND_TIME:
                self._abs_at = at
            elif uri == TRANSPORT_CC:
                self._twcc_at = at
            elements += bytes([(number << 4) | (len(value) - 1)]) + value
        elements += bytes(-len(elements) % 4)
        view = self._tx_view
        first = 0x90 if elements else 0x80
        _HEADER.pack_into(view, 0, first, self._payload_type, 0, 0, self._ssrc)
        if elements:
            struct.pack_into("!HH", view, 12, 0xBEDE, len(elements) // 4)
            view[16 : 16 + len(elements)] = elements
            self._header_size = 16 + len(elements)
        else:
            self._header_size = 12

    def _hook(self, protocol) -> None:
        """Our RTP from this socket to us; RTCP, STUN and DTLS to aiortc as before."""
        original = protocol.datagram_received
        receive = self._receive

        def datagram_received(data: bytes, addr: tuple) -> None:
            if 127 < data[0] < 192 and len(data) > 12 and not 191 < data[1] < 224:
                receive(data)
            else:
                original(data, addr)

        protocol.datagram_received = datagram_received
        self._protocols.append(protocol)

    def start(self, first_due: float) -> None:
        """Send frame 0 at `first_due` (loop time) and every 20 ms after it; RTCP too."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._due = first_due
        self._timer = loop.call_at(first_due + self._random.random() * self._jitter, self._tick)
        # libwebrtc sends its first reports soon after the start, then every ~5 s.
        self._rtcp_at(first_due + self._random.uniform(0.2, 1.0), self._send_sr)
        self._rtcp_at(first_due + self._random.uniform(0.2, 1.0), self._send_rr)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for handle in self._rtcp_handles.values():
            handle.cancel()
        self._rtcp_handles.clear()
        for protocol in self._protocols:
            vars(protocol).pop("datagram_received", None)
        self._protocols.clear()
        self.attached = False

    # ------------------------------------------------------------------ RTP
    def _tick(self) -> None:
        loop = self._loop
        now = loop.time()
        k = self._k
        self._lateness.note(now, now - self._due)
        self._send(k)
        self._on_sent(k, now)
        self._k = k + 1
        self._due += FRAME
        self._timer = loop.call_at(self._due + self._random.random() * self._jitter, self._tick)

    def _send(self, k: int) -> None:
        position = k % len(self._frames)
        payload = self._frames[position]
        view = self._tx_view
        header = self._header_size
        end = header + len(payload)
        view[1] = (0x80 | self._payload_type) if k == 0 else self._payload_type
        timestamp = (self._timestamp0 + k * self._ticks) & 0xFFFFFFFF
        _SEQ_TS.pack_into(view, 2, self._sequence, timestamp)
        if self._level_at is not None:
            view[self._level_at] = self._levels[position]
        if self._abs_at is not None:
            # abs-send-time: 24-bit 6.18 fixed point seconds.
            value = int(time.monotonic() * (1 << 18)) & 0xFFFFFF
            view[self._abs_at : self._abs_at + 3] = value.to_bytes(3, "big")
        if self._twcc_at is not None:
            view[self._twcc_at : self._twcc_at + 2] = self._transport_sequence.to_bytes(2, "big")
            self._transport_sequence = (self._transport_sequence + 1) & 0xFFFF
        view[header:end] = payload
        length = self._tx_length
        length[0] = end
        pair = self._connection._nominated.get(1)
        if pair is None or lib.srtp_protect(self._tx_session, self._tx, length) != 0:
            return
        pair.protocol.transport.sendto(view[: length[0]], pair.remote_addr)
        self._sequence = (self._sequence + 1) & 0xFFFF
        self.packets_sent += 1
        self._octets += len(payload)

    def _receive(self, data: bytes) -> None:
        size = len(data)
        if size > _BUFFER:
            return
        view = self._rx_view
        view[:size] = data
        length = self._rx_length
        length[0] = size
        if lib.srtp_unprotect(self._rx_session, self._rx, length) != 0:
            return
        end = length[0]
        first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(view)
        if (second & 0x7F) != self._payload_type:
            return
        self._count(sequence, ssrc)
        offset = 12 + 4 * (first & 0x0F)
        if first & 0x10:
            if offset + 4 > end:
                return
            offset += 4 + 4 * struct.unpack_from("!H", view, offset + 2)[0]
        if first & 0x20:
            end -= view[end - 1]
        if offset < end:
            self.on_packet(view[offset:end], timestamp)

    def _count(self, sequence: int, ssrc: int) -> None:
        """RFC 3550 A.1, simplified: extended highest sequence number and packets seen."""
        self._received += 1
        if self._base_sequence is None or ssrc != self.remote_ssrc:
            self.remote_ssrc = ssrc
            self._base_sequence = self._max_sequence = sequence
            self._cycles = 0
            return
        if 0 < (sequence - self._max_sequence) & 0xFFFF < 0x8000:
            if sequence < self._max_sequence:
                self._cycles += 0x10000
            self._max_sequence = sequence

    # ------------------------------------------------------------------ RTCP
    def _rtcp_at(self, when: float, send: Callable[[], None]) -> None:
        def fire() -> None:
            if not self.attached:
                return
            send()
            later = self._loop.time() + RTCP_INTERVAL * self._random.uniform(0.5, 1.5)
            self._rtcp_at(later, send)

        self._rtcp_handles[send.__name__] = self._loop.call_at(when, fire)

    def _send_rtcp(self, packet: bytes) -> None:
        pair = self._connection._nominated.get(1)
        if pair is None:
            return
        try:
            protected = self._tx_srtp.protect_rtcp(packet)
        except Exception:  # a session closing under us: the next report will not come
            return
        pair.protocol.transport.sendto(protected, pair.remote_addr)

    def _send_sr(self) -> None:
        """SR without report blocks + SDES CNAME, as Chromium's send stream reports."""
        ntp = current_ntp_time()
        media_time = self._timestamp0 + self._k * self._ticks
        sr = _SR.pack(
            0x80, 200, 6, self._ssrc, ntp >> 32, ntp & 0xFFFFFFFF,
            media_time & 0xFFFFFFFF, self.packets_sent, self._octets,
        )  # fmt: skip
        item = bytes([1, len(self._cname)]) + self._cname + b"\x00"
        item += bytes(-(len(item) + 4) % 4)
        sdes = struct.pack("!BBHI", 0x81, 202, (len(item) + 4) // 4, self._ssrc) + item
        self._send_rtcp(sr + sdes)

    def _send_rr(self) -> None:
        """RR with one report block on the echo (reduced size, as Chromium's receive
        stream sends it); nothing before the first echoed packet."""
        if self.remote_ssrc is None or self._base_sequence is None:
            return
        extended = self._cycles + self._max_sequence
        expected = extended - self._base_sequence + 1
        lost = max(0, expected - self._received)
        expected_interval = expected - self._expected_prior
        received_interval = self._received - self._received_prior
        self._expected_prior, self._received_prior = expected, self._received
        lost_interval = expected_interval - received_interval
        fraction = (lost_interval << 8) // expected_interval if lost_interval > 0 else 0
        lsr, dlsr = self._last_sender_report()
        rr = _RR.pack(
            0x81, 201, 7, self._ssrc, self.remote_ssrc,
            (min(fraction, 255) << 24) | min(lost, 0x7FFFFF),
            extended & 0xFFFFFFFF, 0, lsr, dlsr,
        )  # fmt: skip
        self._send_rtcp(rr)

    def _last_sender_report(self) -> tuple[int, int]:
        """LSR and DLSR of the far end's last SR (aiortc's receiver reads those)."""
        try:
            lsr = self._receiver._RTCRtpReceiver__lsr.get(self.remote_ssrc)
            at = self._receiver._RTCRtpReceiver__lsr_time.get(self.remote_ssrc)
        except AttributeError:
            return 0, 0
        if lsr is None or at is None:
            return 0, 0
        return lsr, min(0xFFFFFFFF, max(0, int((time.time() - at) * 65536)))
