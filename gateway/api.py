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
    MAX_MESSAGE_CHARS,
    MAX_NAME_CHARS,
    MAX_REASON_CHARS,
    MAX_SOURCE_CHARS,
    clean_message_text,
    clean_page_url,
    clean_source_tag,
    clean_visitor_name,
    clean_visitor_text,
    clipped,
    origin_of,
)

__all__ = [
    "MAX_MESSAGE_CHARS",
    "MAX_NAME_CHARS",
    "MAX_REASON_CHARS",
    "MAX_SOURCE_CHARS",
    "NO_DETAILS",
    "AccessRefused",
    "BadRequest",
    "CallRefused",
    "CallService",
    "CallState",
    "CallUpdate",
    "CallbackRefused",
    "ChatDelivery",
    "ChatReceipt",
    "ChatReply",
    "ChatService",
    "ChatState",
    "ChatUpdate",
    "CheckGrant",
    "CheckService",
    "Clock",
    "EndCause",
    "GatewayService",
    "MessageRefused",
    "Notify",
    "Refusal",
    "SiteInfo",
    "TokenGrant",
    "TokenService",
    "VisitorDetails",
    "VoicemailGrant",
    "VoicemailService",
    "VoicemailState",
    "VoicemailUpdate",
    "clean_message_text",
    "clean_page_url",
    "clean_source_tag",
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


class MessageRefused(Refusal):
    """A message left for the site (click-to-text), or a chat message, refused."""


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """What signaling may know of a site: never its destination or credentials."""

    id: str
    origins: tuple[str, ...]
    widget: WidgetSettings = field(default_factory=WidgetSettings)  # public, for the widget
    hours: BusinessHours | None = None  # None: always open
    # What the page offers when nobody can answer, in order: voicemail, text, callback (a
    # callback only when the site takes them).
    fallback: tuple[str, ...] = ()
    callback_countries: tuple[str, ...] | None = None  # None: no Request-a-Call
    voicemail_max_seconds: float = 120.0
    chat: bool = False  # "Write to us": a conversation with the site's destinations
    chat_timeout: float = 60.0  # seconds without a reply before offering to leave a message

    @property
    def offers_voicemail(self) -> bool:
        return "voicemail" in self.fallback

    @property
    def takes_messages(self) -> bool:
        """Whether a visitor may leave a written message (click-to-text)."""
        return self.chat or "text" in self.fallback

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
            "fallback": list(self.fallback),
            "voicemail": (
                {"max_seconds": self.voicemail_max_seconds} if self.offers_voicemail else None
            ),
            "chat": {"reply_within": self.chat_timeout} if self.chat else None,
            "messages": self.takes_messages,
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
    site asks for them (`[sites.widget] visitor_details`); `page` and `source` (a call
    link's `?source=` tag: where the visitor came from) always."""

    name: str = ""
    reason: str = ""
    page: str = ""
    source: str = ""


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


class VoicemailState(enum.StrEnum):
    """A voicemail's progress, pushed as `voicemail:state` events."""

    GREETING = "greeting"  # the site's greeting (or the tone) plays
    RECORDING = "recording"  # the visitor speaks; `seconds`: the most they may
    SAVED = "saved"  # received; `seconds`: its length
    FAILED = "failed"  # nothing kept; `reason`: empty, connection, error


@dataclass(frozen=True, slots=True)
class VoicemailUpdate:
    state: VoicemailState
    seconds: float = 0.0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class VoicemailGrant:
    """A voicemail the gateway took: its id, its SDP answer, its longest length."""

    voicemail_id: str
    answer_sdp: str
    max_seconds: float


class VoicemailService(Protocol):
    """Voicemail (gateway.calls.voicemail): a WebRTC connection over which the gateway
    plays the site's greeting, then records the visitor's voice."""

    async def start_voicemail(
        self,
        *,
        site_id: str,
        client: str,
        offer_sdp: str,
        notify: Callable[[VoicemailUpdate], None],
        visitor: VisitorDetails = NO_DETAILS,
        after_call: str | None = None,
    ) -> VoicemailGrant:
        """Answer an offer that carries its candidates. `after_call`: the call of the same
        connection that nobody answered, if one came first. `notify` gets every state,
        SAVED or FAILED last. Raises CallRefused (`voicemail_off`, `bad_offer`,
        `unavailable`; LimitRefused `busy`, `too_many_calls`, `rate_limited`)."""
        ...

    async def send_voicemail(self, voicemail_id: str) -> None:
        """The visitor is done (pressed Send, hung up, or left): keep what was recorded.
        Unknown ids are ignored."""
        ...


class ChatState(enum.StrEnum):
    """What became of a visitor's chat message, pushed as `chat:state` events."""

    DELIVERED = "delivered"  # one of the site's destinations took it
    UNANSWERED = "unanswered"  # nobody took it, or no reply came in time (`reason`)


@dataclass(frozen=True, slots=True)
class ChatReply:
    """A message of the site's operator in the conversation."""

    conversation_id: str
    message_id: str
    text: str
    at: float  # seconds since the epoch


@dataclass(frozen=True, slots=True)
class ChatDelivery:
    """What became of one of the visitor's messages (`reason` with UNANSWERED:
    unreachable, no_reply)."""

    conversation_id: str
    message_id: str
    state: ChatState
    reason: str = ""


ChatUpdate = ChatReply | ChatDelivery


@dataclass(frozen=True, slots=True)
class ChatReceipt:
    """A visitor's chat message the gateway took: its conversation and its id."""

    conversation_id: str
    message_id: str


class ChatService(Protocol):
    """Click-to-chat (gateway.chat): a conversation between a visitor and the site's
    destinations over SIP MESSAGE."""

    async def chat_send(
        self,
        *,
        site_id: str,
        client: str,
        text: str,
        notify: Callable[[ChatUpdate], None],
        visitor: VisitorDetails = NO_DETAILS,
        conversation_id: str | None = None,
        call_id: str | None = None,
    ) -> ChatReceipt:
        """Send the visitor's message (cleaned by the face: `clean_message_text`) to the
        site's destinations: a new conversation without `conversation_id`, that one's
        otherwise (this connection's); during the call `call_id`, to whoever answered it.
        `notify` gets the operator's replies and what became of each message. Raises
        CallRefused (`chat_off`, `closed`, `conversation_full`; LimitRefused
        `too_many_messages`, `rate_limited`)."""
        ...

    async def chat_close(self, conversation_id: str) -> None:
        """The visitor left: the conversation ends (replies to it are refused)."""
        ...


class GatewayService(
    CallService, TokenService, CheckService, VoicemailService, ChatService, Protocol
):
    """What the HTTP face and signaling ask of the gateway."""
