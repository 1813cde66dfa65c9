"""Business hours of a site: a weekly schedule with split shifts, closures, and 24/7.

Times are local to the site's timezone (IANA name, `zoneinfo`), so daylight-saving changes
need no care from the site owner. Pure functions of an aware `datetime`: tests pass any
instant.
"""

from __future__ import annotations

import datetime as dt
import difflib
import itertools
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SHIFT = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")


class HoursError(ValueError):
    """A schedule that cannot be understood: `where` names the part ("mon", "timezone"),
    `reason` says what is wrong; the message is both."""

    def __init__(self, where: str, reason: str) -> None:
        super().__init__(f"{where}: {reason}")
        self.where = where
        self.reason = reason


def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone `name`, or HoursError naming the one probably meant."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        pass
    zones = {zone.lower(): zone for zone in available_timezones()}
    meant = zones.get(name.lower().replace(" ", "_"))
    if meant is None:
        close = difflib.get_close_matches(name.lower(), list(zones), n=1, cutoff=0.75)
        meant = zones[close[0]] if close else None
    hint = f"; did you mean {meant!r}?" if meant else ' (an IANA name such as "Europe/London")'
    raise HoursError("timezone", f"unknown time zone {name!r}{hint}")


@dataclass(frozen=True)
class Shift:
    start: dt.time
    end: dt.time  # exclusive; 24:00 is written as 23:59:59.999999

    def contains(self, moment: dt.time) -> bool:
        return self.start <= moment < self.end


def parse_shifts(text: str, where: str) -> tuple[Shift, ...]:
    """`"09:00-12:30, 13:30-18:00"` (empty: closed that day)."""
    shifts = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        m = _SHIFT.match(part)
        if not m:
            raise HoursError(where, f"{part!r} is not HH:MM-HH:MM")
        h1, m1, h2, m2 = (int(x) for x in m.groups())
        if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
            raise HoursError(where, f"{part!r} is not a time of day")
        start = dt.time(h1, m1)
        end = dt.time.max if h2 == 24 else dt.time(h2, m2)
        if end <= start:
            raise HoursError(where, f"{part!r} ends before it starts")
        shifts.append(Shift(start, end))
    shifts.sort(key=lambda s: s.start)
    for a, b in itertools.pairwise(shifts):
        if b.start < a.end:
            raise HoursError(where, "shifts overlap")
    return tuple(shifts)


@dataclass(frozen=True)
class BusinessHours:
    timezone: ZoneInfo
    week: dict[str, tuple[Shift, ...]]  # "mon".."sun" -> shifts
    closed_dates: frozenset[dt.date] = frozenset()
    always_open: bool = False

    @classmethod
    def build(
        cls,
        *,
        timezone: str,
        week: dict[str, str],
        closed: list[str] | None = None,
        always_open: bool = False,
    ) -> BusinessHours:
        zone = time_zone(timezone)
        unknown = set(week) - set(DAYS)
        if unknown:
            raise HoursError("week", f"unknown day(s) {sorted(unknown)}; use {', '.join(DAYS)}")
        parsed = {day: parse_shifts(week.get(day, ""), f"week.{day}") for day in DAYS}
        return cls(zone, parsed, frozenset(closed_date(t) for t in closed or ()), always_open)

    def is_open(self, moment: dt.datetime) -> bool:
        if self.always_open:
            return True
        local = moment.astimezone(self.timezone)
        if local.date() in self.closed_dates:
            return False
        shifts = self.week[DAYS[local.weekday()]]
        return any(s.contains(local.time()) for s in shifts)

    def next_opening(self, moment: dt.datetime, horizon_days: int = 400) -> dt.datetime | None:
        """The next instant the site opens (`moment` itself if open), None if never."""
        if self.is_open(moment):
            return moment
        local = moment.astimezone(self.timezone)
        for offset in range(horizon_days + 1):
            day = local.date() + dt.timedelta(days=offset)
            if day in self.closed_dates:
                continue
            for shift in self.week[DAYS[day.weekday()]]:
                start = dt.datetime.combine(day, shift.start, self.timezone)
                if start > moment:
                    return start
        return None

    def weekly(self) -> dict[str, list[list[str]]] | None:
        """The public weekly schedule, `{"mon": [["09:00", "12:30"], ...], ..., "sun": []}`
        (local times; a shift to midnight ends at "24:00"), or None when always open.
        Closed dates are not in it."""
        if self.always_open:
            return None
        return {day: [[_clock(s.start), _clock(s.end)] for s in self.week[day]] for day in DAYS}


def closed_date(text: object) -> dt.date:
    """A closed day, written YYYY-MM-DD."""
    try:
        if not isinstance(text, str):
            raise TypeError
        return dt.date.fromisoformat(text)
    except (TypeError, ValueError):
        raise HoursError("closed", f"{text!r} is not a date (YYYY-MM-DD)") from None


def _clock(moment: dt.time) -> str:
    return "24:00" if moment == dt.time.max else moment.strftime("%H:%M")


ALWAYS_OPEN = BusinessHours(ZoneInfo("UTC"), {day: () for day in DAYS}, always_open=True)
