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
carry; every other limit is counted for the whole machine, over all workers, in the
`SharedLedger`. The spend guard counts talk time (answer to end, as a trunk bills it) of
the calls that ended in the last 24 hours plus the calls talking now; once a site has used
its budget new calls are refused until older minutes age out, and calls in progress go on
(each bounded by the maximum call duration). Time is passed in.

A Request-a-Call callback is a call to these limits (docs/callbacks.md): its request passes
the spend guard and counts against the visitor's windows (`count_request`), and when it is
placed it takes a slot like a call (`admit_callback`: `busy`, `site_busy`,
`budget_exhausted`; no per-visitor limits, the visitor is not on the line), answered and
ended in the same ledger.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from gateway.access.ledger import DAY, SharedLedger
from gateway.api import CallRefused
from gateway.config import SiteConfig

QUARTER_HOUR = 15 * 60.0
HOUR = 3600.0


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
    row: int  # its row in the shared ledger
    answered: bool = False


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
        ledger: SharedLedger | None = None,
    ) -> None:
        self.max_calls = max_calls
        self.max_calls_per_client = max_calls_per_client
        self.ledger = ledger if ledger is not None else SharedLedger.in_memory()
        self._live: set[AdmittedCall] = set()  # this worker's
        self._paused: set[str] = set()  # sites past their budget, to log the change once

    @property
    def live_calls(self) -> int:
        """Calls this worker carries."""
        return len(self._live)

    def admit(self, site: SiteConfig, address: str, now: float) -> AdmittedCall:
        """Count a new call of `site` from the visitor at `address`, or raise LimitRefused."""
        return self._admit(site, client_key(address), now, visitor=True)

    def admit_callback(self, site: SiteConfig, callback_id: str, now: float) -> AdmittedCall:
        """Count a callback of `site` being placed now, or raise LimitRefused (`busy`,
        `site_busy`, `budget_exhausted`): it then waits (gateway.callbacks.scheduler)."""
        return self._admit(site, f"callback {callback_id}", now, visitor=False)

    def _admit(self, site: SiteConfig, client: str, now: float, *, visitor: bool) -> AdmittedCall:
        if len(self._live) >= self.max_calls:
            raise LimitRefused(
                "busy",
                "the gateway is at its call limit; try again later",
                f"the gateway carries {len(self._live)} calls (limits.max_calls)",
            )
        ledger = self.ledger
        with ledger.transaction():
            site_calls = ledger.live_calls(site=site.id)
            if site_calls >= site.max_site_calls:
                raise LimitRefused(
                    "site_busy",
                    "all lines are busy; try again in a few minutes",
                    f"site {site.id} carries {site_calls} calls (max_site_calls)",
                )
            if visitor:
                client_calls = ledger.live_calls(client=client)
                if client_calls >= self.max_calls_per_client:
                    raise LimitRefused(
                        "too_many_calls",
                        "too many calls from this address",
                        f"{client} has {client_calls} calls going (limits.max_calls_per_client)",
                    )
            self._check_budget(site, now)
            if visitor:
                self._check_rate(site, client, now)
            row = ledger.add_call(site.id, client, now)
        call = AdmittedCall(site.id, client, row)
        self._live.add(call)
        return call

    def count_request(self, site: SiteConfig, address: str, now: float) -> None:
        """A Request-a-Call request from the visitor at `address`: refused while the site's
        spend guard holds (`budget_exhausted`), and counted against the same windows as the
        calls they start (`calls_per_client_*`, `rate_limited`), so a callback form is no
        way around either. Raises LimitRefused."""
        client = client_key(address)
        with self.ledger.transaction():
            self._check_budget(site, now)
            self._check_rate(site, client, now)
            self.ledger.ended(self.ledger.add_call(site.id, client, now), now)

    def answered(self, call: AdmittedCall, now: float) -> None:
        """The call is answered: its talk time counts against the site's budget."""
        if call in self._live and not call.answered:
            call.answered = True
            self.ledger.answered(call.row, now)

    def ended(self, call: AdmittedCall, now: float) -> float:
        """The call is over (call once); returns the seconds it talked."""
        if call not in self._live:
            return 0.0
        self._live.discard(call)
        return self.ledger.ended(call.row, now)

    def used_minutes(self, site_id: str, now: float) -> float:
        """The site's talk minutes in the last 24 hours, calls in progress included."""
        return self.ledger.talk_seconds(site_id, now - DAY, now) / 60

    def _check_budget(self, site: SiteConfig, now: float) -> None:
        used = self.used_minutes(site.id, now)
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

    def _check_rate(self, site: SiteConfig, client: str, now: float) -> None:
        starts = self.ledger.starts(site.id, client, now - DAY)
        for window in client_windows(site):
            recent = [t for t in starts if t > now - window.seconds]
            if len(recent) + 1 <= window.limit:
                continue
            # One more fits once all but limit - 1 of the recent starts have aged out.
            excess = len(recent) - int(window.limit)
            retry_after = recent[excess] + window.seconds - now if window.limit >= 1 else math.inf
            raise LimitRefused(
                "rate_limited",
                f"too many calls from this address in the last {window.label}; "
                f"try again in {_duration(retry_after)}",
                f"{client} started {len(recent)} calls of site {site.id} in the last "
                f"{window.label} ({_WINDOW_KEYS[window.label]} = {window.limit:g})",
                retry_after=retry_after if math.isfinite(retry_after) else None,
            )


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
