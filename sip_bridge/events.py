"""Events the user agent core reports to its owner (`UserAgent.next_event()`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class EndReason(enum.Enum):
    """Why a call ended, in the terms the gateway shows to visitors and logs."""

    LOCAL_HANGUP = "local_hangup"  # we sent BYE
    REMOTE_HANGUP = "remote_hangup"  # the far end sent BYE (or CANCEL of an incoming call)
    CANCELLED = "cancelled"  # we cancelled before an answer
    BUSY = "busy"  # 486, 600
    DECLINED = "declined"  # 603
    NO_ANSWER = "no_answer"  # 408, 480
    NOT_FOUND = "not_found"  # 404, 604
    NOT_ACCEPTABLE = "not_acceptable"  # 488, 606: no common codec
    AUTH_FAILED = "auth_failed"  # challenged and our credentials were refused or missing
    UNREACHABLE = "unreachable"  # no response at all (timer B/F), transport error, 503
    MEDIA_TIMEOUT = "media_timeout"  # set by the media owner when RTP stops
    REJECTED = "rejected"  # we refused an incoming call
    REDIRECTED = "redirected"  # a 3xx we could not or would not follow
    SESSION_EXPIRED = "session_expired"  # the session timer ran out (RFC 4028)
    FAILED = "failed"  # any other failure


def reason_for_status(status: int) -> EndReason:
    if status in (486, 600):
        return EndReason.BUSY
    if status == 603:
        return EndReason.DECLINED
    if status in (408, 480):
        return EndReason.NO_ANSWER
    if status in (404, 604):
        return EndReason.NOT_FOUND
    if status in (488, 606):
        return EndReason.NOT_ACCEPTABLE
    if status in (401, 407):
        return EndReason.AUTH_FAILED
    if status in (502, 503, 504):
        return EndReason.UNREACHABLE
    if 300 <= status < 400:
        return EndReason.REDIRECTED
    return EndReason.FAILED


@dataclass(frozen=True, slots=True)
class Event:
    call_id: str


@dataclass(frozen=True, slots=True)
class CallProgress(Event):
    """Any provisional response to our INVITE (100, 180, 183, ...)."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class CallRinging(Event):
    """The far end is alerting (first 180/181/182)."""


@dataclass(frozen=True, slots=True)
class EarlyMedia(Event):
    """A provisional response carried the SDP answer: media flows before the answer."""

    sdp: bytes


@dataclass(frozen=True, slots=True)
class CallAnswered(Event):
    """2xx to our INVITE; the ACK has been sent. `sdp` is the answer (or the offer)."""

    sdp: bytes


@dataclass(frozen=True, slots=True)
class CallEnded(Event):
    reason: EndReason
    status: int | None = None  # the SIP status that ended it, if one did
    detail: str = ""  # words for logs: reason phrase, what failed
    # A 3xx the user agent did not follow itself (no `redirect_policy`): its Contacts,
    # highest q first, for the owner to decide where to go next.
    targets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class IncomingCall(Event):
    """An INVITE outside any dialog (only when the UA accepts incoming calls)."""

    caller: str  # From header value
    callee: str  # To header value
    request_uri: str
    sdp: bytes
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class OfferReceived(Event):
    """A re-INVITE or UPDATE from the far end (hold, unhold, codec change).

    The owner must call `answer_offer` or `reject_offer`. `sdp` is None for a re-INVITE
    without an offer: the owner then answers with an offer and gets the answer in
    `AckReceived`.
    """

    sdp: bytes | None
    method: str


@dataclass(frozen=True, slots=True)
class AckReceived(Event):
    """The ACK for a 2xx we sent (answer of an incoming call, or of a re-INVITE)."""

    sdp: bytes | None


@dataclass(frozen=True, slots=True)
class InfoReceived(Event):
    """An INFO in the dialog (e.g. application/dtmf-relay), already answered with 200."""

    content_type: str | None
    body: bytes


@dataclass(frozen=True, slots=True)
class CallRedirected(Event):
    """A 3xx sent our INVITE elsewhere: we now try `target` (same Call-ID, new CSeq)."""

    status: int
    target: str


@dataclass(frozen=True, slots=True)
class TransferRequested(Event):
    """The far end sent REFER (RFC 3515): it asks us to call `target` in its place.

    The owner must call `accept_transfer` (202, then NOTIFYs through `notify_transfer`) or
    `reject_transfer`. `replaces` is the Replaces header for the INVITE to the target
    (attended transfer, RFC 3891); `referred_by` the REFER's Referred-By, to pass on.
    """

    target: str
    replaces: str | None
    referred_by: str | None


@dataclass(frozen=True, slots=True)
class LocateRequest:
    """The user agent needs the addresses of `uri`'s next hop (RFC 3263) before it can send
    (`UserAgentConfig.resolve_names`). The I/O layer answers with `targets_resolved(key,
    addresses)`; `key` is a Call-ID or a registration's key."""

    key: str
    uri: str
    transport: str


@dataclass(frozen=True, slots=True)
class RegistrationChanged:
    """A registration (`UserAgent.register`) changed state: `state` is a
    `RegistrationState` value; `expires` the seconds granted while registered; `retry_in`
    the wait before the next try after a failure."""

    key: str
    state: str
    status: int | None = None
    detail: str = ""
    expires: int | None = None
    retry_in: float | None = None


@dataclass(frozen=True, slots=True)
class OptionsResult:
    """The outcome of an OPTIONS sent outside any dialog (`UserAgent.options`): the final
    response's `status`, or None when none came (no response before the deadline or timer
    F, or the transport could not send). `key` is the one the owner gave."""

    key: str
    status: int | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class MessageTrace:
    """One SIP message sent or received, when tracing is on (`UserAgentConfig.trace`)."""

    direction: str  # "sent" | "received"
    summary: str  # "INVITE sip:..." or "180 Ringing (INVITE)"
    address: tuple[str, int]
    data: bytes


@dataclass(frozen=True, slots=True)
class MessageResult:
    """The outcome of a MESSAGE sent outside any dialog (`UserAgent.message`): the final
    response's `status` (2xx: the recipient took it), or None when none came. `key` is the
    one the owner gave."""

    key: str
    status: int | None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A MESSAGE outside any dialog with a plain UTF-8 text (RFC 3428; only with
    `accept_messages`). The owner answers it with `UserAgent.reply_message(key, status)`
    at once (else it is answered 500). `source` is where it came from; `request_uri`, the
    `sender` (From) and `recipient` (To) are as received."""

    key: str
    source: tuple[str, int]
    request_uri: str
    sender: str
    recipient: str
    text: str
