"""Sliding-window limits per key: how much was recorded in the last N seconds.

One `RateLimiter` serves any number of keys (a visitor's address, a site, a phone number)
and any windows, each given per check so that sites can have their own: "at most 5 calls in
any 15 minutes and 10 in any hour" is two `Window`s. The intended use is check, then
record what was allowed:

    hit = limiter.check(key, windows, now)
    if hit is None:
        limiter.record(key, now)

Only what is recorded counts, and refused attempts are not recorded, so a key holds at most
as many entries as its largest limit allows (for counts); keys idle for longer than the
horizon are dropped. Sans-I/O: the time is passed in (seconds, any clock, never going back
by much).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Window:
    """At most `limit` (events, or an amount such as seconds of calls) in any `seconds`."""

    seconds: float
    limit: float
    label: str  # how a message names the window: "15 minutes", "24 hours"

    def __post_init__(self) -> None:
        if not (self.seconds > 0 and math.isfinite(self.seconds)):
            raise ValueError(f"a window must last a positive time, not {self.seconds!r}")
        if not self.limit >= 0:
            raise ValueError(f"a window's limit must not be negative, not {self.limit!r}")


@dataclass(frozen=True, slots=True)
class LimitHit:
    """A check that failed: which window, how much it already holds, and how many seconds
    until enough of it has aged out for the checked amount to fit."""

    window: Window
    used: float
    retry_after: float


class RateLimiter:
    """Amounts recorded per key, summed over trailing windows up to `horizon` seconds."""

    def __init__(self, horizon: float) -> None:
        if not (horizon > 0 and math.isfinite(horizon)):
            raise ValueError(f"horizon must be a positive number of seconds, not {horizon!r}")
        self.horizon = horizon
        self._entries: dict[Hashable, deque[tuple[float, float]]] = {}
        self._next_sweep = -math.inf

    def __len__(self) -> int:
        """Keys with something recorded inside the horizon (or not yet swept)."""
        return len(self._entries)

    def check(
        self, key: Hashable, windows: Sequence[Window], now: float, amount: float = 1.0
    ) -> LimitHit | None:
        """The first window that `amount` more would exceed, or None when all allow it."""
        entries = self._entries.get(key)
        for window in windows:
            if window.seconds > self.horizon:
                raise ValueError(f"window of {window.seconds} s is longer than the horizon")
            used = self._used(entries, window.seconds, now)
            if used + amount > window.limit:
                return LimitHit(window, used, self._retry_after(entries, window, now, amount))
        return None

    def record(self, key: Hashable, now: float, amount: float = 1.0) -> None:
        """Count `amount` for `key` at `now`."""
        self._sweep(now)
        entries = self._entries.get(key)
        if entries is None:
            entries = self._entries[key] = deque()
        self._drop_old(entries, now)
        entries.append((now, amount))

    def used(self, key: Hashable, seconds: float, now: float) -> float:
        """What `key` recorded in the last `seconds`."""
        return self._used(self._entries.get(key), seconds, now)

    # ------------------------------------------------------------------ internals
    @staticmethod
    def _used(entries: deque[tuple[float, float]] | None, seconds: float, now: float) -> float:
        if not entries:
            return 0.0
        since = now - seconds
        total = 0.0
        # Newest last: walk back until the window's start.
        for at, amount in reversed(entries):
            if at <= since:
                break
            total += amount
        return total

    @staticmethod
    def _retry_after(
        entries: deque[tuple[float, float]] | None, window: Window, now: float, amount: float
    ) -> float:
        if amount > window.limit:
            return math.inf  # never fits, however long one waits
        since = now - window.seconds
        inside = [(at, value) for at, value in entries or () if at > since]
        excess = sum(value for _, value in inside) + amount - window.limit
        for at, value in inside:  # oldest first: they leave the window first
            excess -= value
            if excess <= 0:
                return min(window.seconds, max(0.0, at + window.seconds - now))
        return 0.0

    def _drop_old(self, entries: deque[tuple[float, float]], now: float) -> None:
        since = now - self.horizon
        while entries and entries[0][0] <= since:
            entries.popleft()

    def _sweep(self, now: float) -> None:
        """Forget keys idle for longer than the horizon (at most once per tenth of it)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.horizon / 10
        since = now - self.horizon
        stale = [
            key for key, entries in self._entries.items() if not entries or entries[-1][0] <= since
        ]
        for key in stale:
            del self._entries[key]
