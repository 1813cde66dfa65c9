"""Request-a-Call in a running gateway: the store, the scheduler, jobs and the requests
(served over HTTP by gateway.http.callbacks).

Present only when some site has a `callback` table. A callback request must carry a call
token (`POST /api/token`, bound to the site and the page's Origin), like a call.

A callback passes the admission of a call (gateway.access.admission), in the same ledger:
when requested, the visitor's call windows and the site's spend guard (`rate_limited`,
`budget_exhausted`); when placed, the concurrent calls of the site and of the gateway and
the spend guard again, and the site's business hours: a callback that cannot be placed
waits, `scheduled`, until it can. Placed, it holds its slot until it ends, its talk time
counts against the spend guard, and it ends at the maximum call duration or when a leg
sends no RTP for `media.media_timeout` (gateway.callbacks.job).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.access.admission import (
    AdmittedCall,
    CallAdmission,
    LimitRefused,
    StorageUnavailable,
)
from gateway.api import CallbackRefused, TokenService, clipped
from gateway.callbacks.job import CallbackJob, CallbackSettings, Slot
from gateway.callbacks.requests import CallbackRequests, SiteCallbacks
from gateway.callbacks.scheduler import CallbackScheduler, MustWait
from gateway.calls.history import CallHistory
from gateway.config import GatewayConfig, SiteConfig
from gateway.config.legs import sip_leg_settings
from gateway.notify.publisher import Notifier
from gateway.sites.hours import ALWAYS_OPEN
from gateway.storage import Callback, CallbackEvent, CallbackStatus, CallbackStore, Database
from sip_bridge import SipEndpoint


class CallbackAccess(TokenService, Protocol):
    """What Request-a-Call asks of the call side (the CallManager): call tokens, and the
    visitor's call windows, which callback requests count against too."""

    async def admit_callback_request(self, site_id: str, client: str) -> None:
        """Count one request of `client` for `site_id`, or raise LimitRefused."""
        ...


logger = logging.getLogger(__name__)

# Why a due callback waits, in words for its history, by the admission's refusal code.
WAITS = {
    "site_busy": "all lines are busy",
    "busy": "the gateway is at its call limit",
    "budget_exhausted": "the site's call minutes for today are spent",
    "unavailable": "the shared storage cannot be reached",
}


# The events of a job that end a callback's life, told to the site owner (`callback.ended`).
_ENDS = frozenset({CallbackEvent.DONE, CallbackEvent.FAILED, CallbackEvent.INTERRUPTED})


@dataclass(eq=False)
class _AdmittedSlot:
    """A placed callback's row in the shared ledger (gateway.access.admission)."""

    admission: CallAdmission
    call: AdmittedCall
    clock: Callable[[], float]

    def answered(self) -> None:
        self.admission.answered(self.call, self.clock())

    def release(self) -> None:
        self.admission.ended(self.call, self.clock())


class RequestACall:
    def __init__(
        self,
        config: GatewayConfig,
        endpoint: SipEndpoint,
        tokens: CallbackAccess,
        admission: CallAdmission,
        store: CallbackStore,
        *,
        owner: str,
        clock: Callable[[], float] = time.time,
        history: CallHistory | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        self.notifier = notifier
        self.endpoint = endpoint
        self.tokens = tokens
        self.admission = admission
        self.store = store
        self.clock = clock
        self.history = history
        self.scheduler = CallbackScheduler(
            store, self._job, admit=self._admit_placement, owner=owner, clock=clock
        )
        self.requests = CallbackRequests(
            store,
            self._policy,
            clock=clock,
            admit=self._admit,
            on_added=self._added,
            on_cancelled=self._cancelled,
        )

    @classmethod
    async def start(
        cls,
        config: GatewayConfig,
        endpoint: SipEndpoint,
        tokens: CallbackAccess,
        admission: CallAdmission,
        database: Database,
        *,
        owner: str = "gateway",
        clock: Callable[[], float] = time.time,
        history: CallHistory | None = None,
        notifier: Notifier | None = None,
    ) -> RequestACall | None:
        """None when no site takes callbacks. What an earlier life of `owner` left
        `dialing` was made `interrupted` before (gateway.process.failover)."""
        if not any(site.callback for site in config.sites):
            return None
        store = database.callbacks
        service = cls(
            config,
            endpoint,
            tokens,
            admission,
            store,
            owner=owner,
            clock=clock,
            history=history,
            notifier=notifier,
        )
        service.scheduler.start()
        return service

    async def stop(self) -> None:
        await self.scheduler.stop()

    async def cancel(self, callback_id: str) -> CallbackStatus | None:
        """The site owner cancels a scheduled callback (its status after, None if unknown)."""
        status = await self.store.cancel(callback_id, self.clock(), by="by the site")
        if status is CallbackStatus.CANCELLED and self.history is not None:
            self.history.metrics.callbacks.labels(status.value).inc()
        return status

    async def place_again(self, callback_id: str) -> CallbackStatus | None:
        """The site owner places a failed or interrupted callback again, now."""
        status = await self.store.place_again(callback_id, self.clock())
        if status is CallbackStatus.SCHEDULED:
            self.scheduler.wake.set()
        return status

    def _site(self, site_id: object) -> SiteConfig | None:
        site = self.config.site(site_id) if isinstance(site_id, str) else None
        return site if site is not None and site.callback is not None else None

    def _policy(self, site_id: str) -> SiteCallbacks | None:
        site = self._site(site_id)
        if site is None:
            return None
        policy = site.callback
        assert policy is not None  # _site returns only sites that take callbacks
        return SiteCallbacks(
            site.id,
            policy.countries,
            site.hours or ALWAYS_OPEN,
            policy.per_number_daily,
            page_origins=frozenset(
                o.lower() for o in (*site.origins, self.config.http.public_origin)
            ),
        )

    async def _admit_placement(self, callback: Callback) -> Slot | None:
        """Take a due callback's slot in the limits, or raise MustWait (it stays
        scheduled); None for a callback whose site is gone (it fails in `_job`)."""
        site = self._site(callback.site)
        if site is None:
            return None
        now = self.clock()
        if site.hours is not None and not site.hours.is_open(
            dt.datetime.fromtimestamp(now, dt.UTC)
        ):
            raise MustWait("the site is closed")
        try:
            call = await self.admission.admit_callback(site, callback.id, now)
        except (LimitRefused, StorageUnavailable) as exc:
            raise MustWait(
                WAITS.get(exc.code, exc.message), everywhere=exc.code in ("busy", "unavailable")
            ) from None
        return _AdmittedSlot(self.admission, call, self.clock)

    def _job(self, callback: Callback, slot: Slot | None) -> CallbackJob | None:
        site = self._site(callback.site)
        if site is None:
            return None
        policy, config = site.callback, self.config
        assert policy is not None  # _site returns only sites that take callbacks
        operator = policy.operator or site.destinations[0].uri
        settings = CallbackSettings(
            operator=str(operator),
            dial=policy.dial,
            credentials=site.credentials,
            proxy=str(site.proxy) if site.proxy else None,
            caller_name=site.caller_name,
            operator_ring_timeout=site.ring_timeout,
            visitor_ring_timeout=policy.visitor_ring_timeout,
            attempts=policy.attempts,
            retry_after=policy.retry_after,
            max_seconds=site.max_call_duration,
            whisper=policy.whisper,
            leg=sip_leg_settings(config),
        )
        return CallbackJob(
            callback,
            settings,
            self.endpoint,
            self.store,
            on_progress=lambda event, detail: self._progress(callback, event, detail),
            clock=self.clock,
            slot=slot,
            history=self.history,
        )

    # ------------------------------------------------------------------ the owner's side
    def _added(self, callback: Callback) -> None:
        self.scheduler.wake.set()
        if self.notifier is not None:
            self.notifier.callback_requested(callback)

    def _cancelled(self, callback: Callback) -> None:
        if self.notifier is not None:
            self.notifier.callback_ended(callback, CallbackStatus.CANCELLED.value, "", self.clock())

    def _progress(self, callback: Callback, event: CallbackEvent, detail: str) -> None:
        """A job's progress; its end (`done`, `failed`, `interrupted`) tells the owner."""
        if self.notifier is not None and event in _ENDS:
            self.notifier.callback_ended(callback, event.value, detail, self.clock())

    async def authorize(self, site: object, token: str, origin: str) -> None:
        """A request needs a call token (`Authorization: Bearer ...`) for the site it names,
        from a page of an origin the site allows, as for a call; raises AccessRefused."""
        if not isinstance(site, str):
            raise CallbackRefused("bad_request", "site is required.", status=400)
        await self.tokens.redeem_token(token, site_id=site, origin=origin)

    async def _admit(self, site_id: str, client: str) -> None:
        """A valid request about to be stored passes the site's spend guard and counts
        against the visitor's call windows; raises LimitRefused (StorageUnavailable while
        the shared storage is down: the request could not be stored)."""
        if self._site(site_id) is None:
            raise CallbackRefused("unknown_site", "This site does not take callbacks.", status=404)
        try:
            await self.tokens.admit_callback_request(site_id, client)
        except LimitRefused as exc:
            logger.warning(
                "callback refused (%s): site=%s %s", exc.code, clipped(site_id, 40), exc.detail
            )
            raise
