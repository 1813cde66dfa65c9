"""Frame-by-frame transcoding between the browser leg's codec and the SIP leg's codec.

Used only when the two legs share no codec (the codec policy prefers G.711 end to end, which
needs none). One packet in (20 ms; 10-60 ms from a phone), zero or more 20 ms frames out;
codecs come from libopus, libavcodec through PyAV (G.722), bcg729 (G.729, an option) or our
G.711 tables. Between G.711 and Opus the steady 20 ms frame is one C call where the
extension is built (gateway/media/_opusframes.c: decode, table, concealer history, encode);
everything else, and everything where it is not built, takes the Python steps, which code
the same bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

from sip_bridge import LossConcealer, codec_by_name
from sip_bridge.rtp import g711
from sip_bridge.rtp.g729 import SID_BYTES
from sip_bridge.rtp.opus import (
    OPUS_RATES,
    OpusDecoder,
    OpusEncoder,
    OpusError,
    libopus_addresses,
)

_opusframes: Any
try:  # built by `make` (setup.py); without a C compiler, the Python path throughout
    from gateway.media import _opusframes
except ImportError:
    _opusframes = None
else:
    _opusframes.setup(*libopus_addresses())

# Encode and decode tables of the G.711 codecs the C frame step takes.
G711_TABLES = {
    "PCMU": (g711.ULAW_ENCODE_TABLE, g711.ULAW_DECODE_TABLE),
    "PCMA": (g711.ALAW_ENCODE_TABLE, g711.ALAW_DECODE_TABLE),
}

__all__ = [
    "OPUS",
    "OPUS_INPUT_RATES",
    "AudioCodec",
    "NativeFrame",
    "OpusDecoder",
    "OpusEncoder",
    "OpusError",
    "Transcoder",
    "audio_codec",
    "frame_encoder",
    "silence_frame",
]


@dataclass(frozen=True, slots=True)
class AudioCodec:
    """A codec of either leg: what the bridge needs to know to relay or convert it."""

    name: str  # "PCMU", "PCMA", "G722", "G729", "opus"
    sample_rate: int  # PCM rate of the decoder/encoder
    clock_rate: int  # RTP clock

    @property
    def frame_samples(self) -> int:
        return self.sample_rate // 50

    @property
    def frame_ticks(self) -> int:
        return self.clock_rate // 50


OPUS = AudioCodec("opus", 48000, 48000)


def audio_codec(name: str) -> AudioCodec:
    if name.lower() == "opus":
        return OPUS
    info = codec_by_name(name)
    return AudioCodec(info.name, info.sample_rate, info.clock_rate)


# The rates libopus encodes from and decodes to as they are (it resamples inside, cheaply,
# where it must): a phone's 8 or 16 kHz audio needs no resampling step of ours either way.
OPUS_INPUT_RATES = OPUS_RATES

# libopus's complexity (0-10, default 10) for a phone's audio going to the browser. Below
# 5, CELT skips the pitch search of its pre-filter (a long-term predictor that saves bits
# on strongly periodic sound at low bitrates): a frame from 8 kHz costs ~8 us instead of
# ~15 (speech-like) or ~25 (a steady tone) here, and a speech-like signal decodes with the
# same SNR (28 dB) at 32 kbit/s, far more bits than 4 kHz of telephone audio needs.
PHONE_AUDIO_COMPLEXITY = 4


@dataclass(frozen=True, slots=True)
class NativeFrame:
    """What the C frame step takes of one direction's transcoder (its own C call, and the
    native relay's: gateway/media/_opusstep.h). Addresses valid while the transcoder lives."""

    codec: int  # the OpusDecoder's state (Opus -> G.711) or the OpusEncoder's
    table: int  # the G.711 encode table (Opus -> G.711) or decode table
    history: int  # the concealer's history (float32)
    history_length: int
    frame: int  # samples of a 20 ms frame at the PCM rate: the G.711 frame's bytes
    from_opus: bool  # Opus -> G.711


class _Resampler:
    """PCM rate conversion with exact 20 ms output frames.

    libswresample holds back a few samples of filter delay on the first frame; padding that
    one frame with silence keeps every later frame exactly one frame long.
    """

    def __init__(self, rate: int, frame_samples: int) -> None:
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        self._frame_samples = frame_samples

    def resample(self, frame: av.AudioFrame) -> np.ndarray:
        out = self._resampler.resample(frame)
        if len(out) == 1 and out[0].samples == self._frame_samples:
            return out[0].to_ndarray().reshape(-1)
        pcm = (
            np.concatenate([f.to_ndarray().reshape(-1) for f in out])
            if out
            else np.zeros(0, np.int16)
        )
        if len(pcm) < self._frame_samples:
            return np.concatenate([np.zeros(self._frame_samples - len(pcm), np.int16), pcm])
        return pcm[: self._frame_samples]


def _pcm_frame(pcm: np.ndarray, rate: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    return frame


class Transcoder:
    """Converts one leg's frames to the other's 20 ms frames: decode, resample, encode.

    The PCM in between is at the lower of the two rates when one leg is Opus (libopus
    encodes from and decodes to 8 or 16 kHz as it is), else at the target's rate.
    `convert(payload)` returns the encoded frames for the other leg that the packet
    completes: one for a 20 ms packet; none, one or two for a phone's packets of 10, 30, 40
    or 60 ms, whose PCM is cut into 20 ms frames again (libopus codes 20 ms frames as it
    was set up to, and the bridge's timelines count 20 ms frames); a concealed frame for a
    payload that does not decode. `conceal_one()` produces a frame for a packet lost
    upstream, so the outgoing stream stays continuous.
    """

    def __init__(self, source: AudioCodec, target: AudioCodec) -> None:
        self.source = source
        self.target = target
        opus_encoder = opus_decoder = None
        if target.name == "opus" and source.sample_rate in OPUS_INPUT_RATES:
            # A phone's narrowband audio: CELT from its own rate is cheapest and quickest.
            self.pcm_rate = source.sample_rate
            opus_encoder = OpusEncoder(
                input_rate=self.pcm_rate,
                application="lowdelay",
                complexity=PHONE_AUDIO_COMPLEXITY,
            )
            self._encode: Callable[[np.ndarray], bytes | None] = opus_encoder.encode
        else:
            self.pcm_rate = target.sample_rate
            self._encode = frame_encoder(target)
        self.frame_samples = self.pcm_rate // 50
        self._resampler: _Resampler | None = None
        self._decode: Callable[[bytes | memoryview], np.ndarray]
        if source.name == "opus":
            # Decoded straight to the phone's rate (libopus does 8 and 16 kHz itself).
            opus_decoder = OpusDecoder(self.pcm_rate)
            self._decode = opus_decoder.decode_or_empty
            decode_rate = self.pcm_rate
        else:
            self._decode = codec_by_name(source.name).create_decoder().decode
            decode_rate = source.sample_rate
            if decode_rate != self.pcm_rate:
                self._resampler = _Resampler(self.pcm_rate, self.frame_samples)
        self._source_frame = decode_rate // 50  # samples of a 20 ms frame as decoded
        self._pending: np.ndarray | None = None  # decoded, short of a 20 ms frame
        self.packet_frames = 1  # 20 ms frames in the last packet decoded (at least 1)
        # A lone G.729 Annex B SID frame (10 ms of comfort noise) stands for a silence of
        # any length: concealed as one frame, not gathered into one every other SID.
        self._lone_sid_bytes = SID_BYTES if source.name == "G729" else -1
        self._concealer = LossConcealer(self.frame_samples, self.pcm_rate)
        self._opus_coders = (opus_encoder, opus_decoder)  # alive as long as native_frame
        self.native_frame = self._native_frame(opus_encoder, opus_decoder)
        self._native = self._native_step(self.native_frame)
        self.native = self._native is not None

    def _native_frame(
        self, encoder: OpusEncoder | None, decoder: OpusDecoder | None
    ) -> NativeFrame | None:
        """For G.711 <-> Opus with nothing to resample, where the extension is built."""
        if _opusframes is None or self._resampler is not None:
            return None
        history = self._concealer.history
        if decoder is not None and self.target.name in G711_TABLES:
            table = G711_TABLES[self.target.name][0]
        elif encoder is not None and self.source.name in G711_TABLES:
            table = G711_TABLES[self.source.name][1]
        else:
            return None
        coder = decoder if decoder is not None else encoder
        assert coder is not None
        return NativeFrame(
            coder.state_address,
            table.ctypes.data,
            history.ctypes.data,
            len(history),
            self.frame_samples,
            decoder is not None,
        )

    def _native_step(
        self, frame: NativeFrame | None
    ) -> Callable[[bytes | memoryview], bytes | int | None] | None:
        """The steady 20 ms frame in one C call (`_opusframes`)."""
        if frame is None:
            return None
        fields = (frame.codec, frame.table, frame.history, frame.history_length)
        if frame.from_opus:
            decoder = self._opus_coders[1]
            assert decoder is not None
            self._pcm = np.zeros(decoder.max_samples, np.int16)  # PCM of other lengths
            return functools.partial(
                _opusframes.opus_to_g711,
                *fields,
                self._pcm.ctypes.data,
                len(self._pcm),
                frame.frame,
            )
        return functools.partial(_opusframes.g711_to_opus, *fields, frame.frame)

    @property
    def opus_decoder(self) -> OpusDecoder | None:
        """The decoder of an Opus source (what the browser sends): None for others."""
        return self._opus_coders[1]

    @property
    def steady(self) -> bool:
        """The next 20 ms frame may take the C step: nothing held back from a packet of
        another length, the concealer not fading back in after a loss."""
        concealing = self._concealer.concealing
        return self._pending is None and not concealing and self.packet_frames == 1

    def convert(self, payload: bytes | memoryview) -> list[bytes]:
        native = self._native
        if native is not None and self._pending is None and not self._concealer.concealing:
            out = native(payload)
            if type(out) is bytes:  # the steady case, done in C
                self.packet_frames = 1
                return [out]
            if type(out) is int:  # Opus decoded in C, but not one 20 ms frame
                pcm = self._pcm[:out].copy() if out > 0 else np.zeros(0, np.int16)
                return self._decoded(pcm, payload)
        return self._decoded(self._decode(payload), payload)

    def _decoded(self, pcm: np.ndarray, payload: bytes | memoryview) -> list[bytes]:
        samples = len(pcm)
        if samples == self._source_frame and self._pending is None:  # a 20 ms packet
            self.packet_frames = 1
            if self._resampler is None:
                out = self._encode(self._concealer.good_frame(pcm))
            else:
                out = self._frame(pcm)
            return [] if out is None else [out]
        if not samples or len(payload) == self._lone_sid_bytes:
            # Nothing decoded (a corrupt payload, a G.729 length RFC 3551 does not allow).
            out = self.conceal_one()
            return [] if out is None else [out]
        self.packet_frames = samples // self._source_frame or 1
        return self._reframe(pcm)

    def _reframe(self, pcm: np.ndarray) -> list[bytes]:
        """A packet that is not 20 ms long: its PCM and what was left of the previous
        packets, cut into 20 ms frames; the rest waits for the next packet."""
        if self._pending is not None:
            pcm = np.concatenate((self._pending, pcm))
        frame = self._source_frame
        whole = len(pcm) - len(pcm) % frame
        self._pending = pcm[whole:] if whole < len(pcm) else None
        out = []
        for start in range(0, whole, frame):
            encoded = self._frame(pcm[start : start + frame])
            if encoded is not None:
                out.append(encoded)
        return out

    def _frame(self, pcm: np.ndarray) -> bytes | None:
        """One 20 ms frame as decoded -> the target's encoding."""
        if self._resampler is not None:
            pcm = self._resampler.resample(_pcm_frame(pcm, self.source.sample_rate))
        return self._encode(self._concealer.good_frame(pcm))

    def conceal_one(self) -> bytes | None:
        return self._encode(self._concealer.conceal())


def frame_encoder(codec: AudioCodec) -> Callable[[np.ndarray], bytes | None]:
    """A function encoding one 20 ms PCM frame (the codec's rate) for that codec."""
    if codec.name == "opus":
        return OpusEncoder().encode
    return codec_by_name(codec.name).create_encoder(20).encode


@functools.cache
def silence_frame(codec: AudioCodec) -> bytes:
    """One 20 ms frame of silence in this codec (sent while muted), encoded once per codec
    by a fresh encoder: one from a call would carry its last audio into the frame."""
    encode = frame_encoder(codec)
    silence = np.zeros(codec.frame_samples, np.int16)
    # An encoder with lookahead (Opus) may need a frame before it gives one.
    return encode(silence) or encode(silence) or b""
