"""The audio codecs the SIP leg speaks, and one encoder/decoder shape for all.

Every encoder has `encode(pcm: int16 array) -> bytes` and every decoder has
`decode(payload) -> int16 array`, whatever the codec, so the media path never
branches on the codec name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from sip_bridge.rtp import g711
from sip_bridge.rtp.g722 import G722Decoder, G722Encoder
from sip_bridge.rtp.g729 import G729Decoder, G729Encoder
from sip_bridge.rtp.opus import OpusEncoder, OpusFrameDecoder

__all__ = [
    "BYTE_PER_TICK",
    "CODECS",
    "AudioDecoder",
    "AudioEncoder",
    "CodecInfo",
    "UnknownCodecError",
    "codec_by_name",
    "codec_by_payload_type",
]


class AudioEncoder(Protocol):
    def encode(self, pcm: np.ndarray) -> bytes: ...


class AudioDecoder(Protocol):
    def decode(self, payload: bytes | bytearray | memoryview) -> np.ndarray: ...


class UnknownCodecError(ValueError):
    """A codec name or payload type is not in the table."""


# `table.take(codes)` rather than `table[codes]`: the same lookup without numpy's general
# fancy-indexing machinery, ~0.7 us a 20 ms frame instead of ~1.05 (twice per transcoded
# frame pair).


class _TableEncoder:
    """Stateless G.711 encoder: one table lookup per frame."""

    __slots__ = ("_table",)

    def __init__(self, table: np.ndarray) -> None:
        self._table = table

    def encode(self, pcm: np.ndarray) -> bytes:
        return self._table.take(pcm.view(np.uint16)).tobytes()


class _TableDecoder:
    """Stateless G.711 decoder: one table lookup per frame."""

    __slots__ = ("_table",)

    def __init__(self, table: np.ndarray) -> None:
        self._table = table

    def decode(self, payload: bytes | bytearray | memoryview) -> np.ndarray:
        return self._table.take(np.frombuffer(payload, dtype=np.uint8))


@dataclass(frozen=True, slots=True)
class CodecInfo:
    """What the media path needs to know about one codec.

    `clock_rate` is the RTP timestamp rate (what SDP's rtpmap says), which for
    G.722 is not the `sample_rate` of the PCM the codec consumes.
    """

    name: str
    payload_type: int
    clock_rate: int
    sample_rate: int
    bytes_per_second: int
    _encoder_factory: Callable[[int], AudioEncoder]
    _decoder_factory: Callable[[], AudioDecoder]

    def samples_per_frame(self, ptime_ms: int = 20) -> int:
        """PCM samples (at `sample_rate`) in one frame of `ptime_ms`."""
        return self.sample_rate * ptime_ms // 1000

    def bytes_per_frame(self, ptime_ms: int = 20) -> int:
        """Encoded payload bytes in one frame of `ptime_ms`."""
        return self.bytes_per_second * ptime_ms // 1000

    def timestamp_step(self, ptime_ms: int = 20) -> int:
        """RTP timestamp units one frame of `ptime_ms` advances the clock by."""
        return self.clock_rate * ptime_ms // 1000

    @property
    def frame_samples(self) -> int:
        """PCM samples in a 20 ms frame."""
        return self.samples_per_frame(20)

    @property
    def frame_bytes(self) -> int:
        """Payload bytes in a 20 ms frame."""
        return self.bytes_per_frame(20)

    def create_encoder(self, ptime_ms: int = 20) -> AudioEncoder:
        """A new encoder taking frames of `ptime_ms` (stateful codecs need one per stream)."""
        return self._encoder_factory(self.samples_per_frame(ptime_ms))

    def create_decoder(self) -> AudioDecoder:
        """A new decoder for one incoming stream."""
        return self._decoder_factory()


PCMU = CodecInfo(
    "PCMU",
    0,
    8000,
    8000,
    8000,
    lambda _samples: _TableEncoder(g711.ULAW_ENCODE_TABLE),
    lambda: _TableDecoder(g711.ULAW_DECODE_TABLE),
)
PCMA = CodecInfo(
    "PCMA",
    8,
    8000,
    8000,
    8000,
    lambda _samples: _TableEncoder(g711.ALAW_ENCODE_TABLE),
    lambda: _TableDecoder(g711.ALAW_DECODE_TABLE),
)
G722 = CodecInfo("G722", 9, 8000, 16000, 8000, G722Encoder, G722Decoder)
# 8 kbit/s; an option: bcg729 is loaded when a coder is first made (g729.g729_missing()).
G729 = CodecInfo("G729", 18, 8000, 8000, 1000, G729Encoder, G729Decoder)


# Opus's payload type is dynamic: 111 is what we offer; the SDP says what a peer uses.
# Its byte rate varies; 4000 bytes/s is the 32 kbit/s we encode at.
OPUS = CodecInfo("opus", 111, 48000, 48000, 4000, lambda _samples: OpusEncoder(), OpusFrameDecoder)

CODECS: dict[str, CodecInfo] = {
    codec.name.upper(): codec for codec in (PCMU, PCMA, G722, G729, OPUS)
}
BYTE_PER_TICK = frozenset({"PCMU", "PCMA", "G722"})  # one payload byte per RTP tick
_BY_PAYLOAD_TYPE = {codec.payload_type: codec for codec in (PCMU, PCMA, G722, G729)}


def codec_by_name(name: str) -> CodecInfo:
    """Look up a codec by its SDP encoding name (case-insensitive, as SDP says)."""
    try:
        return CODECS[name.upper()]
    except KeyError:
        raise UnknownCodecError(f"unknown codec {name!r}; supported: {', '.join(CODECS)}") from None


def codec_by_payload_type(payload_type: int) -> CodecInfo:
    """Look up a codec by its static RTP payload type (RFC 3551 table 4); Opus has none."""
    try:
        return _BY_PAYLOAD_TYPE[payload_type]
    except KeyError:
        raise UnknownCodecError(f"no codec with static payload type {payload_type}") from None
