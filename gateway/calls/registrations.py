"""Sites that register with their trunk or PBX (`register = true`): one registration per
site on the worker's SIP endpoint, its changes in the log, in the shared database (for the
admin page and `/api/admin/registrations`: every worker's) and in the
`gateway_registration_up` gauge.

The registration itself (REGISTER with digest, refresh before it runs out, retries with a
growing wait) is sip_bridge's (`sip_bridge.registration`); calls of such a site go out
through the registrar from the registered address (`CallManager._settings`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable

from gateway.api import Clock, clipped
from gateway.config import SiteConfig
from gateway.monitoring.metrics import Metrics
from gateway.storage import RegistrationStatus, RegistrationStore
from sip_bridge import RegistrationChanged, RegistrationSettings, SipEndpoint

logger = logging.getLogger(__name__)

KEY_PREFIX = "site:"
DETAIL_LIMIT = 200  # characters of a registrar's reason kept for the admin page


def register_sites(endpoint: SipEndpoint, sites: Iterable[SiteConfig]) -> dict[str, str]:
    """Start the registrations of the sites that ask for one; their keys, with the
    registrar of each."""
    registrars = {}
    for site in sites:
        aor = site.address_of_record
        if aor is None or site.credentials is None:
            continue
        key = KEY_PREFIX + site.id
        endpoint.register(
            key,
            RegistrationSettings(
                aor=str(aor),
                registrar=str(site.registrar),
                credentials=site.credentials,
                expires=site.register_expires,
                proxy=str(site.proxy) if site.proxy else None,
                contact_user=site.from_user or site.username,
            ),
        )
        registrars[key] = str(site.registrar)
    if registrars:
        endpoint.on_registration = log_registration
    return registrars


def log_registration(change: RegistrationChanged) -> None:
    """One line per change: registered (for how long), failed (why, and when again)."""
    if change.state == "registered":
        logger.info("registration %s: registered for %s s", change.key, change.expires)
    elif change.state == "failed":
        logger.warning(
            "registration %s failed: %s; trying again in %.0f s",
            change.key,
            clipped(change.detail),
            change.retry_in or 0,
        )
    else:
        logger.info("registration %s: %s", change.key, clipped(change.detail or change.state))


class RegistrationReport:
    """Tells each change of this worker's registrations: in the log, in the store (one
    writer task, in the order of the changes; a store that fails is logged, the
    registration goes on) and in the gauge. `start` before the registrations start."""

    def __init__(
        self,
        store: RegistrationStore,
        worker: str,
        metrics: Metrics | None = None,
        *,
        clock: Clock = time.time,
    ) -> None:
        self.store = store
        self.worker = worker
        self.metrics = metrics
        self.clock = clock
        self.registrars: dict[str, str] = {}  # key -> registrar URI
        self._queue: asyncio.Queue[RegistrationStatus] = asyncio.Queue()
        self._task: asyncio.Task | None = None

    async def start(self, endpoint: SipEndpoint, sites: Iterable[SiteConfig]) -> None:
        """Forget what a former life of this worker left, and register the sites."""
        await self.store.forget_worker(self.worker)
        self.registrars = register_sites(endpoint, sites)
        if self.registrars:
            self._task = asyncio.create_task(self._write(), name="registration-report")
            endpoint.on_registration = self.changed
            for key, current in list(endpoint.registrations.items()):
                if key in self.registrars:
                    self.changed(current)

    def changed(self, change: RegistrationChanged) -> None:
        log_registration(change)
        registrar = self.registrars.get(change.key)
        if registrar is None:
            return
        site = change.key.removeprefix(KEY_PREFIX)
        now = self.clock()
        state = "unregistered" if change.state == "stopped" else change.state
        if self.metrics is not None:
            self.metrics.registration_up.labels(site).set(1 if state == "registered" else 0)
        detail = ""  # while registered, the expiry says enough
        if state != "registered":
            detail = change.detail
            if change.status is not None and str(change.status) not in detail:
                detail = f"{change.status} {detail}".strip()
        self._queue.put_nowait(
            RegistrationStatus(
                worker=self.worker,
                site=site,
                state=state,
                registrar=registrar,
                changed_at=now,
                expires_at=now + change.expires
                if state == "registered" and change.expires
                else None,
                detail=clipped(detail, DETAIL_LIMIT) if detail else "",
                retry_at=now + change.retry_in if change.retry_in is not None else None,
            )
        )

    async def _write(self) -> None:
        while True:
            status = await self._queue.get()
            try:
                await self.store.record(status)
            except Exception as exc:
                logger.warning(
                    "registration %s: its state %s was not stored: %s",
                    status.site,
                    status.state,
                    exc,
                )
            finally:
                self._queue.task_done()

    async def flush(self) -> None:
        """Wait until the changes so far are stored."""
        await self._queue.join()

    async def stop(self) -> None:
        """After the endpoint closed (the registrations ended): this worker has none."""
        if self._task is None:
            return  # no site registers: nothing was stored
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
        try:
            await self.store.forget_worker(self.worker)
        except Exception as exc:
            logger.warning("the registrations of %s were not forgotten: %s", self.worker, exc)
