"""The health of one destination, as a pure state machine fed with probe outcomes.

A destination is `unknown` until its first probe, `up` once one is answered, and `down`
after `MISSES_FOR_DOWN` probes in a row went unanswered (`since`: the first of them). One
answered probe brings it back `up`. `record` returns the change a site's owner is told of
(`down`, or `up` after `down`), else None. Times are passed in.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

MISSES_FOR_DOWN = 2
# Answers that say the destination cannot take a call: a proxy or PBX speaking for it.
UNANSWERED_STATUSES = frozenset({408, 480, 503, 504})


class Health(enum.StrEnum):
    UNKNOWN = "unknown"
    UP = "up"
    DOWN = "down"


def answered(status: int | None) -> bool:
    """Whether a probe's final status (None: no answer at all) means someone is there."""
    return status is not None and status not in UNANSWERED_STATUSES


@dataclass
class DestinationHealth:
    site: str
    destination: str  # the SIP URI rung
    state: Health = Health.UNKNOWN
    since: float | None = None  # when the current state began
    misses: int = 0  # unanswered probes in a row
    first_miss: float | None = None
    last_status: int | None = None
    checked_at: float | None = None

    @property
    def down(self) -> bool:
        return self.state == Health.DOWN

    def record(self, status: int | None, now: float) -> Health | None:
        """A probe's outcome at `now`; returns the new state when the owner must be told."""
        self.checked_at = now
        self.last_status = status
        if answered(status):
            was = self.state
            self.misses = 0
            self.first_miss = None
            if was != Health.UP:
                self.state, self.since = Health.UP, now
            return Health.UP if was == Health.DOWN else None
        if self.misses == 0:
            self.first_miss = now
        self.misses += 1
        if self.misses >= MISSES_FOR_DOWN and self.state != Health.DOWN:
            self.state, self.since = Health.DOWN, self.first_miss
            return Health.DOWN
        return None

    def view(self) -> dict[str, object]:
        """What the admin API and page show (docs/admin.md)."""
        return {
            "site": self.site,
            "destination": self.destination,
            "state": self.state.value,
            "since": self.since,
            "checked_at": self.checked_at,
            "last_status": self.last_status,
            "misses": self.misses,
        }
