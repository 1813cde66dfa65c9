"""The event loop the gateway runs on: uvloop, asyncio's loop on libuv, when installed.

A worker's time goes mostly into the event loop's datagram handling (a readiness event,
a callback and a `sendto` per RTP packet, twice per frame and leg: docs/benchmark.md).
uvloop does that part in C and reads up to 32 datagrams per readiness event; it is a
drop-in for asyncio's loop (aiohttp, aiortc and aioice run on it unchanged). Without it
(a platform it does not build for), asyncio's own loop runs the same code.

Imported with this module, so that the supervisor has it before it forks the workers:
imported by each worker, its modules would be private to each (~1 MB a worker,
docs/benchmark.md, Memory).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from types import ModuleType
from typing import Any, TypeVar

T = TypeVar("T")

uvloop: ModuleType | None
try:
    import uvloop
except ImportError:  # pragma: no cover (a platform uvloop does not build for)
    uvloop = None


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on uvloop when it is installed."""
    if uvloop is None:
        return asyncio.run(main)
    return uvloop.run(main)
