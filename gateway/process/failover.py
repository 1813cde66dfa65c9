"""When a worker dies, whoever notices ends what it left: the SIP side of its calls, their
records, its callbacks, its place in the limits. And, with several nodes, how they notice.

A worker is named `<node>/worker-<i>` (gateway.process.state.owner_name). What it leaves:

- the SIP dialogs of its calls: in its journal file (gateway.process.journal) for its own
  machine's supervisor, and, with `[storage] redis`, published with its heartbeat;
- its calls in progress (gateway.storage.live): each becomes a call record, outcome
  `answered` if it was (else `failed`), end cause `lost`, and the site is told (`call.ended`);
- callbacks it was placing (`dialing`): they become `interrupted`, never dialled again on
  their own, and the site is told (`callback.ended`, status `interrupted`);
- its live calls and checks in the ledger: released, so they stop counting.

`Reaper.reap` does all of that once for one worker. Who calls it:

- the node's supervisor, at once, when one of its workers dies (BYE from the dead worker's
  own SIP port, from its journal), and at its start for whatever its node left before;
- with several nodes, `Watcher` (in worker 0 of every node): a worker whose heartbeat
  (`Heartbeat`, every `BEAT_PERIOD`) is older than `DEAD_AFTER` is claimed by exactly one
  watcher (gateway.storage.presence), which sends BYE and CANCEL from its own node's address
  and does the rest. The BYE leaves at most `DEAD_AFTER` + `WATCH_PERIOD` (+ half a second of
  dialogs not yet published) after the node died: within 10 seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.access.ledger import Ledger
from gateway.config import GatewayConfig
from gateway.notify.publisher import Notifier
from gateway.process.journal import end_orphan_calls
from gateway.storage import CallRecord, Database, LiveCall, LiveRegistry
from gateway.storage.presence import REAPING_LIFETIME, Presence

logger = logging.getLogger(__name__)

BEAT_PERIOD = 0.5  # seconds between heartbeats (and publications of changed dialogs)
DEAD_AFTER = 5.0  # seconds without a heartbeat before a worker is taken for dead
WATCH_PERIOD = 0.5  # seconds between looks for dead workers
SWEEP_PERIOD = 10.0  # seconds between looks for what workers no longer listed left
LOST = "lost"  # the end cause of a call whose worker died


@dataclass(frozen=True, slots=True)
class SipFrom:
    """Where the requests that end a dead worker's calls leave from: `bind` (port 0: any),
    and the address announced in their Via (port 0: the one bound)."""

    bind: tuple[str, int]
    sent_by: tuple[str, int]


def lost_record(call: LiveCall, now: float, detail: str, number: str | None = None) -> CallRecord:
    """The record of a call its worker took with it."""
    answered = call.answered_at
    return CallRecord(
        id=call.id,
        kind=call.kind if call.kind in ("call", "callback") else "call",
        site=call.site,
        started_at=call.started_at,
        outcome="answered" if answered is not None else "failed",
        answered_at=answered,
        ended_at=now,
        ring_seconds=round(max(0.0, (answered or now) - call.started_at), 3),
        talk_seconds=round(max(0.0, now - answered), 3) if answered is not None else None,
        end_cause=LOST,
        end_detail=detail[:300],
        destination=call.destination,
        client=call.client,
        number=number,
        page=call.page,
        visitor_name=call.visitor_name,
        source="widget" if call.kind == "call" else "request-a-call",
        worker=call.worker,
    )


class Reaper:
    """Ends what dead workers left (the module's docstring). `by` names who does it, for
    the log and the records."""

    def __init__(
        self,
        config: GatewayConfig,
        database: Database,
        live: LiveRegistry,
        ledger: Ledger,
        *,
        by: str,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.database = database
        self.live = live
        self.ledger = ledger
        self.by = by
        self.notifier = notifier if notifier is not None else Notifier(config, database.outbox)
        self.clock = clock

    async def reap(self, worker: str, dialogs: list[dict], sip: SipFrom | None, why: str) -> str:
        """End everything `worker` left (`why` it is gone, for the records); what was done,
        in words. Each step goes on when another fails."""
        done: list[str] = []
        if dialogs:
            if sip is None or self.config.sip.transport != "udp":
                done.append(
                    f"{len(dialogs)} SIP calls over {self.config.sip.transport} cannot be "
                    "ended from here (their media timeout ends them)"
                )
            else:
                done.append(
                    await asyncio.to_thread(
                        end_orphan_calls, dialogs, bind=sip.bind, sent_by=sip.sent_by
                    )
                )
        detail = f"{worker} {why}; its calls were ended by {self.by}"
        now = self.clock()
        try:
            recorded = await self._record_calls(worker, now, detail)
            if recorded:
                done.append(f"{recorded} calls recorded as lost")
        except Exception as exc:
            done.append(f"its calls in progress could not be recorded: {exc}")
        try:
            interrupted = await self.database.callbacks.interrupt_left_dialing(
                now, worker, f"{worker} {why} during the call"
            )
            for callback in interrupted:
                self.notifier.callback_ended(callback, "interrupted", "the gateway stopped", now)
            if interrupted:
                done.append(f"{len(interrupted)} callbacks interrupted")
        except Exception as exc:
            done.append(f"its callbacks could not be marked interrupted: {exc}")
        try:
            await self.ledger.release(worker, now)
        except Exception as exc:
            done.append(f"its calls still count against the limits until their bound: {exc}")
        try:  # the admin side would show its registrations for good otherwise
            await self.database.registrations.forget_worker(worker)
        except Exception as exc:
            done.append(f"its registrations' status could not be forgotten: {exc}")
        await self.notifier.drain()
        return "; ".join(done)

    async def _record_calls(self, worker: str, now: float, detail: str) -> int:
        calls = await self.live.of_worker(worker)
        recorded = 0
        for call in calls:
            if await self.database.records.get(call.id) is not None:
                continue  # its worker recorded its end, then died before saying it ended
            number = None
            if call.kind == "callback":
                callback = await self.database.callbacks.get(call.id)
                number = callback.number if callback is not None else None
            record = lost_record(call, now, detail, number)
            await self.database.records.add(record)
            recorded += 1
            if record.kind == "call":
                self.notifier.call_ended(record.public())
        await self.live.forget_worker(worker)
        return recorded


class Heartbeat:
    """Keeps one worker listed as alive, with the SIP dialogs it would leave (`dialogs()`,
    published when they change). `on_claimed` runs when the worker learns that another
    node took it for dead (it was cut off from Redis for longer than `DEAD_AFTER`): its
    calls were ended on the SIP side already."""

    def __init__(
        self,
        presence: Presence,
        owner: str,
        dialogs: Callable[[], list[dict]],
        *,
        on_claimed: Callable[[], None] | None = None,
        period: float = BEAT_PERIOD,
    ) -> None:
        self.presence = presence
        self.owner = owner
        self.dialogs = dialogs
        self.on_claimed = on_claimed
        self.period = period
        self._published: list[dict] | None = None
        self._task: asyncio.Task | None = None
        self._down = False

    async def join(self, timeout: float = REAPING_LIFETIME + 5.0) -> None:
        """List the worker as alive; first wait while a former life of it is being ended
        (by this node's supervisor or another node), so that nothing of this life is
        mistaken for it. Redis errors are raised (the start fails, as for the database)."""
        deadline = time.monotonic() + timeout
        told = False
        while not await self.presence.join(self.owner):
            if time.monotonic() > deadline:
                logger.warning(
                    "%s: the end of its former calls takes too long; going on", self.owner
                )
                break
            if not told:
                who = await self.presence.reaping(self.owner)
                logger.info(
                    "%s: waiting while %s ends the calls of its former life", self.owner, who
                )
                told = True
            await asyncio.sleep(0.2)
        await self.beat()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"heartbeat-{self.owner}")

    async def beat(self) -> None:
        dialogs = self.dialogs()
        changed = dialogs != self._published
        result = await self.presence.beat(self.owner, dialogs if changed else None)
        self._published = None if result.absent else dialogs  # absent: publish all again
        if result.claimed:
            logger.error(
                "%s was taken for dead by another node (no heartbeat for %g s): its calls "
                "were ended there; hanging them up here too",
                self.owner,
                DEAD_AFTER,
            )
            if self.on_claimed is not None:
                self.on_claimed()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            try:
                await self.beat()
            except Exception as exc:
                if not self._down:
                    logger.warning("%s: heartbeat failed: %s", self.owner, exc)
                    self._down = True
                continue
            if self._down:
                logger.info("%s: heartbeat again", self.owner)
                self._down = False

    async def stop(self) -> None:
        """The worker stops, its calls ended: it leaves (nothing of it is left to end)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            await self.presence.leave(self.owner)
        except Exception as exc:
            logger.warning("%s: cannot leave: %s", self.owner, exc)


class Lease:
    """One holder in the whole service for a chore every node's worker 0 could do (telling
    a site's owner that a destination went down: once, not once per node): held while
    renewed every `period`, taken over by another `lifetime` after its holder stopped.
    `on_change(held)` says when this worker starts or stops holding it."""

    def __init__(
        self,
        presence: Presence,
        name: str,
        holder: str,
        on_change: Callable[[bool], None],
        *,
        period: float = 5.0,
        lifetime: int = 15,
    ) -> None:
        self.presence = presence
        self.name = name
        self.holder = holder
        self.on_change = on_change
        self.period = period
        self.lifetime = lifetime
        self.held = False
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"lease-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def renew(self) -> None:
        held = await self.presence.hold(self.name, self.holder, self.lifetime)
        if held != self.held:
            self.held = held
            self.on_change(held)

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # Redis away: as it was, until it is back
                await self.renew()
            await asyncio.sleep(self.period)


class Watcher:
    """Looks every `WATCH_PERIOD` for workers of any node that stopped beating, and every
    `SWEEP_PERIOD` for entries of workers no longer listed at all (a node that died while
    Redis was down, names of an earlier release): each found is claimed by one watcher of
    the service and reaped from here."""

    def __init__(
        self,
        presence: Presence,
        reaper: Reaper,
        *,
        claimer: str,
        sip: SipFrom | None,
        period: float = WATCH_PERIOD,
        dead_after: float = DEAD_AFTER,
        sweep_period: float = SWEEP_PERIOD,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.presence = presence
        self.reaper = reaper
        self.claimer = claimer
        self.sip = sip
        self.period = period
        self.dead_after = dead_after
        self.sweep_period = sweep_period
        self.monotonic = monotonic
        self._next_sweep = 0.0
        self._task: asyncio.Task | None = None
        self._failing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="failover-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception as exc:
                if not self._failing:
                    logger.warning("failover: cannot look for dead workers: %s", exc)
                    self._failing = True
            else:
                self._failing = False
            await asyncio.sleep(self.period)

    async def check(self) -> None:
        for worker in await self.presence.claim_lost(self.dead_after, self.claimer):
            await self._reap(worker, f"stopped beating for {self.dead_after:g} s")
        if self.monotonic() >= self._next_sweep:
            self._next_sweep = self.monotonic() + self.sweep_period
            await self.sweep()

    async def sweep(self) -> None:
        alive = set(await self.presence.alive())
        left = (
            await self.reaper.database.callbacks.dialing_claimers()
            | await self.reaper.live.workers()
            | await self.presence.published()
        )
        for worker in sorted(left - alive):
            if await self.presence.claim_absent(worker, self.claimer):
                await self._reap(worker, "is gone", quiet=True)

    async def _reap(self, worker: str, why: str, *, quiet: bool = False) -> None:
        try:
            dialogs = await self.presence.dialogs(worker)
            outcome = await self.reaper.reap(worker, dialogs, self.sip, why)
        finally:
            with contextlib.suppress(Exception):
                await self.presence.done(worker)
        if outcome or not quiet:
            logger.warning("%s %s: %s", worker, why, outcome or "it left nothing to end")
