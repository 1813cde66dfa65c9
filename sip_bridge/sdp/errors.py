"""The exceptions of the SDP layer."""

from __future__ import annotations


class SdpError(ValueError):
    """An SDP body is malformed or too large, or an answer does not fit its offer.

    `line` is the 1-based number of the offending line when one line is to blame.
    """

    def __init__(self, reason: str, *, line: int | None = None) -> None:
        super().__init__(f"line {line}: {reason}" if line is not None else reason)
        self.reason = reason
        self.line = line


class NoCommonCodec(SdpError):
    """No audio stream can be used: no codec in common, or the stream was rejected.

    A user agent answers an INVITE that raises this with 488 Not Acceptable Here.
    """
