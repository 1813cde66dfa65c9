"""Sliding-window limits on a fake clock: the N+1th inside a window is refused, with when."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.limits import LimitHit, RateLimiter, Window

MINUTE = 60.0
QUARTER = Window(15 * MINUTE, 3, "15 minutes")
HOUR = Window(60 * MINUTE, 5, "hour")


def record_allowed(limiter: RateLimiter, key: str, windows, now: float) -> LimitHit | None:
    hit = limiter.check(key, windows, now)
    if hit is None:
        limiter.record(key, now)
    return hit


def test_the_n_plus_first_inside_the_window_is_refused_until_the_oldest_ages_out() -> None:
    limiter = RateLimiter(3600)
    for minute in (0, 1, 2):
        assert record_allowed(limiter, "a", [QUARTER], minute * MINUTE) is None
    hit = limiter.check("a", [QUARTER], 5 * MINUTE)
    assert hit == LimitHit(QUARTER, used=3, retry_after=10 * MINUTE)
    # Just before the first call is 15 minutes old: still refused; then allowed.
    assert limiter.check("a", [QUARTER], 15 * MINUTE - 0.001) is not None
    assert limiter.check("a", [QUARTER], 15 * MINUTE) is None


def test_refused_attempts_do_not_count() -> None:
    limiter = RateLimiter(3600)
    for second in range(3):
        record_allowed(limiter, "a", [QUARTER], second)
    for second in range(3, 900):  # a client hammering away while refused
        assert record_allowed(limiter, "a", [QUARTER], second) is not None
    assert limiter.used("a", 3600, 900) == 3
    assert record_allowed(limiter, "a", [QUARTER], 15 * MINUTE + 1) is None


def test_the_first_window_that_is_full_is_the_one_reported() -> None:
    limiter = RateLimiter(3600)
    now = 0.0
    for _ in range(5):  # three per quarter hour, five per hour
        hit = record_allowed(limiter, "a", [QUARTER, HOUR], now)
        if hit is not None:
            now += hit.retry_after + 1
            assert record_allowed(limiter, "a", [QUARTER, HOUR], now) is None
        now += 1
    hit = limiter.check("a", [QUARTER, HOUR], now)
    assert hit is not None and hit.window is HOUR and hit.used == 5
    # The hour frees up when its oldest call (at 0) is an hour old.
    assert hit.retry_after == pytest.approx(3600 - now)


def test_keys_are_counted_apart() -> None:
    limiter = RateLimiter(3600)
    for _ in range(3):
        limiter.record("a", 0)
    assert limiter.check("a", [QUARTER], 1) is not None
    assert limiter.check("b", [QUARTER], 1) is None
    assert limiter.check(("shop", "a"), [QUARTER], 1) is None


def test_amounts_sum_and_retry_after_waits_for_enough_to_age_out() -> None:
    limiter = RateLimiter(86400)
    day = Window(86400, 600, "24 hours")  # seconds of talk
    limiter.record("shop", 0, 300)
    limiter.record("shop", 100, 200)
    assert limiter.check("shop", [day], 200, amount=100) is None
    hit = limiter.check("shop", [day], 200, amount=150)
    # 500 used + 150 > 600: the first 300 must age out (at 86400).
    assert hit == LimitHit(day, used=500, retry_after=86400 - 200)
    assert limiter.check("shop", [day], 200, amount=601).retry_after == math.inf


def test_idle_keys_are_forgotten() -> None:
    limiter = RateLimiter(900)
    for n in range(1000):
        limiter.record(f"visitor-{n}", n * 0.1)
    assert len(limiter) == 1000
    limiter.record("late", 2000)
    assert len(limiter) == 1


def test_a_window_longer_than_the_horizon_is_a_bug() -> None:
    with pytest.raises(ValueError, match="longer than the horizon"):
        RateLimiter(60).check("a", [QUARTER], 0)
    with pytest.raises(ValueError):
        Window(0, 1, "never")
    with pytest.raises(ValueError):
        RateLimiter(math.inf)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=50, allow_nan=False), min_size=1, max_size=60),
    st.integers(min_value=1, max_value=6),
    st.floats(min_value=1, max_value=30, allow_nan=False),
)
def test_never_more_than_the_limit_in_any_window(
    gaps: list[float], limit: int, seconds: float
) -> None:
    """Whatever the arrival times, the allowed ones never exceed the limit in any window,
    and a refused one was refused because the window really was full."""
    window = Window(seconds, limit, "test")
    limiter = RateLimiter(seconds)
    now, allowed = 0.0, []
    for gap in gaps:
        now += gap
        hit = record_allowed(limiter, "k", [window], now)
        if hit is None:
            allowed.append(now)
        else:
            assert sum(1 for t in allowed if t > now - seconds) == limit
            assert 0 <= hit.retry_after <= seconds
    for t in allowed:
        assert sum(1 for u in allowed if t - seconds < u <= t) <= limit
