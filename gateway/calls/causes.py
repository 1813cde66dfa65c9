"""Why a call ended, as the page and the call record are told: a SIP leg's end (sip_bridge's
`CallEnded`) mapped to a stable `EndCause` code, with the SIP status in standard words.

    the phone system refused the call (421 Extension Required)  -> phone_system_refused
    no common codec with the operator's phone                   -> no_common_codec
    the call was redirected and could not follow                -> redirect_failed
"""

from __future__ import annotations

from gateway.api import CallUpdate, EndCause
from sip_bridge import CallEnded, EndReason, status_words

_BY_REASON = {
    EndReason.BUSY: EndCause.BUSY,
    EndReason.NO_ANSWER: EndCause.NO_ANSWER,
    EndReason.DECLINED: EndCause.DECLINED,
    EndReason.UNREACHABLE: EndCause.UNREACHABLE,
    EndReason.NOT_FOUND: EndCause.UNREACHABLE,
    EndReason.REMOTE_HANGUP: EndCause.OPERATOR_HUNG_UP,
    EndReason.LOCAL_HANGUP: EndCause.VISITOR_HUNG_UP,
    EndReason.CANCELLED: EndCause.VISITOR_HUNG_UP,
    EndReason.NOT_ACCEPTABLE: EndCause.NO_COMMON_CODEC,
    EndReason.REDIRECTED: EndCause.REDIRECT_FAILED,
    EndReason.SESSION_EXPIRED: EndCause.SESSION_EXPIRED,
    EndReason.AUTH_FAILED: EndCause.PHONE_SYSTEM_REFUSED,
}

# Words for the call record and the log, by cause (the page has its own, translated).
WORDS = {
    EndCause.PHONE_SYSTEM_REFUSED: "the phone system refused the call",
    EndCause.NO_COMMON_CODEC: "no common codec with the operator's phone",
    EndCause.REDIRECT_FAILED: "the call was redirected and could not follow",
    EndCause.SESSION_EXPIRED: "the phone system stopped confirming the call",
    EndCause.TRANSFER_FAILED: "the transfer did not go through",
}


def cause_of(ended: CallEnded) -> tuple[EndCause, str]:
    """The cause of a SIP leg's end, and its status in words ("" when no status ended it)."""
    return cause_for(ended.reason, ended.status)


def cause_for(reason: EndReason, status: int | None) -> tuple[EndCause, str]:
    """The cause of a SIP end with this reason and status, and the status in words.

    A failure with a status the named causes do not cover is the phone system refusing
    the call; without a status (our own error) it stays `failed`.
    """
    cause = _BY_REASON.get(reason)
    status = status if status is not None and status >= 300 else None
    if cause in (EndCause.VISITOR_HUNG_UP, EndCause.OPERATOR_HUNG_UP):
        status = None  # a hang-up's 487 or BYE says nothing worth showing
    if cause is None:
        cause = EndCause.PHONE_SYSTEM_REFUSED if status is not None else EndCause.FAILED
    return cause, status_words(status) if status is not None else ""


def describe(cause: EndCause, reason: str = "") -> str:
    """`the phone system refused the call (421 Extension Required)`, for records and logs."""
    words = WORDS.get(cause, str(cause).replace("_", " "))
    return f"{words} ({reason})" if reason else words


def record_detail(update: CallUpdate) -> str:
    """What a call record says of an end: the cause in words with its SIP status for the
    causes the page words that way, then the leg's own detail (for the site owner)."""
    if update.cause not in WORDS:
        return update.detail
    words = describe(update.cause, update.reason)
    if update.detail and update.detail not in words:
        return f"{words}: {update.detail}"
    return words
