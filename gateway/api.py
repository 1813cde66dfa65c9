"""The contract between the gateway and its faces (signaling/, http/): what a page may ask
(`GatewayService`: call tokens, then calls and pre-call checks), what it is told
(`CallState`, `EndCause`, `CallUpdate`, `SiteInfo`), what it sends (`VisitorDetails`),
and the refusal family.

Signaling imports this module and nothing else of the gateway: never the configuration,
aiortc or SIP objects (docs/architecture.md). The gateway's `CallManager` implements
`GatewayService`.

Refusals: every "no" a page can get is a `Refusal` with a stable `code` (the widget
translates it), a `message` in words, and the HTTP `status` it maps to (as h11's
`ProtocolError` carries `error_status_hint`): `AccessRefused` (tokens, 403),
`CallRefused` (409; `LimitRefused`, 429, in gateway.access.admission), `CallbackRefused`
(400) and `BadRequest` (400: a body that is not what the route takes).
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.sites.countries import calling_codes
from gateway.sites.hours import BusinessHours
from gateway.sites.widget import WidgetSettings

# How a face cleans what a visitor typed before it becomes `VisitorDetails`, and any
# string from outside bounded before it is logged (gateway.text; the log escapes it).
from gateway.text import (
    MAX_NAME_CHARS,
    MAX_REASON_CHARS,
    clean_page_url,
    clean_visitor_name,
    clean_visitor_text,
    clipped,
    origin_of,
)

__all__ = [
    "MAX_NAME_CHARS",
    "MAX_REASON_CHARS",
    "NO_DETAILS",
    "AccessRefused",
    "BadRequest",
    "CallRefused",
    "CallService",
    "CallState",
    "CallUpdate",
    "CallbackRefused",
    "CheckGrant",
    "CheckService",
    "Clock",
    "EndCause",
    "GatewayService",
    "Notify",
    "Refusal",
    "SiteInfo",
    "TokenGrant",
    "TokenService",
    "VisitorDetails",
    "clean_page_url",
    "clean_visitor_name",
    "clean_visitor_text",
    "clipped",
    "origin_of",
]

# How far ahead a visitor may ask for a callback; the widget learns it from the site's
# public settings (`callback.max_days_ahead`).
CALLBACK_MAX_DAYS_AHEAD = 14


class CallState(enum.StrEnum):
    """What the page shows; pushed as `call:state` events."""

    CONNECTING = "connecting"  # offer answered; the phone rings once the media path is up
    RINGING = "ringing"  # the operator's phone rings (ringback plays)
    EARLY_MEDIA = "early_media"  # audio from the far end before the answer
    ANSWERED = "answered"  # talking
    ON_HOLD = "on_hold"  # the operator put the call on hold
    TRANSFERRING = "transferring"  # the operator transferred the call: the target rings
    ENDED = "ended"  # with a cause


class EndCause(enum.StrEnum):
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    DECLINED = "declined"
    UNREACHABLE = "unreachable"
    FAILED = "failed"
    OPERATOR_HUNG_UP = "operator_hung_up"
    VISITOR_HUNG_UP = "visitor_hung_up"
    TIME_LIMIT = "time_limit"  # the site's maximum call duration was reached
    # The phone system refused the call with a SIP status the causes above do not cover
    # (CallUpdate.reason says which, e.g. "421 Extension Required").
    PHONE_SYSTEM_REFUSED = "phone_system_refused"
    NO_COMMON_CODEC = "no_common_codec"  # no codec both the gateway and the phone speak
    REDIRECT_FAILED = "redirect_failed"  # redirected (3xx) where the site may not call
    SESSION_EXPIRED = "session_expired"  # the phone system stopped refreshing the session
    TRANSFER_FAILED = "transfer_failed"  # the operator left and the transfer target failed


@dataclass(frozen=True, slots=True)
class CallUpdate:
    state: CallState
    cause: EndCause | None = None  # only with ENDED
    detail: str = ""  # words for logs and the call record, never secrets
    # With the ENDED of an answered call: the proof that lets the page rate it
    # (`POST /api/calls/<call id>/rating`, gateway.calls.ratings).
    rating_proof: str = ""
    # For the page: the SIP status that ended the call, as "421 Extension Required" (the
    # standard words of the status, never the peer's own text or an address); "" if none.
    reason: str = ""


class Refusal(Exception):
    """Base of every refusal a page can get. `code` is stable (the widget translates it);
    `message` says it in words; `status` is the HTTP status it is answered with (each
    subclass has its default, a raiser may pick another)."""

    status = 400

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after  # seconds until the same request may work, if known
        if status is not None:
            self.status = status

    def payload(self) -> dict[str, Any]:
        """The JSON body of the refusal: `{"error": {"code": ..., "message": ...}}`, with
        `retry_after` (whole seconds) when the refusal knows when it lifts."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.retry_after is not None:
            error["retry_after"] = max(1, math.ceil(self.retry_after))
        return {"error": error}


class BadRequest(Refusal):
    """The request itself is malformed: not JSON, too large, too deep, unknown fields."""

    def __init__(self, message: str, *, code: str = "bad_request", status: int = 400) -> None:
        super().__init__(code, message, status=status)


class CallRefused(Refusal):
    """A call cannot start; `code` is the machine-readable reason sent to the page."""

    status = 409


class CallbackRefused(Refusal):
    """A Request-a-Call request, look-up or cancel refused."""


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """What signaling may know of a site: never its destination or credentials."""

    id: str
    origins: tuple[str, ...]
    widget: WidgetSettings = field(default_factory=WidgetSettings)  # public, for the widget
    hours: BusinessHours | None = None  # None: always open
    fallback: str = "callback"  # callback | message: what the page offers on busy/closed
    callback_countries: tuple[str, ...] | None = None  # None: no Request-a-Call

    def allows_origin(self, origin: str, gateway_origins: Iterable[str] = ()) -> bool:
        """Whether pages of `origin` may use this site: one of its origins, or the
        gateway's own (its iframe page). Browsers send origins in lower case."""
        origin = origin.lower()
        return any(origin == o.lower() for o in (*self.origins, *gateway_origins))

    def public_settings(self, now: dt.datetime) -> dict[str, Any]:
        """What `GET /api/widget/<site>` tells any page at `now` (an aware datetime): the
        widget settings, whether the site is open and when it opens next (ISO 8601 in the
        site's time zone, or None when open or never), its weekly opening hours
        (`{"timezone": ..., "week": {"mon": [["09:00", "12:30"], ...], ...}}`, or None when
        always open), its fallback, and Request-a-Call (`{"countries": [...], "calling_codes":
        {"GB": 44, ...}, "max_days_ahead": 14}`, or None when the site takes no callbacks).
        Nothing secret: no destination, trunk or operator."""
        is_open = self.hours is None or self.hours.is_open(now)
        opening = None if is_open or self.hours is None else self.hours.next_opening(now)
        week = self.hours.weekly() if self.hours is not None else None
        hours = {"timezone": self.hours.timezone.key, "week": week} if self.hours and week else None
        return {
            **self.widget.public_settings(),
            "open": is_open,
            "next_opening": opening.isoformat(timespec="seconds") if opening else None,
            "hours": hours,
            "fallback": self.fallback,
            "callback": (
                {
                    "countries": list(self.callback_countries),
                    "calling_codes": calling_codes(self.callback_countries),
                    "max_days_ahead": CALLBACK_MAX_DAYS_AHEAD,
                }
                if self.callback_countries is not None
                else None
            ),
        }


@dataclass(frozen=True, slots=True)
class VisitorDetails:
    """What the visitor told the widget before calling, already validated (one line each,
    no control characters; `page` is an http(s) URL without query or fragment). Empty
    strings when not given. The gateway passes them to the operator in the INVITE when the
    site asks for them (`[sites.widget] visitor_details`); `page` always."""

    name: str = ""
    reason: str = ""
    page: str = ""


NO_DETAILS = VisitorDetails()


Notify = Callable[[CallUpdate], None]


class CallService(Protocol):
    def site(self, site_id: str) -> SiteInfo | None: ...

    async def start_call(
        self,
        *,
        site_id: str,
        client: str,
        offer_sdp: str,
        notify: Notify,
        visitor: VisitorDetails = NO_DETAILS,
    ) -> tuple[str, str]:
        """Answer the browser's SDP offer and start ringing the site's destination.

        Returns (call_id, answer_sdp). `client` identifies the visitor (IP) for logs and
        limits; `visitor` is what the visitor typed (name, reason) and the page they call
        from. Raises `CallRefused` (unknown site, bad SDP, limits) or ValueError.
        `notify` receives every state change, ENDED last and exactly once.
        """
        ...

    async def add_candidate(
        self, call_id: str, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None
    ) -> None: ...

    async def hangup(self, call_id: str) -> None:
        """The visitor hung up (or their socket went away): end both legs."""
        ...

    async def send_dtmf(self, call_id: str, digits: str) -> None: ...

    async def set_mute(self, call_id: str, muted: bool) -> None: ...


class AccessRefused(Refusal):
    """No token (or no connection) for this page; `challenge` (when set) is what to solve
    to get a token."""

    status = 403

    def __init__(
        self,
        code: str,
        message: str,
        *,
        status: int | None = None,
        challenge: dict[str, object] | None = None,
    ) -> None:
        super().__init__(code, message, status=status)
        self.challenge = challenge

    def payload(self) -> dict[str, Any]:
        body = super().payload()
        if self.challenge is not None:
            body["challenge"] = self.challenge
        return body


Clock = Callable[[], float]  # wall-clock seconds (time.time), injected for tests


@dataclass(frozen=True, slots=True)
class TokenGrant:
    token: str
    expires_in: float  # seconds


class TokenService(Protocol):
    async def issue_token(
        self, *, site_id: str, origin: str | None, client: str, proof: object
    ) -> TokenGrant:
        """A call token for a page of `origin` (None: the request had no Origin header).
        `proof` is the page's answer to the site's challenge (None when it sent none).
        Raises AccessRefused."""
        ...

    async def redeem_token(self, token: object, *, site_id: str, origin: str) -> None:
        """Accept `token` for one connection of a page of `origin` to `site_id`, or raise
        AccessRefused."""
        ...


@dataclass(frozen=True, slots=True)
class CheckGrant:
    """A pre-call check the gateway took: its id, its SDP answer, and how many seconds the
    gateway keeps it before ending it."""

    check_id: str
    answer_sdp: str
    seconds: float


class CheckService(Protocol):
    """Pre-call checks ("Test my microphone and connection"): a WebRTC connection whose
    audio the gateway echoes back, no call (gateway.calls.precheck)."""

    async def start_check(self, *, site_id: str, client: str, offer_sdp: str) -> CheckGrant:
        """Answer an offer that carries its candidates. Raises CallRefused
        (`precheck_off`, `bad_offer`; LimitRefused `precheck_limited`, `busy`)."""
        ...

    async def stop_check(self, check_id: str) -> None:
        """End the check now (the page is done, or went away); unknown ids are ignored."""
        ...


class GatewayService(CallService, TokenService, CheckService, Protocol):
    """What the HTTP face and signaling ask of the gateway."""
