"""Whether the database answers: looked at every few seconds by a `SELECT 1`, so that a
new call is refused at once with a clear reason while it is down (calls already up go on:
their records are written when it is back, or their loss is logged), instead of being
taken and losing its record.

A refused or broken connection marks it down at once; a look that merely takes too long
only on the second time in a row, so that a worker busy for a moment (its event loop late)
does not refuse calls for a database that is fine."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger(__name__)

PERIOD = 2.0  # seconds between looks
TIMEOUT = 3.0  # seconds a look may take before it counts as unanswered
SLOW_LOOKS = 2  # unanswered looks in a row that make a database down


class Reachability:
    def __init__(
        self, engine: AsyncEngine, where: str, *, period: float = PERIOD, timeout: float = TIMEOUT
    ) -> None:
        self._engine = engine
        self.where = where  # the database, for messages (its URL without password)
        self.period = period
        self.timeout = timeout
        self.down: str | None = None  # why it is down; None while it answers
        self._slow = 0  # unanswered looks in a row
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="database-reachability")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def look(self) -> None:
        """Ask the database once, and note the answer."""
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
        self._slow = 0
        if self.down is not None:
            logger.warning("the database %s answers again; calls are taken again", self.where)
        self.down = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            await self.look()
