"""The load benchmark still runs: two calls for two seconds through one worker.

A smoke test only (the benchmark's figures are not asserted as targets here: they are
measured by `make bench` and written down in docs/benchmark.md)."""

from __future__ import annotations

from bench.load.run import PointSpec, run_point

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


def test_the_load_benchmark_runs_a_small_point():
    result = run_point(PointSpec(calls=2, seconds=2, codec="pcmu", workers=1))
    assert all(result[field] is not None for field in FIELDS), result
    assert result["calls_ok"] == 2, result["errors"]
    assert result["frequency_hz_median"] == 1000.0
    assert result["echo_rtt_samples"] >= 2  # an onset each second of each call
    # How many frames were on time is a figure of the machine's load, measured by `make
    # bench`: a smoke test on a busy machine must not fail on it.
    assert 0 <= result["frames_on_time_pct"] <= 100
    assert result["cpu_ms_per_call_s"] > 0
