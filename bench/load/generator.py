"""One load-generator process: runs its share of the visitors, prints their results as JSON.

  python -m bench.load.generator SPEC.json RESULT.json

The orchestrator (`bench.load.run`) writes SPEC: gateway URL and origin, site, codec, the
visitors' global indexes, when each starts, when all hang up, and the measurement window
(monotonic clock, shared by every process on the machine).
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from pathlib import Path

from gateway.media.webrtc_leg import use_host_addresses

from .audio import encoded_frames
from .visitor import Visitor

FRAME = 0.02
LATE = 0.010  # a tick this much behind its time counts as late


class FrameTicker:
    """One 20 ms clock for every visitor of the process (one timer, not one per call).

    A tick that comes late still sends: overdue ticks are caught up at once, as a browser's
    capture would have produced those frames meanwhile; how late they went out is counted,
    so a saturated generator shows in the results instead of passing for gateway jitter.
    """

    def __init__(self, window: tuple[float, float]) -> None:
        self.window = window  # lateness is counted only within the measurement window
        self._visitors: dict[int, Visitor] = {}
        self.ticks = 0
        self.late_ticks = 0
        self.max_late = 0.0
        self.late_at: list[tuple[float, float]] = []  # (when, ms late): the first 50
        self._task: asyncio.Task | None = None

    def add(self, visitor: Visitor) -> None:
        self._visitors[visitor.index] = visitor

    def remove(self, visitor: Visitor) -> None:
        self._visitors.pop(visitor.index, None)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        start = time.monotonic()
        n = 0
        while True:
            n += 1
            due = start + n * FRAME
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.monotonic()
            late = now - due
            for visitor in list(self._visitors.values()):
                visitor.tick(now)
            if not self.window[0] <= now <= self.window[1]:
                continue  # set-up and hang-up bursts are not what is measured
            self.ticks += 1
            if late > LATE:
                self.late_ticks += 1
                if len(self.late_at) < 50:
                    self.late_at.append((round(now, 3), round(late * 1000, 1)))
            self.max_late = max(self.max_late, late)


class GcPauses:
    """The longest garbage-collector pause of the process (a pause delays every tick)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.longest = max(self.longest, time.perf_counter() - self._started)


async def generate(spec: dict) -> dict:
    pauses = GcPauses()
    use_host_addresses(["127.0.0.1"])
    frames = encoded_frames(spec["codec"])
    window = tuple(spec["window"])
    ticker = FrameTicker(window)
    ticker.start()
    visitors = [
        Visitor(
            index,
            url=spec["url"],
            origin=spec["origin"],
            site=spec["site"],
            codec=spec["codec"],
            frames=frames,
            window=window,
        )
        for index in spec["indexes"]
    ]
    hold = spec.get("hold")

    def times(visitor: Visitor) -> tuple[float, float]:
        start = spec["start_at"] + visitor.index / spec["rate"]
        return start, (start + hold if hold else spec["hangup_at"])

    results = await asyncio.gather(
        *(v.run(ticker, *times(v)) for v in visitors), return_exceptions=True
    )
    ticker.stop()
    calls = []
    for visitor, result in zip(visitors, results, strict=True):
        if isinstance(result, BaseException):
            calls.append(
                {"index": visitor.index, "ok": False, "error": f"{type(result).__name__}: {result}"}
            )
        else:
            calls.append(result)
    return {
        "calls": calls,
        "ticks": ticker.ticks,
        "late_ticks": ticker.late_ticks,
        "max_late_s": ticker.max_late,
        "max_gc_pause_s": pauses.longest,
        "late_ticks_at": ticker.late_at,
    }


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    result = asyncio.run(generate(spec))
    Path(sys.argv[2]).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
