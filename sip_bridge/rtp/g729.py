"""G.729 (ITU-T G.729 / Annex A, RTP payload RFC 3551 section 4.5.6) through bcg729.

An option for phone systems that insist on it: bcg729 (Debian's `libbcg729-0`) is the free
implementation, and no maintained Python binding of it exists, so this is a thin ctypes
binding, as opuslib-next binds libopus. The library is loaded on first use, so the rest of
the codec table works without it; `g729_missing()` says why it cannot be used.

A frame is 10 ms of 8 kHz PCM (80 samples) coded in 10 bytes; an RTP payload carries zero or
more frames followed by at most one 2-byte Annex B SID frame (comfort noise). We never send
SID frames (no VAD), but decode those of a peer that does.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

__all__ = [
    "FRAME_BYTES",
    "FRAME_SAMPLES",
    "G729_DEBIAN_PACKAGE",
    "G729Decoder",
    "G729Encoder",
    "G729UnavailableError",
    "g729_missing",
]

FRAME_SAMPLES = 80  # 10 ms at 8 kHz
FRAME_BYTES = 10
SID_BYTES = 2  # an Annex B silence insertion descriptor
G729_DEBIAN_PACKAGE = "libbcg729-0"
_LIBRARY = "libbcg729.so.0"

_int16_p = ctypes.POINTER(ctypes.c_int16)
_uint8_p = ctypes.POINTER(ctypes.c_uint8)


class G729UnavailableError(RuntimeError):
    """bcg729 is not installed: G.729 cannot be used."""


@functools.cache
def _library() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(_LIBRARY)
    except OSError as exc:
        raise G729UnavailableError(
            f"G.729 needs the bcg729 library ({_LIBRARY}, Debian package "
            f"{G729_DEBIAN_PACKAGE}): {exc}"
        ) from None
    lib.initBcg729EncoderChannel.argtypes = [ctypes.c_uint8]
    lib.initBcg729EncoderChannel.restype = ctypes.c_void_p
    lib.closeBcg729EncoderChannel.argtypes = [ctypes.c_void_p]
    lib.closeBcg729EncoderChannel.restype = None
    lib.bcg729Encoder.argtypes = [ctypes.c_void_p, _int16_p, _uint8_p, _uint8_p]
    lib.bcg729Encoder.restype = None
    lib.initBcg729DecoderChannel.argtypes = []
    lib.initBcg729DecoderChannel.restype = ctypes.c_void_p
    lib.closeBcg729DecoderChannel.argtypes = [ctypes.c_void_p]
    lib.closeBcg729DecoderChannel.restype = None
    lib.bcg729Decoder.argtypes = [
        ctypes.c_void_p,
        _uint8_p,
        ctypes.c_uint8,  # bitStreamLength
        ctypes.c_uint8,  # frameErasureFlag
        ctypes.c_uint8,  # SIDFrameFlag
        ctypes.c_uint8,  # rfc3389PayloadFlag
        _int16_p,
    ]
    lib.bcg729Decoder.restype = None
    return lib


def g729_missing() -> str | None:
    """Why G.729 cannot be used here (bcg729 missing), or None when it can."""
    try:
        _library()
    except G729UnavailableError as exc:
        return str(exc)
    return None


class G729Encoder:
    """Encodes frames of 8 kHz int16 mono PCM (a multiple of 80 samples) to G.729 frames,
    10 bytes per 10 ms, without VAD (so never a SID frame)."""

    def __init__(self, frame_samples: int = 160) -> None:
        if frame_samples <= 0 or frame_samples % FRAME_SAMPLES:
            raise ValueError(f"G.729 codes 10 ms frames: {frame_samples} samples is not 80*n")
        lib = _library()
        self.frame_samples = frame_samples
        self._frames = frame_samples // FRAME_SAMPLES
        self._encode_frame = lib.bcg729Encoder
        self._close = lib.closeBcg729EncoderChannel
        self._context = lib.initBcg729EncoderChannel(0)
        if not self._context:
            raise MemoryError("bcg729 could not create an encoder")
        self._out = (ctypes.c_uint8 * (FRAME_BYTES * self._frames))()
        self._out_address = ctypes.addressof(self._out)
        self._length = ctypes.c_uint8()
        self._length_ref = ctypes.byref(self._length)

    def encode(self, pcm: np.ndarray) -> bytes:
        if len(pcm) != self.frame_samples:
            raise ValueError(f"G.729 encoder takes {self.frame_samples} samples, not {len(pcm)}")
        pcm = np.ascontiguousarray(pcm, dtype=np.int16)
        address = pcm.ctypes.data
        for i in range(self._frames):
            self._encode_frame(
                self._context,
                ctypes.cast(address + 2 * FRAME_SAMPLES * i, _int16_p),
                ctypes.cast(self._out_address + FRAME_BYTES * i, _uint8_p),
                self._length_ref,
            )
        return bytes(self._out)

    def __del__(self) -> None:
        context, self._context = getattr(self, "_context", None), None
        if context:
            self._close(context)


class G729Decoder:
    """Decodes G.729 payloads (10-byte frames, optionally ending in a 2-byte SID frame) to
    8 kHz int16 mono; an empty array for a payload of any other length (concealed by the
    session), so nothing from the network reaches bcg729 that it was not made for."""

    def __init__(self) -> None:
        lib = _library()
        self._decode_frame = lib.bcg729Decoder
        self._close = lib.closeBcg729DecoderChannel
        self._context = lib.initBcg729DecoderChannel()
        if not self._context:
            raise MemoryError("bcg729 could not create a decoder")

    def decode(self, payload: bytes | bytearray | memoryview) -> np.ndarray:
        data = bytes(payload)
        frames, rest = divmod(len(data), FRAME_BYTES)
        if rest not in (0, SID_BYTES) or not data:
            return np.zeros(0, np.int16)
        pcm = np.empty((frames + (rest != 0)) * FRAME_SAMPLES, np.int16)
        source = np.frombuffer(data, np.uint8).ctypes.data
        target = pcm.ctypes.data
        for i in range(frames):
            self._decode_frame(
                self._context,
                ctypes.cast(source + FRAME_BYTES * i, _uint8_p),
                FRAME_BYTES,
                0,
                0,
                0,
                ctypes.cast(target + 2 * FRAME_SAMPLES * i, _int16_p),
            )
        if rest:
            self._decode_frame(
                self._context,
                ctypes.cast(source + FRAME_BYTES * frames, _uint8_p),
                SID_BYTES,
                0,
                1,
                0,
                ctypes.cast(target + 2 * FRAME_SAMPLES * frames, _int16_p),
            )
        return pcm

    def __del__(self) -> None:
        context, self._context = getattr(self, "_context", None), None
        if context:
            self._close(context)
