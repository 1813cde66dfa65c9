"""Delivery from the outbox, at least once: claim what is due, hand each row to the sender
of its channel (a webhook, a mail), mark it delivered, or schedule its next attempt.

Attempts back off exponentially (`RetryPolicy`: `retry_backoff`, doubling, at most an hour)
for 24 hours after the event, whatever restarts happen in between: the schedule lives in
the outbox, not in this process. Every worker runs a loop; a claim leases rows, so a row is
with one worker at a time, and a worker that dies gives its rows back when the lease ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from gateway.notify.outbox import GIVEN_UP, Outbox, OutboxEvent

logger = logging.getLogger(__name__)

DAY = 24 * 3600.0


class DeliveryError(Exception):
    """An attempt failed; `permanent` when trying again cannot help (the receiver is no
    longer configured). The message is for the outbox and the log: never a secret."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Sender(Protocol):
    channel: str

    async def deliver(self, event: OutboxEvent) -> None:
        """Deliver the row's event, or raise DeliveryError."""
        ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When a failed delivery is tried again: `backoff` seconds after the first attempt,
    doubling after each (at most `max_interval`), and a last time at `give_up_after`
    seconds after the event; then never."""

    backoff: float = 30.0
    max_interval: float = 3600.0
    give_up_after: float = DAY

    def next_attempt(self, attempts: int, created_at: float, now: float) -> float | None:
        """When to try again after `attempts` failed attempts (at `now`), or None."""
        deadline = created_at + self.give_up_after
        if now >= deadline:
            return None
        delay = min(self.backoff * 2 ** max(attempts - 1, 0), self.max_interval)
        return min(now + delay, deadline)


Outcome = Callable[[str, str], None]  # (channel, "delivered" | "failed" | "given_up")


class DeliveryLoop:
    """Claims due rows every `poll` seconds (or at once after `wake()`) and delivers them.

    `clock` gives wall-clock seconds (the outbox's times). `on_outcome` counts results
    (metrics). `run_once` does one round; tests drive it with a fake clock.
    """

    def __init__(
        self,
        outbox: Outbox,
        senders: Mapping[str, Sender],
        *,
        policy: RetryPolicy,
        clock: Callable[[], float] = time.time,
        lease: float = 120.0,
        batch: int = 20,
        poll: float = 1.0,
        on_outcome: Outcome | None = None,
    ) -> None:
        self.outbox = outbox
        self.senders = dict(senders)
        self.policy = policy
        self.clock = clock
        self.lease = lease
        self.batch = batch
        self.poll = poll
        self.on_outcome = on_outcome
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._retry_timers: set[asyncio.TimerHandle] = set()
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    def wake(self) -> None:
        """Something was enqueued (or falls due): look at once."""
        self._wake.set()

    async def stop(self, grace: float = 5.0) -> None:
        """Let a round in progress finish (within `grace` seconds: its rows then keep
        their lease and are taken up again when it ends), then stop."""
        self._stopping = True
        self._wake.set()
        for timer in self._retry_timers:
            timer.cancel()
        self._retry_timers.clear()
        if self._task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), grace)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                count = await self.run_once()
            except Exception:
                logger.exception("notifications: cannot read the outbox")
                count = 0
            if count >= self.batch or self._stopping:
                continue  # more may be waiting
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll)

    async def run_once(self) -> int:
        """Claim what is due now and deliver it; returns how many rows were claimed."""
        events = await self.outbox.claim_due(self.clock(), self.lease, self.batch)
        if events:
            await asyncio.gather(*(self._deliver(event) for event in events))
        return len(events)

    async def _deliver(self, event: OutboxEvent) -> None:
        channel = str(event.payload.get("channel", ""))
        sender = self.senders.get(channel)
        try:
            if sender is None:
                raise DeliveryError(f"no {channel or 'unknown'} sender configured", permanent=True)
            await sender.deliver(event)
        except DeliveryError as exc:
            await self._failed(event, channel, str(exc), permanent=exc.permanent)
        except Exception as exc:  # a bug must not stop the loop, nor lose the row
            logger.exception("notification %s: delivery raised", event.id)
            await self._failed(event, channel, f"internal error: {type(exc).__name__}")
        else:
            await self.outbox.delivered(event.id, self.clock())
            logger.info(
                "notification %s (%s, %s) delivered by %s after %d attempt(s)",
                event.id,
                event.type,
                event.site,
                channel,
                event.attempts,
            )
            self._count(channel, "delivered")

    async def _failed(
        self, event: OutboxEvent, channel: str, error: str, *, permanent: bool = False
    ) -> None:
        now = self.clock()
        retry_at = (
            None if permanent else self.policy.next_attempt(event.attempts, event.created_at, now)
        )
        if retry_at is None:
            await self.outbox.failed(event.id, error, GIVEN_UP)
            logger.warning(
                "notification %s (%s, %s) by %s given up after %d attempt(s): %s",
                event.id,
                event.type,
                event.site,
                channel or "?",
                event.attempts,
                error,
            )
            self._count(channel, "given_up")
            return
        await self.outbox.failed(event.id, error, retry_at)
        logger.info(
            "notification %s (%s, %s) by %s failed (attempt %d), next in %.0f s: %s",
            event.id,
            event.type,
            event.site,
            channel,
            event.attempts,
            retry_at - now,
            error,
        )
        self._count(channel, "failed")
        self._wake_at(retry_at - now)

    def _wake_at(self, delay: float) -> None:
        """Look again when a retry falls due, if sooner than the next poll would."""
        if self._task is None or delay >= self.poll:
            return
        loop = asyncio.get_running_loop()

        def due() -> None:
            self._retry_timers.discard(timer)
            self._wake.set()

        timer = loop.call_later(max(delay, 0.0), due)
        self._retry_timers.add(timer)

    def _count(self, channel: str, result: str) -> None:
        if self.on_outcome is not None:
            try:
                self.on_outcome(channel, result)
            except Exception:
                logger.exception("notifications: counting an outcome failed")
