"""One load-generator process: runs its share of the visitors, prints their results as JSON.

  python -m bench.load.generator SPEC.json RESULT.json

The orchestrator (`bench.load.run`) writes SPEC: the server (how to reach it), codec, the
visitors' global indexes, when each starts, when all hang up, the measurement window
(monotonic clock, shared by every process on the machine), the send jitter and a seed.

Every call sends on its own clock, so the event loop runs on `select()`, whose timeout has
microsecond resolution: epoll's is a millisecond, which would gather the calls due within
the same millisecond into one burst, and bursts are kinder to the server than browsers are.
"""

from __future__ import annotations

import asyncio
import gc
import json
import selectors
import sys
import time
from pathlib import Path

import aioice.ice

from .audio import PERIOD_FRAMES, encoded_frames, pattern_pcm
from .browser_media import CHROMIUM_PING_INTERVAL, Lateness, audio_levels, browser_like_dtls
from .signaling import signaling_for
from .visitor import CODECS, Visitor

HOST = "127.0.0.1"
STUCK_AFTER = 20.0  # seconds after the last hang-up a call still running counts as stuck


class GcPauses:
    """The longest garbage-collector pause of the process (a pause delays every send)."""

    def __init__(self) -> None:
        self.longest = 0.0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.longest = max(self.longest, time.perf_counter() - self._started)


def visitor_seed(seed: int, index: int) -> int:
    """Visitor `index`'s own seed (its clock phase, its random choices) in run `seed`."""
    return seed * 1_000_003 + index


def browser_like_ice() -> None:
    """aioice as Chromium's ICE agent behaves on loopback: host candidates on 127.0.0.1
    only (aioice skips loopback), and the selected pair checked as often as Chromium pings
    a stable connection (aioice's consent interval is 5 s)."""
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: [HOST]
    aioice.ice.CONSENT_INTERVAL = CHROMIUM_PING_INTERVAL


async def generate(spec: dict) -> dict:
    pauses = GcPauses()
    browser_like_ice()
    browser_like_dtls()
    codec = spec["codec"]
    frames = encoded_frames(codec)
    pcm = pattern_pcm(CODECS[codec][1])
    samples = len(pcm) // PERIOD_FRAMES
    levels = audio_levels([pcm[i * samples : (i + 1) * samples] for i in range(PERIOD_FRAMES)])
    window = tuple(spec["window"])
    lateness = Lateness(window)
    visitors = [
        Visitor(
            index,
            signaling=signaling_for(spec["server"], index),
            codec=codec,
            frames=frames,
            levels=levels,
            window=window,
            lateness=lateness,
            jitter=spec.get("jitter", 0.0005),
            seed=visitor_seed(spec.get("seed", 0), index),
            anchor=spec["start_at"],
        )
        for index in spec["indexes"]
    ]
    hold = spec.get("hold")

    def times(visitor: Visitor) -> tuple[float, float]:
        start = spec["start_at"] + visitor.index / spec["rate"]
        return start, (start + hold if hold else spec["hangup_at"])

    tasks = [asyncio.ensure_future(v.run(*times(v))) for v in visitors]
    # Every call is over a few seconds after the last hang-up; one that is not is reported
    # as stuck (with where it was), not waited for.
    last = max((times(v)[1] for v in visitors), default=time.monotonic())
    await asyncio.wait(tasks, timeout=max(0.0, last - time.monotonic()) + STUCK_AFTER)
    calls = []
    for visitor, task in zip(visitors, tasks, strict=True):
        if not task.done():
            task.cancel()
            result = visitor.result()
            result.update(ok=False, error=f"stuck: {visitor.stage}")
            calls.append(result)
        elif task.exception() is not None:
            error = task.exception()
            calls.append(
                {"index": visitor.index, "ok": False, "error": f"{type(error).__name__}: {error}"}
            )
        else:
            calls.append(task.result())
    return {
        "calls": calls,
        "ticks": lateness.sends,
        "late_ticks": lateness.late,
        "max_late_s": lateness.max_late,
        "max_gc_pause_s": pauses.longest,
        "late_ticks_at": lateness.late_at,
    }


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        result = loop.run_until_complete(generate(spec))
    finally:
        loop.close()
    Path(sys.argv[2]).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
