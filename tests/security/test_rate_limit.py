"""The token bucket per source and its bounded table, on a fake clock."""

from __future__ import annotations

import pytest

from sip_bridge.peer_addresses import AllowedPeers, KnownNames
from sip_bridge.rate_limit import RateLimit, SourceRateLimiter


def allowed(limiter: SourceRateLimiter, source: str, now: float, n: int) -> int:
    return sum(limiter.allow(source, now) for _ in range(n))


def test_burst_then_the_sustained_rate():
    # Times that are exact in binary: the arithmetic, not the rounding, is under test.
    limiter = SourceRateLimiter(RateLimit(per_second=8, burst=20))
    assert allowed(limiter, "192.0.2.1", 0.0, 100) == 20
    assert allowed(limiter, "192.0.2.1", 0.5, 100) == 4  # 0.5 s refills 4 tokens
    assert allowed(limiter, "192.0.2.1", 0.5625, 100) == 0  # half a token: not yet
    assert allowed(limiter, "192.0.2.1", 0.625, 100) == 1
    assert allowed(limiter, "192.0.2.1", 1000.0, 100) == 20  # never more than the burst


def test_sources_are_independent():
    limiter = SourceRateLimiter(RateLimit(per_second=1, burst=2))
    assert allowed(limiter, "192.0.2.1", 0.0, 5) == 2
    assert allowed(limiter, "192.0.2.2", 0.0, 5) == 2


def test_a_clock_stepping_back_mints_no_tokens():
    limiter = SourceRateLimiter(RateLimit(per_second=1, burst=3))
    assert allowed(limiter, "a", 100.0, 3) == 3
    assert allowed(limiter, "a", 50.0, 3) == 0
    assert allowed(limiter, "a", 100.5, 3) == 0  # measured from 100, not from 50
    assert allowed(limiter, "a", 101.0, 3) == 1


def test_the_table_is_bounded_and_forgets_the_least_recent_source():
    limiter = SourceRateLimiter(RateLimit(per_second=1, burst=2, max_sources=3))
    assert allowed(limiter, "flooder", 0.0, 10) == 2
    for n in range(10):
        limiter.allow(f"other{n}", 0.0)
        limiter.allow("flooder", 0.0)  # the flooder stays the most recent: never evicted
        assert len(limiter) <= 3
    assert "flooder" in limiter and allowed(limiter, "flooder", 0.0, 10) == 0
    assert "other0" not in limiter


@pytest.mark.parametrize(
    "kwargs",
    [
        {"per_second": 0, "burst": 1},
        {"per_second": 1, "burst": 0},
        {"per_second": 1, "burst": 1, "max_sources": 0},
    ],
)
def test_limits_are_validated(kwargs):
    with pytest.raises(ValueError):
        RateLimit(**kwargs)


def test_allowlist_and_known_names():
    peers = AllowedPeers(["192.0.2.0/24", "2001:db8::1"])
    assert peers.allows("192.0.2.77") and peers.allows("2001:db8::1")
    assert peers.allows("::ffff:192.0.2.1")  # through a dual-stack socket
    assert not peers.allows("192.0.3.1") and not peers.allows("2001:db8::2")
    assert not peers.allows("pbx.example.com")  # only addresses, never names
    names = KnownNames(max_names=2)
    assert names.is_same(("[2001:db8::1]", 5060), ("2001:db8:0::1", 5060))
    assert not names.is_same(("pbx.test", 5060), ("192.0.2.1", 5060))
    names.learn("pbx.test", "192.0.2.1")
    assert names.is_same(("PBX.test", 5060), ("192.0.2.1", 5060))
    assert not names.is_same(("pbx.test", 5060), ("192.0.2.1", 5061))
    assert names.is_same(("pbx.test", 5060), ("192.0.2.1", 40000), match_port=False)
    names.learn("b.test", "192.0.2.2")
    names.learn("c.test", "192.0.2.3")
    assert names.address_of("pbx.test") is None  # the oldest went
