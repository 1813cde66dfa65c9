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
  the cause of the last one to give up (`no_answer` when it rang out), mapped by
  `gateway.calls.causes` (a SIP status no named cause covers: `phone_system_refused`, with
  the status in words as the page's `reason`).
- A destination that redirects (3xx) is replaced by the Contacts it gave that the site may
  call (`RingPlan.may_send_to`, the site's `transfer_to`), rung one after another in
  q order at once, each for `ring_timeout`, at most `max_redirects` 3xx deep; a redirect
  with none of those fails that destination with `redirect_failed`. Redirect targets are
  added destinations (indices after the site's), named by `redirect_target`.
- Once answered, the operator may transfer the call (`TransferAsked`, a REFER): only to a
  target the site allows (else refused, 403), one transfer at a time (491). The target is
  an added destination too, rung for `ring_timeout` while the visitor hears ringback
  (`TransferStarted`); when it answers it gets the call and the operator's leg is hung up;
  when it does not, the call goes back to the operator (`Connect`), or ends
  `transfer_failed` when the operator has left meanwhile (which alone ends nothing).
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
from collections.abc import Callable
from dataclasses import dataclass

from gateway.api import EndCause
from gateway.calls.causes import cause_for
from gateway.sites.routing import RingStrategy
from sip_bridge import EndReason, status_words

MAX_REDIRECTS = 3  # 3xx followed in a row from one site destination


def _nowhere(uri: str) -> bool:
    return False


@dataclass(frozen=True, slots=True)
class RingPlan:
    """What one call's ringing is given: the site's routing, resolved for this call."""

    destinations: int  # how many; events and actions name them by index
    strategy: RingStrategy = RingStrategy.SEQUENTIAL
    ring_timeout: float = 30.0  # seconds one destination rings
    ring_total: float | None = None  # seconds all of them ring together; None: no limit
    first: int = 0  # round-robin: the index this call starts from
    connect_timeout: float = 5.0  # seconds the browser's media path may take to come up
    # Whether the operator's side may send the call to a URI (a 3xx's Contact, a REFER's
    # target): the site's `transfer_to` (toll fraud).
    may_send_to: Callable[[str], bool] = _nowhere
    max_redirects: int = MAX_REDIRECTS

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
    status: int | None = None  # the SIP status that ended it, if one did


@dataclass(frozen=True, slots=True)
class DestinationRedirected:
    """A ringing destination answered 3xx: call `targets` (its Contacts, highest q first)
    instead, where the site allows."""

    destination: int
    status: int
    targets: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TransferAsked:
    """The destination that has the call asks us to call `target` in its place (REFER)."""

    destination: int
    target: str


@dataclass(frozen=True, slots=True)
class HangUp:
    """Our side ends the call: the visitor hung up, the browser's connection failed, no
    RTP, the maximum duration, an unusable answer, a transfer that failed."""

    cause: EndCause
    detail: str = ""
    reason: str = ""  # a SIP status in words, for the page


RingingEvent = (
    BrowserConnected
    | DestinationEarlyMedia
    | DestinationAnswered
    | DestinationEnded
    | DestinationRedirected
    | TransferAsked
    | HangUp
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
    an answer that comes too late (a `Cancel`), or the refusal of a REFER, may follow it."""

    cause: EndCause
    detail: str = ""
    reason: str = ""  # the SIP status that ended it, in standard words ("" if none)


@dataclass(frozen=True, slots=True)
class RefuseTransfer:
    """Answer the destination's REFER with `status` (403 elsewhere, 491 one at a time)."""

    destination: int
    status: int


@dataclass(frozen=True, slots=True)
class TransferStarted:
    """Accept the REFER of `transferor` (202): the visitor hears ringback while `target`, an
    added destination, rings (its `Ring` follows)."""

    transferor: int
    target: int


RingingAction = Ring | Cancel | Connect | End | RefuseTransfer | TransferStarted


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
        self._last_failure: tuple[EndCause, str, str] = (EndCause.NO_ANSWER, "ring timeout", "")
        # Redirect targets, by their added index: (the site destination they come from,
        # the URI); how many 3xx deep each is; the targets of the same 3xx still to try
        # after it; every target added (one URI is rung once).
        self._redirected: dict[int, tuple[int, str]] = {}
        self._hops: dict[int, int] = {}
        self._alternatives: dict[int, list[int]] = {}
        self._tried: set[str] = set()
        # The transfer under way: (the destination that asked, its target), or None.
        self.transfer: tuple[int, int] | None = None
        self._transfer_targets: dict[int, str] = {}

    # ------------------------------------------------------------------ interface
    def handle(self, event: RingingEvent, now: float) -> None:
        """Take one event at `now`; then read `next_action()` until None."""
        destination = getattr(event, "destination", 0)
        if not 0 <= destination < len(self.destinations):
            raise ValueError(f"no destination {destination} in this call")
        if isinstance(event, BrowserConnected):
            self._browser_connected(now)
        elif isinstance(event, DestinationAnswered):
            self._answered(event.destination)
        elif isinstance(event, DestinationEnded):
            self._destination_ended(event, now)
        elif isinstance(event, DestinationEarlyMedia):
            self._early_media(event.destination)
        elif isinstance(event, DestinationRedirected):
            self._redirected_from(event, now)
        elif isinstance(event, TransferAsked):
            self._transfer_asked(event, now)
        elif isinstance(event, HangUp):
            self._end(event.cause, event.detail, event.reason)
        else:
            raise TypeError(f"not a ringing event: {event!r}")

    def next_action(self) -> RingingAction | None:
        return self._actions.popleft() if self._actions else None

    def redirect_target(self, destination: int) -> tuple[int, str] | None:
        """For a destination a redirect or a transfer added: the site destination it comes
        from (whose credentials and proxy it uses) and its URI. None for the site's own."""
        return self._redirected.get(destination)

    def transfer_target(self, destination: int) -> bool:
        """Whether this destination was added by a transfer."""
        return destination in self._transfer_targets

    def get_timer(self) -> float | None:
        """When `handle_timer` must be called next, or None."""
        if self.state is RingingState.WAITING_FOR_BROWSER:
            return self._connect_deadline
        if self.state is RingingState.RINGING and self._deadlines:
            return min(self._ring_deadline, *self._deadlines.values())
        if self.state is RingingState.CONNECTED and self._deadlines:
            return min(self._deadlines.values())  # a transfer target's
        return None

    def handle_timer(self, now: float) -> None:
        if self.state is RingingState.WAITING_FOR_BROWSER:
            if now >= self._connect_deadline:
                self._end(
                    EndCause.FAILED,
                    f"the browser's media did not connect within {self.plan.connect_timeout:g} s",
                )
            return
        if self.state is RingingState.CONNECTED and self.transfer is not None:
            target = self.transfer[1]
            if now >= self._deadlines.get(target, math.inf):
                self._give_up(target)
                self._transfer_failed("the transfer target did not answer")
            return
        if self.state is not RingingState.RINGING:
            return
        if now >= self._ring_deadline:
            self._end(EndCause.NO_ANSWER, "ring timeout")
            return
        rang_out = [d for d, deadline in self._deadlines.items() if now >= deadline]
        for destination in rang_out:
            self._give_up(destination)
            self._last_failure = (EndCause.NO_ANSWER, "ring timeout", "")
            self._ring_alternative(destination, now)
        if rang_out and not self._anyone_ringing():
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
            self.transfer is not None
            and destination == self.transfer[1]
            and self.destinations[destination] is DestinationState.RINGING
        ):
            self._transfer_answered(destination)
            return
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
        if (
            self.transfer is not None
            and destination == self.transfer[1]
            and self.destinations[destination] is DestinationState.RINGING
        ):
            self._actions.append(Connect(destination, answered=False))
        elif self.state is RingingState.RINGING:
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
        cause, reason = cause_for(event.reason, event.status)
        if self.transfer is not None and destination in self.transfer:
            if destination == self.transfer[1]:  # the target: busy, declined, unreachable
                self._transfer_failed(event.detail or str(cause))
            return  # the operator left while the target rings: the target may answer
        if state is DestinationState.ANSWERED:
            self._end(cause, event.detail, reason)  # the operator hung up, or their side failed
            return
        self._failed(destination, (cause, event.detail, reason), now)

    def _failed(self, destination: int, failure: tuple[EndCause, str, str], now: float) -> None:
        """A ringing destination stopped without an answer: the next target of its
        redirect, the next destination in order once none rings, or the end."""
        self._last_failure = failure
        if not self._ring_alternative(destination, now) and not self._anyone_ringing():
            self._next(now)

    def _ring_alternative(self, destination: int, now: float) -> bool:
        alternatives = self._alternatives.pop(destination, [])
        if not alternatives or now >= self._ring_deadline:
            return False
        self._ring(alternatives[0], now)
        return True

    def _anyone_ringing(self) -> bool:
        return any(s is DestinationState.RINGING for s in self.destinations)

    def _redirected_from(self, event: DestinationRedirected, now: float) -> None:
        destination = event.destination
        state = self.destinations[destination]
        if state is not DestinationState.RINGING:
            # A 3xx crossing our CANCEL, or told twice: its end is all there is to it.
            if state is DestinationState.GIVEN_UP:
                self.destinations[destination] = DestinationState.ENDED
            return
        self.destinations[destination] = DestinationState.ENDED
        self._deadlines.pop(destination, None)
        words = status_words(event.status)
        if self.transfer is not None and destination == self.transfer[1]:
            # A transfer goes where the operator said, or nowhere: no redirects.
            self._transfer_failed(f"{words}: the transfer target redirected the call")
            return
        hops = self._hops.get(destination, 0) + 1
        if hops > self.plan.max_redirects:
            failure = f"{words}: more than {self.plan.max_redirects} redirects"
        else:
            fresh = []
            for target in event.targets:
                if target not in self._tried and self.plan.may_send_to(target):
                    self._tried.add(target)
                    fresh.append(target)
            if fresh:
                origin = self._redirected.get(destination, (destination, ""))[0]
                added = list(range(len(self.destinations), len(self.destinations) + len(fresh)))
                for index, target in zip(added, fresh, strict=True):
                    self.destinations.append(DestinationState.WAITING)
                    self._redirected[index] = (origin, target)
                    self._hops[index] = hops
                # Each target's alternatives: the ones after it in this 3xx, then what the
                # destination it replaces had left (an earlier 3xx's other targets).
                left = self._alternatives.pop(destination, [])
                for position, index in enumerate(added):
                    self._alternatives[index] = added[position + 1 :] + left
                self._ring(added[0], now)
                return
            failure = f"{words}: no target we may call"
        self._failed(destination, (EndCause.REDIRECT_FAILED, failure, words), now)

    def _transfer_asked(self, event: TransferAsked, now: float) -> None:
        transferor = event.destination
        if self.state is not RingingState.CONNECTED or transferor != self.winner:
            self._actions.append(RefuseTransfer(transferor, 403))
        elif self.transfer is not None:
            self._actions.append(RefuseTransfer(transferor, 491))
        elif not self.plan.may_send_to(event.target):
            self._actions.append(RefuseTransfer(transferor, 403))
        else:
            target = len(self.destinations)
            self.destinations.append(DestinationState.WAITING)
            origin = self._redirected.get(transferor, (transferor, ""))[0]
            self._redirected[target] = (origin, event.target)
            self._transfer_targets[target] = event.target
            self.transfer = (transferor, target)
            self._actions.append(TransferStarted(transferor, target))
            self.destinations[target] = DestinationState.RINGING
            self._deadlines[target] = now + self.plan.ring_timeout
            self._actions.append(Ring(target))

    def _transfer_answered(self, target: int) -> None:
        assert self.transfer is not None
        transferor = self.transfer[0]
        self.transfer = None
        self._deadlines.clear()
        self.winner = target
        self.destinations[target] = DestinationState.ANSWERED
        self._actions.append(Connect(target, answered=True))
        if self.destinations[transferor] is DestinationState.ANSWERED:
            self._give_up(transferor)  # BYE: the operator's part is done

    def _transfer_failed(self, detail: str) -> None:
        assert self.transfer is not None
        transferor = self.transfer[0]
        self.transfer = None
        self._deadlines.clear()
        if self.destinations[transferor] is DestinationState.ANSWERED:
            self._actions.append(Connect(transferor, answered=True))  # back to the operator
        else:
            self._end(EndCause.TRANSFER_FAILED, detail)

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

    def _end(self, cause: EndCause, detail: str, reason: str = "") -> None:
        if self.state is RingingState.ENDED:
            return
        for destination, state in enumerate(self.destinations):
            if state in (DestinationState.RINGING, DestinationState.ANSWERED):
                self._give_up(destination)
        self.state = RingingState.ENDED
        self.cause = cause
        self._deadlines.clear()
        self._actions.append(End(cause, detail, reason))
