"""`HealthMonitor`: SIP OPTIONS to each destination of each site every `health_interval`
seconds, through the site's (or the destination's) proxy, feeding `DestinationHealth`.

A probe not answered within the interval counts as unanswered (its transaction is given up,
so a dead destination costs one request and its retransmissions per interval). Every worker
probes for itself, so that each knows which destinations to skip; only the one with
`report` set (worker 0) logs the changes at WARNING and tells the site's owner
(`destination.down` / `destination.up`), so that they hear it once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

from gateway.config import GatewayConfig
from gateway.health.state import DestinationHealth, Health
from gateway.monitoring.metrics import Metrics
from sip_bridge import OptionsResult

logger = logging.getLogger(__name__)


class Prober(Protocol):
    async def options(
        self, target: str, *, timeout: float, proxy: str | None = None
    ) -> OptionsResult: ...


class HealthListener(Protocol):
    def destination_changed(
        self, site: str, destination: str, *, up: bool, since: float, last_status: int | None
    ) -> None: ...


class HealthMonitor:
    def __init__(
        self,
        config: GatewayConfig,
        prober: Prober,
        *,
        report: bool = True,
        listener: HealthListener | None = None,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.prober = prober
        self.report = report
        self.listener = listener
        self.metrics = metrics  # gateway_destination_up{site,destination}
        self.clock = clock
        self._health: dict[tuple[str, str], DestinationHealth] = {}
        self._tasks: list[asyncio.Task] = []
        for site in config.sites:
            if site.health_interval <= 0:
                continue
            for destination in site.destinations:
                uri = str(destination.uri)
                self._health[(site.id, uri)] = DestinationHealth(site.id, uri)

    def start(self) -> None:
        for site in self.config.sites:
            if site.health_interval <= 0:
                continue
            for destination in site.destinations:
                proxy = destination.proxy or site.proxy
                health = self._health[(site.id, str(destination.uri))]
                self._tasks.append(
                    asyncio.create_task(
                        self._watch(health, site.health_interval, str(proxy) if proxy else None)
                    )
                )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    # ------------------------------------------------------------------ reading
    def is_down(self, site: str, destination: str) -> bool:
        health = self._health.get((site, destination))
        return health is not None and health.down

    def snapshot(self, site: str | None = None) -> list[dict[str, object]]:
        """Every checked destination (of one site, or all), as docs/admin.md shows it."""
        return [h.view() for h in self._health.values() if site is None or h.site == site]

    # ------------------------------------------------------------------ probing
    async def _watch(self, health: DestinationHealth, interval: float, proxy: str | None) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                result = await self.prober.options(
                    health.destination, timeout=interval, proxy=proxy
                )
                status = result.status
            except (ValueError, OSError) as exc:
                logger.debug("OPTIONS to %s not sent: %s", health.destination, exc)
                status = None
            except Exception:  # a bug must not end this destination's checks for good
                logger.exception("OPTIONS to %s failed", health.destination)
                status = None
            self._record(health, status)
            await asyncio.sleep(max(0.0, started + interval - loop.time()))

    def _record(self, health: DestinationHealth, status: int | None) -> None:
        change = health.record(status, self.clock())
        if self.metrics is not None and health.state != Health.UNKNOWN:
            gauge = self.metrics.destination_up.labels(health.site, health.destination)
            gauge.set(1 if health.state == Health.UP else 0)
        if change is None or health.since is None:
            return
        up = change == Health.UP
        if self.report:
            if up:
                logger.warning(
                    "destination %s of site %s is up again (SIP %s)",
                    health.destination,
                    health.site,
                    status,
                )
            else:
                logger.warning(
                    "destination %s of site %s is down: no answer to %d OPTIONS in a row; "
                    "it is not rung until it answers",
                    health.destination,
                    health.site,
                    health.misses,
                )
            if self.listener is not None:
                self.listener.destination_changed(
                    health.site, health.destination, up=up, since=health.since, last_status=status
                )
        else:
            logger.info(
                "destination %s of site %s is %s", health.destination, health.site, change.value
            )
