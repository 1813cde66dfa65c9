"""Frame-by-frame transcoding between the browser leg's codec and the SIP leg's codec.

Used only when the two legs share no codec (the codec policy prefers G.711 end to end, which
needs none). One 20 ms frame in, zero or more 20 ms frames out; codecs come from libopus,
libavcodec through PyAV (G.722), bcg729 (G.729, an option) or our G.711 tables.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np
import opuslib_next
import opuslib_next.exceptions
from opuslib_next import constants as opus_constants

from sip_bridge import LossConcealer, codec_by_name


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
OPUS_INPUT_RATES = (8000, 12000, 16000, 24000, 48000)
OPUS_APPLICATIONS = {
    "voip": opus_constants.APPLICATION_VOIP,
    "audio": opus_constants.APPLICATION_AUDIO,
    "lowdelay": opus_constants.APPLICATION_RESTRICTED_LOWDELAY,
}


class OpusEncoder:
    """libopus in mono at a voice bitrate: the browser plays it as it plays any Opus.

    libopus itself (through opuslib-next), not libavcodec's wrapper: no frame objects per
    packet and no threads (PyAV's encoder passes every frame through a filter graph with a
    thread pool of its own: two threads per call, ~100 in a worker with 25 transcoded
    calls). `input_rate` is the rate of the PCM given to `encode`: audio from a G.711 phone
    is encoded from 8 kHz as it is, without upsampling to 48 kHz first. `application` is
    libopus's: "voip" (SILK/hybrid, tuned for speech) or "lowdelay" (CELT only: 2.5 ms of
    lookahead instead of 6.5, and for G.711 audio from 8 kHz about 30 us a frame here).
    """

    def __init__(
        self, bitrate: int = 32000, input_rate: int = 48000, application: str = "voip"
    ) -> None:
        if input_rate not in OPUS_INPUT_RATES:
            raise ValueError(f"libopus takes PCM at {OPUS_INPUT_RATES} Hz, not {input_rate}")
        self._encoder = opuslib_next.Encoder(input_rate, 1, OPUS_APPLICATIONS[application])
        self._encoder.bitrate = bitrate

    def encode(self, pcm: np.ndarray) -> bytes | None:
        """One 20 ms frame of int16 PCM at `input_rate` -> one Opus packet."""
        return self._encoder.encode(pcm.astype(np.int16, copy=False).tobytes(), len(pcm))


class OpusDecoder:
    """libopus's decoder, mono int16 PCM at `rate` (8, 12, 16, 24 or 48 kHz) straight
    out of the decoder: no resampling step to reach a phone's rate, and no threads."""

    def __init__(self, rate: int = 48000) -> None:
        if rate not in OPUS_INPUT_RATES:
            raise ValueError(f"libopus decodes to {OPUS_INPUT_RATES} Hz, not {rate}")
        self.rate = rate
        self._decoder = opuslib_next.Decoder(rate, 1)
        self._max_samples = rate * 120 // 1000  # the longest Opus packet: 120 ms

    def decode(self, payload: bytes | memoryview) -> np.ndarray:
        """PCM of one packet; raises `OpusError` if libopus refuses it."""
        pcm = self._decoder.decode(bytes(payload), self._max_samples)
        return np.frombuffer(pcm, np.int16)


OpusError = opuslib_next.exceptions.OpusError


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
    """Converts one leg's 20 ms frames to the other's: decode, resample, encode.

    The PCM in between is at the lower of the two rates when one leg is Opus (libopus
    encodes from and decodes to 8 or 16 kHz as it is), else at the target's rate.
    `convert(payload)` returns the encoded frame for the other leg (or None while an
    encoder fills its first frame); `conceal_one()` produces a frame for a packet lost
    upstream, so the outgoing stream stays continuous.
    """

    def __init__(self, source: AudioCodec, target: AudioCodec) -> None:
        self.source = source
        self.target = target
        self._opus_target = target.name == "opus"
        if target.name == "opus" and source.sample_rate in OPUS_INPUT_RATES:
            # A phone's narrowband audio: CELT from its own rate is cheapest and quickest.
            self.pcm_rate = source.sample_rate
            self._encode: Callable[[np.ndarray], bytes | None] = OpusEncoder(
                input_rate=self.pcm_rate, application="lowdelay"
            ).encode
        else:
            self.pcm_rate = target.sample_rate
            self._encode = frame_encoder(target)
        self.frame_samples = self.pcm_rate // 50
        self._resampler: _Resampler | None = None
        if source.name == "opus":
            # Decoded straight to the phone's rate (libopus does 8 and 16 kHz itself).
            self._opus_decoder: OpusDecoder | None = OpusDecoder(self.pcm_rate)
            self._decoder = None
        else:
            self._opus_decoder = None
            self._decoder = codec_by_name(source.name).create_decoder()
            if source.sample_rate != self.pcm_rate:
                self._resampler = _Resampler(self.pcm_rate, self.frame_samples)
        self._concealer = LossConcealer(self.frame_samples, self.pcm_rate)

    def _decode(self, payload: bytes | memoryview) -> np.ndarray | None:
        """One frame of PCM at `pcm_rate`, or None if the payload did not decode."""
        if self._opus_decoder is not None:
            try:
                pcm = self._opus_decoder.decode(payload)
            except OpusError:
                return None
            if len(pcm) != self.frame_samples:
                return None  # not a 20 ms frame: concealed instead
            return pcm
        assert self._decoder is not None  # not Opus: one of the two is set
        pcm = self._decoder.decode(bytes(payload))
        if len(pcm) != self.source.frame_samples and (not len(pcm) or self._opus_target):
            # Nothing decoded (a G.729 payload of a length RFC 3551 does not allow), or not
            # the 20 ms libopus is given (a lone G.729 SID frame): concealed instead.
            return None
        if self._resampler is not None:
            return self._resampler.resample(_pcm_frame(pcm, self.source.sample_rate))
        return pcm

    def convert(self, payload: bytes | memoryview) -> bytes | None:
        pcm = self._decode(payload)
        if pcm is None:
            return self.conceal_one()
        self._concealer.good_frame(pcm)
        return self._encode(pcm)

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
