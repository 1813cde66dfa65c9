"""Pre-call checks: "Test my microphone and connection" before a visitor calls.

A check is a real WebRTC connection to the gateway (ICE, DTLS-SRTP) whose audio is echoed
back (gateway.media.echo), with no SIP: the browser measures loss and round trip of its own
audio. It is not a call, so it counts against none of the call limits, but it holds a peer
connection, so it is bounded on its own:

- only for sites whose widget offers it (`[sites.widget] precheck`);
- one at a time per visitor address, and `limits.prechecks_per_client_hour` in any hour
  (over all sites, workers and nodes: counted in the ledger);
- `limits.max_precheck_duration` seconds, then the gateway ends it;
- together with calls, within the worker's `limits.max_calls`.

Refusals are `CallRefused` (`precheck_off`, `bad_offer`, `unavailable`) or `LimitRefused`
(`precheck_limited`, with the seconds to wait; `busy`). The echo sends back no more than it
receives, and only to the peer ICE verified: a check cannot amplify traffic.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.access.admission import HOUR, LimitRefused, StorageUnavailable, client_key
from gateway.access.ledger import CheckFacts, Ledger, LedgerUnavailable
from gateway.api import CallRefused, CheckGrant, Clock, clipped
from gateway.config import GatewayConfig, SiteConfig
from gateway.config.legs import BrowserLegSettings, browser_leg_settings
from gateway.media.echo import EchoLeg
from gateway.media.ice_mux import IceMux

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class _Check:
    id: str
    site: str
    client: str
    row: str
    leg: EchoLeg
    started: float  # event loop time
    timer: asyncio.TimerHandle | None = None
    closing: asyncio.Task | None = field(default=None, repr=False)


class PreCallChecks:
    """The pre-call checks of one worker. `busy()` tells how many calls the worker carries
    (checks and calls share `limits.max_calls`)."""

    def __init__(
        self,
        config: GatewayConfig,
        ledger: Ledger,
        *,
        clock: Clock = time.time,
        busy: Callable[[], int] = lambda: 0,
        leg_settings: BrowserLegSettings | None = None,
        ice_mux: IceMux | None = None,
    ) -> None:
        self.limits = config.limits
        self.ledger = ledger
        self.clock = clock
        self.busy = busy
        self.leg_settings = leg_settings or browser_leg_settings(config)
        self.ice_mux = ice_mux
        self.checks: dict[str, _Check] = {}
        self._admitting = 0  # checks waiting for the ledger

    async def start(self, site: SiteConfig, address: str, offer_sdp: str) -> CheckGrant:
        """Answer the browser's offer with an echo; raises CallRefused / LimitRefused, or
        CallRefused("bad_offer") for an offer that cannot be answered."""
        if not site.widget.precheck:
            raise CallRefused("precheck_off", "this site offers no connection test")
        if self.busy() + len(self.checks) + self._admitting >= self.limits.max_calls:
            raise LimitRefused(
                "busy",
                "the gateway is at its call limit; try again later",
                f"a pre-call check would pass limits.max_calls ({self.limits.max_calls})",
            )
        client = client_key(address)
        self._admitting += 1
        try:
            row = await self._admit(client, self.clock())
        finally:
            self._admitting -= 1
        leg = EchoLeg(self.leg_settings, self.ice_mux)
        check = _Check(secrets.token_urlsafe(12), site.id, client, row, leg, _loop_time())
        self.checks[check.id] = check
        try:
            answer = await leg.answer(offer_sdp)
        except ValueError as exc:
            await self._end(check, "refused")
            raise CallRefused("bad_offer", str(exc)) from None
        except OSError as exc:  # no socket for ICE
            await self._end(check, "failed")
            logger.warning("pre-call check: cannot answer: %s", clipped(exc))
            raise CallRefused("unavailable", "the gateway cannot take a test now") from None
        except BaseException:
            await self._end(check, "failed")
            raise
        seconds = self.limits.max_precheck_duration
        loop = asyncio.get_running_loop()
        check.timer = loop.call_later(seconds, self._expire, check.id)
        leg.on_failed = lambda state: self._expire(check.id)
        logger.info(
            "pre-call check %s started: site %s, client %s",
            check.id,
            site.id,
            clipped(address, 64),
        )
        return CheckGrant(check.id, answer, seconds)

    async def _admit(self, client: str, now: float) -> str:
        """The check's key in the ledger, or LimitRefused (precheck_limited)."""
        limit = self.limits.prechecks_per_client_hour

        def decide(facts: CheckFacts) -> None:
            if facts.live >= 1:
                raise LimitRefused(
                    "precheck_limited",
                    "a connection test from this address is going on already",
                    f"{client} has a pre-call check going on",
                    retry_after=self.limits.max_precheck_duration,
                )
            starts = facts.starts
            if len(starts) >= limit:
                retry_after = starts[len(starts) - limit] + HOUR - now
                raise LimitRefused(
                    "precheck_limited",
                    f"too many connection tests from this address in the last hour; "
                    f"try again in {math.ceil(retry_after / 60)} minutes",
                    f"{client} started {len(starts)} pre-call checks in the last hour "
                    f"(limits.prechecks_per_client_hour = {limit})",
                    retry_after=retry_after,
                )

        try:
            return await self.ledger.admit_check(
                client, now, decide, lasts=self.limits.max_precheck_duration + 60
            )
        except LedgerUnavailable as exc:
            raise StorageUnavailable(str(exc)) from None

    async def stop(self, check_id: str) -> None:
        """The page is done with its check (or went away)."""
        check = self.checks.get(check_id)
        if check is not None:
            await self._end(check, "stopped")

    def _expire(self, check_id: str) -> None:
        check = self.checks.get(check_id)
        if check is not None and check.closing is None:
            check.closing = asyncio.ensure_future(self._end(check, "ended by the gateway"))

    async def _end(self, check: _Check, how: str) -> None:
        if self.checks.pop(check.id, None) is None:
            return
        if check.timer is not None:
            check.timer.cancel()
        try:
            await self.ledger.check_ended(check.row, self.clock())
        except LedgerUnavailable as exc:  # its place frees itself after its bound
            logger.warning("pre-call check %s: %s", check.id, exc)
        await check.leg.close()
        logger.info(
            "pre-call check %s %s after %.1f s: %d frames echoed",
            check.id,
            how,
            _loop_time() - check.started,
            check.leg.echoed,
        )

    async def close(self) -> None:
        """End every check (the gateway stops)."""
        await asyncio.gather(*(self._end(c, "stopped") for c in list(self.checks.values())))


def _loop_time() -> float:
    return asyncio.get_running_loop().time()
