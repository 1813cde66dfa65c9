"""The load benchmark still runs, and its visitors look like Chromium on the wire.

One small point (two calls through one worker), its packets counted on loopback by
bench/load/capture.py: each call on its own clock phase (not all calls' frames in one
tick), Chromium's header extensions and SRTP tag size, and RTCP reports and STUN consent
checks sent to the gateway. The benchmark's figures are not asserted as targets here:
`make bench` measures them and docs/benchmark.md writes them down.
"""

from __future__ import annotations

from bench.load.generator import visitor_seed
from bench.load.run import PointSpec, run_point
from bench.load.visitor import FRAME, phase_offset

FIELDS = (
    "calls",
    "calls_ok",
    "cpu_ms_per_call_s",
    "frames_on_time_pct",
    "echo_rtt_ms_p95",
    "setup_ms_p95",
    "rss_mb_per_call",
    "generator_cpu_pct",
)
SEED = 0
# RTCP comes every 2.5-7.5 s per stream: a window this long holds at least one of each.
SECONDS = 8


def _circular_ms(a: float, b: float) -> float:
    period = FRAME * 1000
    difference = abs(a - b) % period
    return min(difference, period - difference)


def test_the_load_benchmark_loads_the_gateway_like_browsers():
    phases = [phase_offset(visitor_seed(SEED, index)) * 1000 for index in range(2)]
    assert _circular_ms(*phases) > 6, "pick a seed whose two calls' clocks are apart"

    result = run_point(
        PointSpec(calls=2, seconds=SECONDS, codec="pcmu", workers=1, seed=SEED, capture=True)
    )

    assert all(result[field] is not None for field in FIELDS), result
    assert result["calls_ok"] == 2, result["errors"]
    assert result["frequency_hz_median"] == 1000.0
    assert result["echo_rtt_samples"] >= 2  # an onset each second of each call
    assert result["cpu_ms_per_call_s"] > 0
    to_gateway = result["packets"]["rates"]["to server"]
    rtp = result["packets"]["rtp_to_server"]
    # Each call on its own clock: the two streams arrive at the phases their seeds gave.
    assert rtp["streams"] == 2
    assert _circular_ms(*rtp["phases_ms"]) > 3, rtp
    # Chromium's header extensions (MID, then audio level) on every packet, and its SRTP
    # profile: 12 + 8 + 160 + a 10-byte tag.
    assert rtp["extension_ids"] == {"4,1": rtp["extension_ids"]["4,1"]}, rtp
    assert to_gateway["rtp"]["mean_bytes"] == 190
    # Reduced-size RTCP as Chromium sends it: SR + SDES (70 bytes protected), RR with one
    # report block (46); and STUN consent checks.
    assert to_gateway["rtcp-200"]["mean_bytes"] == 70
    assert to_gateway["rtcp-201"]["mean_bytes"] == 46
    assert to_gateway["stun-request"]["per_call_s"] > 0
