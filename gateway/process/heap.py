"""Giving a finished call's memory back to the system.

Measured over 1,000 sequential calls (docs/benchmark.md, Memory), RSS kept growing though
nothing leaked: no call, peer connection or RTP session outlived its call, and the memory
in use stayed flat. Two things made RSS grow:

- A call's objects (aiortc's peer connection and transports among them, ~350 objects per
  call) sit in reference cycles, so only a full collection of the cyclic GC frees them, and
  CPython runs one only when the old generation has grown by a quarter: the dead calls of
  the last tens of seconds pile up first.
- glibc gives memory back on its own only from the top of its heap; the holes that freed
  calls leave between longer-lived blocks stay resident.

So once calls have ended (`delay` seconds after one, at most every `interval` seconds)
`HeapTrimmer` runs a full collection and then `malloc_trim(0)`, which hands the free pages
inside the heap back (madvise). `freeze_startup_objects` moves what start-up created into
the permanent generation, so a full collection walks only what calls allocated: measured
10-26 ms instead of 57-90 ms per worker with 25 calls in progress. Where the C library has
no `malloc_trim` (musl, macOS), only the collection runs.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


def _find_malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        function = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    return function


_MALLOC_TRIM = _find_malloc_trim()


def malloc_trim() -> bool:
    """Return the C heap's free pages to the system; False if none were, or no glibc."""
    return bool(_MALLOC_TRIM(0)) if _MALLOC_TRIM is not None else False


def freeze_startup_objects() -> None:
    """Keep what exists now (modules, configuration, the app) out of every later
    collection: call once the process has started, before calls come."""
    gc.collect()
    gc.freeze()


class HeapTrimmer:
    """Collects and trims `delay` seconds after a call ends, at most once every
    `interval`: under churn every `interval` seconds, after a lone call once."""

    def __init__(self, *, delay: float = 1.0, interval: float = 10.0) -> None:
        self.delay = delay
        self.interval = interval
        self.trims = 0
        self._handle: asyncio.TimerHandle | None = None
        self._last = -float("inf")

    def call_ended(self, *_ignored: object) -> None:
        """Note that a call ended (any arguments are ignored: usable as a callback)."""
        if self._handle is not None:
            return
        loop = asyncio.get_running_loop()
        at = max(loop.time() + self.delay, self._last + self.interval)
        self._handle = loop.call_at(at, self._trim)

    def _trim(self) -> None:
        self._handle = None
        self._last = asyncio.get_running_loop().time()
        started = time.perf_counter()
        found = gc.collect()
        collected = time.perf_counter()
        released = malloc_trim()
        self.trims += 1
        logger.debug(
            "after calls: %d objects collected in %.1f ms; malloc_trim %s in %.1f ms",
            found,
            (collected - started) * 1000,
            "released memory" if released else "released nothing",
            (time.perf_counter() - collected) * 1000,
        )

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
