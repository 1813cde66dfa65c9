"""Opus (RFC 6716, RTP payload RFC 7587) for a SIP leg that speaks it (Asterisk, FreeSWITCH
and many phones offer it): the encoder and decoder of the codec table (`codecs.OPUS`),
used where the RTP session itself encodes and decodes (the CLI, the demo phone).

libopus itself through opuslib-next, as the gateway's transcoder uses it: no threads and
no frame objects per packet. Mono voice in 20 ms frames at 48 kHz; the RTP clock is always
48000 whatever the coded bandwidth.
"""

from __future__ import annotations

import numpy as np
import opuslib_next
import opuslib_next.exceptions
from opuslib_next import constants as opus_constants

__all__ = ["OpusDecoder", "OpusEncoder"]

RATE = 48000


class OpusEncoder:
    """Encodes 20 ms frames of 48 kHz int16 mono PCM (`frame_samples` per frame)."""

    def __init__(self, frame_samples: int = 960, bitrate: int = 32000) -> None:
        self.frame_samples = frame_samples
        self._encoder = opuslib_next.Encoder(RATE, 1, opus_constants.APPLICATION_VOIP)
        self._encoder.bitrate = bitrate

    def encode(self, pcm: np.ndarray) -> bytes:
        return self._encoder.encode(pcm.astype(np.int16, copy=False).tobytes(), len(pcm))


class OpusDecoder:
    """Decodes Opus payloads to 48 kHz int16 mono; an empty array for a payload libopus
    refuses (the session conceals it)."""

    def __init__(self) -> None:
        self._decoder = opuslib_next.Decoder(RATE, 1)
        self._max_samples = RATE * 120 // 1000  # the longest Opus packet: 120 ms

    def decode(self, payload: bytes | bytearray | memoryview) -> np.ndarray:
        try:
            pcm = self._decoder.decode(bytes(payload), self._max_samples)
        except opuslib_next.exceptions.OpusError:
            return np.zeros(0, np.int16)
        return np.frombuffer(pcm, np.int16)
