"""Runs stored callbacks when they fall due, each exactly once (see gateway.storage.callbacks)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from gateway.callbacks.job import CallbackJob
from gateway.storage import Callback, CallbackStore

logger = logging.getLogger(__name__)

JobFactory = Callable[[Callback], CallbackJob | None]


class CallbackScheduler:
    """Claims due callbacks every `interval` seconds and runs a job for each.

    `make_job` returns None for a callback this gateway can no longer place (its site was
    removed from the configuration): it is then marked failed, with the reason.
    """

    def __init__(
        self,
        store: CallbackStore,
        make_job: JobFactory,
        *,
        owner: str,
        clock: Callable[[], float] = time.time,
        interval: float = 1.0,
        max_running: int = 10,
    ) -> None:
        self.store = store
        self.make_job = make_job
        self.owner = owner
        self.clock = clock
        self.interval = interval
        self.max_running = max_running
        self.running: dict[str, asyncio.Task] = {}
        self._loop_task: asyncio.Task | None = None
        self.wake = asyncio.Event()

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            free = self.max_running - len(self.running)
            if free > 0:
                try:
                    due = await self.store.claim_due(self.clock(), self.owner, free)
                except Exception:
                    logger.exception("callbacks: cannot read the store")
                    due = []
                for callback in due:
                    self._launch(callback)
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.interval)

    def _launch(self, callback: Callback) -> None:
        job = self.make_job(callback)
        if job is None:
            task = asyncio.create_task(
                self.store.finish(
                    callback.id, "failed", "its site is no longer configured", self.clock()
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
