"""The four transaction state machines of RFC 3261 §17, with the fixes of RFC 6026.

Each transaction is sans-I/O: it sends through a `send(data, address)` callable given by its
owner, reports to its transaction user (TU) through the callbacks of `TransactionUser`, and
keeps named timers as absolute deadlines that the owner fires with `handle_timer(now)`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sip_bridge.headers import Headers
from sip_bridge.message import Request, Response

Address = tuple[str, int]
SendFunction = Callable[[bytes, Address], None]

MAGIC_COOKIE = "z9hG4bK"


@dataclass(frozen=True)
class TimerSettings:
    """RFC 3261 timer base values, in seconds (Table 4)."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0


class State(enum.Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class TransactionUser(Protocol):
    def transaction_response(
        self, tx: ClientTransaction, response: Response, now: float
    ) -> None: ...
    def transaction_timeout(self, tx: Transaction, now: float) -> None: ...
    def transaction_terminated(self, tx: Transaction) -> None: ...


class Transaction:
    """What the four machines share: a state, named timers and a way to send."""

    key: tuple

    def __init__(
        self, send: SendFunction, tu: TransactionUser, *, reliable: bool, timers: TimerSettings
    ) -> None:
        self._send = send
        self.tu = tu
        self.reliable = reliable
        self.t = timers
        self.state = State.TRYING
        self._deadlines: dict[str, float] = {}
        self._intervals: dict[str, float] = {}

    def get_timer(self) -> float | None:
        return min(self._deadlines.values()) if self._deadlines else None

    def handle_timer(self, now: float) -> None:
        for name, deadline in sorted(self._deadlines.items(), key=lambda item: item[1]):
            if deadline <= now and name in self._deadlines and self.state != State.TERMINATED:
                del self._deadlines[name]
                getattr(self, f"_timer_{name}")(now)

    def _start(self, name: str, now: float, interval: float) -> None:
        self._intervals[name] = interval
        self._deadlines[name] = now + interval

    def _stop(self, name: str) -> None:
        self._deadlines.pop(name, None)

    def _terminate(self) -> None:
        if self.state != State.TERMINATED:
            self.state = State.TERMINATED
            self._deadlines.clear()
            self.tu.transaction_terminated(self)

    def timer_names(self) -> set[str]:
        """The timers running now (for tests and diagnostics)."""
        return set(self._deadlines)


class ClientTransaction(Transaction):
    """Sends one request to one address and delivers its responses."""

    def __init__(
        self,
        request: Request,
        destination: Address,
        send: SendFunction,
        tu: TransactionUser,
        *,
        reliable: bool,
        timers: TimerSettings,
    ) -> None:
        super().__init__(send, tu, reliable=reliable, timers=timers)
        self.request = request
        self.destination = destination
        self.branch = request.top_via.branch or ""
        self.method = request.method
        self.key = (self.branch, self.method)
        self._wire = request.serialize()
        self.last_response: Response | None = None

    def _transmit(self) -> None:
        self._send(self._wire, self.destination)

    def start(self, now: float) -> None:
        """Send the request and start the timers (the two machines differ)."""
        raise NotImplementedError

    def receive_response(self, response: Response, now: float) -> None:
        """A response to our request (the INVITE and non-INVITE machines differ)."""
        raise NotImplementedError

    def transport_error(self, now: float) -> None:
        if self.state != State.TERMINATED:
            self.tu.transaction_timeout(self, now)
            self._terminate()

    def abandon(self) -> None:
        """Stop retransmitting and forget the request: its user gave up waiting (a probe
        past its deadline). Nothing more is reported but `transaction_terminated`."""
        self._terminate()


class InviteClientTransaction(ClientTransaction):
    """RFC 3261 §17.1.1 with RFC 6026's Accepted state (timer M)."""

    def start(self, now: float) -> None:
        self.state = State.CALLING
        self._transmit()
        if not self.reliable:
            self._start("A", now, self.t.t1)
        self._start("B", now, 64 * self.t.t1)

    def _timer_A(self, now: float) -> None:
        if self.state == State.CALLING:
            self._transmit()
            # Timer A doubles without the T2 cap that non-INVITE retransmissions have.
            self._start("A", now, self._intervals["A"] * 2)

    def _timer_B(self, now: float) -> None:
        if self.state == State.CALLING:
            self.tu.transaction_timeout(self, now)
            self._terminate()

    def _timer_D(self, now: float) -> None:
        self._terminate()

    def _timer_M(self, now: float) -> None:
        self._terminate()

    def receive_response(self, response: Response, now: float) -> None:
        status = response.status
        if self.state in (State.CALLING, State.PROCEEDING):
            self._stop("A")
            if status < 200:
                self.state = State.PROCEEDING
                self._stop("B")
                self.tu.transaction_response(self, response, now)
            elif status < 300:
                self.state = State.ACCEPTED
                self._stop("B")
                self._start("M", now, 64 * self.t.t1)
                self.last_response = response
                self.tu.transaction_response(self, response, now)
            else:
                self.state = State.COMPLETED
                self._stop("B")
                self.last_response = response
                self._send(build_non2xx_ack(self.request, response).serialize(), self.destination)
                self._start("D", now, 0 if self.reliable else 32.0)
                self.tu.transaction_response(self, response, now)
                if self.reliable:
                    self._terminate()
        elif self.state == State.ACCEPTED:
            if 200 <= status < 300:
                # A retransmitted or forked 2xx: the TU ACKs it again (RFC 6026 §8.4).
                self.tu.transaction_response(self, response, now)
        elif self.state == State.COMPLETED and status >= 300:
            self._send(build_non2xx_ack(self.request, response).serialize(), self.destination)


class NonInviteClientTransaction(ClientTransaction):
    """RFC 3261 §17.1.2."""

    def start(self, now: float) -> None:
        self.state = State.TRYING
        self._transmit()
        if not self.reliable:
            self._start("E", now, self.t.t1)
        self._start("F", now, 64 * self.t.t1)

    def _timer_E(self, now: float) -> None:
        if self.state in (State.TRYING, State.PROCEEDING):
            self._transmit()
            interval = (
                self.t.t2
                if self.state == State.PROCEEDING
                else min(self._intervals["E"] * 2, self.t.t2)
            )
            self._start("E", now, interval)

    def _timer_F(self, now: float) -> None:
        if self.state in (State.TRYING, State.PROCEEDING):
            self.tu.transaction_timeout(self, now)
            self._terminate()

    def _timer_K(self, now: float) -> None:
        self._terminate()

    def receive_response(self, response: Response, now: float) -> None:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return  # retransmissions of the final response are absorbed in Completed
        if response.status < 200:
            self.state = State.PROCEEDING
            self.tu.transaction_response(self, response, now)
            return
        self.state = State.COMPLETED
        self.last_response = response
        self._stop("E")
        self._stop("F")
        self.tu.transaction_response(self, response, now)
        if self.reliable:
            self._terminate()
        else:
            self._start("K", now, self.t.t4)


class ServerTransaction(Transaction):
    """Answers one received request; absorbs its retransmissions."""

    def __init__(
        self,
        request: Request,
        reply_to: Address,
        send: SendFunction,
        tu: TransactionUser,
        *,
        reliable: bool,
        timers: TimerSettings,
        source: Address | None = None,
    ) -> None:
        super().__init__(send, tu, reliable=reliable, timers=timers)
        self.request = request
        self.reply_to = reply_to
        # Where the request came from, which may differ from `reply_to` (the Via's port):
        # a CANCEL or an in-dialog request is trusted only from the same sender.
        self.source = source
        self.key = server_key(request)
        self.last_response: Response | None = None
        self._last_wire: bytes | None = None

    def _transmit(self, response: Response) -> None:
        self.last_response = response
        self._last_wire = response.serialize()
        self._send(self._last_wire, self.reply_to)

    def _retransmit(self) -> None:
        if self._last_wire is not None:
            self._send(self._last_wire, self.reply_to)

    def respond(self, response: Response, now: float) -> None:
        """Send the TU's response (the INVITE and non-INVITE machines differ)."""
        raise NotImplementedError

    def receive_request(self, request: Request, now: float) -> bool:
        """The request again (or an ACK); True when the TU must see it."""
        raise NotImplementedError


class InviteServerTransaction(ServerTransaction):
    """RFC 3261 §17.2.1 with RFC 6026's Accepted state (timer L)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.state = State.PROCEEDING

    def respond(self, response: Response, now: float) -> None:
        if self.state != State.PROCEEDING:
            return
        self._transmit(response)
        if response.status < 200:
            return
        if response.status < 300:
            # 2xx retransmissions belong to the UAS core (§13.3.1.4), not to us.
            self.state = State.ACCEPTED
            self._start("L", now, 64 * self.t.t1)
        else:
            self.state = State.COMPLETED
            if not self.reliable:
                self._start("G", now, self.t.t1)
            self._start("H", now, 64 * self.t.t1)

    def receive_request(self, request: Request, now: float) -> bool:
        """A retransmission or the ACK for a non-2xx final; True when the TU must see it."""
        if request.method == "ACK":
            if self.state == State.COMPLETED:
                self.state = State.CONFIRMED
                self._stop("G")
                self._stop("H")
                self._start("I", now, 0 if self.reliable else self.t.t4)
                return False
            return self.state == State.ACCEPTED
        if self.state in (State.PROCEEDING, State.COMPLETED):
            self._retransmit()
        return False

    def _timer_G(self, now: float) -> None:
        if self.state == State.COMPLETED:
            self._retransmit()
            self._start("G", now, min(self._intervals["G"] * 2, self.t.t2))

    def _timer_H(self, now: float) -> None:
        if self.state == State.COMPLETED:
            self.tu.transaction_timeout(self, now)
            self._terminate()

    def _timer_I(self, now: float) -> None:
        self._terminate()

    def _timer_L(self, now: float) -> None:
        self._terminate()


class NonInviteServerTransaction(ServerTransaction):
    """RFC 3261 §17.2.2."""

    def respond(self, response: Response, now: float) -> None:
        if self.state in (State.COMPLETED, State.TERMINATED):
            return
        self._transmit(response)
        if response.status < 200:
            self.state = State.PROCEEDING
            return
        self.state = State.COMPLETED
        if self.reliable:
            self._terminate()
        else:
            self._start("J", now, 64 * self.t.t1)

    def receive_request(self, request: Request, now: float) -> bool:
        if self.state in (State.PROCEEDING, State.COMPLETED):
            self._retransmit()
        return False

    def _timer_J(self, now: float) -> None:
        self._terminate()


def server_key(request: Request) -> tuple:
    """Matching key of §17.2.3; ACK and CANCEL are keyed as their INVITE where relevant."""
    via = request.top_via
    method = "INVITE" if request.method == "ACK" else request.method
    branch = via.branch or ""
    if branch.startswith(MAGIC_COOKIE):
        host, port = via.sent_by
        return (branch, host, port, method)
    # RFC 2543 peers: no unique branch, so match on the dialog-ish fields (§17.2.3).
    to_tag = request.to.tag if request.method != "ACK" else None
    return (
        "2543",
        str(request.uri),
        to_tag,
        request.from_.tag,
        request.call_id,
        request.cseq.seq,
        method,
        str(via),
    )


def same_transaction_request(invite: Request, method: str, to: str) -> Request:
    """An ACK (for a 3xx-6xx, §17.1.1.3) or a CANCEL (§9.1) of an INVITE: the INVITE's
    Request-URI, top Via (so its branch), routes, From, Call-ID and CSeq number."""
    headers = Headers()
    headers.add("Via", invite.headers.get_list("Via")[0])
    for route in invite.headers.get_all("Route"):
        headers.add("Route", route)
    headers.add("Max-Forwards", "70")
    headers.add("From", invite.headers.get("From") or "")
    headers.add("To", to)
    headers.add("Call-ID", invite.call_id)
    headers.add("CSeq", f"{invite.cseq.seq} {method}")
    return Request(method, invite.uri, headers)


def build_non2xx_ack(invite: Request, response: Response) -> Request:
    """The ACK a client transaction sends for a 3xx-6xx (RFC 3261 §17.1.1.3)."""
    return same_transaction_request(invite, "ACK", response.headers.get("To") or "")
