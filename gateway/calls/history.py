"""What the site owner learns of each call: its record in the database when it ends, its
row among the calls in progress while it lasts, and the Prometheus metrics.

Database writes go through one queue and one writer task per process, in order, off the
call's path: a slow or unavailable database delays the history, never a call (a failed
write is logged and dropped). `close()` waits for what is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from gateway.api import Clock, EndCause, VisitorDetails
from gateway.media.quality import LegQuality
from gateway.monitoring.metrics import Metrics
from gateway.notify.publisher import Notifier
from gateway.storage import CallRecord, Database, LiveCall, LiveRegistry

logger = logging.getLogger(__name__)

MAX_QUEUED_WRITES = 10_000  # past this, history is dropped (logged) rather than memory grown

# How an unanswered call's cause reads for the site owner.
UNANSWERED_OUTCOMES = {
    EndCause.BUSY: "missed",
    EndCause.NO_ANSWER: "missed",
    EndCause.DECLINED: "missed",
    EndCause.VISITOR_HUNG_UP: "abandoned",
    EndCause.OPERATOR_HUNG_UP: "missed",
}


# Refusals that are missed calls for the site owner: the visitor wanted to talk and nobody
# could answer (every destination down).
MISSED_REFUSALS = ("nobody_available",)


def call_outcome(answered: bool, cause: EndCause | None) -> str:
    """answered (someone talked), missed, abandoned (the visitor gave up while it rang)
    or failed."""
    if answered:
        return "answered"
    return UNANSWERED_OUTCOMES.get(cause, "failed") if cause is not None else "failed"


@dataclass
class CallProgress:
    """What is known of one call in progress."""

    id: str
    kind: str
    site: str
    started_at: float
    started_monotonic: float
    client: str = ""
    visitor: VisitorDetails = field(default_factory=VisitorDetails)
    number: str | None = None
    ringing_at: float | None = None
    answered_at: float | None = None
    destination: str | None = None


class CallHistory:
    def __init__(
        self,
        database: Database | None,
        metrics: Metrics,
        *,
        worker: str = "gateway",
        live: LiveRegistry | None = None,
        clock: Clock = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.database = database
        # Where calls in progress are published: the database's table, or Redis for
        # several nodes (gateway.storage.live).
        self.live_registry: LiveRegistry | None = (
            live if live is not None else database.live if database is not None else None
        )
        self.metrics = metrics
        self.worker = worker
        self.clock = clock
        self.monotonic = monotonic
        self._calls: dict[str, CallProgress] = {}
        self._queue: asyncio.Queue[Callable[[], Awaitable[object]] | None] = asyncio.Queue()
        self._writer: asyncio.Task | None = None
        # Who tells the site's owner (gateway.notify): call.answered, call.ended and
        # call.missed of browser calls; callbacks have events of their own.
        self.notifier: Notifier | None = None

    # ------------------------------------------------------------------ events
    def started(
        self,
        call_id: str,
        site: str,
        *,
        kind: str = "call",
        client: str = "",
        visitor: VisitorDetails | None = None,
        number: str | None = None,
        state: str = "connecting",
    ) -> CallProgress:
        now = self.clock()
        call = CallProgress(
            call_id,
            kind,
            site,
            now,
            self.monotonic(),
            client,
            visitor or VisitorDetails(),
            number,
        )
        self._calls[call_id] = call
        self.metrics.active.labels(site).inc()
        if self.live_registry is not None:
            live = LiveCall(
                id=call_id,
                kind=kind,
                worker=self.worker,
                site=site,
                state=state,
                started_at=now,
                updated_at=now,
                client=client,
                page=call.visitor.page,
                visitor_name=call.visitor.name,
            )
            self._publish(lambda registry: registry.started(live))
        return call

    def ringing(self, call_id: str) -> None:
        call = self._calls.get(call_id)
        if call is None or call.ringing_at is not None:
            return
        call.ringing_at = self.clock()
        if call.kind == "call":
            self.metrics.setup.observe(max(0.0, self.monotonic() - call.started_monotonic))
        self.changed(call_id, "ringing")

    def answered(self, call_id: str, destination: str | None) -> None:
        call = self._calls.get(call_id)
        if call is None or call.answered_at is not None:
            return
        call.answered_at = self.clock()
        call.destination = destination
        self.changed(call_id, "answered", answered_at=call.answered_at, destination=destination)
        if self.notifier is not None and call.kind == "call":
            self.notifier.call_answered(
                {
                    "id": call.id,
                    "kind": call.kind,
                    "site": call.site,
                    "started_at": call.started_at,
                    "answered_at": call.answered_at,
                    "ring_seconds": round(max(0.0, call.answered_at - call.started_at), 3),
                    "destination": destination,
                    "page": call.visitor.page,
                    "visitor_name": call.visitor.name,
                    "visitor_reason": call.visitor.reason,
                    "visitor_source": call.visitor.source,
                    "source": "widget",
                }
            )

    def changed(
        self,
        call_id: str,
        state: str,
        *,
        answered_at: float | None = None,
        destination: str | None = None,
    ) -> None:
        if self.live_registry is None or call_id not in self._calls:
            return
        now = self.clock()
        self._publish(
            lambda registry: registry.changed(
                call_id, state, now, answered_at=answered_at, destination=destination
            )
        )

    def sip_response(self, status: int) -> None:
        self.metrics.sip_responses.labels(str(status)).inc()

    def relayed_frames(self, native: int, python: int) -> None:
        """A bridge ended: the frames it carried (relayed or transcoded), in C and in
        Python."""
        if native:
            self.metrics.relayed_frames.labels("native").inc(native)
        if python:
            self.metrics.relayed_frames.labels("python").inc(python)

    def ended(
        self,
        call_id: str,
        outcome: str | None,
        *,
        cause: EndCause | str | None,
        detail: str = "",
        codecs: dict[str, str] | None = None,
        quality: Mapping[str, LegQuality | None] | None = None,
    ) -> CallRecord | None:
        """The call's record (written in the background), or None for an unknown call.
        `outcome` None: answered if it was, else from the `EndCause`."""
        call = self._calls.pop(call_id, None)
        if call is None:
            return None
        if outcome is None:
            outcome = call_outcome(
                call.answered_at is not None, cause if isinstance(cause, EndCause) else None
            )
        now = self.clock()
        self.metrics.active.labels(call.site).dec()
        self.metrics.calls.labels(call.site, outcome).inc()
        waited = (call.answered_at or now) - call.started_at
        talked = now - call.answered_at if call.answered_at is not None else None
        if call.ringing_at is not None or call.answered_at is not None:
            self.metrics.ring.observe(max(0.0, waited))
        if talked is not None:
            self.metrics.talk.observe(max(0.0, talked))
        legs = {name: leg for name, leg in (quality or {}).items() if leg is not None}
        for name, leg in legs.items():
            if leg.packets_sent or leg.packets_received:
                self.metrics.loss.labels(name).observe(leg.loss_ratio)
                self.metrics.jitter.labels(name).observe(leg.jitter_seconds)
        record = CallRecord(
            id=call.id,
            kind=call.kind,
            site=call.site,
            started_at=call.started_at,
            outcome=outcome,
            answered_at=call.answered_at,
            ended_at=now,
            ring_seconds=round(max(0.0, waited), 3),
            talk_seconds=round(max(0.0, talked), 3) if talked is not None else None,
            end_cause=str(cause or ""),
            end_detail=detail[:300],
            destination=call.destination,
            client=call.client,
            number=call.number,
            page=call.visitor.page,
            visitor_name=call.visitor.name,
            visitor_reason=call.visitor.reason,
            visitor_source=call.visitor.source,
            source="widget" if call.kind == "call" else "request-a-call",
            worker=self.worker,
            codecs=codecs or {},
            quality={name: leg.public() for name, leg in legs.items()},
        )
        self._write(lambda db: db.records.add(record))
        self._publish(lambda registry: registry.ended(call_id))
        self._tell_ended(record)
        return record

    def _tell_ended(self, record: CallRecord) -> None:
        if self.notifier is not None and record.kind == "call":
            self.notifier.call_ended(record.public())

    def forget(self, call_id: str) -> None:
        """The call is no longer in progress here, and leaves no record (yet): a callback
        whose attempt failed and that is tried again later."""
        call = self._calls.pop(call_id, None)
        if call is None:
            return
        self.metrics.active.labels(call.site).dec()
        self._publish(lambda registry: registry.ended(call_id))

    def refused(
        self,
        call_id: str,
        site: str,
        reason: str,
        message: str,
        *,
        client: str = "",
        visitor: VisitorDetails | None = None,
    ) -> CallRecord:
        """A call refused before it started (a limit, closed hours, a bad offer): outcome
        `refused`, or `missed` when nobody could answer (every destination down)."""
        now = self.clock()
        visitor = visitor or VisitorDetails()
        outcome = "missed" if reason in MISSED_REFUSALS else "refused"
        self.metrics.refusals.labels(reason).inc()
        self.metrics.calls.labels(site, outcome).inc()
        record = CallRecord(
            id=call_id,
            kind="call",
            site=site,
            started_at=now,
            outcome=outcome,
            ended_at=now,
            ring_seconds=0.0,
            end_cause=reason,
            end_detail=message[:300],
            client=client,
            page=visitor.page,
            visitor_name=visitor.name,
            visitor_reason=visitor.reason,
            visitor_source=visitor.source,
            source="widget",
            worker=self.worker,
        )
        self._write(lambda db: db.records.add(record))
        self._tell_ended(record)
        return record

    def live(self) -> list[CallProgress]:
        """This process's calls in progress."""
        return list(self._calls.values())

    # ------------------------------------------------------------------ writing
    def write(self, action: Callable[[Database], Awaitable[object]]) -> None:
        """Queue a write of another record kept off a visitor's path (a chat's messages),
        in order with the calls' (nothing without a database)."""
        self._write(action)

    def _write(self, action: Callable[[Database], Awaitable[object]]) -> None:
        database = self.database
        if database is not None:
            self._queue_job(lambda: action(database))

    def _publish(self, action: Callable[[LiveRegistry], Awaitable[object]]) -> None:
        registry = self.live_registry
        if registry is not None:
            self._queue_job(lambda: action(registry))

    def _queue_job(self, job: Callable[[], Awaitable[object]]) -> None:
        if self._queue.qsize() >= MAX_QUEUED_WRITES:
            logger.warning("call history: the database is not keeping up; a write is dropped")
            return
        self._queue.put_nowait(job)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                if job is None:
                    return
                await job()
            except Exception as exc:
                logger.warning("call history: cannot write: %s", exc)
            finally:
                self._queue.task_done()

    async def flush(self) -> None:
        """Wait until every write queued so far is done."""
        if self._writer is not None and not self._writer.done():
            await self._queue.join()

    async def close(self) -> None:
        if self._writer is not None:
            self._queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._writer, 10)
            self._writer = None
