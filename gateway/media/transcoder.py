"""Frame-by-frame transcoding between the browser leg's codec and the SIP leg's codec.

Used only when the two legs share no codec (the codec policy prefers G.711 or Opus end to
end, which needs none). One 20 ms frame in, zero or more 20 ms frames out; codecs come from
libavcodec through PyAV (Opus, G.722: sip_bridge.rtp) or from our G.711 tables.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np

from sip_bridge import OPUS_INPUT_RATES, LossConcealer, OpusEncoder, codec_by_name
from sip_bridge import OpusDecoder as SipOpusDecoder


@dataclass(frozen=True, slots=True)
class AudioCodec:
    """A codec of either leg: what the bridge needs to know to relay or convert it."""

    name: str  # "PCMU", "PCMA", "G722", "opus"
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


class OpusDecoder(SipOpusDecoder):
    """sip_bridge's Opus decoder, giving PyAV frames: the transcoder resamples them."""

    def decode(self, payload: bytes | memoryview) -> list[av.AudioFrame]:  # type: ignore[override]
        return self.decode_frames(payload)


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
    encodes 8 or 16 kHz as it is; Opus decodes at 48 kHz, resampled down once), else at the
    target's rate. `convert(payload)` returns the encoded frame for the other leg (or None
    while an encoder fills its first frame); `conceal_one()` produces a frame for a packet
    lost upstream, so the outgoing stream stays continuous.
    """

    def __init__(self, source: AudioCodec, target: AudioCodec) -> None:
        self.source = source
        self.target = target
        if target.name == "opus" and source.sample_rate in OPUS_INPUT_RATES:
            # A phone's narrowband audio: CELT from its own rate is cheapest and quickest.
            self.pcm_rate = source.sample_rate
            self._encode = OpusEncoder(input_rate=self.pcm_rate, application="lowdelay").encode
        else:
            self.pcm_rate = target.sample_rate
            self._encode = frame_encoder(target)
        self.frame_samples = self.pcm_rate // 50
        if source.name == "opus":
            self._opus_decoder: OpusDecoder | None = OpusDecoder()
            self._decoder = None
        else:
            self._opus_decoder = None
            self._decoder = codec_by_name(source.name).create_decoder()
        self._resampler = (
            _Resampler(self.pcm_rate, self.frame_samples)
            if source.sample_rate != self.pcm_rate
            else None
        )
        self._concealer = LossConcealer(self.frame_samples, self.pcm_rate)

    def _decode(self, payload: bytes | memoryview) -> np.ndarray | None:
        """One frame of PCM at `pcm_rate`, or None if the payload did not decode."""
        if self._opus_decoder is not None:
            try:
                frames = self._opus_decoder.decode(payload)
            except av.error.FFmpegError:
                return None
            if not frames:
                return None
            return self._resampler.resample(frames[0])
        pcm = self._decoder.decode(bytes(payload))
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
