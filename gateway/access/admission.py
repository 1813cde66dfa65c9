"""Whether a new call may start: the limits of the gateway, of its site and of its visitor.

Checked in this order, each refusal with its own code for the page (`CallRefused.code`) and
an operator-facing `detail` for the log:

- `busy`: the gateway carries `limits.max_calls` calls;
- `site_busy`: the site carries its `max_site_calls`;
- `too_many_calls`: the visitor's address has `limits.max_calls_per_client` calls going;
- `budget_exhausted`: the site's spend guard (`daily_call_minutes` in any 24 hours);
- `rate_limited`: the visitor's address started `calls_per_client_15min` / `_hour` / `_day`
  calls of this site in the last 15 minutes / hour / 24 hours.

A visitor is their IP address; IPv6 addresses count per /64 network, since one host may
hold a whole /64 and change its address at will. `max_calls` is what one worker process can
carry; every other limit is counted for the whole service, over all workers (and nodes), in
the `Ledger` (gateway.access.ledger). When the ledger cannot be reached a call is refused
(`unavailable`): without it no limit could hold. The spend guard counts talk time (answer
to end, as a trunk bills it) of the calls that ended in the last 24 hours plus the calls
talking now; once a site has used its budget new calls are refused until older minutes age
out, and calls in progress go on (each bounded by the maximum call duration). Time is
passed in.

A Request-a-Call callback is a call to these limits (docs/callbacks.md): its request passes
the spend guard and counts against the visitor's windows (`count_request`), and when it is
placed it takes a slot like a call (`admit_callback`: `busy`, `site_busy`,
`budget_exhausted`; no per-visitor limits, the visitor is not on the line), answered and
ended in the same ledger, so these limits hold over every node too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TypeVar

from gateway.access.ledger import DAY, CallFacts, Ledger, LedgerUnavailable, SqliteLedger
from gateway.api import CallRefused
from gateway.config import SiteConfig

logger = logging.getLogger(__name__)

MINUTE = 60.0
QUARTER_HOUR = 15 * 60.0
HOUR = 3600.0


def voicemail_key(site_id: str) -> str:
    """How the ledger names a site's voicemails: apart from its calls, so that they count
    against neither its lines nor its budget, and in rate windows of their own."""
    return f"voicemail:{site_id}"


@dataclass(frozen=True, slots=True)
class Window:
    """At most `limit` calls started in any `seconds`."""

    seconds: float
    limit: float
    label: str  # how a message names the window: "15 minutes", "24 hours"

    def __post_init__(self) -> None:
        if not (0 < self.seconds <= DAY and math.isfinite(self.seconds)):
            raise ValueError(f"a window must last up to a day, not {self.seconds!r} s")
        if not self.limit >= 0:
            raise ValueError(f"a window's limit must not be negative, not {self.limit!r}")


class LimitRefused(CallRefused):
    """A call refused by a limit. `message` is for the page; `detail` for the operator's
    log; `warning` marks what the operator should act on (a used-up budget)."""

    status = 429

    def __init__(
        self,
        code: str,
        message: str,
        detail: str,
        *,
        warning: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(code, message, retry_after=retry_after)
        self.detail = detail
        self.warning = warning


@dataclass(eq=False, slots=True)
class AdmittedCall:
    """A call that passed admission, until `CallAdmission.ended`."""

    site_id: str
    client: str  # the visitor, as limits count them (see `client_key`)
    row: str  # its key in the ledger
    answered_at: float | None = None

    @property
    def answered(self) -> bool:
        return self.answered_at is not None


class StorageUnavailable(CallRefused):
    """A call (or a token, a check) refused because the storage every node shares cannot be
    reached: `message` for the page, `detail` for the operator's log."""

    status = 503

    def __init__(self, detail: str) -> None:
        super().__init__(
            "unavailable", "calls cannot be taken right now; please try again in a few minutes"
        )
        self.detail = detail


def client_key(address: str) -> str:
    """The visitor as limits count them: an IPv4 address, or an IPv6 /64 network."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # not an IP (a unix socket, "unknown"): counted as given
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def client_windows(site: SiteConfig) -> tuple[Window, ...]:
    return (
        Window(QUARTER_HOUR, site.calls_per_client_15min, "15 minutes"),
        Window(HOUR, site.calls_per_client_hour, "hour"),
        Window(DAY, site.calls_per_client_day, "24 hours"),
    )


_WINDOW_KEYS = {
    "15 minutes": "calls_per_client_15min",
    "hour": "calls_per_client_hour",
    "24 hours": "calls_per_client_day",
}


class CallAdmission:
    def __init__(
        self,
        *,
        max_calls: int,
        max_calls_per_client: int,
        ledger: Ledger | None = None,
    ) -> None:
        self.max_calls = max_calls
        self.max_calls_per_client = max_calls_per_client
        self.ledger: Ledger = ledger if ledger is not None else SqliteLedger.in_memory()
        self._live: set[AdmittedCall] = set()  # this worker's
        self._paused: set[str] = set()  # sites past their budget, to log the change once
        self._writes: set[asyncio.Task] = set()  # answers and ends on their way to the ledger
        self._admitting = 0  # admissions waiting for the ledger: places taken already

    @property
    def live_calls(self) -> int:
        """Calls this worker carries (and those being admitted)."""
        return len(self._live) + self._admitting

    async def admit(self, site: SiteConfig, address: str, now: float) -> AdmittedCall:
        """Count a new call of `site` from the visitor at `address`, or raise LimitRefused
        (StorageUnavailable when the ledger cannot be reached)."""
        return await self._admit(site, client_key(address), now, visitor=True)

    async def admit_callback(self, site: SiteConfig, callback_id: str, now: float) -> AdmittedCall:
        """Count a callback of `site` being placed now, or raise LimitRefused (`busy`,
        `site_busy`, `budget_exhausted`): it then waits (gateway.callbacks.scheduler);
        StorageUnavailable when the ledger cannot be reached."""
        return await self._admit(site, f"callback {callback_id}", now, visitor=False)

    async def _admit(
        self, site: SiteConfig, client: str, now: float, *, visitor: bool
    ) -> AdmittedCall:
        self._check_capacity()

        def decide(facts: CallFacts) -> None:
            if facts.site_calls >= site.max_site_calls:
                raise LimitRefused(
                    "site_busy",
                    "all lines are busy; try again in a few minutes",
                    f"site {site.id} carries {facts.site_calls} calls (max_site_calls)",
                )
            if visitor and facts.client_calls >= self.max_calls_per_client:
                raise LimitRefused(
                    "too_many_calls",
                    "too many calls from this address",
                    f"{client} has {facts.client_calls} calls going (limits.max_calls_per_client)",
                )
            self._check_budget(site, facts.talk_seconds / 60)
            if visitor:
                self._check_rate(site, client, facts.starts, now)

        self._admitting += 1
        try:
            await self.flush()  # this worker's own ends and answers are facts first
            row = await _reachable(
                self.ledger.admit_call(site.id, client, now, decide, lasts=call_bound(site))
            )
        finally:
            self._admitting -= 1
        call = AdmittedCall(site.id, client, row)
        self._live.add(call)
        return call

    async def admit_voicemail(
        self, site: SiteConfig, address: str, now: float, *, lasts: float
    ) -> AdmittedCall:
        """Count a voicemail of `site` from the visitor at `address` (released with
        `ended`), or raise LimitRefused (StorageUnavailable when the ledger cannot be
        reached). A voicemail holds a peer connection as a call does, so it counts against
        the worker's `max_calls` and the visitor's `max_calls_per_client`; it is the way
        round a busy site, so not against the site's lines (`max_site_calls`) or its budget;
        and a visitor may leave as many as they may start calls (`calls_per_client_*`),
        counted apart from their calls (`voicemail_key`). `lasts`: the seconds it cannot
        outlast."""
        client = client_key(address)
        self._check_capacity()

        def decide(facts: CallFacts) -> None:
            if facts.client_calls >= self.max_calls_per_client:
                raise LimitRefused(
                    "too_many_calls",
                    "too many calls from this address",
                    f"{client} has {facts.client_calls} calls going (limits.max_calls_per_client)",
                )
            self._check_rate(site, client, facts.starts, now, what="voicemails")

        key = voicemail_key(site.id)
        await self.flush()
        row = await _reachable(self.ledger.admit_call(key, client, now, decide, lasts=lasts))
        call = AdmittedCall(key, client, row)
        self._live.add(call)
        return call

    async def count_messages(
        self, site: SiteConfig, address: str, now: float, *, per_minute: int
    ) -> None:
        """A chat message of the visitor at `address`: at most `per_minute` in any minute
        to one site, over all workers and nodes; raises LimitRefused (`too_many_messages`,
        with the seconds to wait) past it."""
        client = client_key(address)

        def decide(facts: CallFacts) -> None:
            recent = [t for t in facts.starts if t > now - MINUTE]
            if len(recent) >= per_minute:
                retry_after = recent[len(recent) - per_minute] + MINUTE - now
                raise LimitRefused(
                    "too_many_messages",
                    f"too many messages from this address; wait {_duration(retry_after)}",
                    f"{client} sent {len(recent)} chat messages to site {site.id} in the last "
                    f"minute (messages_per_client_minute = {per_minute})",
                    retry_after=retry_after,
                )

        await _reachable(self.ledger.count_request(f"chat:{site.id}", client, now, decide))

    async def count_request(self, site: SiteConfig, address: str, now: float) -> None:
        """A Request-a-Call request from the visitor at `address`: refused while the site's
        spend guard holds (`budget_exhausted`), and counted against the same windows as the
        calls they start (`calls_per_client_*`, `rate_limited`), so a callback form is no
        way around either. Raises LimitRefused (StorageUnavailable when the ledger cannot
        be reached)."""
        client = client_key(address)

        def decide(facts: CallFacts) -> None:
            self._check_budget(site, facts.talk_seconds / 60)
            self._check_rate(site, client, facts.starts, now)

        await self.flush()
        await _reachable(self.ledger.count_request(site.id, client, now, decide))

    async def count_contact(self, site: SiteConfig, address: str, now: float) -> None:
        """A chat conversation started or a written message left by the visitor at
        `address`: counted against the windows of the calls they start
        (`calls_per_client_*`, `rate_limited`), so writing is no way around them; not the
        spend guard's, as a message costs the site no call minutes and is the way to reach
        it when its budget is spent. Raises LimitRefused (StorageUnavailable when the
        ledger cannot be reached)."""
        client = client_key(address)

        def decide(facts: CallFacts) -> None:
            self._check_rate(site, client, facts.starts, now)

        await self.flush()
        await _reachable(self.ledger.count_request(site.id, client, now, decide))

    def answered(self, call: AdmittedCall, now: float) -> None:
        """The call is answered: its talk time counts against the site's budget."""
        if call in self._live and not call.answered:
            call.answered_at = now
            self._write(self.ledger.call_answered(call.row, now))

    def ended(self, call: AdmittedCall, now: float) -> float:
        """The call is over (call once); returns the seconds it talked. The ledger learns
        it in the background (`flush` waits for it)."""
        if call not in self._live:
            return 0.0
        self._live.discard(call)
        self._write(self.ledger.call_ended(call.row, now, call.answered_at))
        return max(0.0, now - call.answered_at) if call.answered_at is not None else 0.0

    async def used_minutes(self, site_id: str, now: float) -> float:
        """The site's talk minutes in the last 24 hours, calls in progress included."""
        await self.flush()
        return await self.ledger.talk_seconds(site_id, now - DAY, now) / 60

    async def flush(self) -> None:
        """Wait until the ledger has every answer and end told so far."""
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)

    def _write(self, action: Awaitable[None]) -> None:
        task = asyncio.ensure_future(action)
        self._writes.add(task)
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task) -> None:
        self._writes.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            # The call's place frees itself when its bound passes (the Redis ledger), or
            # when this worker stops (the machine's).
            logger.warning("the ledger missed a call's answer or end: %s", exc)

    def _check_capacity(self) -> None:
        """This worker's own limit (`limits.max_calls`): calls and voicemails together."""
        if self.live_calls >= self.max_calls:
            raise LimitRefused(
                "busy",
                "the gateway is at its call limit; try again later",
                f"the gateway carries {self.live_calls} calls (limits.max_calls)",
            )

    def _check_budget(self, site: SiteConfig, used: float) -> None:
        if used < site.daily_call_minutes:
            self._paused.discard(site.id)
            return
        first = site.id not in self._paused
        self._paused.add(site.id)
        raise LimitRefused(
            "budget_exhausted",
            "calls to this site are paused for today; try again later",
            f"site {site.id}: spend guard: {_minutes(used)} of {site.daily_call_minutes:g} call "
            "minutes used in the last 24 hours (daily_call_minutes); new calls are refused "
            "until older minutes age out",
            warning=first,
        )

    def _check_rate(
        self,
        site: SiteConfig,
        client: str,
        starts: tuple[float, ...],
        now: float,
        *,
        what: str = "calls",
    ) -> None:
        for window in client_windows(site):
            recent = [t for t in starts if t > now - window.seconds]
            if len(recent) + 1 <= window.limit:
                continue
            # One more fits once all but limit - 1 of the recent starts have aged out.
            excess = len(recent) - int(window.limit)
            retry_after = recent[excess] + window.seconds - now if window.limit >= 1 else math.inf
            raise LimitRefused(
                "rate_limited",
                f"too many {what} from this address in the last {window.label}; "
                f"try again in {_duration(retry_after)}",
                f"{client} started {len(recent)} {what} of site {site.id} in the last "
                f"{window.label} ({_WINDOW_KEYS[window.label]} = {window.limit:g})",
                retry_after=retry_after if math.isfinite(retry_after) else None,
            )


def call_bound(site: SiteConfig) -> float:
    """Seconds a call of `site` cannot outlast: ringing every destination in turn, then its
    maximum duration (and a minute for its set-up and hang-up)."""
    ring = site.ring_total or site.ring_timeout * max(1, len(site.destinations))
    return ring + site.max_call_duration + 60.0


T = TypeVar("T")


async def _reachable(action: Awaitable[T]) -> T:
    try:
        return await action
    except LedgerUnavailable as exc:
        raise StorageUnavailable(str(exc)) from None


def _minutes(minutes: float) -> str:
    return f"{minutes:.1f}" if minutes >= 1 else f"{minutes:.3g}"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "a while"
    if seconds < 60:
        return f"{max(1, math.ceil(seconds))} seconds"
    minutes = math.ceil(seconds / 60)
    if minutes < 120:
        return f"{minutes} minutes"
    return f"{math.ceil(minutes / 60)} hours"
