"""Request-a-Call in a running gateway: the store, the scheduler, jobs and the requests
(served over HTTP by gateway.http.callbacks).

Present only when some site has a `callback` table. A callback request must carry a call
token (`POST /api/token`, bound to the site and the page's Origin), like a call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from gateway.access.admission import LimitRefused
from gateway.api import CallbackRefused, TokenService, loggable
from gateway.callbacks.job import CallbackJob, CallbackSettings
from gateway.callbacks.requests import CallbackRequests, SiteCallbacks
from gateway.callbacks.scheduler import CallbackScheduler
from gateway.calls.history import CallHistory
from gateway.config import GatewayConfig, SiteConfig
from gateway.config.legs import sip_leg_settings
from gateway.notify.publisher import Notifier
from gateway.sites.hours import ALWAYS_OPEN
from gateway.storage import Callback, CallbackStore, Database
from sip_bridge import SipEndpoint


class CallbackAccess(TokenService, Protocol):
    """What Request-a-Call asks of the call side (the CallManager): call tokens, and the
    visitor's call windows, which callback requests count against too."""

    async def admit_callback_request(self, site_id: str, client: str) -> None:
        """Count one request of `client` for `site_id`, or raise LimitRefused."""
        ...


logger = logging.getLogger(__name__)


class RequestACall:
    def __init__(
        self,
        config: GatewayConfig,
        endpoint: SipEndpoint,
        tokens: CallbackAccess,
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
        self.store = store
        self.clock = clock
        self.history = history
        self.scheduler = CallbackScheduler(store, self._job, owner=owner, clock=clock)
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

    async def cancel(self, callback_id: str) -> str | None:
        """The site owner cancels a scheduled callback (its status after, None if unknown)."""
        status = await self.store.cancel(callback_id, self.clock(), by="by the site")
        if status == "cancelled" and self.history is not None:
            self.history.metrics.callbacks.labels("cancelled").inc()
        return status

    async def place_again(self, callback_id: str) -> str | None:
        """The site owner places a failed or interrupted callback again, now."""
        status = await self.store.place_again(callback_id, self.clock())
        if status == "scheduled":
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
        return SiteCallbacks(
            site.id,
            policy.countries,
            site.hours or ALWAYS_OPEN,
            policy.per_number_daily,
            page_origins=frozenset(
                o.lower() for o in (*site.origins, self.config.http.public_origin)
            ),
        )

    def _job(self, callback: Callback) -> CallbackJob | None:
        site = self._site(callback.site)
        if site is None:
            return None
        policy, config = site.callback, self.config
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
            history=self.history,
        )

    # ------------------------------------------------------------------ the owner's side
    def _added(self, callback: Callback) -> None:
        self.scheduler.wake.set()
        if self.notifier is not None:
            self.notifier.callback_requested(callback)

    def _cancelled(self, callback: Callback) -> None:
        if self.notifier is not None:
            self.notifier.callback_ended(callback, "cancelled", "", self.clock())

    def _progress(self, callback: Callback, event: str, detail: str) -> None:
        """A job's progress; its end (`done`, `failed`, `interrupted`) tells the owner."""
        if self.notifier is not None and event in ("done", "failed", "interrupted"):
            self.notifier.callback_ended(callback, event, detail, self.clock())

    async def authorize(self, site: object, token: str, origin: str) -> None:
        """A request needs a call token (`Authorization: Bearer ...`) for the site it names,
        from a page of an origin the site allows, as for a call; raises AccessRefused."""
        if not isinstance(site, str):
            raise CallbackRefused("bad_request", "site is required.", status=400)
        await self.tokens.redeem_token(token, site_id=site, origin=origin)

    async def _admit(self, site_id: str, client: str) -> None:
        """A valid request about to be stored counts against the visitor's call windows."""
        try:
            await self.tokens.admit_callback_request(site_id, client)
        except LimitRefused as exc:
            logger.warning(
                "callback refused (%s): site=%s %s", exc.code, loggable(site_id, 40), exc.detail
            )
            raise
