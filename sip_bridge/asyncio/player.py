"""Paced media I/O for an `RtpSession`: play PCM into it, record PCM out of it.

Frames go out on a drift-free clock: tick k is due at start + k * ptime on the
event loop's clock, so scheduling delays do not accumulate the way repeated
`sleep(0.02)` calls would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from sip_bridge.asyncio.rtp_session import RtpSession
from sip_bridge.rtp.wav import read_wav, write_wav

__all__ = ["PcmRecorder", "paced_ticks", "play_pcm", "play_wav"]


async def paced_ticks(
    period: float, count: int | None = None, *, max_lag: float = 0.2
) -> AsyncIterator[float]:
    """Yield the due time of each tick, every `period` seconds, without drift.

    If the loop falls more than `max_lag` behind (a stall), the schedule restarts
    from now instead of firing a burst of overdue ticks.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    tick = 0
    while count is None or tick < count:
        due = start + tick * period
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        elif -delay > max_lag:
            start = loop.time() - tick * period
            due = start + tick * period
        yield due
        tick += 1


async def play_pcm(session: RtpSession, pcm: np.ndarray) -> int:
    """Send int16 PCM (codec sample rate) frame by frame, one per ptime; returns frames.

    The last frame is padded with silence.
    """
    frame = session.frame_samples
    count = -(-len(pcm) // frame)
    padded = np.zeros(count * frame, np.int16)
    padded[: len(pcm)] = pcm
    sent = 0
    async for _ in paced_ticks(session.ptime / 1000, count):
        session.send_pcm(padded[sent * frame : (sent + 1) * frame])
        sent += 1
    return sent


async def play_wav(session: RtpSession, path: str | Path) -> int:
    """Play a 16-bit WAV file (resampled to the codec rate if needed)."""
    return await play_pcm(session, read_wav(path, session.codec.sample_rate))


class PcmRecorder:
    """Pulls one decoded frame per ptime from a session and keeps them."""

    def __init__(self, session: RtpSession) -> None:
        self.session = session
        self.frames: list[np.ndarray] = []

    async def record(self, duration: float | None = None) -> None:
        """Record until `duration` seconds have passed (or until cancelled)."""
        period = self.session.ptime / 1000
        count = None if duration is None else round(duration / period)
        async for due in paced_ticks(period, count):
            self.frames.append(self.session.read_pcm(due))

    def samples(self) -> np.ndarray:
        """Everything recorded, as one int16 array."""
        if not self.frames:
            return np.zeros(0, np.int16)
        return np.concatenate(self.frames)

    def write_wav(self, path: str | Path) -> None:
        """Save the recording as a 16-bit mono WAV at the codec's sample rate."""
        write_wav(path, self.samples(), self.session.codec.sample_rate)
