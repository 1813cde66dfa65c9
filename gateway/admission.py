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
hold a whole /64 and change its address at will. Sans-I/O: time is passed in.
"""

from __future__ import annotations

import ipaddress
import math
from collections import Counter
from dataclasses import dataclass

from .config import SiteConfig
from .limits import RateLimiter, Window
from .service import CallRefused
from .spend import DAY, SpendGuard

QUARTER_HOUR = 15 * 60.0
HOUR = 3600.0


class LimitRefused(CallRefused):
    """A call refused by a limit. `message` is for the page; `detail` for the operator's
    log; `warning` marks what the operator should act on (a used-up budget)."""

    def __init__(self, code: str, message: str, detail: str, *, warning: bool = False) -> None:
        super().__init__(code, message)
        self.detail = detail
        self.warning = warning


@dataclass(eq=False, slots=True)
class AdmittedCall:
    """A call that passed admission, until `CallAdmission.ended`."""

    site_id: str
    client: str  # the visitor, as limits count them (see `client_key`)
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
    def __init__(self, *, max_calls: int, max_calls_per_client: int) -> None:
        self.max_calls = max_calls
        self.max_calls_per_client = max_calls_per_client
        self.spend = SpendGuard()
        self._started = RateLimiter(DAY)  # calls started per (site, client)
        self._per_site: Counter[str] = Counter()
        self._per_client: Counter[str] = Counter()
        self._live: set[AdmittedCall] = set()
        self._paused: set[str] = set()  # sites past their budget, to log the change once

    @property
    def live_calls(self) -> int:
        return len(self._live)

    def admit(self, site: SiteConfig, address: str, now: float) -> AdmittedCall:
        """Count a new call of `site` from the visitor at `address`, or raise LimitRefused."""
        client = client_key(address)
        if len(self._live) >= self.max_calls:
            raise LimitRefused(
                "busy",
                "the gateway is at its call limit; try again later",
                f"the gateway carries {len(self._live)} calls (limits.max_calls)",
            )
        if self._per_site[site.id] >= site.max_site_calls:
            raise LimitRefused(
                "site_busy",
                "all lines are busy; try again in a few minutes",
                f"site {site.id} carries {self._per_site[site.id]} calls (max_site_calls)",
            )
        if self._per_client[client] >= self.max_calls_per_client:
            raise LimitRefused(
                "too_many_calls",
                "too many calls from this address",
                f"{client} has {self._per_client[client]} calls going "
                "(limits.max_calls_per_client)",
            )
        self._check_budget(site, now)
        hit = self._started.check((site.id, client), client_windows(site), now)
        if hit is not None:
            raise LimitRefused(
                "rate_limited",
                f"too many calls from this address in the last {hit.window.label}; "
                f"try again in {_duration(hit.retry_after)}",
                f"{client} started {hit.used:g} calls of site {site.id} in the last "
                f"{hit.window.label} ({_WINDOW_KEYS[hit.window.label]} = {hit.window.limit:g})",
            )
        self._started.record((site.id, client), now)
        call = AdmittedCall(site.id, client)
        self._live.add(call)
        self._per_site[site.id] += 1
        self._per_client[client] += 1
        return call

    def answered(self, call: AdmittedCall, now: float) -> None:
        """The call is answered: its talk time counts against the site's budget."""
        if call in self._live and not call.answered:
            call.answered = True
            self.spend.answered(call, call.site_id, now)

    def ended(self, call: AdmittedCall, now: float) -> float:
        """The call is over (call once); returns the seconds it talked."""
        if call not in self._live:
            return 0.0
        self._live.discard(call)
        _decrement(self._per_site, call.site_id)
        _decrement(self._per_client, call.client)
        return self.spend.ended(call, now)

    def _check_budget(self, site: SiteConfig, now: float) -> None:
        if self.spend.allows(site.id, site.daily_call_minutes, now):
            self._paused.discard(site.id)
            return
        first = site.id not in self._paused
        self._paused.add(site.id)
        used = self.spend.used_minutes(site.id, now)
        raise LimitRefused(
            "budget_exhausted",
            "calls to this site are paused for today; try again later",
            f"site {site.id}: spend guard: {_minutes(used)} of {site.daily_call_minutes:g} call "
            "minutes used in the last 24 hours (daily_call_minutes); new calls are refused "
            "until older minutes age out",
            warning=first,
        )


def _decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


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
