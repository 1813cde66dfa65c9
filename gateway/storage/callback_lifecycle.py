"""A callback's life, defined once: its statuses, the moves between them, and the events of
its history. The store (gateway.storage.callbacks) only makes the moves listed here; the
job, the scheduler, the HTTP API, the admin page and the widget read the same names. The
page gets them as strings in each callback's JSON (`status`, and `final`: whether the
callback's life is over), so the widget keeps no list of its own (docs/callbacks.md).

::

    scheduled --claimed--> dialing --> done | failed | interrupted
        |                     |
        +--> cancelled        +--> scheduled (tried again later)

    failed | interrupted --placed again by the site owner--> scheduled

A callback never leaves a final status on its own; the one way out is the site owner's
(`PLACEABLE_AGAIN`, the admin page's "place again"), which starts a new life with its
attempts counted afresh.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping


class CallbackStatus(enum.StrEnum):
    SCHEDULED = "scheduled"  # waiting for its time (or for a free line)
    DIALING = "dialing"  # claimed by a worker, being placed
    DONE = "done"  # the operator and the visitor talked
    FAILED = "failed"  # not reached after its attempts, or it could not be placed
    CANCELLED = "cancelled"  # by the visitor (or the site owner), while it was scheduled
    INTERRUPTED = "interrupted"  # its worker stopped mid-call: never placed again on its own

    @property
    def final(self) -> bool:
        """A status the callback never leaves on its own."""
        return not TRANSITIONS[self]


# The moves of a callback's own life (the scheduler, its job, the visitor).
TRANSITIONS: Mapping[CallbackStatus, frozenset[CallbackStatus]] = {
    CallbackStatus.SCHEDULED: frozenset({CallbackStatus.DIALING, CallbackStatus.CANCELLED}),
    CallbackStatus.DIALING: frozenset(
        {
            CallbackStatus.SCHEDULED,
            CallbackStatus.DONE,
            CallbackStatus.FAILED,
            CallbackStatus.INTERRUPTED,
        }
    ),
    CallbackStatus.DONE: frozenset(),
    CallbackStatus.FAILED: frozenset(),
    CallbackStatus.CANCELLED: frozenset(),
    CallbackStatus.INTERRUPTED: frozenset(),
}

FINAL = frozenset(status for status in CallbackStatus if status.final)

# The final statuses the site owner may schedule again (to `scheduled`, due now).
PLACEABLE_AGAIN = frozenset({CallbackStatus.FAILED, CallbackStatus.INTERRUPTED})


def sources(target: CallbackStatus) -> frozenset[CallbackStatus]:
    """The statuses a callback may move to `target` from in its own life."""
    return frozenset(status for status, targets in TRANSITIONS.items() if target in targets)


class CallbackEvent(enum.StrEnum):
    """What a callback's history records, in order (docs/callbacks.md). A move to a status
    is recorded under the status's own name."""

    REQUESTED = "requested"
    WAITING = "waiting"  # due, but its site (or the gateway) has no free line: it waits
    DIALING = "dialing"  # a try begins
    CALLING_OPERATOR = "calling_operator"
    OPERATOR_ANSWERED = "operator_answered"
    CALLING_VISITOR = "calling_visitor"
    CONNECTED = "connected"
    SCHEDULED = "scheduled"  # this try failed, the next one is at due_at (or placed again)
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


# Events a move of the store records under the status's name.
STATUS_EVENTS = frozenset(CallbackEvent(status.value) for status in CallbackStatus)
