"""Scheduled callbacks fire at their time, after a restart, exactly once."""

from __future__ import annotations

import asyncio

from gateway.callbacks.scheduler import CallbackScheduler
from tests.support.database import open_callback_store


async def eventually(predicate, what: str, timeout: float = 10.0) -> None:
    """Until `predicate()` holds: the scheduler polls every 10 ms and its store works in a
    thread, so how soon depends on the machine; only the deadline is generous."""
    for _ in range(int(timeout / 0.01)):
        if await predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class RecordingJob:
    """Stands in for the SIP work of a callback (tested with real phones elsewhere):
    what is tested here is when, and how often, the scheduler runs it."""

    runs: list[tuple[str, float]] = []

    def __init__(self, callback, store, clock) -> None:
        self.callback, self.store, self.clock = callback, store, clock

    async def run(self) -> str:
        RecordingJob.runs.append((self.callback.id, self.clock()))
        await self.store.finish(self.callback.id, "done", "", self.clock())
        return "done"


async def test_scheduled_callback_fires_on_time_after_a_restart_once(tmp_path):
    RecordingJob.runs = []
    clock = Clock(1000.0)
    path = tmp_path / "cb.db"
    store = await open_callback_store(path)
    callback = await store.add(
        site="shop", number="+441632960123", details={}, due_at=1060.0, now=clock()
    )
    await store.close()  # the gateway restarts before it is due

    store = await open_callback_store(path)
    scheduler = CallbackScheduler(
        store, lambda cb: RecordingJob(cb, store, clock), owner="w0", clock=clock, interval=0.01
    )
    scheduler.start()
    await asyncio.sleep(0.1)
    assert RecordingJob.runs == []  # not yet due
    clock.now = 1060.0

    async def done() -> bool:
        return (await store.get(callback.id)).status == "done"

    await eventually(done, "the callback ran once due")
    assert RecordingJob.runs == [(callback.id, 1060.0)]
    clock.now = 2000.0
    second = CallbackScheduler(
        store, lambda cb: RecordingJob(cb, store, clock), owner="w1", clock=clock, interval=0.01
    )
    second.start()
    await asyncio.sleep(0.1)  # rounds of both schedulers
    await scheduler.stop()
    await second.stop()
    assert len(RecordingJob.runs) == 1  # once, whoever else looks
    assert (await store.get(callback.id)).status == "done"
    await store.close()


async def test_callback_of_a_removed_site_fails_with_a_reason(tmp_path):
    clock = Clock(10.0)
    store = await open_callback_store(tmp_path / "cb.db")
    callback = await store.add(site="gone", number="+15005550006", details={}, due_at=5, now=0)
    scheduler = CallbackScheduler(store, lambda cb: None, owner="w0", clock=clock, interval=0.01)
    scheduler.start()

    async def failed() -> bool:
        return (await store.get(callback.id)).status == "failed"

    await eventually(failed, "the callback of a removed site failed")
    await scheduler.stop()
    stored = await store.get(callback.id)
    assert "no longer configured" in stored.history[-1][2]
    await store.close()
