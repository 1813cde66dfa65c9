"""Opus (RFC 6716, RTP payload RFC 7587) through libopus via PyAV, for a SIP leg that speaks
it (Asterisk, FreeSWITCH and many phones offer it) and for the gateway's transcoder.

Mono voice in 20 ms frames; the RTP clock is always 48000 whatever the coded bandwidth.
"""

from __future__ import annotations

import av
import numpy as np

__all__ = ["OPUS_INPUT_RATES", "OpusDecoder", "OpusEncoder"]

# Input rates libopus takes as they are (it resamples inside, cheaply, where it must).
OPUS_INPUT_RATES = (8000, 12000, 16000, 24000, 48000)


class OpusEncoder:
    """libopus in mono at a voice bitrate.

    `input_rate` is the rate of the PCM given to `encode`: audio from a G.711 phone is
    encoded from 8 kHz as it is, without upsampling to 48 kHz first. `application` is
    libopus's: "voip" (SILK/hybrid, tuned for speech) or "lowdelay" (CELT only: 2.5 ms of
    lookahead instead of 6.5, and for G.711 audio from 8 kHz about 30 us a frame here
    against 66 us for "voip" at 8 kHz and 155 us at 48 kHz, measured on speech-like audio).
    """

    def __init__(
        self, bitrate: int = 32000, input_rate: int = 48000, application: str = "voip"
    ) -> None:
        if input_rate not in OPUS_INPUT_RATES:
            raise ValueError(f"libopus takes PCM at {OPUS_INPUT_RATES} Hz, not {input_rate}")
        context = av.CodecContext.create("libopus", "w")
        context.sample_rate = input_rate
        context.layout = "mono"
        context.format = "s16"
        context.bit_rate = bitrate
        context.options = {"application": application, "frame_duration": "20"}
        context.open()
        self._context = context
        self._rate = input_rate
        self._pts = 0

    def encode(self, pcm: np.ndarray) -> bytes | None:
        """One 20 ms frame of int16 PCM at `input_rate`; None while the encoder fills."""
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self._rate
        frame.pts = self._pts
        self._pts += len(pcm)
        packets = self._context.encode(frame)
        return bytes(packets[0]) if packets else None


class OpusDecoder:
    """Decodes Opus payloads at 48 kHz mono."""

    def __init__(self) -> None:
        context = av.CodecContext.create("opus", "r")
        context.sample_rate = 48000
        context.layout = "mono"
        self._context = context

    def decode_frames(self, payload: bytes | memoryview) -> list[av.AudioFrame]:
        """The decoded frames as PyAV frames (for a resampler); raises av.FFmpegError."""
        return self._context.decode(av.Packet(bytes(payload)))

    def decode(self, payload: bytes | bytearray | memoryview) -> np.ndarray:
        """One payload as int16 samples at 48 kHz (empty when it did not decode)."""
        try:
            frames = self.decode_frames(bytes(payload))
        except av.FFmpegError:
            return np.zeros(0, np.int16)
        if not frames:
            return np.zeros(0, np.int16)
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in frames])
        if pcm.dtype != np.int16:  # libavcodec's opus decoder gives float planes
            pcm = np.clip(pcm * 32768.0, -32768, 32767).astype(np.int16)
        return pcm
