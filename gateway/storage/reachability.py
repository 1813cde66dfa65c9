"""Whether the database answers: looked at every few seconds by a `SELECT 1`, so that a
new call is refused at once with a clear reason while it is down (calls already up go on:
their records are written when it is back, or their loss is logged), instead of being
taken and losing its record.

A refused or broken connection marks it down at once; a look that merely takes too long
only on the second time in a row, so that a worker busy for a moment (its event loop late)
does not refuse calls for a database that is fine.

Only a database server is watched: the embedded SQLite file has no server that can go
away, and a look costs an idle worker more than anything else it does (about 2.5 ms of CPU
a second at one look every 2 s: SQLAlchemy, and aiosqlite's thread woken for each step).
Its failures show on the writes that meet them.

A look is skipped while the database is up and another query of this worker had its answer
within the period (the callbacks' rounds, a call's record): that answer says as much, and a
look costs about a millisecond of the worker's CPU (SQLAlchemy, the driver's thread) every
period of an idle gateway."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)

PERIOD = 2.0  # seconds between looks
TIMEOUT = 3.0  # seconds a look may take before it counts as unanswered
SLOW_LOOKS = 2  # unanswered looks in a row that make a database down


class Reachability:
    def __init__(
        self,
        engine: AsyncEngine,
        where: str,
        *,
        period: float | None = PERIOD,
        timeout: float = TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self.where = where  # the database, for messages (its URL without password)
        self.period = period  # None: not watched (`start` does nothing)
        self.timeout = timeout
        self.down: str | None = None  # why it is down; None while it answers
        self.looks = 0  # looks taken (skipped ones not counted)
        self._slow = 0  # unanswered looks in a row
        self._clock = clock
        self._answered_at = float("-inf")  # when another query of this engine had its answer
        self._looking = False
        self._task: asyncio.Task | None = None
        event.listen(engine.sync_engine, "after_cursor_execute", self._answered)

    def _answered(self, *_: object) -> None:
        if not self._looking:  # a look's own answer is no reason to skip the next
            self._answered_at = self._clock()

    def start(self) -> None:
        if self.period is None:
            return
        self._task = asyncio.create_task(self._run(), name="database-reachability")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def look(self) -> None:
        """Ask the database once, and note the answer."""
        self.looks += 1
        self._looking = True
        try:
            async with asyncio.timeout(self.timeout):
                async with self._engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
        except Exception as exc:
            if isinstance(exc, TimeoutError):
                self._slow += 1
                if self._slow < SLOW_LOOKS:
                    return
                why = f"no answer in {self.timeout:g} s"
            else:
                why = str(exc) or type(exc).__name__
            reason = f"the database {self.where} does not answer: {why}"
            if self.down is None:
                logger.warning("%s; new calls are refused until it does", reason)
            self.down = reason
            return
        finally:
            self._looking = False
        self._slow = 0
        if self.down is not None:
            logger.warning("the database %s answers again; calls are taken again", self.where)
        self.down = None

    async def tick(self) -> None:
        """One period's check: a look, unless the database is up and answered another
        query within the period."""
        recent = self._clock() - self._answered_at < (self.period or 0.0)
        if self.down is None and recent:
            self._slow = 0
            return
        await self.look()

    async def _run(self) -> None:
        assert self.period is not None
        while True:
            await asyncio.sleep(self.period)
            await self.tick()
