"""G.711 u-law and A-law (ITU-T G.711) through numpy lookup tables.

Encoding indexes a 65536-entry table with the int16 samples reinterpreted as
uint16; decoding indexes a 256-entry table with the code bytes. Both tables are
computed once at import from the quantization rules of G.711 (the same decision
levels as the ITU-T G.191 reference code), so a 20 ms frame costs two numpy calls.

Note: libavcodec's pcm_mulaw/pcm_alaw encoders round to the nearest output level,
which differs from G.711's decision levels near segment edges (512 u-law and 964
A-law inputs); its decoders agree with G.711 on all 256 codes.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "ALAW_DECODE_TABLE",
    "ALAW_ENCODE_TABLE",
    "ULAW_DECODE_TABLE",
    "ULAW_ENCODE_TABLE",
    "alaw_decode",
    "alaw_encode",
    "ulaw_decode",
    "ulaw_encode",
]


def _segment_of(magnitude: np.ndarray, first_segment_top: int) -> np.ndarray:
    """Index (0-7) of the logarithmic segment holding each magnitude.

    Segment 0 spans [0, first_segment_top]; each following segment is twice as
    wide, which is exactly "position of the highest set bit above the first one".
    """
    segment = np.zeros(magnitude.shape, dtype=np.int32)
    top = first_segment_top
    for s in range(1, 8):
        segment[magnitude > top] = s
        top = 2 * top + 1
    return segment


def _build_ulaw_encode_table() -> np.ndarray:
    samples = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)
    # G.711 u-law quantizes the 14 most significant bits. Negative samples use the
    # one's complement, so -1 and 0 land on the two codes nearest zero.
    magnitude = np.where(samples < 0, ~samples, samples) >> 2
    # The bias of 33 makes every segment start on a power of two; 8191 is the
    # largest biased magnitude the top segment can represent.
    biased = np.minimum(magnitude + 33, 0x1FFF)
    segment = _segment_of(biased, 0x3F)
    mantissa = (biased >> (segment + 1)) & 0x0F
    code = (segment << 4) | mantissa
    sign = np.where(samples >= 0, 0x80, 0x00)
    # Codes are transmitted inverted (all-zero is avoided on T1 lines).
    return ((code ^ 0x7F) | sign).astype(np.uint8)


def _build_ulaw_decode_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32)
    inverted = ~codes & 0xFF
    segment = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    # Reconstruct at the middle of the quantization interval, remove the bias,
    # and scale the 14-bit value back to 16 bits.
    magnitude = (((mantissa << 3) + 0x84) << segment) - 0x84
    return np.where(inverted & 0x80, -magnitude, magnitude).astype(np.int16)


def _build_alaw_encode_table() -> np.ndarray:
    samples = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int32)
    # A-law quantizes the 12 most significant bits of the magnitude (one's
    # complement for negatives, as G.191 does).
    magnitude = np.where(samples < 0, ~samples, samples) >> 4
    segment = _segment_of(magnitude, 0x0F)
    # Segments 0 and 1 share a step of 1 (in 12-bit units); above, the step doubles
    # and the implicit leading one is dropped from the mantissa.
    shift = np.maximum(segment - 1, 0)
    mantissa = (magnitude >> shift) & 0x0F
    code = (segment << 4) | mantissa
    sign = np.where(samples >= 0, 0x80, 0x00)
    # Even bits are inverted on the line (G.711 table 1a).
    return ((code | sign) ^ 0x55).astype(np.uint8)


def _build_alaw_decode_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32)
    toggled = codes ^ 0x55
    segment = (toggled >> 4) & 0x07
    mantissa = toggled & 0x0F
    # Middle of the interval (+0.5 step), implicit leading one above segment 0.
    magnitude = np.where(segment > 0, ((mantissa + 16) << 4) + 8, (mantissa << 4) + 8)
    magnitude = np.where(segment > 1, magnitude << np.maximum(segment - 1, 0), magnitude)
    return np.where(toggled & 0x80, magnitude, -magnitude).astype(np.int16)


ULAW_ENCODE_TABLE = _build_ulaw_encode_table()
ULAW_DECODE_TABLE = _build_ulaw_decode_table()
ALAW_ENCODE_TABLE = _build_alaw_encode_table()
ALAW_DECODE_TABLE = _build_alaw_decode_table()
for _table in (ULAW_ENCODE_TABLE, ULAW_DECODE_TABLE, ALAW_ENCODE_TABLE, ALAW_DECODE_TABLE):
    _table.flags.writeable = False
del _table


def ulaw_encode(pcm: np.ndarray) -> bytes:
    """int16 samples -> u-law bytes (one byte per sample)."""
    return ULAW_ENCODE_TABLE[pcm.view(np.uint16)].tobytes()


def alaw_encode(pcm: np.ndarray) -> bytes:
    """int16 samples -> A-law bytes (one byte per sample)."""
    return ALAW_ENCODE_TABLE[pcm.view(np.uint16)].tobytes()


def ulaw_decode(payload: bytes | bytearray | memoryview) -> np.ndarray:
    """u-law bytes -> a new int16 array."""
    return ULAW_DECODE_TABLE[np.frombuffer(payload, dtype=np.uint8)]


def alaw_decode(payload: bytes | bytearray | memoryview) -> np.ndarray:
    """A-law bytes -> a new int16 array."""
    return ALAW_DECODE_TABLE[np.frombuffer(payload, dtype=np.uint8)]
