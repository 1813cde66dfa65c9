"""A site's routing settings as read from the configuration: operators, hours, callbacks.

Converters from the raw TOML values to the objects calls and callbacks use. Each reports
every problem of its table at once (`SettingsProblems`, each with where in the table it
is); `gateway.config.loader` puts the key path of the table in front.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, TypeVarTuple
from zoneinfo import ZoneInfo

from gateway.sites.countries import country_code
from gateway.sites.hours import (
    DAYS,
    BusinessHours,
    HoursError,
    Shift,
    closed_date,
    parse_shifts,
    time_zone,
)
from gateway.sites.problems import SettingsProblems, unknown_key_reason
from sip_bridge import SipUri, parse_sip_uri


class RingStrategy(enum.StrEnum):
    """How a site's destinations are rung (`ring`): the ringing core, gateway.calls.ringing,
    plays it out."""

    PARALLEL = "parallel"  # all at once; the first to answer gets the call
    SEQUENTIAL = "sequential"  # one after the other, in the order given
    ROUND_ROBIN = "round-robin"  # in order, each call starting one further along


T = TypeVar("T")
Args = TypeVarTuple("Args")

# What the widget offers when nobody can answer (busy, no answer, every destination down,
# closed), in the order given: a voice message, a written one, a callback.
FALLBACKS = ("voicemail", "text", "callback")
# The one-word form of earlier releases: "message" offered nothing but the reason.
LEGACY_NO_FALLBACK = "message"


@dataclass(frozen=True, slots=True)
class SiteDestination:
    """One operator of a site: whom to ring and how to get through."""

    uri: SipUri
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    proxy: SipUri | None = None

    @property
    def credentials(self) -> tuple[str, str] | None:
        if self.username is None or self.password is None:
            return None
        return self.username, self.password


@dataclass(frozen=True, slots=True)
class TargetPattern:
    """One `transfer_to` entry: a SIP URI whose user part may hold `*` (one or more
    characters).

    A target matches when the scheme and host are the same (host case-insensitively), the
    port is the same when the pattern gives one, and the user part matches. A target with
    a `maddr` parameter never matches: it would send the call to another host than the one
    it names. Other parameters do not count.
    """

    scheme: str
    user: re.Pattern[str] | None  # None: the pattern has no user part (matches none either)
    host: str
    port: int | None
    text: str

    def matches(self, uri: SipUri) -> bool:
        if uri.scheme.lower() != self.scheme or uri.host.lower() != self.host:
            return False
        if uri.has_param("maddr"):
            return False
        if self.port is not None and uri.port != self.port:
            return False
        user = uri.user or ""
        return self.user.fullmatch(user) is not None if self.user else not user


@dataclass(frozen=True, slots=True)
class TargetPatterns:
    """Where an operator may send a visitor's call: transfers (REFER) and redirects (3xx).

    Empty `patterns` means the site's own destinations, exactly: a transfer or a redirect
    must not be a way round the rules that keep a site from calling anywhere else (toll
    fraud)."""

    patterns: tuple[TargetPattern, ...] = ()

    def allows(self, uri: SipUri) -> bool:
        return any(pattern.matches(uri) for pattern in self.patterns)

    def __str__(self) -> str:
        return ", ".join(p.text for p in self.patterns)


def target_pattern(text: str, what: str = "transfer_to") -> TargetPattern:
    """`sip:*@pbx.example.com`, `sip:sales-*@pbx.example.com:5070`, `sip:1001@10.0.0.5`."""
    raw = _text(text, what)
    # A `*` is not a URI character of a user part: parse with a stand-in, then put it back.
    stand_in = "zzstarzz"
    if stand_in in raw.lower():
        raise ValueError(f"{what}: {raw!r} is not a SIP URI pattern")
    uri = _uri(raw.replace("*", stand_in), what)
    if "*" in uri.host.replace(stand_in, "*") or uri.params or uri.headers:
        raise ValueError(f"{what}: {raw!r}: '*' only in the user part, no parameters")
    user = None
    if uri.user:
        parts = [re.escape(part) for part in uri.user.split(stand_in)]
        user = re.compile(".+".join(parts), re.DOTALL)
    return TargetPattern(uri.scheme.lower(), user, uri.host.lower(), uri.port, raw)


def parse_target_patterns(value: object) -> TargetPatterns:
    if not isinstance(value, list):
        raise ValueError("must be a list of SIP URI patterns")
    if len(value) > 50:
        raise ValueError("at most 50 patterns")
    return TargetPatterns(
        tuple(target_pattern(item, f"[{index}]") for index, item in enumerate(value))
    )


def destination_patterns(destinations: tuple[SiteDestination, ...]) -> TargetPatterns:
    """The default `transfer_to`: exactly the site's destinations."""
    patterns = []
    for destination in destinations:
        uri = destination.uri
        user = re.compile(re.escape(uri.user)) if uri.user else None
        patterns.append(
            TargetPattern(uri.scheme.lower(), user, uri.host.lower(), uri.port, str(uri))
        )
    return TargetPatterns(tuple(patterns))


@dataclass(frozen=True, slots=True)
class CallbackPolicy:
    """A site's Request-a-Call settings (`[sites.callback]`)."""

    dial: str  # trunk URI template with {number} (E.164, with '+')
    countries: tuple[str, ...]  # ISO 3166 codes the site calls back
    operator: SipUri | None  # who takes callbacks; None: the site's first destination
    attempts: int = 3
    retry_after: float = 300.0
    per_number_daily: int = 3
    visitor_ring_timeout: float = 45.0
    whisper: bool = True


def parse_fallback(value: object) -> tuple[str, ...]:
    """`["voicemail", "callback"]` (the order the widget offers them in), or one of them as
    a string; `"message"` (or `[]`) offers nothing but the reason."""
    if value == LEGACY_NO_FALLBACK:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise SettingsProblems([("", f"must be a list of {', '.join(FALLBACKS)}")])
    problems: list[tuple[str, str]] = []
    chosen: list[str] = []
    for index, item in enumerate(items):
        where = f"[{index}]" if not isinstance(value, str) else ""
        if not isinstance(item, str) or item.strip().lower() not in FALLBACKS:
            problems.append((where, f"must be one of {', '.join(FALLBACKS)}, not {item!r}"))
        elif item.strip().lower() in chosen:
            problems.append((where, f"{item!r} is listed twice"))
        else:
            chosen.append(item.strip().lower())
    if problems:
        raise SettingsProblems(problems)
    return tuple(chosen)


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string" if what else "must be a string")
    if any(c < " " or c == "\x7f" for c in value):
        raise ValueError(
            f"{what} contains control characters" if what else "contains control characters"
        )
    return value.strip()


def _optional_text(value: object) -> str | None:
    return _text(value, "") or None


def _day_shifts(value: object, day: str) -> tuple[Shift, ...]:
    return parse_shifts(_text(value, ""), day)


def _uri(value: object, what: str = "") -> SipUri:
    text = _text(value, what)
    prefix = f"{what}: " if what else ""
    try:
        uri = parse_sip_uri(text)
    except ValueError as exc:
        raise ValueError(f"{prefix}not a SIP URI: {text!r} ({exc})") from None
    if uri.password is not None:
        raise ValueError(f"{prefix}put credentials in username/password, not in the URI")
    return uri


class _Collector:
    """Gathers the problems of one table; `check` runs one part's parser on `args` and
    keeps its value, or records its ValueError at `where`."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def check(self, where: str, parse: Callable[[*Args], T], *args: *Args) -> T | None:
        try:
            return parse(*args)
        except HoursError as exc:
            self.problems.append((where, exc.reason))
        except ValueError as exc:
            self.problems.append((where, str(exc)))
        return None

    def unknown_keys(self, table: dict, known: Sequence[str], where: str = "") -> None:
        for key in table:
            if key not in known:
                self.problems.append((f"{where}.{key}", unknown_key_reason(str(key), known)))

    def raise_any(self) -> None:
        if self.problems:
            raise SettingsProblems(self.problems)


_DESTINATION_KEYS = ("uri", "username", "password", "proxy")
MAX_DESTINATIONS = 20


def parse_destinations(value: object) -> tuple[SiteDestination, ...]:
    """`["sip:a@host", {uri = "sip:b@host", username = "...", password = "..."}]`; raises
    SettingsProblems with every problem of the list."""
    if not isinstance(value, list):
        raise SettingsProblems([("", "must be a list of SIP URIs or tables with uri")])
    found = _Collector()
    if len(value) > MAX_DESTINATIONS:
        found.problems.append(("", f"at most {MAX_DESTINATIONS} destinations"))
    result = []
    for index, item in enumerate(value):
        where = f"[{index}]"
        if isinstance(item, str):
            uri = found.check(where, _uri, item)
            if uri is not None:
                result.append(SiteDestination(uri))
            continue
        if not isinstance(item, dict):
            found.problems.append((where, "must be a SIP URI or a table with uri"))
            continue
        before = len(found.problems)
        found.unknown_keys(item, _DESTINATION_KEYS, where)
        if "uri" not in item:
            found.problems.append((f"{where}.uri", "required"))
        uri = found.check(f"{where}.uri", _uri, item["uri"]) if "uri" in item else None
        username = found.check(f"{where}.username", _optional_text, item.get("username", ""))
        password = found.check(f"{where}.password", _optional_text, item.get("password", ""))
        if (username is None) != (password is None) and len(found.problems) == before:
            found.problems.append((where, "username and password go together"))
        proxy_text = item.get("proxy", "")
        proxy = found.check(f"{where}.proxy", _uri, proxy_text) if proxy_text else None
        if uri is not None and len(found.problems) == before:
            result.append(SiteDestination(uri, username, password, proxy))
    found.raise_any()
    return tuple(result)


HOURS_KEYS = ("timezone", *DAYS, "closed", "always_open")


def parse_hours(value: object) -> BusinessHours | None:
    """`{timezone = "Europe/London", mon = "09:00-17:00", ..., closed = ["2026-12-25"]}`;
    an empty table (the default) means always open. The time zone is required: opening
    times without one would silently be UTC's. Raises SettingsProblems with every problem
    of the table."""
    if not isinstance(value, dict):
        raise SettingsProblems(
            [("", 'must be a table, e.g. {timezone = "Europe/London", mon = "09:00-17:00"}')]
        )
    if not value:
        return None
    found = _Collector()
    found.unknown_keys(value, HOURS_KEYS)
    always_open = value.get("always_open", False)
    if not isinstance(always_open, bool):
        found.problems.append((".always_open", "must be true or false"))
        always_open = False
    week: dict[str, tuple[Shift, ...]] = {}
    for day in DAYS:
        if day in value:
            shifts = found.check(f".{day}", _day_shifts, value[day], day)
            week[day] = shifts or ()
    closed = value.get("closed", [])
    dates: set[dt.date] = set()
    if not isinstance(closed, list):
        found.problems.append((".closed", 'must be a list of dates, e.g. ["2026-12-25"]'))
    else:
        for index, text in enumerate(closed):
            date = found.check(f".closed[{index}]", closed_date, text)
            if date is not None:
                dates.add(date)
    zone = None
    if "timezone" in value:
        zone = found.check(".timezone", lambda: time_zone(_text(value["timezone"], "")))
    elif not always_open or dates or week:
        found.problems.append(
            (
                ".timezone",
                'required: the IANA time zone the hours are in, e.g. "Europe/London" '
                "(without one they would silently be UTC)",
            )
        )
    if not week and not always_open:
        found.problems.append(
            ("", "give opening times for some days (mon..sun) or always_open = true")
        )
    found.raise_any()
    return BusinessHours(
        zone or ZoneInfo("UTC"),
        {day: week.get(day, ()) for day in DAYS},
        frozenset(dates),
        always_open,
    )


CALLBACK_KEYS = (
    "dial",
    "countries",
    "operator",
    "attempts",
    "retry_after",
    "per_number_daily",
    "visitor_ring_timeout",
    "whisper",
)


def parse_callback(value: object) -> CallbackPolicy | None:
    """`[sites.callback]`: absent or empty means the site takes no callbacks. Raises
    SettingsProblems with every problem of the table."""
    if not isinstance(value, dict):
        raise SettingsProblems([("", "must be a table")])
    if not value:
        return None
    found = _Collector()
    found.unknown_keys(value, CALLBACK_KEYS)
    if "dial" in value:
        dial = found.check(".dial", lambda: _dial(value["dial"]))
    else:
        dial = None
        found.problems.append(
            (".dial", "required: how a visitor's number is called, with {number}")
        )
    countries = value.get("countries")
    codes: list[str] = []
    if not isinstance(countries, list) or not countries:
        found.problems.append(
            (".countries", 'required: the ISO codes of the countries called back, e.g. ["GB"]')
        )
    else:
        for index, code in enumerate(countries):
            checked = found.check(f".countries[{index}]", country_code, code)
            if checked is not None and checked not in codes:
                codes.append(checked)
    operator_text = value.get("operator", "")
    operator = found.check(".operator", lambda: _uri(operator_text)) if operator_text else None
    whisper = value.get("whisper", True)
    if not isinstance(whisper, bool):
        found.problems.append((".whisper", "must be true or false"))
    attempts = found.check(".attempts", lambda: _count(value.get("attempts", 3), 1, 10))
    retry_after = found.check(".retry_after", lambda: _seconds(value.get("retry_after", 300)))
    per_number_daily = found.check(
        ".per_number_daily", lambda: _count(value.get("per_number_daily", 3), 1, 100)
    )
    visitor_ring_timeout = found.check(
        ".visitor_ring_timeout", lambda: _seconds(value.get("visitor_ring_timeout", 45))
    )
    found.raise_any()
    assert dial is not None and attempts is not None and per_number_daily is not None
    assert retry_after is not None and visitor_ring_timeout is not None
    return CallbackPolicy(
        dial=dial,
        countries=tuple(codes),
        operator=operator,
        attempts=attempts,
        retry_after=retry_after,
        per_number_daily=per_number_daily,
        visitor_ring_timeout=visitor_ring_timeout,
        whisper=whisper,
    )


def _dial(value: object) -> str:
    dial = _text(value, "")
    if "{number}" not in dial:
        raise ValueError("must contain {number}, where the visitor's number goes")
    try:
        _uri(dial.replace("{number}", "+15550000000"))
    except (ValueError, KeyError, IndexError) as exc:
        raise ValueError(f"does not make a SIP URI: {exc}") from None
    return dial


def _count(value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"must be a whole number from {low} to {high}")
    return value


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9:
        raise ValueError("must be a positive number of seconds")
    return float(value)
