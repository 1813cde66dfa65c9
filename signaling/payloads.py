"""The client events' schema: turn (event name, socket.io arguments) into a typed event.

Pure functions, no I/O. Every rule the browser's payload must satisfy lives here, so that the
event handlers only ever see well-formed values. Anything else raises `PayloadError` with a
message that names the event, the key and what was wrong.

Every client event carries exactly one argument, a JSON object with exactly the keys listed
(`call:hangup` carries `{}`); see docs/signaling.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.api import (
    MAX_MESSAGE_CHARS,
    MAX_NAME_CHARS,
    MAX_REASON_CHARS,
    NO_DETAILS,
    VisitorDetails,
    clean_message_text,
    clean_page_url,
    clean_source_tag,
    clean_visitor_name,
    clean_visitor_text,
)
from signaling.errors import ErrorCode, SignalingError
from signaling.json_codec import MALFORMED

# Limits (bytes are UTF-8 bytes). A browser's audio-only offer is 2-6 KiB; a candidate line is
# under 200 bytes, and one call gathers a handful of candidates per network interface.
MAX_SDP_BYTES = 64 * 1024
MAX_CANDIDATE_BYTES = 1024
MAX_CANDIDATES_PER_CALL = 64
MAX_MID_BYTES = 64  # RFC 8843 mids are short tokens; browsers use "0", "1", ...
MAX_MLINE_INDEX = 1023
MAX_SHOWN_CHARS = 40  # how much of a client's own string we echo back in a message
# Visitor details (characters): a name fits a phone's display, a reason one line of a log.

START = "call:start"
CANDIDATE = "call:candidate"
HANGUP = "call:hangup"
DTMF = "call:dtmf"
MUTE = "call:mute"
CHECK_START = "check:start"
CHECK_STOP = "check:stop"
VOICEMAIL_START = "voicemail:start"
VOICEMAIL_SEND = "voicemail:send"
CHAT_SEND = "chat:send"
MAX_MESSAGE_BYTES = 4 * MAX_MESSAGE_CHARS  # a chat message: every character 4 UTF-8 bytes

_DTMF_DIGITS = re.compile(r"[0-9*#A-D]{1,32}")


# Bidirectional embeddings, overrides and isolates, and the LRM/RLM marks: harmless in a
# name typed in an RTL script, but able to make a display name read as something else
# (RFC 9839 calls them "problematic"), so they are dropped rather than refused.
class PayloadError(SignalingError):
    """A client event is malformed or unknown."""

    def __init__(self, message: str, *, code: str = ErrorCode.BAD_PAYLOAD) -> None:
        super().__init__(code, message)


@dataclass(frozen=True, slots=True)
class StartCall:
    sdp: str
    visitor: VisitorDetails = field(default=NO_DETAILS)
    candidates: int = 0  # a=candidate lines of the offer: they count against the call's limit


@dataclass(frozen=True, slots=True)
class Candidate:
    """A trickled ICE candidate; `candidate == ""` is the end of candidates."""

    candidate: str
    sdp_mid: str | None
    sdp_mline_index: int | None

    @property
    def is_end_of_candidates(self) -> bool:
        return self.candidate == ""

    @property
    def is_mdns(self) -> bool:
        """The address is an mDNS name (RFC 8828 `<uuid>.local`): the gateway could only
        resolve it by multicast DNS on the visitor's LAN, which it is not on, and aioice
        would spend a 1 s timeout on each. Such candidates are dropped."""
        if not self.candidate:
            return False
        return self.candidate.split()[4].lower().endswith(".local")


@dataclass(frozen=True, slots=True)
class Hangup:
    pass


@dataclass(frozen=True, slots=True)
class Dtmf:
    digits: str


@dataclass(frozen=True, slots=True)
class Mute:
    muted: bool


@dataclass(frozen=True, slots=True)
class StartCheck:
    """A pre-call check: an offer with its candidates (no trickle)."""

    sdp: str


@dataclass(frozen=True, slots=True)
class StopCheck:
    pass


@dataclass(frozen=True, slots=True)
class StartVoicemail:
    """A voicemail: an offer with its candidates (no trickle), and the visitor's details."""

    sdp: str
    visitor: VisitorDetails = field(default=NO_DETAILS)


@dataclass(frozen=True, slots=True)
class SendVoicemail:
    pass


@dataclass(frozen=True, slots=True)
class SendChat:
    """A chat message of the visitor, cleaned (several lines, any script, emoji)."""

    text: str
    visitor: VisitorDetails = field(default=NO_DETAILS)


ClientEvent = (
    StartCall
    | Candidate
    | Hangup
    | Dtmf
    | Mute
    | StartCheck
    | StopCheck
    | StartVoicemail
    | SendVoicemail
    | SendChat
)


def show(value: object) -> str:
    """A client-supplied value, shortened, for an error message."""
    text = repr(value)
    if len(text) > MAX_SHOWN_CHARS:
        text = text[: MAX_SHOWN_CHARS - 3] + "..."
    return text


def parse_client_event(event: object, args: tuple[object, ...]) -> ClientEvent:
    """Validate one client event. `args` are the socket.io arguments after the event name."""
    if event is MALFORMED:  # signaling.json_codec: the message was not JSON
        reason = args[0] if args and isinstance(args[0], str) else "the message is not JSON"
        raise PayloadError(reason)
    parser = _PARSERS.get(event) if isinstance(event, str) else None
    if parser is None:
        raise PayloadError(f"unknown event {show(event)}", code=ErrorCode.UNKNOWN_EVENT)
    if len(args) != 1:
        raise PayloadError(f"{event}: expected exactly one payload object, got {len(args)}")
    return parser(args[0])


def _object(event: str, payload: object, keys: frozenset[str]) -> dict[str, object]:
    if not isinstance(payload, dict):
        raise PayloadError(f"{event}: payload must be an object, got {_type_name(payload)}")
    missing = keys - payload.keys()
    if missing:
        raise PayloadError(f"{event}: missing key {', '.join(sorted(missing))}")
    extra = payload.keys() - keys
    if extra:
        shown = ", ".join(sorted(show(k) for k in extra))
        raise PayloadError(f"{event}: unexpected key {shown}")
    return payload


def _string(event: str, key: str, value: object, max_bytes: int) -> str:
    if not isinstance(value, str):
        raise PayloadError(f"{event}: {key} must be a string, got {_type_name(value)}")
    # Characters never outnumber UTF-8 bytes: this test spares encoding a huge string.
    if len(value) > max_bytes:
        raise PayloadError(f"{event}: {key} is longer than {max_bytes} bytes")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        # JSON can carry lone surrogates ("\ud800"), which are not text.
        raise PayloadError(f"{event}: {key} is not valid Unicode") from None
    if size > max_bytes:
        raise PayloadError(f"{event}: {key} is longer than {max_bytes} bytes")
    return value


def _type_name(value: object) -> str:
    # JSON's names, since that is what the client sent.
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "binary" if isinstance(value, bytes) else type(value).__name__


_START_KEYS = frozenset({"sdp"})
_START_KEYS_WITH_VISITOR = frozenset({"sdp", "visitor"})
_VISITOR_KEYS = frozenset({"name", "reason", "page", "source"})
_CANDIDATE_KEYS = frozenset({"candidate", "sdpMid", "sdpMLineIndex"})
_DTMF_KEYS = frozenset({"digits"})
_MUTE_KEYS = frozenset({"muted"})


def _offer(event: str, value: object) -> str:
    sdp = _string(event, "sdp", value, MAX_SDP_BYTES)
    if not sdp.startswith("v=0"):
        # Not the gateway's SDP parser's job to see JSON junk; an offer starts with v=0.
        raise PayloadError(f"{event}: sdp is not an SDP offer (it must start with v=0)")
    _candidates(event, sdp)
    return sdp


def _candidates(event: str, sdp: str) -> int:
    """How many a=candidate lines the offer has; more than a call may have is refused (the
    same limit as trickled candidates: each is an address the gateway would check)."""
    candidates = sdp.count("\na=candidate:")
    if candidates > MAX_CANDIDATES_PER_CALL:
        raise PayloadError(
            f"{event}: the offer has {candidates} candidates, more than "
            f"{MAX_CANDIDATES_PER_CALL} for one call",
            code=ErrorCode.TOO_MANY_CANDIDATES,
        )
    return candidates


def _parse_start(payload: object) -> StartCall:
    with_visitor = isinstance(payload, dict) and "visitor" in payload
    fields = _object(START, payload, _START_KEYS_WITH_VISITOR if with_visitor else _START_KEYS)
    sdp = _offer(START, fields["sdp"])
    visitor = _parse_visitor(START, fields["visitor"]) if with_visitor else NO_DETAILS
    return StartCall(sdp, visitor, _candidates(START, sdp))


def _parse_visitor(event: str, value: object) -> VisitorDetails:
    """`{"name"?, "reason"?, "page"?, "source"?}`: each key optional, each a string."""
    if not isinstance(value, dict):
        raise PayloadError(f"{event}: visitor must be an object, got {_type_name(value)}")
    extra = value.keys() - _VISITOR_KEYS
    if extra:
        shown = ", ".join(sorted(show(k) for k in extra))
        raise PayloadError(f"{event}: unexpected key visitor.{shown}")
    name = _visitor_text(event, "name", value.get("name", ""), MAX_NAME_CHARS)
    if name:
        name = _visitor_name(event, name)
    reason = _visitor_text(event, "reason", value.get("reason", ""), MAX_REASON_CHARS)
    page = _visitor_page(event, value.get("page", ""))
    source = value.get("source", "")
    if not isinstance(source, str):
        raise PayloadError(f"{event}: visitor.source must be a string, got {_type_name(source)}")
    try:
        source = clean_source_tag(source)
    except ValueError as exc:
        raise PayloadError(f"{event}: visitor.source {exc}") from None
    return VisitorDetails(name=name, reason=reason, page=page, source=source)


def _visitor_text(event: str, key: str, value: object, max_chars: int) -> str:
    """One line of text a visitor typed (gateway/text.py)."""
    if not isinstance(value, str):
        raise PayloadError(f"{event}: visitor.{key} must be a string, got {_type_name(value)}")
    try:
        return clean_visitor_text(value, max_chars)
    except ValueError as exc:
        raise PayloadError(f"{event}: visitor.{key} {exc}") from None


def _visitor_name(event: str, text: str) -> str:
    """A name shown on the operator's phone: never one that passes for a number."""
    try:
        return clean_visitor_name(text)
    except ValueError as exc:
        raise PayloadError(f"{event}: visitor.name {exc}") from None


def _visitor_page(event: str, value: object) -> str:
    """The page the visitor calls from (gateway/text.py)."""
    if not isinstance(value, str):
        raise PayloadError(f"{event}: visitor.page must be a string, got {_type_name(value)}")
    if not value:
        return ""
    try:
        return clean_page_url(value)
    except ValueError as exc:
        raise PayloadError(f"{event}: visitor.page {exc}") from None


def _parse_candidate(payload: object) -> Candidate:
    fields = _object(CANDIDATE, payload, _CANDIDATE_KEYS)
    candidate = _string(CANDIDATE, "candidate", fields["candidate"], MAX_CANDIDATE_BYTES)
    mid = fields["sdpMid"]
    if mid is not None:
        mid = _string(CANDIDATE, "sdpMid", mid, MAX_MID_BYTES)
    index = fields["sdpMLineIndex"]
    if index is not None and (
        not isinstance(index, int) or isinstance(index, bool) or not 0 <= index <= MAX_MLINE_INDEX
    ):
        raise PayloadError(
            f"{CANDIDATE}: sdpMLineIndex must be null or an integer 0-{MAX_MLINE_INDEX}, "
            f"got {show(index)}"
        )
    if candidate:
        _check_candidate_line(candidate)
        if mid is None and index is None:
            raise PayloadError(f"{CANDIDATE}: sdpMid and sdpMLineIndex are both null")
    return Candidate(candidate, mid, index)


def _check_candidate_line(candidate: str) -> None:
    # RFC 8839 §5.1: candidate:<foundation> <component> <transport> <priority> <address>
    # <port> typ <type> ... ; the rest is for the gateway's ICE agent to judge.
    parts = candidate.split()
    if len(parts) < 8 or not parts[0].startswith("candidate:") or parts[6] != "typ":
        raise PayloadError(
            f"{CANDIDATE}: candidate is not an ICE candidate line "
            "('candidate:<foundation> <component> <transport> <priority> <address> <port> "
            f"typ <type> ...'): {show(candidate)}"
        )


def _parse_hangup(payload: object) -> Hangup:
    _object(HANGUP, payload, frozenset())
    return Hangup()


def _parse_dtmf(payload: object) -> Dtmf:
    fields = _object(DTMF, payload, _DTMF_KEYS)
    digits = fields["digits"]
    if not isinstance(digits, str) or not _DTMF_DIGITS.fullmatch(digits):
        raise PayloadError(f"{DTMF}: digits must be 1-32 of 0-9 * # A-D, got {show(digits)}")
    return Dtmf(digits)


def _parse_mute(payload: object) -> Mute:
    fields = _object(MUTE, payload, _MUTE_KEYS)
    muted = fields["muted"]
    if not isinstance(muted, bool):
        raise PayloadError(f"{MUTE}: muted must be a boolean, got {_type_name(muted)}")
    return Mute(muted)


def _parse_check_start(payload: object) -> StartCheck:
    fields = _object(CHECK_START, payload, _START_KEYS)
    return StartCheck(_offer(CHECK_START, fields["sdp"]))


def _parse_check_stop(payload: object) -> StopCheck:
    _object(CHECK_STOP, payload, frozenset())
    return StopCheck()


def _parse_voicemail_start(payload: object) -> StartVoicemail:
    with_visitor = isinstance(payload, dict) and "visitor" in payload
    keys = _START_KEYS_WITH_VISITOR if with_visitor else _START_KEYS
    fields = _object(VOICEMAIL_START, payload, keys)
    sdp = _offer(VOICEMAIL_START, fields["sdp"])
    if not with_visitor:
        return StartVoicemail(sdp)
    return StartVoicemail(sdp, _parse_visitor(VOICEMAIL_START, fields["visitor"]))


def _parse_chat_send(payload: object) -> SendChat:
    with_visitor = isinstance(payload, dict) and "visitor" in payload
    keys = frozenset({"text", "visitor"}) if with_visitor else frozenset({"text"})
    fields = _object(CHAT_SEND, payload, keys)
    text = _string(CHAT_SEND, "text", fields["text"], MAX_MESSAGE_BYTES)
    try:
        text = clean_message_text(text, MAX_MESSAGE_CHARS)
    except ValueError as exc:
        raise PayloadError(f"{CHAT_SEND}: text {exc}") from None
    if not with_visitor:
        return SendChat(text)
    return SendChat(text, _parse_visitor(CHAT_SEND, fields["visitor"]))


def _parse_voicemail_send(payload: object) -> SendVoicemail:
    _object(VOICEMAIL_SEND, payload, frozenset())
    return SendVoicemail()


_PARSERS: dict[str, Callable[[object], ClientEvent]] = {
    START: _parse_start,
    CHECK_START: _parse_check_start,
    CHECK_STOP: _parse_check_stop,
    VOICEMAIL_START: _parse_voicemail_start,
    VOICEMAIL_SEND: _parse_voicemail_send,
    CHAT_SEND: _parse_chat_send,
    CANDIDATE: _parse_candidate,
    HANGUP: _parse_hangup,
    DTMF: _parse_dtmf,
    MUTE: _parse_mute,
}
