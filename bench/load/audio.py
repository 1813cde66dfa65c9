"""What a visitor sends and how it reads the echo.

The visitor's "voice" is a 1 kHz tone, 900 ms on and 100 ms off, repeating every second
(50 frames). Each return of the tone after the pause is an onset that can be found in the
echo: its delay is the echo round trip. The tone is what the frequency check looks for.

Frames are encoded once per process: G.711 frames are the same bytes every call (the
gateway relays them untouched), Opus frames come from encoding two periods and keeping the
second, so the encoder is warmed up and the loop joins without a click. Opus frames come in
two kinds, as Chromium's encoder would code them: fullband at 32 kbit/s, and narrowband at
12 kbit/s for an answer whose Opus fmtp says maxplaybackrate=8000 or less (libwebrtc then
sets OPUS_SET_MAX_BANDWIDTH to narrowband and its default bitrate to 12 kbit/s).
"""

from __future__ import annotations

import re

import numpy as np

from gateway.media.transcoder import OpusDecoder, OpusEncoder, OpusError
from sip_bridge.rtp.g711 import ULAW_DECODE_TABLE, ulaw_encode

TONE_HZ = 1000.0
AMPLITUDE = 8000
PERIOD_FRAMES = 50  # one onset per second
SILENT_FRAMES = 5  # the last 100 ms of each period
# A frame is quiet below this mean magnitude; an onset is the first sample above ONSET.
QUIET = 300
ONSET = 2000


def pattern_pcm(rate: int, periods: int = 1) -> np.ndarray:
    """`periods` seconds of the pattern at `rate`, int16."""
    frame = rate // 50
    t = np.arange(frame * PERIOD_FRAMES) / rate
    period = np.sin(2 * np.pi * TONE_HZ * t) * AMPLITUDE
    period[frame * (PERIOD_FRAMES - SILENT_FRAMES) :] = 0
    return np.tile(period.astype(np.int16), periods)


def encoded_frames(codec: str, *, narrowband: bool = False) -> list[bytes]:
    """One period of the pattern as encoded 20 ms frames of `codec` ("pcmu" or "opus";
    `narrowband`: Opus with no audio above 4 kHz)."""
    if codec == "pcmu":
        pcm = pattern_pcm(8000)
        return [ulaw_encode(pcm[i * 160 : (i + 1) * 160]) for i in range(PERIOD_FRAMES)]
    # libwebrtc's default bitrate follows the far end's maxplaybackrate: 12 kbit/s up to
    # 8000 (narrowband), 32 kbit/s above 16000 (fullband).
    encoder = OpusEncoder(bitrate=12000 if narrowband else 32000, narrowband=narrowband)
    pcm = pattern_pcm(48000, periods=2)
    frames = [encoder.encode(pcm[i * 960 : (i + 1) * 960]) for i in range(2 * PERIOD_FRAMES)]
    second = frames[PERIOD_FRAMES:]
    if any(f is None for f in second):
        raise RuntimeError("the Opus encoder gave no frame for part of the pattern")
    return second


def plays_narrowband(answer_sdp: str) -> bool:
    """Whether the answer's Opus fmtp has maxplaybackrate of 8000 or less (RFC 7587):
    Chromium then encodes narrowband."""
    opus = re.search(r"^a=rtpmap:(\d+) opus/48000", answer_sdp, re.MULTILINE | re.I)
    if opus is None:
        return False
    fmtp = re.search(rf"^a=fmtp:{opus.group(1)} (.*)$", answer_sdp, re.MULTILINE)
    rate = re.search(r"(?:^|;)\s*maxplaybackrate=(\d+)", fmtp.group(1)) if fmtp else None
    return rate is not None and int(rate.group(1)) <= 8000


class EchoDecoder:
    """Decodes echoed frames of one call to PCM (8 kHz for PCMU, 48 kHz for Opus)."""

    def __init__(self, codec: str) -> None:
        self.rate = 8000 if codec == "pcmu" else 48000
        self._opus = OpusDecoder() if codec == "opus" else None

    def decode(self, payload) -> np.ndarray | None:
        if self._opus is None:
            return ULAW_DECODE_TABLE[np.frombuffer(payload, np.uint8)]
        try:
            pcm = self._opus.decode(payload)
        except OpusError:  # a corrupt frame counts as not received, it does not stop the run
            return None
        return pcm if len(pcm) else None


def dominant_frequency(pcm: np.ndarray, rate: int) -> float:
    """The frequency of the strongest FFT bin (Hann window)."""
    if len(pcm) < rate // 50:
        return 0.0
    window = np.hanning(len(pcm))
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * window))
    spectrum[0] = 0
    return float(np.argmax(spectrum) * rate / len(pcm))
