"""What one database write of the call history costs, on SQLite and on PostgreSQL: a call's
row among the live calls (insert, update, delete) and its record (insert), and a callback
claim. `python bench/storage_latency.py [--postgresql URL] [--count N]`; without a URL
only SQLite (a file in a temporary folder) is measured. The writes run off the call's path
(gateway.calls.history), so this is the history's throughput, not a call's set-up time."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from gateway.storage import CallRecord, Database, LiveCall


async def measure(url: str, count: int) -> dict[str, float]:
    database = await Database.open(url)
    timings: dict[str, list[float]] = {"live row": [], "record": [], "claim": []}
    try:
        for i in range(count):
            started = time.perf_counter()
            call = LiveCall(f"c{i}", "call", "bench", "shop", "connecting", 0.0, 0.0)
            await database.live.started(call)
            await database.live.changed(call.id, "answered", 1.0, answered_at=1.0)
            await database.live.ended(call.id)
            timings["live row"].append((time.perf_counter() - started) / 3)
            started = time.perf_counter()
            await database.records.add(
                CallRecord(id=f"c{i}", kind="call", site="shop", started_at=0.0, outcome="missed")
            )
            timings["record"].append(time.perf_counter() - started)
            callback = await database.callbacks.add(
                site="shop", number="+1", details={}, due_at=0, now=0
            )
            started = time.perf_counter()
            await database.callbacks.claim(callback.id, "bench", 1)
            timings["claim"].append(time.perf_counter() - started)
    finally:
        await database.close()
    return {name: statistics.median(values) * 1000 for name, values in timings.items()}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--postgresql", help="URL of an empty PostgreSQL database")
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        urls = {"sqlite": f"sqlite:///{Path(folder) / 'bench.db'}"}
        if args.postgresql:
            urls["postgresql"] = args.postgresql
        for name, url in urls.items():
            result = await measure(url, args.count)
            shown = ", ".join(f"{k} {v:.2f} ms" for k, v in result.items())
            print(f"{name}: median per write: {shown}")


if __name__ == "__main__":
    asyncio.run(main())
