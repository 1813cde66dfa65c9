"""One load-generator process: runs its share of the visitors, prints their results as JSON.

  python -m bench.load.generator SPEC.json RESULT.json

The orchestrator (`bench.load.run`) writes SPEC: the server (how to reach it), codec, the
visitors' global indexes, when each starts, when all hang up, the measurement window
(monotonic clock, shared by every process on the machine), the send jitter and a seed.

Every call sends on its own clock, so the event loop waits with a timeout finer than a
millisecond (epoll_wait's is a millisecond, which would gather the calls due within the
same millisecond into one burst, and bursts are kinder to the server than browsers are).
With the C media path (SPEC's `native_library`, bench/load/native.py) the loop waits in the
engine (epoll_pwait2, nanoseconds), which sends and reads the G.711 calls' media meanwhile;
without it, on `select()` (microseconds) with the Python media path, or with aiortc's own
media path (SPEC's `generator_media` "aiortc": bench/load/stock_visitor.py).
"""

from __future__ import annotations

import asyncio
import gc
import json
import selectors
import sys
import time
import traceback
from pathlib import Path

import aioice.ice

from .audio import ONSET, PERIOD_FRAMES, QUIET, encoded_frames, pattern_pcm
from .browser_media import CHROMIUM_PING_INTERVAL, Lateness, audio_levels, browser_like_dtls
from .native import Engine, NativeSelector, merge_lateness
from .signaling import signaling_for
from .stock_visitor import StockVisitor, stock_ice
from .visitor import CODECS, Visitor
from .window import Window

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


async def generate(spec: dict, engine: Engine | None = None) -> dict:
    pauses = GcPauses()
    codec = spec["codec"]
    stock = spec.get("generator_media") == "aiortc"
    if stock:  # aiortc as it comes (bench/load/stock_visitor.py)
        stock_ice()
    else:
        browser_like_ice()
        browser_like_dtls()
    frames = encoded_frames(codec)
    narrowband = encoded_frames(codec, narrowband=True) if codec == "opus" else None
    pcm = pattern_pcm(CODECS[codec][1])
    samples = len(pcm) // PERIOD_FRAMES
    levels = audio_levels([pcm[i * samples : (i + 1) * samples] for i in range(PERIOD_FRAMES)])
    # A fixed window (churn), or the orchestrator's once every call is up.
    window = Window(*spec["window"]) if spec.get("window") else Window()
    follow = (
        None
        if spec.get("window")
        else asyncio.create_task(window.follow(Path(spec["window_file"])))
    )
    lateness = Lateness(window)
    if engine is not None:
        engine.set_frames(frames, levels)
        tell_engine = asyncio.create_task(_window_to_engine(window, engine))
    visitors = [
        (StockVisitor if stock else Visitor)(
            index,
            signaling=signaling_for(spec["server"], index),
            codec=codec,
            frames=frames,
            levels=levels,
            window=window,
            narrowband_frames=narrowband,
            lateness=lateness,
            jitter=spec.get("jitter", 0.0005),
            seed=visitor_seed(spec.get("seed", 0), index),
            anchor=spec["start_at"],
            engine=engine,
        )
        for index in spec["indexes"]
    ]
    hold = spec.get("hold")
    tasks = [
        asyncio.ensure_future(v.run(spec["start_at"] + v.index / spec["rate"], hold))
        for v in visitors
    ]
    await asyncio.wait([asyncio.ensure_future(v.settled.wait()) for v in visitors])
    # Every call is set up: what the process holds now stays (aiortc's, aioice's objects),
    # so the collector need not walk it again and again during the window.
    gc.freeze()
    if spec.get("ready_file"):
        Path(spec["ready_file"]).write_text("ready\n")
    # Every call is over a few seconds after the hang-up; one that is not is reported as
    # stuck (with where it was), not waited for.
    await window.known.wait()
    last = (
        window.end
        if hold is None
        else spec["start_at"] + max(v.index for v in visitors) / spec["rate"] + hold
    )
    await asyncio.wait(tasks, timeout=max(0.0, last - time.monotonic()) + STUCK_AFTER)
    if follow is not None:
        follow.cancel()
    if engine is not None:
        tell_engine.cancel()
    calls = []
    for visitor, task in zip(visitors, tasks, strict=True):
        if not task.done():
            task.cancel()
            result = visitor.result()
            result.update(ok=False, error=f"stuck: {visitor.stage}")
            calls.append(result)
        elif task.exception() is not None:
            calls.append({"index": visitor.index, "ok": False, "error": _where(task.exception())})
        else:
            calls.append(task.result())
    return {
        "calls": calls,
        **merge_lateness(lateness, engine),
        "max_gc_pause_s": pauses.longest,
        "generator_media": (
            "aiortc" if stock else "c" if engine is not None and codec == "pcmu" else "python"
        ),
    }


async def _window_to_engine(window: Window, engine: Engine) -> None:
    await window.known.wait()
    engine.set_window(window.start, window.end)


def _where(error: BaseException) -> str:
    """An unexpected exception and the line that raised it (a bug of the generator)."""
    frames = traceback.extract_tb(error.__traceback__)
    at = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"{type(error).__name__}: {error}{at}"


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    engine = None
    if spec.get("native_library"):
        engine = Engine(
            Path(spec["native_library"]), quiet=QUIET, onset=ONSET, rate=8000, late=Lateness.LATE
        )
    selector = selectors.SelectSelector() if engine is None else NativeSelector(engine)
    loop = asyncio.SelectorEventLoop(selector)
    try:
        result = loop.run_until_complete(generate(spec, engine))
    finally:
        loop.close()
    Path(sys.argv[2]).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
