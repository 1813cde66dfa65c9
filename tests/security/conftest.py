"""Fixtures of the security tests: real gateways, and fuzz accounting.

Each fuzz test counts its cases per target; the totals and times are printed at the end of
the run (and written to `fuzz-stats.json` under pytest's cache dir), so that the budget of
the fuzz suite (~60 s) stays visible in CI."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from gateway.config import parse_config
from gateway.process.gateway import Gateway
from tests.e2e.conftest import gateway_toml

_STATS: dict[str, list[float]] = {}  # target -> [cases, seconds]


@pytest.fixture
async def gateway_factory() -> AsyncIterator[Callable[..., Awaitable[Gateway]]]:
    """Real gateways on free loopback ports (the configuration of tests/e2e)."""
    started: list[Gateway] = []

    async def start(**options) -> Gateway:
        gateway = await Gateway.start(parse_config(gateway_toml(**options), {}))
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        await gateway.stop()


class FuzzCounter:
    def __init__(self, target: str) -> None:
        self.target = target
        self.cases = 0
        self.start = time.perf_counter()
        self.end: float | None = None

    def __call__(self, n: int = 1) -> None:
        self.cases += n

    def done(self) -> None:
        """The target's cases are over (else they end with the test)."""
        self.end = time.perf_counter()


@pytest.fixture
def fuzz_cases() -> Iterator[Callable[[str], FuzzCounter]]:
    """``count = fuzz_cases("SIP parser")``, then ``count()`` once per case, and optionally
    ``count.done()``. The time from the first call to `done()` (or the test's end) is
    charged to the target."""
    started: list[FuzzCounter] = []

    def counter(target: str) -> FuzzCounter:
        c = FuzzCounter(target)
        started.append(c)
        return c

    yield counter
    end = time.perf_counter()
    for c in started:
        entry = _STATS.setdefault(c.target, [0, 0.0])
        entry[0] += c.cases
        entry[1] += (c.end or end) - c.start


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _STATS:
        return
    terminalreporter.section("fuzz cases per target")
    total_cases, total_seconds = 0, 0.0
    for target, (cases, seconds) in sorted(_STATS.items()):
        terminalreporter.write_line(f"{target:<34} {int(cases):>7} cases {seconds:>7.1f} s")
        total_cases += int(cases)
        total_seconds += seconds
    terminalreporter.write_line(f"{'total':<34} {total_cases:>7} cases {total_seconds:>7.1f} s")
    if getattr(config, "cache", None) is not None:
        path = config.cache.mkdir("security") / "fuzz-stats.json"
        path.write_text(json.dumps({t: {"cases": c, "seconds": s} for t, (c, s) in _STATS.items()}))
