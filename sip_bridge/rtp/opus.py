"""Opus (RFC 6716, RTP payload RFC 7587) through libopus itself: the encoder and decoder of
the codec table (`codecs.OPUS`, where the RTP session itself encodes and decodes: the CLI,
the demo phone) and of the gateway's transcoder.

opuslib-next finds and loads libopus, creates and frees the codec states and sets their
options; the per-frame calls go to libopus directly, through function objects of our own
with their argument types declared once, into output buffers allocated once per coder.
opuslib-next's own `encode`/`decode` allocate a buffer per call and copy the decoded PCM
through a Python list of ints: about 7 us of a 16 us decode to 8 kHz. No threads: libopus
codes in the calling thread. Mono; the RTP clock is always 48000 whatever the coded
bandwidth, and libopus encodes from and decodes to 8, 12, 16, 24 or 48 kHz PCM as it is
(a phone's 8 or 16 kHz audio needs no resampling step of ours either way).
"""

from __future__ import annotations

import ctypes

import numpy as np
import opuslib_next
import opuslib_next.exceptions
from opuslib_next import constants as opus_constants

__all__ = [
    "OPUS_RATES",
    "OpusDecoder",
    "OpusEncoder",
    "OpusError",
    "OpusFrameDecoder",
    "libopus_addresses",
    "libopus_packet_samples_address",
]

OpusError = opuslib_next.exceptions.OpusError

# The PCM rates libopus encodes from and decodes to.
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
APPLICATIONS = {
    "voip": opus_constants.APPLICATION_VOIP,
    "audio": opus_constants.APPLICATION_AUDIO,
    "lowdelay": opus_constants.APPLICATION_RESTRICTED_LOWDELAY,
}
MAX_PACKET_BYTES = 1275  # RFC 6716 3.2.1: the longest a frame can be coded in
MAX_PACKET_MS = 120  # the longest an Opus packet can last

# Item access gives function objects of our own (attribute access would share opuslib-next's
# and change its argument types): addresses as plain integers, payloads as bytes.
_libopus = opuslib_next.api.libopus
_opus_encode = _libopus["opus_encode"]
_opus_encode.argtypes = (
    ctypes.c_void_p,
    ctypes.c_char_p,
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.c_int32,
)
_opus_encode.restype = ctypes.c_int32
_opus_decode = _libopus["opus_decode"]
_opus_decode.argtypes = (
    ctypes.c_void_p,
    ctypes.c_char_p,
    ctypes.c_int32,
    ctypes.c_void_p,
    ctypes.c_int,
    ctypes.c_int,
)
_opus_decode.restype = ctypes.c_int
_opus_packet_samples = _libopus["opus_packet_get_nb_samples"]

_EMPTY = np.zeros(0, np.int16)


def libopus_addresses() -> tuple[int, int]:
    """The addresses of libopus's `opus_encode` and `opus_decode`, for C code that calls
    the library opuslib-next loaded (gateway/media/_opusframes.c)."""
    return (
        ctypes.cast(_opus_encode, ctypes.c_void_p).value or 0,
        ctypes.cast(_opus_decode, ctypes.c_void_p).value or 0,
    )


def libopus_packet_samples_address() -> int:
    """The address of libopus's `opus_packet_get_nb_samples` (a packet's duration, read
    from its table of contents without decoding it: gateway/media/_g711relay.c)."""
    return ctypes.cast(_opus_packet_samples, ctypes.c_void_p).value or 0


class _Buffer:
    """A bytearray libopus writes into, and its address."""

    def __init__(self, size: int) -> None:
        self.data = bytearray(size)
        self._array = (ctypes.c_char * size).from_buffer(self.data)  # holds the export
        self.address = ctypes.addressof(self._array)
        self.view = memoryview(self.data)


class OpusEncoder:
    """Encodes 20 ms (or 10, 40, 60 ms) frames of int16 mono PCM at `input_rate`.

    `application` is libopus's: "voip" (SILK/hybrid, tuned for speech), "audio", or
    "lowdelay" (CELT only: 2.5 ms of lookahead instead of 6.5). `complexity` is libopus's
    0-10 (its default 10): below 5 CELT skips the pitch search of its pre-filter, which a
    phone's 8 kHz audio coded at 32 kbit/s does not need (see
    `gateway.media.transcoder.PHONE_AUDIO_COMPLEXITY`). `narrowband`: no audio above 4 kHz
    (OPUS_SET_MAX_BANDWIDTH), as libwebrtc sets it for a far end's maxplaybackrate of 8000.
    """

    def __init__(
        self,
        bitrate: int = 32000,
        input_rate: int = 48000,
        application: str = "voip",
        complexity: int = 10,
        narrowband: bool = False,
    ) -> None:
        if input_rate not in OPUS_RATES:
            raise ValueError(f"libopus takes PCM at {OPUS_RATES} Hz, not {input_rate}")
        self.input_rate = input_rate
        self._coder = opuslib_next.Encoder(input_rate, 1, APPLICATIONS[application])
        self._coder.bitrate = bitrate
        if complexity != 10:
            self._coder.complexity = complexity
        if narrowband:
            self._coder.max_bandwidth = opus_constants.BANDWIDTH_NARROWBAND
        self._state = ctypes.cast(self._coder.encoder_state, ctypes.c_void_p).value
        self.state_address: int = self._state or 0  # valid while this object lives
        self._out = _Buffer(MAX_PACKET_BYTES)

    def encode(self, pcm: np.ndarray) -> bytes:
        """One frame of PCM -> one Opus packet; raises `OpusError` for a frame libopus
        refuses (a length that is not an Opus frame size)."""
        out = self._out
        size = _opus_encode(
            self._state,
            pcm.astype(np.int16, copy=False).tobytes(),
            len(pcm),
            out.address,
            MAX_PACKET_BYTES,
        )
        if size < 0:
            raise OpusError(size)
        return out.view[:size].tobytes()


class OpusDecoder:
    """Decodes Opus payloads to int16 mono PCM at `rate` straight out of libopus."""

    def __init__(self, rate: int = 48000) -> None:
        if rate not in OPUS_RATES:
            raise ValueError(f"libopus decodes to {OPUS_RATES} Hz, not {rate}")
        self.rate = rate
        self._coder = opuslib_next.Decoder(rate, 1)
        self._state = ctypes.cast(self._coder.decoder_state, ctypes.c_void_p).value
        self.state_address: int = self._state or 0  # valid while this object lives
        self._max_samples = self.max_samples = rate * MAX_PACKET_MS // 1000
        self._out = _Buffer(2 * self._max_samples)

    @property
    def bandwidth(self) -> int:
        """libopus's audio bandwidth of the last packet decoded (OPUS_GET_BANDWIDTH: 1101
        narrowband ... 1105 fullband; 0 before the first)."""
        return int(self._coder.bandwidth)

    def decode(self, payload: bytes | bytearray | memoryview) -> np.ndarray:
        """The PCM of one packet (a new array); raises `OpusError` if libopus refuses it."""
        data = payload if type(payload) is bytes else bytes(payload)
        out = self._out
        samples = _opus_decode(self._state, data, len(data), out.address, self._max_samples, 0)
        if samples < 0:
            raise OpusError(samples)
        return np.frombuffer(out.view[: 2 * samples].tobytes(), np.int16)

    def decode_or_empty(self, payload: bytes | bytearray | memoryview) -> np.ndarray:
        """`decode`, but an empty array for a payload libopus refuses (for callers that
        conceal it; no exception on the media path)."""
        data = payload if type(payload) is bytes else bytes(payload)
        out = self._out
        samples = _opus_decode(self._state, data, len(data), out.address, self._max_samples, 0)
        if samples <= 0:
            return _EMPTY
        return np.frombuffer(out.view[: 2 * samples].tobytes(), np.int16)


class OpusFrameDecoder(OpusDecoder):
    """The codec table's decoder (48 kHz): an empty array for a payload libopus refuses,
    which the RTP session conceals."""

    decode = OpusDecoder.decode_or_empty
