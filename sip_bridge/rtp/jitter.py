"""An adaptive jitter buffer for one incoming RTP audio stream, sans-I/O.

The network delivers packets with a varying delay; the consumer pulls one frame
every packet time. The buffer holds each packet until its playout time:

    playout time of a frame = its RTP time + base transit + target delay

where the base transit is the smallest transit (arrival time minus RTP time) seen
in the last few seconds, and the target delay is a high quantile of how much later
than that base packets have been arriving recently (a histogram that forgets old
packets exponentially, so the target comes back down once the network calms).
Losses do not feed the estimate at all, so a lost packet never raises the delay.

`get(now)` returns the payload of the next frame, `LOST` when the consumer should
conceal one frame (missing packet, or a frame inserted to grow the delay), or
None when there is no stream to play (before the first packet, or after the
stream paused). Delay changes are made one whole frame at a time: a frame is
inserted (`LOST`) to grow it, or dropped to shrink it.

Times are floats in seconds from any monotonic clock, passed in by the caller.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy as np

__all__ = ["LOST", "JitterBuffer", "JitterBufferStats", "PlayoutGap"]


class PlayoutGap(enum.Enum):
    """What `JitterBuffer.get()` returns instead of a payload when one is due but absent."""

    LOST = "lost"


LOST = PlayoutGap.LOST

# A pull this close before a frame's due time still plays it (scheduler jitter).
_DUE_TOLERANCE = 0.002
_SEQ_WINDOW_BITS = 128
_SEQ_WINDOW_MASK = (1 << _SEQ_WINDOW_BITS) - 1


@dataclass(slots=True)
class JitterBufferStats:
    """Counters since the buffer was created (they survive `reset()`).

    `lost` counts due frames whose packet was missing; `late` counts packets that
    arrived after their frame was played or concealed (they are dropped);
    `concealed` counts every LOST returned, including frames inserted to grow the
    delay and the fade-out when a stream pauses (which are not counted as lost);
    `discarded` counts frames dropped to shrink the delay.
    """

    received: int = 0
    duplicates: int = 0
    late: int = 0
    lost: int = 0
    concealed: int = 0
    discarded: int = 0
    resyncs: int = 0
    target_delay: float = 0.0
    playout_delay: float = 0.0


Payload = TypeVar("Payload")


class JitterBuffer(Generic[Payload]):
    """Adaptive playout buffer keyed by RTP timestamp (one stream, one SSRC).

    `frame_ticks` is the RTP timestamp step of one frame (160 for 20 ms at 8 kHz).
    The sender is expected to use that packet time.
    """

    def __init__(
        self,
        clock_rate: int = 8000,
        frame_ticks: int = 160,
        *,
        min_delay: float = 0.02,
        max_delay: float = 0.2,
        initial_delay: float | None = None,
        quantile: float = 0.97,
        memory_packets: float = 100.0,
        base_window: float = 2.0,
        conceal_limit: float = 0.1,
    ) -> None:
        if not 0 < min_delay <= max_delay:
            raise ValueError("need 0 < min_delay <= max_delay")
        if not 0.5 <= quantile < 1:
            raise ValueError("quantile must be in [0.5, 1)")
        self.clock_rate = clock_rate
        self.frame_ticks = frame_ticks
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.stats = JitterBufferStats()
        self._seconds_per_tick = 1.0 / clock_rate
        self._frame_seconds = frame_ticks / clock_rate
        self._quantile = quantile
        # Until 50 packets have been seen the target stays at least this high.
        # Default: start at min_delay, since shrinking later costs a dropped frame.
        start = min_delay if initial_delay is None else initial_delay
        self._initial_delay = min(max(start, min_delay), max_delay)
        # A timestamp this far from the playout position is a new timeline (sender
        # restart, long hold), not jitter: resynchronize instead of waiting for it.
        self._jump_ticks = int(max(1.0, 5 * max_delay) * clock_rate)
        self._conceal_frames = max(1, round(conceal_limit / self._frame_seconds))

        # Relative-delay histogram: 1 ms bins up to max_delay (last bin: beyond).
        # Forgetting is done by growing the weight of new samples instead of
        # decaying every bin, and renormalizing rarely.
        self._bin_seconds = 0.001
        self._histogram = np.zeros(round(max_delay / self._bin_seconds) + 1)
        self._growth = 1.0 / (1.0 - 1.0 / memory_packets)
        self._weight = 1.0
        self._total = 0.0
        self._recompute_every = 4
        self._observed = 0
        self._warmup_packets = 50
        self._until_recompute = 0

        # Base transit: minimum over a sliding window, kept as per-bucket minima.
        self._bucket_seconds = base_window / 4
        self._buckets: deque[float] = deque(maxlen=4)
        self._reset_stream(keep_history=False)

    # -- state of the stream ------------------------------------------------------

    def _reset_stream(self, keep_history: bool) -> None:
        self._buffer: dict[int, Payload] = {}
        self._anchored = False
        self._playing = False
        self._play_ts = 0
        self._highest_ts = 0
        self._floor_ts: int | None = None  # frames before this were played: late
        self._ref_raw_ts: int | None = None
        self._ref_ext_ts = 0
        self._highest_seq: int | None = None
        self._seq_window = 0
        self._missing_streak = 0
        self._smoothed_lag = 0.0
        self._buckets.clear()
        self._bucket_min = float("inf")
        self._bucket_end = float("-inf")
        self._base = float("inf")
        if not keep_history:
            self._histogram[:] = 0.0
            self._weight = 1.0
            self._total = 0.0
            self._target = self._initial_delay
        self.stats.target_delay = self._target

    def reset(self) -> None:
        """Forget the stream (new SSRC): the next packet starts playout afresh.

        The delay histogram is kept: the network path is likely the same.
        """
        self.stats.resyncs += 1
        self._reset_stream(keep_history=True)

    @property
    def target_delay(self) -> float:
        """Current target delay above the base transit, in seconds."""
        return self._target

    # -- input --------------------------------------------------------------------

    def put(
        self,
        seq: int,
        timestamp: int,
        payload: Payload,
        now: float,
        marker: bool = False,
    ) -> None:
        """Store one received packet (any order, duplicates allowed)."""
        if self._is_duplicate(seq):
            self.stats.duplicates += 1
            return
        ext_ts = self._extend_timestamp(timestamp)
        reference = self._play_ts if self._anchored else self._floor_ts
        if reference is not None and abs(ext_ts - reference) > self._jump_ticks:
            self._resync()
            ext_ts = self._extend_timestamp(timestamp)
        elif (
            self._anchored
            and ext_ts > self._play_ts
            and not self._buffer
            and (marker or (ext_ts - self._play_ts) % self.frame_ticks)
        ):
            # A talkspurt starts (or the frame grid moved) while nothing is queued:
            # start playout from this packet rather than conceal up to it.
            self._anchored = False
            self._floor_ts = self._play_ts

        self._observe_transit(now - ext_ts * self._seconds_per_tick, now)

        if not self._anchored:
            if self._floor_ts is not None and ext_ts < self._floor_ts:
                self.stats.late += 1
                return
            self._anchor(ext_ts)
        elif ext_ts < self._play_ts:
            self.stats.late += 1
            return
        elif (ext_ts - self._play_ts) % self.frame_ticks:
            # Off the frame grid while frames are queued: it cannot be played in turn.
            self.stats.late += 1
            return
        self._buffer[ext_ts] = payload
        if ext_ts > self._highest_ts:
            self._highest_ts = ext_ts
        self.stats.received += 1

    def _is_duplicate(self, seq: int) -> bool:
        highest = self._highest_seq
        if highest is None:
            self._highest_seq = seq
            self._seq_window = 1
            return False
        delta = ((seq - highest + 0x8000) & 0xFFFF) - 0x8000
        if delta > 0:
            self._seq_window = ((self._seq_window << delta) | 1) & _SEQ_WINDOW_MASK
            self._highest_seq = seq
            return False
        if delta > -_SEQ_WINDOW_BITS:
            bit = 1 << -delta
            if self._seq_window & bit:
                return True
            self._seq_window |= bit
            return False
        # Far behind the window: a sequence restart; the timestamp decides the rest.
        self._highest_seq = seq
        self._seq_window = 1
        return False

    def _extend_timestamp(self, timestamp: int) -> int:
        if self._ref_raw_ts is None:
            self._ref_raw_ts = timestamp
            self._ref_ext_ts = timestamp
            return timestamp
        delta = ((timestamp - self._ref_raw_ts + 0x80000000) & 0xFFFFFFFF) - 0x80000000
        ext = self._ref_ext_ts + delta
        if delta > 0:
            self._ref_raw_ts = timestamp
            self._ref_ext_ts = ext
        return ext

    def _anchor(self, ext_ts: int) -> None:
        self._buffer.clear()
        self._anchored = True
        self._playing = False
        self._play_ts = ext_ts
        self._highest_ts = ext_ts
        self._missing_streak = 0

    def _resync(self) -> None:
        self.stats.resyncs += 1
        self._buffer.clear()
        self._anchored = False
        self._floor_ts = None
        self._ref_raw_ts = None
        # The transit of a new timeline is unrelated to the old one.
        self._buckets.clear()
        self._bucket_min = float("inf")
        self._bucket_end = float("-inf")
        self._base = float("inf")

    def _observe_transit(self, transit: float, now: float) -> None:
        if now >= self._bucket_end:
            if self._bucket_end != float("-inf"):
                self._buckets.append(self._bucket_min)
            self._bucket_min = transit
            self._bucket_end = now + self._bucket_seconds
            self._base = min(self._buckets, default=transit)
            if transit < self._base:
                self._base = transit
        else:
            if transit < self._bucket_min:
                self._bucket_min = transit
            if transit < self._base:
                self._base = transit
        self._observed += 1
        index = int((transit - self._base) / self._bin_seconds)
        histogram = self._histogram
        if index >= len(histogram):
            index = len(histogram) - 1
        self._weight *= self._growth
        histogram[index] += self._weight
        self._total += self._weight
        if self._weight > 1e100:
            histogram /= self._weight
            self._total /= self._weight
            self._weight = 1.0
        self._until_recompute -= 1
        if self._until_recompute <= 0:
            self._until_recompute = self._recompute_every
            self._recompute_target()

    def _recompute_target(self) -> None:
        # Walk from the longest delays down until the tail holds (1 - quantile) of
        # the weight: that bin's upper edge covers `quantile` of recent packets.
        tail = np.cumsum(self._histogram[::-1])
        beyond = int(np.searchsorted(tail, (1.0 - self._quantile) * self._total, side="right"))
        bins_needed = len(self._histogram) - beyond
        target = bins_needed * self._bin_seconds
        if self._observed < self._warmup_packets and target < self._initial_delay:
            target = self._initial_delay  # too few samples yet to trust a low quantile
        if target < self.min_delay:
            target = self.min_delay
        elif target > self.max_delay:
            target = self.max_delay
        self._target = target
        self.stats.target_delay = target

    # -- output -------------------------------------------------------------------

    def get(self, now: float) -> Payload | PlayoutGap | None:
        """The next frame's payload, `LOST` (conceal one frame), or None (no stream)."""
        if not self._anchored:
            return None
        frame_seconds = self._frame_seconds
        # How late we are playing the next frame relative to its due time.
        lag = now - self._play_ts * self._seconds_per_tick - (self._base + self._target)
        if not self._playing:
            if lag < -_DUE_TOLERANCE:
                return None  # prebuffering: the first frame is not due yet
            self._playing = True
            self._smoothed_lag = lag
        else:
            # Smoothed, so one late pull (scheduler jitter) does not drop a frame.
            self._smoothed_lag += (lag - self._smoothed_lag) * 0.125
            if lag > self.max_delay + frame_seconds:
                # Far behind (the consumer stalled, or a burst arrived): catch up now.
                skipped = self._skip_frames(int(lag / frame_seconds))
                self._smoothed_lag = lag - skipped * frame_seconds
            elif lag < -_DUE_TOLERANCE:
                # Not due yet (the target grew, or the sender's clock is slower):
                # insert one frame rather than play before the deadline.
                self._smoothed_lag += frame_seconds
                self.stats.concealed += 1
                self._update_playout_delay()
                return LOST
            elif (
                self._smoothed_lag > 1.5 * frame_seconds
                and self._highest_ts - self._play_ts >= self.frame_ticks
            ):
                # A whole frame later than needed (the target shrank, or the
                # sender's clock is faster): drop one frame.
                self._smoothed_lag -= self._skip_frames(1) * frame_seconds
        payload = self._buffer.pop(self._play_ts, None)
        self._play_ts += self.frame_ticks
        self._update_playout_delay()
        if payload is not None:
            self._missing_streak = 0
            return payload
        if not self._buffer:
            self._missing_streak += 1
            if self._missing_streak > self._conceal_frames:
                # Nothing has come for a while: the stream paused (hold, silence
                # suppression, DTMF), so the frames concealed meanwhile were not
                # lost after all. The next packet starts playout afresh.
                self.stats.lost -= self._missing_streak - 1
                self._anchored = False
                self._floor_ts = self._play_ts
                return None
        else:
            self._missing_streak = 0
        self.stats.lost += 1
        self.stats.concealed += 1
        return LOST

    def _skip_frames(self, count: int) -> int:
        """Drop up to `count` frames, keeping at least one queued; returns how many."""
        skipped = 0
        while skipped < count and self._highest_ts - self._play_ts >= self.frame_ticks:
            if self._buffer.pop(self._play_ts, None) is not None:
                self.stats.discarded += 1
            self._play_ts += self.frame_ticks
            skipped += 1
        return skipped

    def _update_playout_delay(self) -> None:
        self.stats.playout_delay = self._target + self._smoothed_lag
