"""Session timers (RFC 4028): the interval two user agents agree on, who refreshes the
session, and when a refresh or a BYE is due.

Pure functions and one small object; the user agent sends the requests. The headers:

    Session-Expires: 1800;refresher=uac     (compact form x; delta-seconds, refresher param)
    Min-SE: 90                              (the smallest interval a party accepts)

`refresher=uac` names the client of the transaction that carried the header, so the same
refresher reads "uac" in a request and in the response to it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sip_bridge.errors import SipParseError
from sip_bridge.headers import Headers
from sip_bridge.uri import parse_params

RFC_MIN_SE = 90  # §4: no party may ask for less than 90 s
# A peer's interval below this is raised to it: refreshing faster than every second would
# let a peer make us send as fast as it likes.
FLOOR_SECONDS = 2
MAX_SECONDS = 86400  # an interval longer than a day is read as a day


@dataclass(frozen=True, slots=True)
class SessionExpires:
    """A parsed Session-Expires header."""

    interval: int
    refresher: str | None  # "uac" | "uas" | None

    def __str__(self) -> str:
        return (
            f"{self.interval};refresher={self.refresher}" if self.refresher else str(self.interval)
        )


def parse_session_expires(value: str) -> SessionExpires:
    """`1800;refresher=uac` -> SessionExpires(1800, "uac"); SipParseError when malformed."""
    delta, _, rest = value.strip(" \t").partition(";")
    delta = delta.strip(" \t")
    if not delta.isdecimal() or len(delta) > 10:
        raise SipParseError(f"bad Session-Expires {value!r}")
    params = parse_params(";" + rest if rest else "", value)
    refresher = None
    for name, param in params:
        if name.lower() == "refresher" and param is not None:
            refresher = param.lower()
    if refresher not in (None, "uac", "uas"):
        raise SipParseError(f"bad refresher in Session-Expires {value!r}")
    return SessionExpires(min(int(delta), MAX_SECONDS), refresher)


def session_expires_of(headers: Headers) -> SessionExpires | None:
    """The Session-Expires of a message, None when absent or malformed."""
    value = headers.get("Session-Expires")
    if value is None:
        return None
    try:
        return parse_session_expires(value)
    except SipParseError:
        return None


def min_se_of(headers: Headers) -> int | None:
    """The Min-SE of a message (its largest, if repeated), None when absent or malformed."""
    values = []
    for value in headers.get_all("Min-SE"):
        delta = value.partition(";")[0].strip(" \t")
        if delta.isdecimal() and len(delta) <= 10:
            values.append(min(int(delta), MAX_SECONDS))
    return max(values) if values else None


def supports(headers: Headers, option: str) -> bool:
    """Whether a message lists `option` in Supported or Require."""
    option = option.lower()
    return any(
        tag.lower() == option for name in ("Supported", "Require") for tag in headers.tokens(name)
    )


@dataclass(frozen=True, slots=True)
class SessionTimer:
    """An agreed session timer: its interval and whether we are the refresher.

    The refresher sends a refresh at half the interval (§7.4, §10). The other side ends the
    session with BYE when no refresh came by `interval - min(32, interval / 3)` after the
    last one (§10).
    """

    interval: int
    we_refresh: bool

    @property
    def seconds(self) -> int:
        return max(self.interval, FLOOR_SECONDS)

    def refresh_due(self, refreshed_at: float) -> float:
        return refreshed_at + self.seconds / 2

    def expiry_due(self, refreshed_at: float) -> float:
        return refreshed_at + self.seconds - min(32.0, self.seconds / 3)

    def header_in_request(self) -> str:
        """Session-Expires for a refresh we send (we are the transaction's client)."""
        return f"{self.interval};refresher={'uac' if self.we_refresh else 'uas'}"

    def header_in_response(self) -> str:
        """Session-Expires for our 2xx to the peer's request (the peer is the client)."""
        return f"{self.interval};refresher={'uas' if self.we_refresh else 'uac'}"


def timer_from_response(response_headers: Headers) -> SessionTimer | None:
    """The timer a 2xx to our INVITE, re-INVITE or UPDATE sets (§7.2).

    No Session-Expires: no session timer. A Session-Expires without `refresher`, or in a
    2xx without `Require: timer` (a proxy added it for a UAS that does not support it),
    makes us, the client, the refresher.
    """
    expires = session_expires_of(response_headers)
    if expires is None:
        return None
    required = any(tag.lower() == "timer" for tag in response_headers.tokens("Require"))
    we_refresh = expires.refresher != "uas" or not required
    return SessionTimer(expires.interval, we_refresh)


def timer_for_request(
    request_headers: Headers, *, local_interval: int, local_min_se: int
) -> tuple[SessionTimer | None, int | None]:
    """What we, as the server of a request (INVITE, re-INVITE, UPDATE), agree to (§9).

    Returns (timer, None), or (None, min_se) when the request asks for an interval below our
    Min-SE and must get 422 with that Min-SE. `local_interval` 0 means we do not ask for a
    timer ourselves; we still honour one the peer asks for.
    """
    expires = session_expires_of(request_headers)
    peer_supports = supports(request_headers, "timer")
    if expires is None:
        if local_interval <= 0:
            return None, None
        peer_min = min_se_of(request_headers) or 0
        interval = max(local_interval, peer_min, local_min_se)
        # Peers that know timers refresh themselves; others are refreshed by us (§9).
        return SessionTimer(interval, we_refresh=not peer_supports), None
    if expires.interval < local_min_se:
        return None, local_min_se
    interval = expires.interval
    if local_interval > 0:
        interval = min(interval, max(local_interval, local_min_se, min_se_of(request_headers) or 0))
    if expires.refresher == "uac":
        we_refresh = False
    elif expires.refresher == "uas":
        we_refresh = True
    else:
        we_refresh = not peer_supports
    return SessionTimer(interval, we_refresh), None
