"""The measurement window, agreed between the orchestrator and its generator processes.

The window opens only once every call is up, however long the server takes to set them up
(Janus's SIP plugin sets up one call at a time): each generator writes its `ready` file when
all its calls are answered or failed, the orchestrator then writes the window (monotonic
clock: the same for every process of the machine) to a file that the generators poll.
Until then the window is unknown, and nothing counts as inside it.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

POLL = 0.05


class Window:
    def __init__(self, start: float = math.inf, end: float = math.inf) -> None:
        self.start = start
        self.end = end
        self.known = asyncio.Event()
        if math.isfinite(end):
            self.known.set()

    def __contains__(self, now: float) -> bool:
        return self.start <= now <= self.end

    def set(self, start: float, end: float) -> None:
        self.start, self.end = start, end
        self.known.set()

    async def follow(self, path: Path) -> None:
        """Wait for the orchestrator's window file, then take the window from it."""
        while not path.exists():
            await asyncio.sleep(POLL)
        start, end = json.loads(path.read_text())
        self.set(start, end)


def publish(path: Path, start: float, end: float) -> None:
    """Write the window file atomically (the generators poll for it)."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps([start, end]))
    partial.replace(path)
