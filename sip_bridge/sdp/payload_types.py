"""Static RTP payload types of the RTP/AVP profile (RFC 3551, tables 4 and 5).

An m-line may list a static payload type without an `a=rtpmap` for it; its meaning then comes
from this table. Types 1, 2, 19 and 20-24 are reserved or unassigned and have no entry.
"""

from __future__ import annotations

from typing import NamedTuple


class StaticPayloadType(NamedTuple):
    encoding: str
    clock_rate: int
    channels: int = 1


STATIC_PAYLOAD_TYPES: dict[int, StaticPayloadType] = {
    0: StaticPayloadType("PCMU", 8000),
    3: StaticPayloadType("GSM", 8000),
    4: StaticPayloadType("G723", 8000),
    5: StaticPayloadType("DVI4", 8000),
    6: StaticPayloadType("DVI4", 16000),
    7: StaticPayloadType("LPC", 8000),
    8: StaticPayloadType("PCMA", 8000),
    # G.722 samples at 16 kHz but its RTP clock is 8000 (RFC 3551 section 4.5.2).
    9: StaticPayloadType("G722", 8000),
    10: StaticPayloadType("L16", 44100, 2),
    11: StaticPayloadType("L16", 44100),
    12: StaticPayloadType("QCELP", 8000),
    13: StaticPayloadType("CN", 8000),
    14: StaticPayloadType("MPA", 90000),
    15: StaticPayloadType("G728", 8000),
    16: StaticPayloadType("DVI4", 11025),
    17: StaticPayloadType("DVI4", 22050),
    18: StaticPayloadType("G729", 8000),
    25: StaticPayloadType("CelB", 90000),
    26: StaticPayloadType("JPEG", 90000),
    28: StaticPayloadType("nv", 90000),
    31: StaticPayloadType("H261", 90000),
    32: StaticPayloadType("MPV", 90000),
    33: StaticPayloadType("MP2T", 90000),
    34: StaticPayloadType("H263", 90000),
}

# Payload types 96-127 are assigned by each session description (RFC 3551 section 3).
DYNAMIC_PAYLOAD_TYPES = range(96, 128)
