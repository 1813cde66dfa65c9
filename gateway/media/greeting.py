"""What a visitor hears before leaving a voicemail: the site's greeting (an audio file FFmpeg
reads: WAV, Ogg, MP3, FLAC...), then a tone that says "speak now"; without a greeting, the
tone alone.

The greeting is decoded once per file and rate (mono, 16-bit, at the browser codec's rate)
and played to the browser leg in 20 ms frames on a drift-free clock.
"""

from __future__ import annotations

import functools
from pathlib import Path

import av
import numpy as np

from gateway.media.transcoder import AudioCodec, frame_encoder
from gateway.media.webrtc_leg import WebRtcLeg
from sip_bridge import paced_ticks

MAX_GREETING_SECONDS = 60.0  # a longer file is cut: the visitor came to speak
TONE_HZ = 1000  # the "speak now" tone: above speech's fundamentals, easy to tell apart
TONE_MS = 500
PAUSE_MS = 200  # of silence before the tone, after a greeting


def tone(rate: int, hz: float = TONE_HZ, ms: int = TONE_MS, amplitude: float = 0.3) -> np.ndarray:
    """A plain sine tone with 10 ms ramps (no click at either end)."""
    t = np.arange(round(rate * ms / 1000)) / rate
    wave = np.sin(2 * np.pi * hz * t) * amplitude * 32767
    ramp = min(len(wave) // 2, rate // 100)
    if ramp:
        envelope = np.linspace(0.0, 1.0, ramp)
        wave[:ramp] *= envelope
        wave[-ramp:] *= envelope[::-1]
    return wave.astype(np.int16)


def read_audio(path: Path, rate: int, max_seconds: float = MAX_GREETING_SECONDS) -> np.ndarray:
    """The first `max_seconds` of the audio file at `path`, mono int16 at `rate`. Raises
    ValueError when it holds no audio FFmpeg can decode."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    limit = round(max_seconds * rate)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise ValueError(f"no audio in {path}")
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    chunks.append(chunk)
                    total += len(chunk)
                if total >= limit:
                    break
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except av.error.FFmpegError as exc:
        raise ValueError(f"cannot read audio from {path}: {exc.strerror}") from None
    pcm = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return pcm[:limit].astype(np.int16)


@functools.lru_cache(maxsize=32)
def greeting_pcm(path: Path | None, rate: int) -> np.ndarray:
    """The whole of what plays before recording: the greeting (if any), a short pause and
    the tone; one shared array per file and rate."""
    parts = []
    if path is not None:
        parts += [read_audio(path, rate), np.zeros(rate * PAUSE_MS // 1000, np.int16)]
    parts.append(tone(rate))
    pcm = np.concatenate(parts)
    pcm.setflags(write=False)
    return pcm


async def play_greeting(leg: WebRtcLeg, codec: AudioCodec, pcm: np.ndarray) -> int:
    """Send `pcm` (at the codec's rate) to the browser, one encoded 20 ms frame every 20 ms;
    returns the frames sent. The last frame is padded with silence."""
    encode = frame_encoder(codec)
    size = codec.frame_samples
    count = -(-len(pcm) // size)
    sent = 0
    async for _ in paced_ticks(0.02, count):
        frame = pcm[sent * size : (sent + 1) * size]
        if len(frame) < size:
            frame = np.concatenate([frame, np.zeros(size - len(frame), np.int16)])
        encoded = encode(frame)
        if encoded is not None:
            leg.send(encoded)
        sent += 1
    return sent
