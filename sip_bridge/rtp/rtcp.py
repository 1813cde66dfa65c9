"""RTCP (RFC 3550 section 6): compound packets and reception statistics, sans-I/O.

`parse_rtcp()`/`build_rtcp()` handle SR, RR, SDES, BYE (other packet types are
kept opaque). `ReceptionStatistics` follows RFC 3550 appendix A.1 (sequence
validation), A.3 (expected and lost packets) and A.8 (interarrival jitter) to
fill the report blocks we send; `round_trip_time()` reads the peer's blocks.
Wall-clock and arrival times are passed in as float seconds.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "Bye",
    "ReceiverReport",
    "ReceptionStatistics",
    "ReportBlock",
    "RtcpPacket",
    "RtcpParseError",
    "SdesChunk",
    "SenderReport",
    "SourceDescription",
    "UnknownRtcpPacket",
    "build_rtcp",
    "cname_chunk",
    "ntp_middle_32",
    "ntp_timestamp",
    "parse_rtcp",
    "round_trip_time",
]

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
SDES_CNAME = 1

NTP_EPOCH_OFFSET = 2208988800  # seconds from 1900-01-01 (NTP) to 1970-01-01 (Unix)

_HEADER = struct.Struct("!BBH")
_SSRC = struct.Struct("!I")
_SENDER_INFO = struct.Struct("!IQIII")
_REPORT_BLOCK_FIELDS = struct.Struct("!IIIIII")


class RtcpParseError(ValueError):
    """A datagram is not a well-formed RTCP compound packet; the message says why."""


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """Reception report about one source (RFC 3550 section 6.4.1)."""

    ssrc: int
    fraction_lost: int  # of 256, since the previous report
    cumulative_lost: int  # signed 24-bit; duplicates can make it negative
    highest_sequence: int  # extended (cycles << 16 | seq)
    jitter: int  # RTP timestamp units
    last_sr: int  # middle 32 bits of the NTP time of the last SR received, or 0
    delay_since_last_sr: int  # 1/65536 s since that SR arrived, or 0


@dataclass(frozen=True, slots=True)
class SenderReport:
    ssrc: int
    ntp_timestamp: int  # 64-bit NTP format
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """The SDES items of one source: (item type, value) pairs, e.g. (1, b"cname")."""

    ssrc: int
    items: tuple[tuple[int, bytes], ...]

    @property
    def cname(self) -> str | None:
        for item_type, value in self.items:
            if item_type == SDES_CNAME:
                return value.decode("utf-8", "replace")
        return None


@dataclass(frozen=True, slots=True)
class SourceDescription:
    chunks: tuple[SdesChunk, ...]


@dataclass(frozen=True, slots=True)
class Bye:
    ssrcs: tuple[int, ...]
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class UnknownRtcpPacket:
    """A packet type this module does not interpret (APP, XR, feedback, ...)."""

    packet_type: int
    count: int
    body: bytes


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye | UnknownRtcpPacket


# -- time ----------------------------------------------------------------------


def ntp_timestamp(unix_time: float) -> int:
    """64-bit NTP timestamp (32.32 fixed point since 1900) of a Unix time."""
    return int((unix_time + NTP_EPOCH_OFFSET) * 4294967296.0) & 0xFFFFFFFFFFFFFFFF


def ntp_middle_32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: what LSR carries (16.16 seconds)."""
    return (ntp >> 16) & 0xFFFFFFFF


def round_trip_time(block: ReportBlock, arrival_unix_time: float) -> float | None:
    """RTT in seconds from a report block about our stream, or None without an SR.

    RFC 3550 section 6.4.1: arrival time - LSR - DLSR, all in 1/65536 s.
    """
    if block.last_sr == 0:
        return None
    arrival = ntp_middle_32(ntp_timestamp(arrival_unix_time))
    rtt = (arrival - block.last_sr - block.delay_since_last_sr) & 0xFFFFFFFF
    if rtt >= 0x80000000:
        return 0.0  # clocks or delays slightly off: never report a negative RTT
    return rtt / 65536.0


# -- parsing -------------------------------------------------------------------


def parse_rtcp(data: bytes | bytearray | memoryview) -> list[RtcpPacket]:
    """Parse a compound RTCP packet; raise `RtcpParseError` if it is malformed."""
    data = bytes(data)
    size = len(data)
    if size < 4:
        raise RtcpParseError(f"RTCP packet too short: {size} bytes, a header needs 4")
    packets: list[RtcpPacket] = []
    offset = 0
    while offset < size:
        if size - offset < 4:
            raise RtcpParseError(f"{size - offset} stray bytes after the last RTCP packet")
        first, packet_type, length_words = _HEADER.unpack_from(data, offset)
        if first >> 6 != 2:
            raise RtcpParseError(f"RTCP version is {first >> 6}, expected 2")
        end = offset + 4 * (length_words + 1)
        if end > size:
            raise RtcpParseError(
                f"RTCP packet type {packet_type} claims {4 * (length_words + 1)} bytes, "
                f"only {size - offset} remain"
            )
        body_end = end
        if first & 0x20:
            if end != size:
                raise RtcpParseError("RTCP padding is allowed only in the last packet")
            padding = data[end - 1]
            if padding == 0 or padding > end - offset - 4:
                raise RtcpParseError(f"RTCP padding count {padding} is invalid")
            body_end = end - padding
        count = first & 0x1F
        body = data[offset + 4 : body_end]
        packets.append(_parse_one(packet_type, count, body))
        offset = end
    return packets


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket:
    if packet_type == RTCP_SR:
        needed = 24 + 24 * count
        if len(body) < needed:
            raise RtcpParseError(
                f"RTCP SR with {count} report blocks needs {needed} bytes, has {len(body)}"
            )
        ssrc, ntp, rtp_ts, packets, octets = _SENDER_INFO.unpack_from(body)
        return SenderReport(ssrc, ntp, rtp_ts, packets, octets, _report_blocks(body, 24, count))
    if packet_type == RTCP_RR:
        needed = 4 + 24 * count
        if len(body) < needed:
            raise RtcpParseError(
                f"RTCP RR with {count} report blocks needs {needed} bytes, has {len(body)}"
            )
        return ReceiverReport(_SSRC.unpack_from(body)[0], _report_blocks(body, 4, count))
    if packet_type == RTCP_SDES:
        return _parse_sdes(body, count)
    if packet_type == RTCP_BYE:
        return _parse_bye(body, count)
    return UnknownRtcpPacket(packet_type, count, body)


def _report_blocks(body: bytes, offset: int, count: int) -> tuple[ReportBlock, ...]:
    blocks = []
    for i in range(count):
        ssrc, lost_word, highest, jitter, lsr, dlsr = _REPORT_BLOCK_FIELDS.unpack_from(
            body, offset + 24 * i
        )
        cumulative = lost_word & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        blocks.append(ReportBlock(ssrc, lost_word >> 24, cumulative, highest, jitter, lsr, dlsr))
    return tuple(blocks)


def _parse_sdes(body: bytes, count: int) -> SourceDescription:
    chunks = []
    offset = 0
    for _ in range(count):
        if offset + 4 > len(body):
            raise RtcpParseError(f"RTCP SDES announces {count} chunks but is truncated")
        ssrc = _SSRC.unpack_from(body, offset)[0]
        offset += 4
        items = []
        while True:
            if offset >= len(body):
                raise RtcpParseError("RTCP SDES chunk is not terminated by a null item")
            item_type = body[offset]
            if item_type == 0:
                offset = (offset + 4) & ~3  # the null octet(s) pad to a 32-bit boundary
                break
            if offset + 2 > len(body):
                raise RtcpParseError("RTCP SDES item header is truncated")
            length = body[offset + 1]
            if offset + 2 + length > len(body):
                raise RtcpParseError(f"RTCP SDES item of {length} bytes is truncated")
            items.append((item_type, body[offset + 2 : offset + 2 + length]))
            offset += 2 + length
        chunks.append(SdesChunk(ssrc, tuple(items)))
    return SourceDescription(tuple(chunks))


def _parse_bye(body: bytes, count: int) -> Bye:
    if len(body) < 4 * count:
        raise RtcpParseError(f"RTCP BYE announces {count} sources but has {len(body)} bytes")
    ssrcs = struct.unpack_from(f"!{count}I", body)
    reason = None
    offset = 4 * count
    if offset < len(body):
        length = body[offset]
        if offset + 1 + length > len(body):
            raise RtcpParseError(f"RTCP BYE reason of {length} bytes is truncated")
        reason = body[offset + 1 : offset + 1 + length].decode("utf-8", "replace")
    return Bye(ssrcs, reason)


# -- building ------------------------------------------------------------------


def build_rtcp(packets: Iterable[RtcpPacket]) -> bytes:
    """Serialize packets into one compound RTCP datagram."""
    return b"".join(_build_one(packet) for packet in packets)


def _with_header(packet_type: int, count: int, body: bytes) -> bytes:
    if count > 31:
        raise ValueError(f"an RTCP packet holds at most 31 items, got {count}")
    if len(body) % 4:
        raise ValueError("RTCP packet body must be a multiple of 4 bytes")
    return _HEADER.pack(0x80 | count, packet_type, len(body) // 4) + body


def _pack_blocks(blocks: tuple[ReportBlock, ...]) -> bytes:
    return b"".join(
        _REPORT_BLOCK_FIELDS.pack(
            block.ssrc,
            (block.fraction_lost & 0xFF) << 24 | (block.cumulative_lost & 0xFFFFFF),
            block.highest_sequence & 0xFFFFFFFF,
            block.jitter & 0xFFFFFFFF,
            block.last_sr & 0xFFFFFFFF,
            block.delay_since_last_sr & 0xFFFFFFFF,
        )
        for block in blocks
    )


def _build_one(packet: RtcpPacket) -> bytes:
    if isinstance(packet, SenderReport):
        body = _SENDER_INFO.pack(
            packet.ssrc,
            packet.ntp_timestamp,
            packet.rtp_timestamp & 0xFFFFFFFF,
            packet.packet_count & 0xFFFFFFFF,
            packet.octet_count & 0xFFFFFFFF,
        )
        return _with_header(RTCP_SR, len(packet.reports), body + _pack_blocks(packet.reports))
    if isinstance(packet, ReceiverReport):
        body = _SSRC.pack(packet.ssrc) + _pack_blocks(packet.reports)
        return _with_header(RTCP_RR, len(packet.reports), body)
    if isinstance(packet, SourceDescription):
        parts = []
        for chunk in packet.chunks:
            items = b"".join(
                bytes((item_type, len(value))) + value for item_type, value in chunk.items
            )
            raw = _SSRC.pack(chunk.ssrc) + items
            parts.append(raw + b"\x00" * (4 - len(raw) % 4))  # >= 1 null, to 32 bits
        return _with_header(RTCP_SDES, len(packet.chunks), b"".join(parts))
    if isinstance(packet, Bye):
        body = struct.pack(f"!{len(packet.ssrcs)}I", *packet.ssrcs)
        if packet.reason:
            reason = packet.reason.encode()[:255]
            body += bytes((len(reason),)) + reason
            body += b"\x00" * (-len(body) % 4)
        return _with_header(RTCP_BYE, len(packet.ssrcs), body)
    if isinstance(packet, UnknownRtcpPacket):
        return _with_header(packet.packet_type, packet.count, packet.body)
    raise TypeError(f"not an RTCP packet: {packet!r}")


def cname_chunk(ssrc: int, cname: str) -> SourceDescription:
    """An SDES packet carrying only the CNAME of one source."""
    return SourceDescription((SdesChunk(ssrc, ((SDES_CNAME, cname.encode()[:255]),)),))


# -- reception statistics ----------------------------------------------------------

_SEQ_MOD = 1 << 16
_MAX_DROPOUT = 3000
_MAX_MISORDER = 100
_MIN_SEQUENTIAL = 2


class ReceptionStatistics:
    """What we know about one incoming RTP source, for the report blocks we send.

    Sequence validation follows RFC 3550 appendix A.1: a new source must send
    two packets in sequence before it counts (`probation`), a jump of more than
    3000 is believed only when the next packet follows it.
    """

    def __init__(self, ssrc: int, clock_rate: int, probation: int = _MIN_SEQUENTIAL) -> None:
        self.ssrc = ssrc
        self.clock_rate = clock_rate
        self._probation = probation
        self._max_seq = 0
        self._cycles = 0
        self._base_seq = 0
        self._bad_seq = _SEQ_MOD + 1
        self._received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._started = False
        self._transit: float | None = None
        self._last_ts = 0
        self._last_arrival_units = 0.0
        self._jitter = 0.0  # RTP timestamp units
        self._last_sr_ntp_middle = 0
        self._last_sr_arrival: float | None = None

    def _init_seq(self, seq: int) -> None:
        self._base_seq = seq
        self._max_seq = seq
        self._bad_seq = _SEQ_MOD + 1
        self._cycles = 0
        self._received = 0
        self._received_prior = 0
        self._expected_prior = 0

    def on_packet(self, seq: int, rtp_timestamp: int, arrival: float) -> bool:
        """Account one packet of this source; False if A.1 rejects it (not counted)."""
        if not self._started:
            self._started = True
            self._init_seq(seq)
            self._max_seq = (seq - 1) & 0xFFFF
            if self._probation == 0:
                self._init_seq(seq)
                return self._count(rtp_timestamp, arrival)
        udelta = (seq - self._max_seq) & 0xFFFF
        if self._probation:
            if seq == (self._max_seq + 1) & 0xFFFF:
                self._probation -= 1
                self._max_seq = seq
                if self._probation == 0:
                    self._init_seq(seq)
                    return self._count(rtp_timestamp, arrival)
            else:
                self._probation = _MIN_SEQUENTIAL - 1
                self._max_seq = seq
            return False
        if udelta < _MAX_DROPOUT:
            if seq < self._max_seq:
                self._cycles += _SEQ_MOD  # wrapped
            self._max_seq = seq
        elif udelta <= _SEQ_MOD - _MAX_MISORDER:
            if seq == self._bad_seq:
                # Two packets in sequence after a big jump: the sender restarted.
                self._init_seq(seq)
            else:
                self._bad_seq = (seq + 1) & 0xFFFF
                return False
        # else: duplicate or reordered packet; counted, as A.1 does
        return self._count(rtp_timestamp, arrival)

    def _count(self, rtp_timestamp: int, arrival: float) -> bool:
        self._received += 1
        # A.8: transit in timestamp units; only differences matter, so the unknown
        # offset between the clocks cancels. Timestamps compared modulo 2**32.
        arrival_units = arrival * self.clock_rate
        if self._transit is not None:
            elapsed_ts = ((rtp_timestamp - self._last_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
            d = (arrival_units - self._last_arrival_units) - elapsed_ts
            self._jitter += (abs(d) - self._jitter) / 16.0
        self._transit = arrival_units - rtp_timestamp
        self._last_ts = rtp_timestamp
        self._last_arrival_units = arrival_units
        return True

    def on_sender_report(self, report: SenderReport, arrival: float) -> None:
        """Remember an SR of this source, to echo it as LSR/DLSR."""
        self._last_sr_ntp_middle = ntp_middle_32(report.ntp_timestamp)
        self._last_sr_arrival = arrival

    @property
    def packets_received(self) -> int:
        return self._received

    @property
    def extended_highest_sequence(self) -> int:
        return self._cycles + self._max_seq

    @property
    def expected(self) -> int:
        return self.extended_highest_sequence - self._base_seq + 1 if self._received else 0

    @property
    def cumulative_lost(self) -> int:
        """Expected minus received (negative with duplicates), clamped to 24 bits."""
        lost = self.expected - self._received
        return max(-0x800000, min(0x7FFFFF, lost))

    @property
    def jitter(self) -> float:
        """Interarrival jitter estimate in RTP timestamp units."""
        return self._jitter

    def report_block(self, now: float) -> ReportBlock:
        """The block for our next SR/RR; starts a new interval for `fraction_lost`."""
        expected = self.expected
        expected_interval = expected - self._expected_prior
        self._expected_prior = expected
        received_interval = self._received - self._received_prior
        self._received_prior = self._received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = (lost_interval << 8) // expected_interval
        dlsr = 0
        if self._last_sr_arrival is not None:
            dlsr = int((now - self._last_sr_arrival) * 65536) & 0xFFFFFFFF
        return ReportBlock(
            self.ssrc,
            min(fraction, 255),
            self.cumulative_lost,
            self.extended_highest_sequence & 0xFFFFFFFF,
            int(self._jitter),
            self._last_sr_ntp_middle,
            dlsr,
        )
