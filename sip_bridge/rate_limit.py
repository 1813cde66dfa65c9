"""A token bucket per source address, with a bounded table of sources (sans-I/O).

The user agent charges every incoming request to the bucket of the IP address it came from
(not the port: a sender chooses its ports freely) and drops what exceeds the rate, without
an answer, so a flood costs neither a parse nor a reply. Time is the caller's `now`.

The table keeps at most `max_sources` buckets, evicting the least recently seen source. A
source that floods is always the most recently seen, so churn from many other addresses
cannot reset its bucket unless they outnumber the table between two of its packets; a
forgotten source simply starts again with a full bucket.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    """`per_second` requests on average, bursts of up to `burst`, per source address."""

    per_second: float
    burst: int
    max_sources: int = 4096

    def __post_init__(self) -> None:
        if not self.per_second > 0:
            raise ValueError(f"per_second must be positive, got {self.per_second}")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, got {self.burst}")
        if self.max_sources < 1:
            raise ValueError(f"max_sources must be at least 1, got {self.max_sources}")


class SourceRateLimiter:
    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        # source -> [tokens, time of the last refill]; ordered from least to most recent.
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    def allow(self, source: str, now: float) -> bool:
        """Charge one request to `source`; False when its bucket is empty."""
        bucket = self._buckets.get(source)
        if bucket is None:
            if len(self._buckets) >= self.limit.max_sources:
                self._buckets.popitem(last=False)
            self._buckets[source] = [self.limit.burst - 1.0, now]
            return True
        self._buckets.move_to_end(source)
        tokens, last = bucket
        # A clock that steps back (a caller mixing clocks) must not mint tokens.
        elapsed = now - last if now > last else 0.0
        tokens = min(float(self.limit.burst), tokens + elapsed * self.limit.per_second)
        bucket[1] = now if now > last else last
        if tokens < 1.0:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - 1.0
        return True

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, source: object) -> bool:
        return source in self._buckets
