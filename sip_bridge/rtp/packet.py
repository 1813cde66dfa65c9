"""RTP packets (RFC 3550 section 5.1): parse, build, and tell RTP from RTCP.

Parsing returns the payload as a memoryview into the received datagram, so the
media path copies nothing. Building stamps the header into one preallocated
buffer per stream (`RtpPacketizer`), so sending allocates no new bytes either.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

__all__ = [
    "RTP_HEADER_SIZE",
    "RtpPacket",
    "RtpPacketizer",
    "RtpParseError",
    "is_rtcp",
    "parse_rtp",
]

RTP_VERSION = 2
RTP_HEADER_SIZE = 12
# Generous bound: 20 ms of 16-bit 48 kHz stereo is 3840 bytes; a UDP datagram on
# a 1500-byte MTU carries far less. Payloads above this are refused at build time.
MAX_PAYLOAD_SIZE = 8192

_FIXED_HEADER = struct.Struct("!BBHII")
_EXTENSION_HEADER = struct.Struct("!HH")


class RtpParseError(ValueError):
    """A datagram is not a well-formed RTP packet; the message says why."""


@dataclass(slots=True)
class RtpPacket:
    """One received RTP packet. `payload` is a view into the datagram it came from."""

    payload_type: int
    marker: bool
    sequence_number: int
    timestamp: int
    ssrc: int
    csrcs: tuple[int, ...]
    payload: memoryview
    # The header extension, when present, is skipped but its profile is kept so a
    # caller can tell it was there (e.g. for RFC 8285 one-byte headers).
    extension_profile: int | None = None


def is_rtcp(data: bytes | bytearray | memoryview) -> bool:
    """True if a datagram on a shared (rtcp-mux) port is RTCP rather than RTP.

    RFC 5761 section 4: RTCP packet types 192-223 occupy the byte where RTP keeps
    the marker bit and payload type, so with the marker bit masked off they fall on
    payload types 64-95, which RTP sessions must not use.
    """
    return len(data) >= 2 and 64 <= (data[1] & 0x7F) <= 95


def parse_rtp(data: bytes | bytearray | memoryview) -> RtpPacket:
    """Parse one RTP packet; raise `RtpParseError` if it is malformed.

    CSRCs are returned; a header extension is skipped; padding is removed.
    """
    size = len(data)
    if size < RTP_HEADER_SIZE:
        raise RtpParseError(f"RTP packet too short: {size} bytes, the fixed header needs 12")
    first, second, sequence_number, timestamp, ssrc = _FIXED_HEADER.unpack_from(data)
    version = first >> 6
    if version != RTP_VERSION:
        raise RtpParseError(f"RTP version is {version}, expected 2")
    csrc_count = first & 0x0F
    offset = RTP_HEADER_SIZE + 4 * csrc_count
    if offset > size:
        raise RtpParseError(
            f"RTP header announces {csrc_count} CSRCs but the packet has only {size} bytes"
        )
    csrcs: tuple[int, ...] = ()
    if csrc_count:
        csrcs = struct.unpack_from(f"!{csrc_count}I", data, RTP_HEADER_SIZE)
    extension_profile = None
    if first & 0x10:
        if offset + 4 > size:
            raise RtpParseError("RTP extension bit set but the extension header is missing")
        extension_profile, words = _EXTENSION_HEADER.unpack_from(data, offset)
        offset += 4 + 4 * words
        if offset > size:
            raise RtpParseError(
                f"RTP header extension of {words} words runs past the end of the packet"
            )
    end = size
    if first & 0x20:
        padding = data[size - 1]
        if padding == 0:
            raise RtpParseError("RTP padding bit set but the padding count is zero")
        end = size - padding
        if end < offset:
            raise RtpParseError(
                f"RTP padding of {padding} bytes is longer than the payload ({size - offset} bytes)"
            )
    view = data if isinstance(data, memoryview) else memoryview(data)
    return RtpPacket(
        second & 0x7F,
        bool(second & 0x80),
        sequence_number,
        timestamp,
        ssrc,
        csrcs,
        view[offset:end],
        extension_profile,
    )


class RtpPacketizer:
    """Builds the RTP packets of one outgoing stream (one SSRC) into a reused buffer.

    The sequence number advances by one per packet; the caller owns the RTP
    timestamp (audio and RFC 4733 events of one stream share the clock but not the
    rules for advancing it). `build()` returns a memoryview of the internal buffer
    that stays valid only until the next `build()`: send it before building again.
    """

    __slots__ = (
        "_buffer",
        "_view",
        "next_sequence_number",
        "octets_sent",
        "packets_sent",
        "payload_type",
        "ssrc",
    )

    def __init__(
        self,
        payload_type: int,
        ssrc: int | None = None,
        first_sequence_number: int | None = None,
    ) -> None:
        if not 0 <= payload_type <= 127:
            raise ValueError(f"RTP payload type must be 0-127, got {payload_type}")
        # RFC 3550 section 5.1: random initial values make known-plaintext attacks
        # on encrypted streams harder and keep restarted senders distinguishable.
        self.payload_type = payload_type
        self.ssrc = random.getrandbits(32) if ssrc is None else ssrc
        self.next_sequence_number = (
            random.getrandbits(16) if first_sequence_number is None else first_sequence_number
        )
        self.packets_sent = 0
        self.octets_sent = 0
        self._buffer = bytearray(RTP_HEADER_SIZE + MAX_PAYLOAD_SIZE)
        self._view = memoryview(self._buffer)

    def build(
        self,
        payload: bytes | bytearray | memoryview,
        timestamp: int,
        marker: bool = False,
        payload_type: int | None = None,
    ) -> memoryview:
        """Return the packet carrying `payload`, valid until the next call."""
        size = len(payload)
        if size > MAX_PAYLOAD_SIZE:
            raise ValueError(f"RTP payload of {size} bytes exceeds {MAX_PAYLOAD_SIZE}")
        pt = self.payload_type if payload_type is None else payload_type
        sequence_number = self.next_sequence_number
        _FIXED_HEADER.pack_into(
            self._buffer,
            0,
            0x80,
            (0x80 | pt) if marker else pt,
            sequence_number,
            timestamp & 0xFFFFFFFF,
            self.ssrc,
        )
        end = RTP_HEADER_SIZE + size
        self._buffer[RTP_HEADER_SIZE:end] = payload
        self.next_sequence_number = (sequence_number + 1) & 0xFFFF
        self.packets_sent += 1
        self.octets_sent += size
        return self._view[:end]
