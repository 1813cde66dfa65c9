"""The narrow interface the signaling face uses to drive calls (DESIGN.md: signaling never
touches aiortc or SIP objects). The gateway's `CallManager` implements it."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class CallState(enum.StrEnum):
    """What the page shows; pushed as `call:state` events."""

    CONNECTING = "connecting"  # offer accepted, SIP INVITE on its way
    RINGING = "ringing"  # the operator's phone rings (ringback plays)
    EARLY_MEDIA = "early_media"  # audio from the far end before the answer
    ANSWERED = "answered"  # talking
    ON_HOLD = "on_hold"  # the operator put the call on hold
    ENDED = "ended"  # with a cause


class EndCause(enum.StrEnum):
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    DECLINED = "declined"
    UNREACHABLE = "unreachable"
    FAILED = "failed"
    OPERATOR_HUNG_UP = "operator_hung_up"
    VISITOR_HUNG_UP = "visitor_hung_up"
    TIME_LIMIT = "time_limit"          # the site's maximum call duration was reached


@dataclass(frozen=True, slots=True)
class CallUpdate:
    state: CallState
    cause: EndCause | None = None  # only with ENDED
    detail: str = ""  # words for logs; never internal addresses or secrets


class CallRefused(Exception):
    """A call cannot start; `code` is the machine-readable reason sent to the page."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """What signaling may know of a site: never its destination or credentials."""

    id: str
    origins: tuple[str, ...]


Notify = Callable[[CallUpdate], None]


class CallService(Protocol):
    def site(self, site_id: str) -> SiteInfo | None: ...

    async def start_call(
        self, *, site_id: str, client: str, offer_sdp: str, notify: Notify
    ) -> tuple[str, str]:
        """Answer the browser's SDP offer and start ringing the site's destination.

        Returns (call_id, answer_sdp). `client` identifies the visitor (IP) for logs and
        limits. Raises `CallRefused` (unknown site, bad SDP, limits) or ValueError.
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
