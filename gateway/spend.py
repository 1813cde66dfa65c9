"""The spend guard: call minutes per site in any 24 hours, against the site's budget.

What counts is talk time, from the answer to the end, as a trunk bills it: the minutes of
calls that ended in the window plus those of the calls still in progress. Once a site has
used its budget, new calls are refused until enough minutes age out of the window; calls
in progress go on (each is bounded by the maximum call duration), so the budget can be
overrun by at most (concurrent calls x maximum duration). Sans-I/O: time is passed in.
"""

from __future__ import annotations

from collections.abc import Hashable

from .limits import RateLimiter

DAY = 24 * 3600.0


class SpendGuard:
    def __init__(self, window: float = DAY) -> None:
        self.window = window
        self._ended = RateLimiter(window)  # seconds talked, per site, at the end of each call
        self._talking: dict[Hashable, tuple[str, float]] = {}  # call -> (site, answered at)

    def answered(self, call: Hashable, site_id: str, now: float) -> None:
        """The call is answered: its minutes count from `now`."""
        self._talking.setdefault(call, (site_id, now))

    def ended(self, call: Hashable, now: float) -> float:
        """The call is over; returns the seconds it talked (0 if never answered)."""
        talking = self._talking.pop(call, None)
        if talking is None:
            return 0.0
        site_id, answered_at = talking
        seconds = max(0.0, now - answered_at)
        self._ended.record(site_id, now, seconds)
        return seconds

    def used_minutes(self, site_id: str, now: float) -> float:
        seconds = self._ended.used(site_id, self.window, now)
        seconds += sum(
            max(0.0, now - answered_at)
            for site, answered_at in self._talking.values()
            if site == site_id
        )
        return seconds / 60

    def allows(self, site_id: str, budget_minutes: float, now: float) -> bool:
        """Whether a new call of the site may start under its budget."""
        return self.used_minutes(site_id, now) < budget_minutes
