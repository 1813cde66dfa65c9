"""A site's routing settings as read from the configuration: operators, hours, callbacks.

Converters from the raw TOML values (raising ValueError with words that name the part) to
the objects calls and callbacks use. `gateway.config.loader` wraps them with the key path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import phonenumbers

from gateway.sites.hours import DAYS, BusinessHours
from sip_bridge import SipUri, parse_sip_uri

RING_STRATEGIES = ("parallel", "sequential", "round-robin")
FALLBACKS = ("callback", "message")


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


def _text(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    if any(c < " " or c == "\x7f" for c in value):
        raise ValueError(f"{what} contains control characters")
    return value.strip()


def _uri(value: object, what: str) -> SipUri:
    text = _text(value, what)
    try:
        uri = parse_sip_uri(text)
    except ValueError as exc:
        raise ValueError(f"{what}: not a SIP URI: {text!r} ({exc})") from None
    if uri.password is not None:
        raise ValueError(f"{what}: put credentials in username/password, not in the URI")
    return uri


def parse_destinations(value: object) -> tuple[SiteDestination, ...]:
    """`["sip:a@host", {uri = "sip:b@host", username = "...", password = "..."}]`."""
    if not isinstance(value, list):
        raise ValueError("must be a list of SIP URIs or tables")
    result = []
    for index, item in enumerate(value):
        where = f"[{index}]"
        if isinstance(item, str):
            result.append(SiteDestination(_uri(item, where)))
            continue
        if not isinstance(item, dict):
            raise ValueError(f"{where} must be a SIP URI or a table with uri")
        unknown = set(item) - {"uri", "username", "password", "proxy"}
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}")
        if "uri" not in item:
            raise ValueError(f"{where}: uri is required")
        username = _text(item.get("username", ""), f"{where}.username") or None
        password = _text(item.get("password", ""), f"{where}.password") or None
        if (username is None) != (password is None):
            raise ValueError(f"{where}: username and password go together")
        proxy_text = item.get("proxy", "")
        proxy = _uri(proxy_text, f"{where}.proxy") if proxy_text else None
        result.append(SiteDestination(_uri(item["uri"], f"{where}.uri"), username, password, proxy))
    if len(result) > 20:
        raise ValueError("at most 20 destinations")
    return tuple(result)


def parse_hours(value: object) -> BusinessHours | None:
    """`{timezone = "Europe/London", mon = "09:00-17:00", ..., closed = ["2026-12-25"]}`;
    an empty table (the default) means always open."""
    if not isinstance(value, dict):
        raise ValueError("must be a table")
    if not value:
        return None
    unknown = set(value) - {"timezone", "always_open", "closed", *DAYS}
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)}; days are {', '.join(DAYS)}")
    week = {day: _text(value[day], day) for day in DAYS if day in value}
    closed = value.get("closed", [])
    if not isinstance(closed, list):
        raise ValueError("closed must be a list of dates")
    always_open = value.get("always_open", False)
    if not isinstance(always_open, bool):
        raise ValueError("always_open must be true or false")
    if not week and not always_open:
        raise ValueError("give opening times for some days (mon..sun) or always_open = true")
    return BusinessHours.build(
        timezone=_text(value.get("timezone", "UTC"), "timezone"),
        week=week,
        closed=closed,
        always_open=always_open,
    )


def parse_callback(value: object) -> CallbackPolicy | None:
    """`[sites.callback]`: absent or empty means the site takes no callbacks."""
    if not isinstance(value, dict):
        raise ValueError("must be a table")
    if not value:
        return None
    known = {
        "dial",
        "countries",
        "operator",
        "attempts",
        "retry_after",
        "per_number_daily",
        "visitor_ring_timeout",
        "whisper",
    }
    unknown = set(value) - known
    if unknown:
        raise ValueError(f"unknown key(s) {sorted(unknown)}")
    if "dial" not in value:
        raise ValueError("dial is required: how a visitor's number is called, with {number}")
    dial = _text(value["dial"], "dial")
    if "{number}" not in dial:
        raise ValueError("dial must contain {number}")
    try:
        _uri(dial.replace("{number}", "+15550000000"), "dial")
    except (ValueError, KeyError, IndexError) as exc:
        raise ValueError(f"dial does not make a SIP URI: {exc}") from None
    countries = value.get("countries")
    if not isinstance(countries, list) or not countries:
        raise ValueError("countries is required: the ISO codes of the countries called back")
    codes = []
    for code in countries:
        if not isinstance(code, str) or code.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"countries: {code!r} is not an ISO 3166 country code")
        codes.append(code.upper())
    operator_text = value.get("operator", "")
    operator = _uri(operator_text, "operator") if operator_text else None
    whisper = value.get("whisper", True)
    if not isinstance(whisper, bool):
        raise ValueError("whisper must be true or false")
    return CallbackPolicy(
        dial=dial,
        countries=tuple(codes),
        operator=operator,
        attempts=_count(value.get("attempts", 3), "attempts", 1, 10),
        retry_after=_seconds(value.get("retry_after", 300), "retry_after"),
        per_number_daily=_count(value.get("per_number_daily", 3), "per_number_daily", 1, 100),
        visitor_ring_timeout=_seconds(
            value.get("visitor_ring_timeout", 45), "visitor_ring_timeout"
        ),
        whisper=whisper,
    )


def _count(value: object, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{what} must be a whole number from {low} to {high}")
    return value


def _seconds(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{what} must be a positive number of seconds")
    return float(value)
