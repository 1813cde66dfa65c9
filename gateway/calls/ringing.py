"""The ringing core of a browser call: when to ring, whom, when to give up on whom, who gets
the call, and the cause it ends with.

Sans-I/O (docs/architecture.md, "The sans-I/O pattern"): it is fed events and the time and
says what to do next; it never touches a socket, a clock or a task. `gateway.calls.call.Call`
is its asyncio driver (RTP, INVITE/CANCEL/BYE, the media bridge, the page)::

    ringing = Ringing(plan, now)                    # waits for the browser's media path
    ringing.handle(BrowserConnected(), now)         # and every other event, with the time
    while (action := ringing.next_action()) is not None:
        ...                                         # Ring, Cancel, Connect, End
    deadline = ringing.get_timer()                  # when to call handle_timer, or None
    ringing.handle_timer(now)

The rules it keeps:

- Nobody is rung before the browser's media path is up (ICE connected, DTLS done): a call
  whose media never comes up ends (`failed`) after `connect_timeout` without ringing a phone,
  so offers whose ICE cannot complete cannot hold calls (and their limits' slots) for long.
- Destinations are named by their index in the site's list. `parallel` rings them all at
  once; `sequential` one after the other in list order; `round-robin` likewise from `first`
  on. Each rings for `ring_timeout` at most, and all of them together for `ring_total`.
- The first to answer gets the call, every other one still ringing is cancelled; an answer
  that comes after its destination was given up on (a 200 crossing our CANCEL), or after
  another answered, is hung up at once.
- A destination that fails (busy, declined, unreachable...) while another rings changes
  nothing; in order, the next one is rung at once. When none is left the call ends with
  the cause of the last one to give up (`no_answer` when it rang out), mapped by `CAUSES`.
- Early media is played only from a destination ringing alone: from one of several it
  would be a guess.
- After the answer, the destination's end is the call's end (`operator_hung_up`, ...); our
  own end (`HangUp`: the visitor, the browser's connection, no RTP, the time limit) cancels
  or hangs up whatever is live and ends with the cause given. The first cause decided wins.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass

from gateway.api import EndCause
from gateway.sites.routing import RingStrategy
from sip_bridge import EndReason

# How a destination's SIP end reads on the page, when it ends the call.
CAUSES: dict[EndReason, EndCause] = {
    EndReason.BUSY: EndCause.BUSY,
    EndReason.NO_ANSWER: EndCause.NO_ANSWER,
    EndReason.DECLINED: EndCause.DECLINED,
    EndReason.UNREACHABLE: EndCause.UNREACHABLE,
    EndReason.NOT_FOUND: EndCause.UNREACHABLE,
    EndReason.REMOTE_HANGUP: EndCause.OPERATOR_HUNG_UP,
    EndReason.LOCAL_HANGUP: EndCause.VISITOR_HUNG_UP,
    EndReason.CANCELLED: EndCause.VISITOR_HUNG_UP,
}


def cause_of(reason: EndReason) -> EndCause:
    """The page's cause for a destination's SIP end (anything unlisted: `failed`)."""
    return CAUSES.get(reason, EndCause.FAILED)


@dataclass(frozen=True, slots=True)
class RingPlan:
    """What one call's ringing is given: the site's routing, resolved for this call."""

    destinations: int  # how many; events and actions name them by index
    strategy: RingStrategy = RingStrategy.SEQUENTIAL
    ring_timeout: float = 30.0  # seconds one destination rings
    ring_total: float | None = None  # seconds all of them ring together; None: no limit
    first: int = 0  # round-robin: the index this call starts from
    connect_timeout: float = 5.0  # seconds the browser's media path may take to come up

    def __post_init__(self) -> None:
        if self.destinations < 1:
            raise ValueError("a call needs at least one destination")
        for name in ("ring_timeout", "connect_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.ring_total is not None and not self.ring_total > 0:
            raise ValueError("ring_total must be positive or None")


# --------------------------------------------------------------------------- events (in)


@dataclass(frozen=True, slots=True)
class BrowserConnected:
    """The browser's media path is up (ICE connected and DTLS done)."""


@dataclass(frozen=True, slots=True)
class DestinationEarlyMedia:
    """A ringing destination sent early media (183 with SDP)."""

    destination: int


@dataclass(frozen=True, slots=True)
class DestinationAnswered:
    """A destination answered (200 OK)."""

    destination: int


@dataclass(frozen=True, slots=True)
class DestinationEnded:
    """A destination's SIP call ended: failed before an answer, or hung up after one; or
    it could not be placed at all (`reason` FAILED)."""

    destination: int
    reason: EndReason
    detail: str = ""


@dataclass(frozen=True, slots=True)
class HangUp:
    """Our side ends the call: the visitor hung up, the browser's connection failed, no
    RTP, the maximum duration, an unusable answer."""

    cause: EndCause
    detail: str = ""


RingingEvent = (
    BrowserConnected | DestinationEarlyMedia | DestinationAnswered | DestinationEnded | HangUp
)


# --------------------------------------------------------------------------- actions (out)


@dataclass(frozen=True, slots=True)
class Ring:
    """Place a call to this destination (open its RTP, send INVITE)."""

    destination: int


@dataclass(frozen=True, slots=True)
class Cancel:
    """Stop this destination's call: CANCEL while it rings, BYE once it answered."""

    destination: int


@dataclass(frozen=True, slots=True)
class Connect:
    """Bridge this destination's media to the browser: its answer (`answered`), or its
    early media while it rings alone."""

    destination: int
    answered: bool


@dataclass(frozen=True, slots=True)
class End:
    """The call is over: tell the page why, and release everything. Only the hang-up of
    an answer that comes too late (a `Cancel`) may follow it."""

    cause: EndCause
    detail: str = ""


RingingAction = Ring | Cancel | Connect | End


# --------------------------------------------------------------------------- states


class RingingState(enum.Enum):
    WAITING_FOR_BROWSER = "waiting_for_browser"  # nobody rung until its media is up
    RINGING = "ringing"
    CONNECTED = "connected"  # a destination answered
    ENDED = "ended"


class DestinationState(enum.Enum):
    WAITING = "waiting"  # not rung (yet)
    RINGING = "ringing"
    ANSWERED = "answered"  # the one that has the call
    GIVEN_UP = "given_up"  # we cancelled it (rang out, another answered, the call ended)
    ENDED = "ended"  # its call is over


class Ringing:
    """One call's ringing, from the browser's offer answered to the call's end."""

    def __init__(self, plan: RingPlan, now: float) -> None:
        self.plan = plan
        self.state = RingingState.WAITING_FOR_BROWSER
        self.destinations = [DestinationState.WAITING] * plan.destinations
        self.winner: int | None = None
        self.cause: EndCause | None = None  # once ENDED
        self._actions: deque[RingingAction] = deque()
        start = plan.first % plan.destinations if plan.strategy is RingStrategy.ROUND_ROBIN else 0
        self._order = [(start + k) % plan.destinations for k in range(plan.destinations)]
        self._connect_deadline = now + plan.connect_timeout
        self._ring_deadline = math.inf  # all destinations together
        self._deadlines: dict[int, float] = {}  # each ringing destination's
        # Why the last destination given up on stopped: the call's cause if none answers.
        self._last_failure: tuple[EndCause, str] = (EndCause.NO_ANSWER, "ring timeout")

    # ------------------------------------------------------------------ interface
    def handle(self, event: RingingEvent, now: float) -> None:
        """Take one event at `now`; then read `next_action()` until None."""
        destination = getattr(event, "destination", 0)
        if not 0 <= destination < self.plan.destinations:
            raise ValueError(f"no destination {destination} in this call")
        if isinstance(event, BrowserConnected):
            self._browser_connected(now)
        elif isinstance(event, DestinationAnswered):
            self._answered(event.destination)
        elif isinstance(event, DestinationEnded):
            self._destination_ended(event, now)
        elif isinstance(event, DestinationEarlyMedia):
            self._early_media(event.destination)
        elif isinstance(event, HangUp):
            self._end(event.cause, event.detail)
        else:
            raise TypeError(f"not a ringing event: {event!r}")

    def next_action(self) -> RingingAction | None:
        return self._actions.popleft() if self._actions else None

    def get_timer(self) -> float | None:
        """When `handle_timer` must be called next, or None."""
        if self.state is RingingState.WAITING_FOR_BROWSER:
            return self._connect_deadline
        if self.state is RingingState.RINGING and self._deadlines:
            return min(self._ring_deadline, *self._deadlines.values())
        return None

    def handle_timer(self, now: float) -> None:
        if self.state is RingingState.WAITING_FOR_BROWSER:
            if now >= self._connect_deadline:
                self._end(
                    EndCause.FAILED,
                    f"the browser's media did not connect within {self.plan.connect_timeout:g} s",
                )
            return
        if self.state is not RingingState.RINGING:
            return
        if now >= self._ring_deadline:
            self._end(EndCause.NO_ANSWER, "ring timeout")
            return
        rang_out = [d for d, deadline in self._deadlines.items() if now >= deadline]
        for destination in rang_out:
            self._give_up(destination)
            self._last_failure = (EndCause.NO_ANSWER, "ring timeout")
        if rang_out:
            self._next(now)

    # ------------------------------------------------------------------ rules
    def _browser_connected(self, now: float) -> None:
        if self.state is not RingingState.WAITING_FOR_BROWSER:
            return
        self.state = RingingState.RINGING
        if self.plan.ring_total is not None:
            self._ring_deadline = now + self.plan.ring_total
        if self.plan.strategy is RingStrategy.PARALLEL:
            for destination in self._order:
                self._ring(destination, now)
        else:
            self._next(now)

    def _answered(self, destination: int) -> None:
        if (
            self.state is not RingingState.RINGING
            or self.destinations[destination] is not DestinationState.RINGING
        ):
            # Too late: another has the call, we gave up on it, or the call is over.
            if self.destinations[destination] is not DestinationState.ENDED:
                self.destinations[destination] = DestinationState.GIVEN_UP
            self._actions.append(Cancel(destination))
            return
        self.state = RingingState.CONNECTED
        self.winner = destination
        self.destinations[destination] = DestinationState.ANSWERED
        self._deadlines.clear()
        for other, state in enumerate(self.destinations):
            if state is DestinationState.RINGING:
                self._give_up(other)
        self._actions.append(Connect(destination, answered=True))

    def _early_media(self, destination: int) -> None:
        if self.state is RingingState.RINGING:
            ringing = [d for d, s in enumerate(self.destinations) if s is DestinationState.RINGING]
            if ringing == [destination]:
                self._actions.append(Connect(destination, answered=False))

    def _destination_ended(self, event: DestinationEnded, now: float) -> None:
        destination = event.destination
        state = self.destinations[destination]
        if state is DestinationState.WAITING or state is DestinationState.ENDED:
            return  # never rung, or told twice
        self.destinations[destination] = DestinationState.ENDED
        self._deadlines.pop(destination, None)
        if self.state is RingingState.ENDED or state is DestinationState.GIVEN_UP:
            return  # the end of a call we stopped ourselves
        cause = cause_of(event.reason)
        if state is DestinationState.ANSWERED:
            self._end(cause, event.detail)  # the operator hung up, or their side failed
            return
        self._last_failure = (cause, event.detail)
        if not any(s is DestinationState.RINGING for s in self.destinations):
            self._next(now)

    def _next(self, now: float) -> None:
        """Nobody rings: ring the next destination in order, or end the call."""
        if now < self._ring_deadline:
            for destination in self._order:
                if self.destinations[destination] is DestinationState.WAITING:
                    self._ring(destination, now)
                    return
        self._end(*self._last_failure)

    def _ring(self, destination: int, now: float) -> None:
        self.destinations[destination] = DestinationState.RINGING
        self._deadlines[destination] = min(now + self.plan.ring_timeout, self._ring_deadline)
        self._actions.append(Ring(destination))

    def _give_up(self, destination: int) -> None:
        self.destinations[destination] = DestinationState.GIVEN_UP
        self._deadlines.pop(destination, None)
        self._actions.append(Cancel(destination))

    def _end(self, cause: EndCause, detail: str) -> None:
        if self.state is RingingState.ENDED:
            return
        for destination, state in enumerate(self.destinations):
            if state in (DestinationState.RINGING, DestinationState.ANSWERED):
                self._give_up(destination)
        self.state = RingingState.ENDED
        self.cause = cause
        self._deadlines.clear()
        self._actions.append(End(cause, detail))
