"""Packet loss concealment for decoded audio: a lost frame still yields audio.

A lost frame is filled by repeating the last pitch period of the audio heard so
far (found by autocorrelation), so voiced speech and tones continue without a
click; the repetition is held briefly, then faded to silence. When audio resumes,
its first few milliseconds are cross-faded from the concealment. Work is done only
on loss: a good frame costs one copy into the history.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["LossConcealer"]


class LossConcealer:
    """Concealment state of one decoded stream (one per incoming stream)."""

    def __init__(
        self,
        frame_samples: int,
        sample_rate: int,
        *,
        hold_ms: float = 10.0,
        fade_ms: float = 50.0,
        crossfade_ms: float = 2.5,
    ) -> None:
        self.frame_samples = frame_samples
        self.sample_rate = sample_rate
        per_ms = sample_rate / 1000
        # Pitch lags searched: 2.5-15 ms (400 Hz down to 67 Hz).
        self._min_lag = int(2.5 * per_ms)
        self._max_lag = int(15 * per_ms)
        self._match = int(5 * per_ms)  # samples compared per candidate lag
        self._history = np.zeros(max(2 * frame_samples, self._max_lag + self._match), np.float32)
        self._hold = int(hold_ms * per_ms)
        self._fade = max(1, int(fade_ms * per_ms))
        self._crossfade = max(1, int(crossfade_ms * per_ms))
        self._ramp_up = np.linspace(0.0, 1.0, self._crossfade, endpoint=False, dtype=np.float32)
        self._concealed = 0  # samples synthesized since the last good frame
        self._period = np.zeros(0, np.float32)
        self._phase = 0

    @property
    def history(self) -> np.ndarray:
        """The recent samples (float32, oldest first) `good_frame` keeps, updated in place:
        for a native step that records good frames as `good_frame` does while not
        `concealing` (gateway/media/_opusframes.c)."""
        return self._history

    @property
    def concealing(self) -> bool:
        """True while the last frame handed out was synthesized."""
        return self._concealed > 0

    def good_frame(self, pcm: np.ndarray) -> np.ndarray:
        """Record a decoded frame; returns it, cross-faded in if it ends a loss."""
        if self._concealed:
            pcm = self._fade_in(pcm)
        history = self._history
        n = len(pcm)
        if n >= len(history):
            history[:] = pcm[-len(history) :]
        else:
            history[:-n] = history[n:]
            history[-n:] = pcm
        return pcm

    def conceal(self, samples: int | None = None) -> np.ndarray:
        """A synthesized frame (int16) standing in for one that was lost."""
        count = self.frame_samples if samples is None else samples
        start = self._concealed
        if start == 0:
            self._period = self._history[-self._pitch_lag() :].copy()
            self._phase = 0
        if start >= self._hold + self._fade:
            self._concealed += count
            return np.zeros(count, np.int16)
        out = self._continue_period(count) * self._gain(start, count)
        self._concealed += count
        return np.round(out).astype(np.int16)

    def _continue_period(self, count: int) -> np.ndarray:
        period = self._period
        index = (np.arange(count) + self._phase) % len(period)
        self._phase = (self._phase + count) % len(period)
        return period[index]

    def _gain(self, start: int, count: int) -> np.ndarray:
        position = np.arange(start, start + count, dtype=np.float32)
        return np.clip(1.0 - (position - self._hold) / self._fade, 0.0, 1.0)

    def _fade_in(self, pcm: np.ndarray) -> np.ndarray:
        n = min(self._crossfade, len(pcm))
        if self._concealed < self._hold + self._fade:
            tail = self._continue_period(n) * self._gain(self._concealed, n)
        else:
            tail = np.zeros(n, np.float32)
        self._concealed = 0
        out = pcm.copy()
        ramp = self._ramp_up[:n]
        out[:n] = np.round(pcm[:n] * ramp + tail * (1.0 - ramp)).astype(np.int16)
        return out

    def _pitch_lag(self) -> int:
        """The lag (samples) with the best normalized autocorrelation at the history's end."""
        history = self._history
        target = history[-self._match :]
        energy = float(np.dot(target, target))
        if energy < 1e-3:
            return self.frame_samples  # silence: any period will do
        # Candidate segment for lag L ends L samples before the end of history.
        span = history[-(self._max_lag + self._match) : -self._min_lag]
        windows = sliding_window_view(span, self._match)[::-1]  # row i: lag min_lag + i
        cross = windows @ target
        norms = np.einsum("ij,ij->i", windows, windows) + 1e-9
        score = np.where(cross > 0, cross * cross / norms, 0.0)
        return self._min_lag + int(np.argmax(score))
