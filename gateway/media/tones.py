"""The ringback tone the visitor hears while the operator's phone rings (180 without SDP)."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from gateway.media.transcoder import AudioCodec, frame_encoder
from gateway.media.webrtc_leg import WebRtcLeg
from sip_bridge import paced_ticks


class RingbackCadence:
    """One cycle of the tone (e.g. 425 Hz, 1 s on, 4 s off), cut into 20 ms frames."""

    def __init__(
        self,
        frequencies: Sequence[float],
        on_ms: int,
        off_ms: int,
        rate: int,
        amplitude: float = 0.25,
    ) -> None:
        on = round(rate * on_ms / 1000)
        t = np.arange(on) / rate
        tone = sum(np.sin(2 * np.pi * f * t) for f in frequencies) / max(len(frequencies), 1)
        cycle = np.concatenate([tone * amplitude * 32767, np.zeros(round(rate * off_ms / 1000))])
        frame = rate // 50
        cycle = cycle[: len(cycle) // frame * frame]
        self.frames = cycle.astype(np.int16).reshape(-1, frame)

    def __iter__(self):
        while True:
            yield from self.frames


@functools.lru_cache(maxsize=8)
def cadence_for(
    frequencies: tuple[int, ...], on_ms: int, off_ms: int, rate: int
) -> RingbackCadence:
    """One shared cadence per tone and rate: every ringing call reads the same frames."""
    return RingbackCadence(frequencies, on_ms, off_ms, rate)


async def play_ringback(leg: WebRtcLeg, codec: AudioCodec, cadence: RingbackCadence) -> None:
    """Send the cadence to the browser every 20 ms until cancelled."""
    encode = frame_encoder(codec)
    frames = iter(cadence)
    async for _ in paced_ticks(0.02):
        encoded = encode(next(frames))
        if encoded is not None:
            leg.send(encoded)
