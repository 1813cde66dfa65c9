"""Runs stored callbacks when they fall due, each exactly once (see gateway.storage.callbacks),
each only with its place in the limits taken.

A round (`run_once`, every `interval` seconds and whenever woken): the due callbacks, oldest
first; for each, `admit` takes its slot in the limits (the same ledger as calls, so a
callback counts against `max_site_calls`, `max_calls` and the spend guard like a call) or
says it must wait; only then is it claimed (`dialing`) and its job started. A callback that
must wait stays `scheduled`, with one `waiting` event in its history, and is tried again
next round: the line a call or another callback frees goes to it then.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from gateway.callbacks.job import CallbackJob, Slot
from gateway.storage import Callback, CallbackStatus, CallbackStore

logger = logging.getLogger(__name__)


class MustWait(Exception):
    """A due callback cannot be placed now: its site has no free line (or, `everywhere`,
    the gateway has none for any site). `reason` is in words, for its history."""

    def __init__(self, reason: str, *, everywhere: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.everywhere = everywhere


# admit(callback): its slot (None: nothing to hold, e.g. its site is gone), or MustWait.
Admit = Callable[[Callback], Awaitable[Slot | None]]
# make_job(callback, slot): its job, or None for a callback this gateway can no longer
# place (its site was removed from the configuration): it is then marked failed.
JobFactory = Callable[[Callback, Slot | None], CallbackJob | None]


async def admit_all(callback: Callback) -> None:
    """No limits (tests of the scheduler alone)."""
    return None


class CallbackScheduler:
    def __init__(
        self,
        store: CallbackStore,
        make_job: JobFactory,
        *,
        owner: str,
        admit: Admit = admit_all,
        clock: Callable[[], float] = time.time,
        interval: float = 1.0,
        max_running: int = 10,
    ) -> None:
        self.store = store
        self.make_job = make_job
        self.admit = admit
        self.owner = owner
        self.clock = clock
        self.interval = interval
        self.max_running = max_running
        self.running: dict[str, asyncio.Task] = {}
        self._loop_task: asyncio.Task | None = None
        self._waiting: dict[str, str] = {}  # callback id -> why, as last recorded
        self._seen: set[str] = set()  # callbacks found waiting this round
        self.wake = asyncio.Event()

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                logger.exception("callbacks: cannot read the store")
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.interval)

    async def run_once(self) -> int:
        """Start the due callbacks that may be placed now; how many were started."""
        now = self.clock()
        blocked: dict[str, str] = {}  # site -> why it must wait this round
        try:
            return await self._place_due(now, blocked)
        finally:  # forget the waits of callbacks gone meanwhile (placed, cancelled)
            self._waiting = {i: r for i, r in self._waiting.items() if i in self._seen}
            self._seen = set()

    async def _place_due(self, now: float, blocked: dict[str, str]) -> int:
        started = 0
        while (free := self.max_running - len(self.running)) > 0:
            due = await self.store.due(now, free, frozenset(blocked))
            if not due:
                break
            for callback in due:
                if callback.site in blocked:
                    await self._note_waiting(callback, blocked[callback.site], now)
                    continue
                try:
                    slot = await self.admit(callback)
                except MustWait as wait:
                    await self._note_waiting(callback, wait.reason, now)
                    if wait.everywhere:
                        return started
                    blocked[callback.site] = wait.reason
                    continue
                claimed = await self.store.claim(callback.id, self.owner, now)
                if claimed is None:  # another worker's now, or cancelled meanwhile
                    if slot is not None:
                        slot.release()
                    continue
                self._waiting.pop(callback.id, None)
                self._launch(claimed, slot)
                started += 1
        return started

    async def _note_waiting(self, callback: Callback, reason: str, now: float) -> None:
        self._seen.add(callback.id)
        if self._waiting.get(callback.id) != reason:
            logger.info("callback %s waits: %s", callback.id, reason)
            await self.store.note_waiting(callback.id, reason, now)
            self._waiting[callback.id] = reason

    def _launch(self, callback: Callback, slot: Slot | None) -> None:
        job = self.make_job(callback, slot)
        task: asyncio.Task[object]
        if job is None:
            if slot is not None:
                slot.release()
            task = asyncio.create_task(
                self.store.finish(
                    callback.id,
                    CallbackStatus.FAILED,
                    "its site is no longer configured",
                    self.clock(),
                )
            )
        else:
            task = asyncio.create_task(job.run())
        self.running[callback.id] = task

        def done(finished: asyncio.Task) -> None:
            self.running.pop(callback.id, None)
            if not finished.cancelled() and finished.exception() is not None:
                logger.error("callback %s failed: %r", callback.id, finished.exception())
            self.wake.set()

        task.add_done_callback(done)

    async def stop(self) -> None:
        """Stop claiming, and end the callbacks in progress (they become `interrupted`)."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        tasks = list(self.running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
