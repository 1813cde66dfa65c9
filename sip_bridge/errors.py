"""The exceptions of the SIP core."""

from __future__ import annotations


class SipParseError(ValueError):
    """A SIP message (or a part of one) is malformed.

    `status` is the response a UAS should send when the message was a request it can answer
    (400 for syntax, 505 for a version we do not speak, 413 for an oversized message).
    """

    def __init__(self, reason: str, *, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
