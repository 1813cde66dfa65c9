"""Business hours: split shifts, closures, time zones, 24/7."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from gateway.sites.hours import ALWAYS_OPEN, BusinessHours, HoursError

LONDON = ZoneInfo("Europe/London")
WEEK = {"mon": "09:00-12:30, 13:30-18:00", "tue": "09:00-18:00", "sat": "10:00-24:00"}


def hours(**extra) -> BusinessHours:
    return BusinessHours.build(timezone="Europe/London", week=WEEK, **extra)


def at(y, m, d, hh, mm, zone=LONDON) -> dt.datetime:
    return dt.datetime(y, m, d, hh, mm, tzinfo=zone)


@pytest.mark.parametrize(
    ("moment", "open_"),
    [
        (at(2026, 11, 23, 9, 0), True),  # Monday opening
        (at(2026, 11, 23, 12, 45), False),  # lunch break between split shifts
        (at(2026, 11, 23, 13, 30), True),
        (at(2026, 11, 23, 18, 0), False),  # end is exclusive
        (at(2026, 11, 25, 10, 0), False),  # Wednesday: closed all day
        (at(2026, 11, 28, 23, 59), True),  # Saturday until midnight
        (at(2026, 11, 23, 8, 30, ZoneInfo("UTC")), False),
        (at(2026, 7, 6, 8, 30, ZoneInfo("UTC")), True),  # 09:30 BST in summer
    ],
)
def test_open_or_closed(moment, open_):
    assert hours().is_open(moment) is open_


def test_closures_and_next_opening():
    h = hours(closed=["2026-12-25", "2026-12-26"])
    assert not h.is_open(at(2026, 12, 26, 11, 0))  # a Saturday, but closed
    assert h.next_opening(at(2026, 11, 23, 12, 45)) == at(2026, 11, 23, 13, 30)
    assert h.next_opening(at(2026, 11, 24, 19, 0)) == at(2026, 11, 28, 10, 0)
    assert h.next_opening(at(2026, 12, 25, 8, 0)) == at(2026, 12, 28, 9, 0)


def test_always_open():
    assert ALWAYS_OPEN.is_open(at(2026, 11, 25, 3, 0))
    assert hours(always_open=True).is_open(at(2026, 11, 25, 3, 0))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"week": {"mon": "9-17"}}, "week.mon"),
        ({"week": {"mon": "18:00-09:00"}}, "ends before"),
        ({"week": {"mon": "09:00-12:00, 11:00-13:00"}}, "overlap"),
        ({"week": {"funday": "09:00-10:00"}}, "unknown day"),
        ({"closed": ["25/12/2026"]}, "closed"),
    ],
)
def test_bad_schedules_are_named(kwargs, message):
    args = {"timezone": "Europe/London", "week": WEEK, **kwargs}
    with pytest.raises(HoursError, match=message):
        BusinessHours.build(**args)
