"""Where one SIP call stands in the user agent: one state, and the moves allowed from each.

The user agent keeps a `CallState` per call instead of separate progress flags, so a call
cannot be "cancelled" and "answered" at once, and every change of state goes through
`CallProgress.move`, which refuses a move the table does not list (`CallStateError`: a bug
in the user agent, never a peer's doing, since peers only cause moves the table allows).

    outgoing:  LOCATING -> CALLING -> PROCEEDING -> CONFIRMED -> TERMINATING -> TERMINATED
                               \\-> CANCEL_PENDING -> CANCELLING -/
    incoming:  INCOMING -> CONFIRMED -> ...

A retry of our INVITE (credentials, a 422, a redirect, the next DNS target) goes back to
CALLING. Whether ringing or early media have been reported is not progress: the owner is
told each once, and `_Call.reported` remembers that.
"""

from __future__ import annotations

import enum


class CallState(enum.Enum):
    LOCATING = "locating"  # our INVITE waits for the I/O layer to resolve its next hop
    CALLING = "calling"  # our INVITE is out, no response yet
    PROCEEDING = "proceeding"  # a provisional response came
    CANCEL_PENDING = "cancel_pending"  # hung up before any 1xx: the CANCEL waits (§9.1)
    CANCELLING = "cancelling"  # CANCEL sent: waiting for the INVITE's final response
    INCOMING = "incoming"  # an INVITE to us, not answered yet
    CONFIRMED = "confirmed"  # answered: the dialog is up
    TERMINATING = "terminating"  # our BYE is out
    TERMINATED = "terminated"


_S = CallState

TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    _S.LOCATING: frozenset({_S.CALLING, _S.TERMINATED}),
    _S.CALLING: frozenset(
        {_S.LOCATING, _S.CALLING, _S.PROCEEDING, _S.CANCEL_PENDING, _S.CONFIRMED, _S.TERMINATED}
    ),
    _S.PROCEEDING: frozenset({_S.LOCATING, _S.CALLING, _S.CANCELLING, _S.CONFIRMED, _S.TERMINATED}),
    # A 2xx may come before any 1xx: the call is up, and our BYE ends it at once.
    _S.CANCEL_PENDING: frozenset({_S.CANCELLING, _S.TERMINATING, _S.TERMINATED}),
    # A 2xx crossing our CANCEL: ACK it, then BYE (§9.1).
    _S.CANCELLING: frozenset({_S.TERMINATING, _S.TERMINATED}),
    _S.INCOMING: frozenset({_S.CONFIRMED, _S.TERMINATED}),
    _S.CONFIRMED: frozenset({_S.TERMINATING, _S.TERMINATED}),
    _S.TERMINATING: frozenset({_S.TERMINATED}),
    _S.TERMINATED: frozenset(),
}

# States in which our initial INVITE may still be answered.
AWAITING_ANSWER = frozenset({_S.CALLING, _S.PROCEEDING, _S.CANCEL_PENDING, _S.CANCELLING})


class CallStateError(RuntimeError):
    """A move the table does not allow: a bug in the user agent."""


class CallProgress:
    """The state of one call and the one way to change it."""

    __slots__ = ("state",)

    def __init__(self, state: CallState) -> None:
        self.state = state

    def move(self, to: CallState) -> None:
        if to not in TRANSITIONS[self.state]:
            raise CallStateError(f"a call cannot go from {self.state.value} to {to.value}")
        self.state = to

    def __repr__(self) -> str:
        return f"CallProgress({self.state.value})"
