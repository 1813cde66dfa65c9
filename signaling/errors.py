"""The one exception type of the signaling face, and the codes the page receives."""

from __future__ import annotations

import enum
import math


class ErrorCode(enum.StrEnum):
    """Machine-readable reasons sent in `error` events and failed acks."""

    BAD_PAYLOAD = "bad_payload"  # wrong type, missing/extra key, too large, bad value
    UNKNOWN_EVENT = "unknown_event"  # an event name this server does not know
    NO_CALL = "no_call"  # candidate/hangup/dtmf/mute while no call is active
    NO_VOICEMAIL = "no_voicemail"  # voicemail:send while no voicemail is being left
    CALL_ACTIVE = "call_active"  # a second call:start while one is active
    TOO_MANY_CANDIDATES = "too_many_candidates"  # more than the per-call limit
    TOO_MANY_EVENTS = "too_many_events"  # the client queued more events than allowed
    REJECTED = "rejected"  # the gateway refused the request (a ValueError of the service)
    INTERNAL = "internal"  # a bug on our side; the details are in our log only


class SignalingError(ValueError):
    """A client event cannot be processed. `code` is an `ErrorCode` (or, for a call the
    gateway refused, the gateway's own code); `message` says what was wrong, in words."""

    def __init__(self, code: str, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after  # seconds before the same request may work

    def to_payload(self) -> dict[str, object]:
        payload: dict[str, object] = {"code": self.code, "message": self.message}
        if self.retry_after is not None:
            payload["retry_after"] = max(1, math.ceil(self.retry_after))
        return payload
