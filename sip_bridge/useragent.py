"""The sans-I/O SIP user agent: calls out (and, optionally, in) over one transport, asks
whether a peer is there (OPTIONS outside any dialog, `options`), and sends and takes
page-mode instant messages (RFC 3428 MESSAGE outside any dialog: `message`, and with
`accept_messages` `MessageReceived` answered by `reply_message`; sip_bridge.pager).

Shaped like aioquic's `QuicConnection`: the owner feeds `receive_datagram(data, addr, now)`,
sends what `datagrams_to_send(now)` returns, wakes it at `get_timer()` with
`handle_timer(now)`, and reads `next_event()`. Nothing here touches a socket or a clock.

It is a user agent, not a proxy: requests outside our dialogs other than OPTIONS (and INVITE
when `accept_incoming` is set, for a phone, and MESSAGE when `accept_messages` is) are
refused, so it can never relay a call.

What it speaks besides RFC 3261 (docs/sip.md has the table of sections):
- reliable provisional responses (RFC 3262): `Supported: 100rel`, a PRACK for each reliable
  1xx in order, its SDP taken as the answer (early media);
- session timers (RFC 4028) in both roles: `Session-Expires`/`Min-SE` in the INVITE, a 422
  retried with the larger interval, a refresh (UPDATE where the peer allows it, else a
  re-INVITE with our last SDP) at half the interval when we are the refresher, a BYE when
  the peer is the refresher and its refresh does not come;
- transfer as the transferee (RFC 3515, RFC 5589, RFC 4488): a REFER in a dialog is offered
  to the owner (`TransferRequested`), who accepts it and reports the new call's progress by
  NOTIFY with a sipfrag (`notify_transfer`);
- redirects (3xx): the Contacts tried in q order, only those the call's `redirect_policy`
  allows, at most `max_redirects` deep; without a policy the call ends `REDIRECTED` with the
  Contacts in `CallEnded.targets`, for an owner that decides itself (the gateway does);
- locating servers (RFC 3263): with `resolve_names`, a name to route to is asked of the I/O
  layer (`LocateRequest`), whose addresses are tried in order, failing over on a timeout, a
  transport error or a 503 (`sip_bridge.locate` does the DNS part);
- registration (`register`, `sip_bridge.registration`): REGISTER with digest, refreshed
  before it runs out, retried with a growing wait after a failure.

Each call's progress is one `CallState` with allowed transitions (`sip_bridge.call_state`).

The edge facing the network (what a datagram must pass before it can change anything):
- `allowed_peers`: datagrams from addresses outside these networks are dropped unread.
- `request_rate`: requests beyond a token bucket per source IP are dropped unread.
- A response is taken only from the address its request was sent to (the next hop: the
  outbound proxy, or the host of the Request-URI), IP and port on UDP, IP on TCP/TLS.
- A request inside a dialog (BYE, re-INVITE, UPDATE, INFO, REFER, ACK for our 2xx) is taken
  only from the dialog's peer: the address we send the dialog's requests to (first route,
  the outbound proxy, or the remote target), the remote target itself, where the INVITE
  went, or where an incoming INVITE came from. Same port on UDP; on TCP/TLS, where
  connections come from ephemeral ports and a source cannot be forged blind, the same IP.
  A CANCEL is taken only from the sender of the INVITE it cancels.
  Anything else is dropped without an answer: answering would reflect traffic to a forged
  source, and a 481 could make a genuine but misrouted peer drop its side of the call.
- Host names in URIs are compared through the resolutions the I/O layer reports
  (`address_resolved`, `targets_resolved`).
- Nothing a peer sends makes us send faster than it does: a session interval below two
  seconds is read as two, redirects and failover targets are bounded, and retries after
  491/500 wait seconds.
Each drop is counted in `counters`.
"""

from __future__ import annotations

import random
import secrets
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from sip_bridge import digest, pager
from sip_bridge.call_state import CallProgress, CallState
from sip_bridge.dialog import Dialog
from sip_bridge.errors import SipParseError
from sip_bridge.events import (
    AckReceived,
    CallAnswered,
    CallEnded,
    CallRedirected,
    CallRinging,
    EarlyMedia,
    EndReason,
    Event,
    IncomingCall,
    InfoReceived,
    LocateRequest,
    MessageReceived,
    MessageResult,
    MessageTrace,
    OfferReceived,
    OptionsResult,
    RegistrationChanged,
    TransferRequested,
    reason_for_status,
)
from sip_bridge.events import (
    CallProgress as ProgressEvent,
)
from sip_bridge.headers import Headers, canonical_name, is_token
from sip_bridge.locate import needs_dns
from sip_bridge.message import (
    Request,
    RequestParseError,
    Response,
    bad_request_response,
    new_response,
    parse_message,
)
from sip_bridge.peer_addresses import AllowedPeers, IPNetwork, KnownNames
from sip_bridge.rate_limit import RateLimit, SourceRateLimiter
from sip_bridge.redirect import RedirectPolicy, redirect_targets
from sip_bridge.refer import SIPFRAG_CONTENT_TYPE, ReferError, ReferTarget, parse_refer, sipfrag
from sip_bridge.registration import (
    MAX_MIN_EXPIRES_RETRIES,
    Registration,
    RegistrationSettings,
    RegistrationState,
)
from sip_bridge.session_timer import (
    RFC_MIN_SE,
    SessionTimer,
    min_se_of,
    supports,
    timer_for_request,
    timer_from_response,
)
from sip_bridge.transaction import (
    MAGIC_COOKIE,
    Address,
    ClientTransaction,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    ServerTransaction,
    State,
    TimerSettings,
    Transaction,
    same_transaction_request,
    server_key,
)
from sip_bridge.uri import NameAddress, SipUri, Uri, parse_sip_uri, parse_uri, quote_display_name

ALLOWED_METHODS = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REFER"
# As the caller we take reliable provisional responses; as the answerer we send none.
SUPPORTED = "100rel, timer, norefersub"
SUPPORTED_AS_UAS = "timer, norefersub"
KNOWN_UNSUPPORTED = frozenset({"REGISTER", "SUBSCRIBE", "NOTIFY", "MESSAGE", "PUBLISH", "PRACK"})
SDP = "application/sdp"
_ClientTx = TypeVar("_ClientTx", bound=ClientTransaction)
_ServerTx = TypeVar("_ServerTx", bound=ServerTransaction)
MAX_SESSION_RETRIES = 2  # 422s followed for one request
MAX_FAILOVER_TARGETS = 8
SUBSCRIPTION_SECONDS = 180  # how long a transfer's implicit subscription lasts (RFC 3515)


class CallError(RuntimeError):
    """A command was given for a call that does not exist or is in the wrong state."""


@dataclass(frozen=True)
class UserAgentConfig:
    """How the UA presents itself. Addresses are what peers see (the announced address when
    the gateway sits behind NAT), not necessarily the socket it is bound to."""

    address: tuple[str, int]  # sent-by in Via and host of Contact
    transport: str = "udp"  # udp | tcp | tls
    user: str = "gateway"  # user part of From and Contact
    display_name: str | None = None
    from_domain: str | None = None  # host of From; default: address host
    outbound_proxy: str | None = None  # SIP URI every out-of-dialog request goes through
    accept_incoming: bool = False  # act as a phone: report IncomingCall
    timers: TimerSettings = field(default_factory=TimerSettings)
    user_agent: str | None = None  # User-Agent/Server value; None sends none
    trace: bool = False  # report every message as MessageTrace
    # Only these networks may reach us ("192.0.2.0/24", "2001:db8::5"); None: any address.
    allowed_peers: tuple[str | IPNetwork, ...] | None = None
    # Requests per source IP; None: no limit (a UA embedded in tests, or behind an SBC).
    request_rate: RateLimit | None = None
    # Take MESSAGE outside dialogs (RFC 3428): report MessageReceived, answered by the owner.
    accept_messages: bool = False
    # RFC 4028: the session interval we ask for (0: none; we still honour the peer's), and
    # the smallest we accept from a peer (RFC 4028 allows no less than 90).
    session_expires: int = 0
    min_se: int = RFC_MIN_SE
    # RFC 3263: report names to route to as LocateRequest and wait for their addresses;
    # False: send to the name and let the transport look up its A/AAAA record.
    resolve_names: bool = False

    def __post_init__(self) -> None:
        if self.min_se < RFC_MIN_SE:
            raise ValueError(f"min_se must be at least {RFC_MIN_SE} s (RFC 4028)")
        if self.session_expires and self.session_expires < self.min_se:
            raise ValueError("session_expires must be 0 or at least min_se")

    @property
    def reliable(self) -> bool:
        return self.transport.lower() in ("tcp", "tls")


def uri_address(uri: Uri, transport: str = "udp") -> Address:
    """Host and port to send to for a URI (RFC 3263 minus DNS: the I/O layer resolves
    names); ValueError for a URI that is not sip:/sips:."""
    if not isinstance(uri, SipUri):
        raise ValueError(f"cannot route to {uri}")
    host = uri.param("maddr") or uri.host
    default_port = 5061 if transport.lower() == "tls" else 5060
    return host.strip("[]"), uri.port or default_port


@dataclass(frozen=True, slots=True)
class ConfirmedDialog:
    """What another process needs to end an answered call with a BYE (`live_calls`)."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_party: str
    remote_party: str
    local_seq: int
    remote_target: str
    route_set: tuple[str, ...]
    destination: Address  # where the BYE goes


@dataclass(frozen=True, slots=True)
class RingingInvite:
    """What another process needs to CANCEL an INVITE still ringing (`live_calls`)."""

    invite: bytes
    destination: Address


class _Credentials:
    """Digest credentials of one call or registration, and the tries made with them."""

    def __init__(self, credentials: tuple[str, str]) -> None:
        self.client = digest.DigestClient(digest.DigestCredentials(*credentials))
        self.attempts: dict[str, int] = {}  # per realm

    def retry(self, request: Request, response: Response, via: str) -> Request | str:
        """`request` again with credentials answering the 401/407 `response`, or why not."""
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        try:
            challenge = digest.choose_challenge(response.headers.get_all(header))
        except digest.DigestError as exc:
            return f"unusable challenge: {exc}"
        # One try per realm, and one more when the server says our nonce was stale: a
        # second plain challenge for the same realm means the credentials were refused.
        attempts = self.attempts.get(challenge.realm, 0)
        if attempts >= 2 or (attempts == 1 and not challenge.stale):
            return "credentials refused"
        self.attempts[challenge.realm] = attempts + 1
        retry = Request(request.method, request.uri, request.headers.copy(), request.body)
        retry.headers.replace_first("Via", via)
        cseq = request.cseq
        retry.headers.set("CSeq", f"{cseq.seq + 1} {cseq.method}")
        auth_header = "Authorization" if response.status == 401 else "Proxy-Authorization"
        retry.headers.remove(auth_header)
        try:
            value = self.client.authorization(
                challenge, method=request.method, uri=str(request.uri), body=request.body
            )
        except digest.DigestError as exc:
            return f"unusable challenge: {exc}"
        retry.headers.add(auth_header, value)
        return retry


@dataclass
class _Redirects:
    """A call's redirect budget and the targets a 3xx gave that are still to try."""

    policy: RedirectPolicy
    max_hops: int
    hops: int = 0
    queue: list[SipUri] = field(default_factory=list)
    tried: list[SipUri] = field(default_factory=list)
    status: int = 302  # of the last 3xx followed


@dataclass
class _Transfer:
    """A REFER the far end sent in this dialog, and the subscription it created."""

    request: Request
    target: ReferTarget
    tx: ServerTransaction | None  # until the owner accepts or rejects it
    event: str = "refer"  # Event header of our NOTIFYs (with ;id= after the first REFER)
    active: bool = False  # the subscription is up: NOTIFYs are due


@dataclass
class _Probe:
    """An OPTIONS or a MESSAGE outside any dialog (`UserAgent.options`, `message`), until
    its final response."""

    key: str
    tx: NonInviteClientTransaction
    deadline: float | None  # give up then, before timer F; None: timer F only
    credentials: _Credentials | None = None  # a MESSAGE's, for a 401/407


@dataclass
class _PendingMessage:
    """A MESSAGE we received, until the owner answers it (`reply_message`)."""

    tx: ServerTransaction
    deadline: float  # answered 500 then, if the owner has not


# How long the owner has to answer a MESSAGE it was told of: well within the sender's T1.
MESSAGE_REPLY_WITHIN = 0.4


class _Call:
    """What the UA keeps for one call (one Call-ID)."""

    def __init__(self, call_id: str, outgoing: bool, state: CallState) -> None:
        self.call_id = call_id
        self.outgoing = outgoing
        self.progress = CallProgress(state)
        self.reported: set[str] = set()  # "ringing", "early_media": told the owner once
        self.invite: Request | None = None
        self.invite_tx: InviteClientTransaction | None = None
        self.server_tx: InviteServerTransaction | None = None
        self.destination: Address | None = None
        self.targets: list[Address] | None = None  # RFC 3263 addresses still to try
        self.route: SipUri | None = None  # outbound proxy of this call, if any
        self.dialog: Dialog | None = None  # the confirmed dialog
        self.early_dialogs: dict[str, Dialog] = {}
        self.credentials: _Credentials | None = None
        self.redirects: _Redirects | None = None
        self.cancel_deadline: float | None = None
        self.acks: dict[int, tuple[bytes, Address]] = {}  # our ACK per INVITE CSeq
        self.end_reason: EndReason | None = None
        self.end_status: int | None = None
        self.end_detail = ""
        # A re-INVITE/UPDATE from the far end waiting for the owner's answer.
        self.pending_offer_tx: ServerTransaction | None = None
        self.pending_offer_request: Request | None = None
        self.pending_offer_timer: SessionTimer | None = None
        # Our 2xx (to an INVITE or re-INVITE) retransmitted until its ACK (§13.3.1.4).
        self.uas_2xx_wire: bytes | None = None
        self.uas_2xx_to: Address | None = None
        self.uas_2xx_next: float | None = None
        self.uas_2xx_interval = 0.0
        self.uas_2xx_deadline = 0.0
        self.uas_2xx_cseq = 0
        self.incoming_to_tag: str | None = None
        self.origin: Address | None = None  # where an incoming INVITE came from
        self.extra_headers: list[tuple[str, str]] = []
        # RFC 3262: the last RSeq acknowledged per early dialog (remote tag).
        self.rseq: dict[str, int] = {}
        self.answer_sdp: bytes | None = None  # the peer's SDP answer, once known
        self.local_sdp: bytes | None = None  # the SDP we last sent (offer or answer)
        # RFC 4028
        self.session_interval = 0  # what our INVITE asks for (0: nothing)
        self.min_se = 0  # the largest Min-SE a 422 named
        self.session_retries = 0
        self.timer: SessionTimer | None = None
        self.timer_refresh_at: float | None = None  # we refresh then
        self.timer_expiry_at: float | None = None  # the peer's refresh is due by then
        self.refresh_tx: ClientTransaction | None = None
        self.refresh_uses_invite = False  # the peer does not allow UPDATE
        self.transfers_allowed = False  # the owner acts on REFERs (`invite(transfers=)`)
        self.transfers = 0  # REFERs received in this dialog
        self.transfer: _Transfer | None = None

    @property
    def state(self) -> CallState:
        return self.progress.state

    @property
    def ended(self) -> bool:
        return self.progress.state == CallState.TERMINATED


class UserAgent:
    def __init__(self, config: UserAgentConfig) -> None:
        self.config = config
        self._outbox: list[tuple[bytes, Address]] = []
        self._events: deque[
            Event
            | MessageTrace
            | LocateRequest
            | RegistrationChanged
            | OptionsResult
            | MessageResult
            | MessageReceived
        ] = deque()
        self._calls: dict[str, _Call] = {}
        self._registrations: dict[str, Registration] = {}
        self._registration_credentials: dict[str, _Credentials] = {}
        self._registration_targets: dict[str, list[Address]] = {}
        self._client_txs: dict[tuple, ClientTransaction] = {}
        self._server_txs: dict[tuple, ServerTransaction] = {}
        self._tx_owner: dict[int, _Call | Registration] = {}
        self._probes: dict[str, _Probe] = {}  # by the owner's key
        self._tx_probe: dict[int, _Probe] = {}
        self._received_messages: dict[str, _PendingMessage] = {}
        self._proxy: SipUri | None = (
            parse_sip_uri(config.outbound_proxy) if config.outbound_proxy else None
        )
        host, port = config.address
        self._sent_by = f"{_host_for_uri(host)}:{port}"
        self._transport_token = config.transport.upper()
        self._allowed = (
            AllowedPeers(config.allowed_peers) if config.allowed_peers is not None else None
        )
        self._limiter = (
            SourceRateLimiter(config.request_rate) if config.request_rate is not None else None
        )
        self._names = KnownNames()
        self._random = random.Random()
        # TCP/TLS peers send from ephemeral ports (and cannot forge a source blind): the IP
        # identifies them. On UDP the port is part of who the peer is.
        self._match_port = not config.reliable
        self.counters = {
            "parse_errors": 0,
            "stray_responses": 0,
            "refused_requests": 0,
            "not_allowed": 0,  # from outside `allowed_peers`
            "rate_limited": 0,  # over `request_rate`
            "spoofed_responses": 0,  # a live transaction's response from the wrong address
            "spoofed_requests": 0,  # a live dialog's request from the wrong address or tags
        }

    # ----------------------------------------------------------------- owner interface
    def accepts_peer(self, host: str) -> bool:
        """Whether `allowed_peers` lets `host` (an IP address) talk to us at all: a stream
        transport asks when a peer connects, before reading anything."""
        if self._allowed is None or self._allowed.allows(host):
            return True
        self.counters["not_allowed"] += 1
        return False

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> None:
        """A datagram (UDP) or a whole framed message (TCP/TLS) from `addr`."""
        if self._allowed is not None and not self._allowed.allows(addr[0]):
            self.counters["not_allowed"] += 1
            return
        if (
            self._limiter is not None
            and not data.startswith(b"SIP/")  # responses are matched, not charged
            and not self._limiter.allow(addr[0], now)
        ):
            self.counters["rate_limited"] += 1
            return
        try:
            message = parse_message(data, stream=self.config.reliable)
        except RequestParseError as exc:
            self.counters["parse_errors"] += 1
            if exc.method != "ACK":  # an ACK is never answered
                self._send(bad_request_response(exc).serialize(), addr)
            return
        except SipParseError:
            self.counters["parse_errors"] += 1
            return
        if self.config.trace:
            self._trace("received", message, addr, data)
        if isinstance(message, Request):
            self._receive_request(message, addr, now)
        else:
            self._receive_response(message, addr, now)

    def address_resolved(self, host: str, address: str) -> None:
        """The I/O layer resolved `host` (from a URI we route to) to the IP `address`:
        datagrams from that IP now count as coming from `host`."""
        self._names.learn(host, address)

    def targets_resolved(self, key: str, targets: Sequence[Address], now: float) -> None:
        """The addresses (RFC 3263 order) of the next hop a `LocateRequest` asked for; an
        empty list when the name did not resolve."""
        targets = list(targets)[:MAX_FAILOVER_TARGETS]
        registration = self._registrations.get(key)
        if registration is not None:
            if (
                registration.state
                not in (
                    RegistrationState.REGISTERING,
                    RegistrationState.UNREGISTERING,
                )
                or key in self._registration_targets
            ):
                return
            if not targets:
                self._registration_failed(
                    registration, None, "the registrar's name did not resolve", now
                )
                return
            self._registration_targets[key] = targets
            self._send_register(registration, now)
            return
        call = self._calls.get(key)
        if call is None or call.state != CallState.LOCATING:
            return
        if not targets:
            host = (call.route or call.invite.uri) if call.invite is not None else None
            self._end(
                call, EndReason.UNREACHABLE, None, f"cannot resolve {_host_of(host)}", now=now
            )
            return
        call.targets = targets
        self._send_invite(call, now)

    def transport_error(self, address: Address, now: float) -> None:
        """The I/O layer could not send to `address` (no route, refused connection, unknown
        host): transactions waiting on it fail now rather than at their timeout."""
        for tx in list(self._client_txs.values()):
            if tx.destination == address:
                tx.transport_error(now)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self) -> float | None:
        deadlines = [t for tx in self._all_transactions() if (t := tx.get_timer()) is not None]
        for call in self._calls.values():
            for deadline in (
                call.uas_2xx_next,
                call.cancel_deadline,
                call.timer_refresh_at,
                call.timer_expiry_at,
            ):
                if deadline is not None:
                    deadlines.append(deadline)
        for registration in self._registrations.values():
            if registration.next_action is not None:
                deadlines.append(registration.next_action)
        deadlines.extend(p.deadline for p in self._probes.values() if p.deadline is not None)
        deadlines.extend(m.deadline for m in self._received_messages.values())
        return min(deadlines) if deadlines else None

    def handle_timer(self, now: float) -> None:
        for tx in self._all_transactions():
            deadline = tx.get_timer()
            if deadline is not None and deadline <= now:
                tx.handle_timer(now)
        for call in list(self._calls.values()):
            if call.uas_2xx_next is not None and call.uas_2xx_next <= now:
                self._retransmit_2xx(call, now)
            if call.cancel_deadline is not None and call.cancel_deadline <= now:
                # No final response within 64*T1 of our CANCEL (§9.1): give up on it.
                call.cancel_deadline = None
                self._end(
                    call, EndReason.CANCELLED, None, "no final response after CANCEL", now=now
                )
            if call.timer_refresh_at is not None and call.timer_refresh_at <= now:
                call.timer_refresh_at = None
                self._send_refresh(call, now)
            if call.timer_expiry_at is not None and call.timer_expiry_at <= now:
                call.timer_expiry_at = None
                self._send_bye(
                    call,
                    now,
                    EndReason.SESSION_EXPIRED,
                    None,
                    "no session refresh from the far end",
                )
        for registration in list(self._registrations.values()):
            if registration.next_action is not None and registration.next_action <= now:
                registration.next_action = None
                self._start_register(registration, now)

        for probe in list(self._probes.values()):
            if probe.deadline is not None and probe.deadline <= now:
                self._probe_done(probe, None, "no response in time")
                probe.tx.abandon()
        for key, pending in list(self._received_messages.items()):
            if pending.deadline <= now:
                self.reply_message(key, 500, now, reason="Not answered in time")

    def next_event(
        self,
    ) -> (
        Event
        | MessageTrace
        | LocateRequest
        | RegistrationChanged
        | OptionsResult
        | MessageResult
        | MessageReceived
        | None
    ):
        return self._events.popleft() if self._events else None

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    @property
    def call_ids(self) -> list[str]:
        """The Call-IDs of the calls not ended yet."""
        return list(self._calls)

    def call_state(self, call_id: str) -> CallState | None:
        """Where a call stands (None once it ended and was forgotten)."""
        call = self._calls.get(call_id)
        return call.state if call is not None else None

    def session_timer(self, call_id: str) -> SessionTimer | None:
        """The session timer agreed for a call, if any (RFC 4028)."""
        call = self._calls.get(call_id)
        return call.timer if call is not None else None

    def live_calls(self) -> list[ConfirmedDialog | RingingInvite]:
        """The calls that another process would have to end if this one died: answered
        calls not yet hung up, and our INVITEs still ringing (a supervisor ends them for a
        dead worker, gateway/process/journal.py). Calls without a routable next hop are
        left out: nothing could reach them."""
        live: list[ConfirmedDialog | RingingInvite] = []
        for call in self._calls.values():
            dialog = call.dialog
            if dialog is not None:
                if not dialog.confirmed or call.state != CallState.CONFIRMED:
                    continue
                try:
                    destination = self._dialog_destination(call, dialog)
                except (CallError, ValueError):  # no SIP address to send to
                    continue
                live.append(
                    ConfirmedDialog(
                        call_id=dialog.call_id,
                        local_tag=dialog.local_tag,
                        remote_tag=dialog.remote_tag,
                        local_party=dialog.local_party,
                        remote_party=dialog.remote_party,
                        local_seq=dialog.local_seq,
                        remote_target=str(dialog.remote_target),
                        route_set=tuple(dialog.route_set),
                        destination=destination,
                    )
                )
            elif (
                call.outgoing
                and call.invite is not None
                and call.destination is not None
                and call.state != CallState.LOCATING
            ):
                live.append(RingingInvite(call.invite.serialize(), call.destination))
        return live

    @property
    def transaction_count(self) -> int:
        return len(self._client_txs) + len(self._server_txs)

    # ---------------------------------------------------------------- commands: outgoing
    def invite(
        self,
        target: str,
        now: float,
        *,
        sdp: bytes,
        from_user: str | None = None,
        from_domain: str | None = None,
        display_name: str | None = None,
        credentials: tuple[str, str] | None = None,
        headers: list[tuple[str, str]] | None = None,
        call_id: str | None = None,
        proxy: str | None = None,
        redirect_policy: RedirectPolicy | None = None,
        max_redirects: int = 3,
        transfers: bool = False,
    ) -> str:
        """Start a call to `target` with our SDP offer; returns its Call-ID.

        `proxy` (a SIP URI) overrides the configured outbound proxy for this call.
        `redirect_policy` says which targets of a 3xx may be called (none without one);
        `max_redirects` bounds how many 3xx deep the call may go. With `transfers`, a REFER
        from the far end is offered to the owner (`TransferRequested`); without, it is
        declined (603) at once.
        """
        uri = parse_uri(target)
        if not isinstance(uri, SipUri):
            raise ValueError(f"can only call sip: or sips: URIs, not {target!r}")
        extra = _validated_headers(headers or [])
        call_id = call_id or f"{secrets.token_hex(12)}@{_host_for_uri(self.config.address[0])}"
        if call_id in self._calls:
            raise CallError(f"call {call_id} exists")
        call = _Call(call_id, outgoing=True, state=CallState.CALLING)
        call.extra_headers = extra
        call.transfers_allowed = transfers
        if credentials is not None:
            call.credentials = _Credentials(credentials)
        if redirect_policy is not None and max_redirects > 0:
            call.redirects = _Redirects(
                redirect_policy, max_redirects, tried=[uri.without_headers()]
            )
        display = display_name if display_name is not None else self.config.display_name
        user = from_user or self.config.user
        domain = from_domain or self.config.from_domain or self.config.address[0]
        from_uri = SipUri.build(_host_for_uri(domain), user=_escape_user(user))
        from_party = f"<{from_uri}>;tag={_new_tag()}"
        if display:
            from_party = f"{quote_display_name(display)} {from_party}"
        route = parse_sip_uri(proxy) if proxy else self._proxy
        call.session_interval = self.config.session_expires
        headers_ = Headers()
        headers_.add("Via", self._via())
        if route is not None:
            headers_.add("Route", f"<{route.with_params(lr=None)}>")
        headers_.add("Max-Forwards", "70")
        headers_.add("From", from_party)
        headers_.add("To", f"<{uri.without_headers()}>")
        headers_.add("Call-ID", call_id)
        headers_.add("CSeq", "1 INVITE")
        headers_.add("Contact", self._contact(user))
        headers_.add("Allow", ALLOWED_METHODS)
        headers_.add("Supported", SUPPORTED)
        if call.session_interval:
            headers_.add("Session-Expires", str(call.session_interval))
            headers_.add("Min-SE", str(self.config.min_se))
        if self.config.user_agent:
            headers_.add("User-Agent", self.config.user_agent)
        for name, value in extra:
            headers_.add(name, value)
        headers_.add("Content-Type", SDP)
        call.invite = Request("INVITE", uri.without_headers(), headers_, sdp)
        call.local_sdp = sdp
        try:  # text that cannot go on the wire (a lone surrogate) fails here, not later
            call.invite.serialize()
        except UnicodeEncodeError as exc:
            raise ValueError(f"the INVITE cannot be encoded: {exc.reason}") from None
        call.route = route
        if not self._needs_locating(route or uri):
            call.destination = self._destination(route or uri)
        self._calls[call_id] = call
        self._send_invite(call, now)
        return call_id

    def hangup(self, call_id: str, now: float, *, status: int = 486) -> None:
        """End a call in whatever state it is: CANCEL, BYE, or reject an incoming one.

        `status` is the response for an incoming call not answered yet.
        """
        call = self._calls.get(call_id)
        if call is None:
            return
        state = call.state
        if state == CallState.INCOMING:
            self._reject_incoming(call, status, now)
        elif state == CallState.CONFIRMED:
            self._send_bye(call, now, EndReason.LOCAL_HANGUP)
        elif state == CallState.LOCATING:
            self._end(call, EndReason.CANCELLED, None, "cancelled before sending", now=now)
        elif state == CallState.CALLING:
            call.progress.move(CallState.CANCEL_PENDING)  # §9.1: CANCEL waits for a 1xx
        elif state == CallState.PROCEEDING:
            self._send_cancel(call, now)
        # CANCEL_PENDING, CANCELLING, TERMINATING: already on its way out.

    def options(
        self,
        key: str,
        target: str,
        now: float,
        *,
        proxy: str | None = None,
        from_user: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Send OPTIONS to `target` outside any dialog (is it there? RFC 3261 §11); its
        outcome comes as `OptionsResult(key, ...)`. `timeout` gives up sooner than timer F
        (the request stops being retransmitted). `proxy` (a SIP URI) overrides the
        configured outbound proxy. Raises ValueError for a target that is not sip:/sips:,
        CallError when `key` is still waiting for its answer."""
        uri = parse_uri(target)
        if not isinstance(uri, SipUri):
            raise ValueError(f"can only send OPTIONS to sip: or sips: URIs, not {target!r}")
        if key in self._probes:
            raise CallError(f"OPTIONS {key!r} is still waiting for its answer")
        user = from_user or self.config.user
        domain = self.config.from_domain or self.config.address[0]
        from_uri = SipUri.build(_host_for_uri(domain), user=_escape_user(user))
        route = parse_sip_uri(proxy) if proxy else self._proxy
        target_uri = uri.without_headers()
        headers = Headers()
        headers.add("Via", self._via())
        if route is not None:
            headers.add("Route", f"<{route.with_params(lr=None)}>")
        headers.add("Max-Forwards", "70")
        headers.add("From", f"<{from_uri}>;tag={_new_tag()}")
        headers.add("To", f"<{target_uri}>")
        headers.add("Call-ID", f"{secrets.token_hex(12)}@{_host_for_uri(self.config.address[0])}")
        headers.add("CSeq", "1 OPTIONS")
        headers.add("Contact", self._contact(user))
        headers.add("Accept", SDP)
        if self.config.user_agent:
            headers.add("User-Agent", self.config.user_agent)
        request = Request("OPTIONS", target_uri, headers)
        self._start_probe(key, request, self._destination(route or uri), now, timeout)

    def message(
        self,
        key: str,
        target: str,
        now: float,
        *,
        text: str,
        from_user: str | None = None,
        display_name: str | None = None,
        proxy: str | None = None,
        credentials: tuple[str, str] | None = None,
        headers: list[tuple[str, str]] | None = None,
        timeout: float | None = None,
    ) -> None:
        """Send `text` to `target` as a MESSAGE outside any dialog (RFC 3428, `text/plain;
        charset=UTF-8`); its outcome comes as `MessageResult(key, ...)`. The From URI
        carries our port, so that a reply (a MESSAGE to it) comes back to this user agent.
        `credentials` answer one 401/407 per realm. Raises ValueError for a target that is
        not sip:/sips:, bad `headers` or a text that cannot be sent (too long for the
        transport), CallError when `key` is still waiting for its answer."""
        uri = parse_uri(target)
        if not isinstance(uri, SipUri):
            raise ValueError(f"can only send MESSAGE to sip: or sips: URIs, not {target!r}")
        if key in self._probes:
            raise CallError(f"MESSAGE {key!r} is still waiting for its answer")
        body = pager.encode_text(text, reliable=self.config.reliable)
        extra = _validated_headers(headers or [])
        user = from_user or self.config.user
        host, port = self.config.address
        if self.config.from_domain:
            from_uri = SipUri.build(_host_for_uri(self.config.from_domain), user=_escape_user(user))
        else:
            from_uri = SipUri.build(_host_for_uri(host), user=_escape_user(user), port=port)
        from_party = f"<{from_uri}>;tag={_new_tag()}"
        display = display_name if display_name is not None else self.config.display_name
        if display:
            from_party = f"{quote_display_name(display)} {from_party}"
        route = parse_sip_uri(proxy) if proxy else self._proxy
        target_uri = uri.without_headers()
        request_headers = Headers()
        request_headers.add("Via", self._via())
        if route is not None:
            request_headers.add("Route", f"<{route.with_params(lr=None)}>")
        request_headers.add("Max-Forwards", "70")
        request_headers.add("From", from_party)
        request_headers.add("To", f"<{target_uri}>")
        request_headers.add("Call-ID", f"{secrets.token_hex(12)}@{_host_for_uri(host)}")
        request_headers.add("CSeq", "1 MESSAGE")
        if self.config.user_agent:
            request_headers.add("User-Agent", self.config.user_agent)
        for name, value in extra:
            request_headers.add(name, value)
        request_headers.add("Content-Type", pager.CONTENT_TYPE)
        request = Request("MESSAGE", target_uri, request_headers, body)
        try:  # a display name with a lone surrogate fails here, not later
            request.serialize()
        except UnicodeEncodeError as exc:
            raise ValueError(f"the MESSAGE cannot be encoded: {exc.reason}") from None
        creds = _Credentials(credentials) if credentials else None
        self._start_probe(key, request, self._destination(route or uri), now, timeout, creds)

    def reply_message(
        self, key: str, status: int, now: float, *, reason: str | None = None
    ) -> None:
        """Answer the MESSAGE reported as `MessageReceived(key, ...)` (200 to take it);
        unknown or answered keys are ignored."""
        pending = self._received_messages.pop(key, None)
        if pending is None:
            return
        request = pending.tx.request
        pending.tx.respond(new_response(request, status, reason, to_tag=_new_tag()), now)

    def sent_from(self, target: str, source: Address, *, match_port: bool = False) -> bool:
        """Whether a datagram from `source` comes from the host `target` (a SIP URI) routes
        to (its IP, through the names the I/O layer resolved; any port unless `match_port`:
        phones may answer from other ports than they listen on)."""
        try:
            uri = parse_uri(target)
            address = self._destination(uri)
        except ValueError:
            return False
        return self._names.is_same(address, source, match_port=match_port)

    def _start_probe(
        self,
        key: str,
        request: Request,
        destination: Address,
        now: float,
        timeout: float | None,
        credentials: _Credentials | None = None,
    ) -> None:
        tx = NonInviteClientTransaction(
            request,
            destination,
            self._send,
            self,
            reliable=self.config.reliable,
            timers=self.config.timers,
        )
        probe = _Probe(key, tx, None if timeout is None else now + timeout, credentials)
        self._probes[key] = probe
        self._tx_probe[id(tx)] = probe
        self._client_txs[tx.key] = tx
        tx.start(now)

    def _retry_probe(self, probe: _Probe, response: Response, now: float) -> bool:
        """A MESSAGE challenged (401/407): sent again with credentials, once per realm."""
        creds = probe.credentials
        if creds is None or probe.tx.method != "MESSAGE":
            return False
        retry = creds.retry(probe.tx.request, response, self._via())
        if isinstance(retry, str):
            return False
        del self._probes[probe.key]
        self._start_probe(probe.key, retry, probe.tx.destination, now, None, creds)
        self._probes[probe.key].deadline = probe.deadline
        return True

    def _probe_done(self, probe: _Probe, status: int | None, reason: str) -> None:
        if self._probes.get(probe.key) is probe:
            del self._probes[probe.key]
            if probe.tx.method == "MESSAGE":
                self._events.append(MessageResult(probe.key, status, reason))
            else:
                self._events.append(OptionsResult(probe.key, status, reason))

    # ------------------------------------------------------------- commands: incoming
    def ring(self, call_id: str, now: float, *, sdp: bytes | None = None) -> None:
        """Send 180 Ringing (or 183 Session Progress with early media when `sdp` is given)."""
        call = self._incoming(call_id)
        assert call.server_tx is not None  # _incoming checked it
        status = 183 if sdp else 180
        response = self._uas_response(call, status, sdp)
        call.server_tx.respond(response, now)

    def answer(self, call_id: str, now: float, *, sdp: bytes) -> None:
        """Answer an incoming call with 200 OK and our SDP."""
        call = self._incoming(call_id)
        assert call.server_tx is not None  # _incoming checked it
        invite = call.server_tx.request
        call.dialog = Dialog.as_uas(invite, call.incoming_to_tag or _new_tag(), 0)
        call.dialog.confirmed = True
        call.progress.move(CallState.CONFIRMED)
        response = self._uas_response(call, 200, sdp)
        timer, _ = timer_for_request(
            invite.headers,
            local_interval=self.config.session_expires,
            local_min_se=self.config.min_se,
        )
        self._add_timer_to_response(response, invite, timer)
        call.local_sdp = sdp
        call.refresh_uses_invite = not _allows(invite.headers, "UPDATE")
        call.server_tx.respond(response, now)
        self._start_2xx_retransmission(
            call, response, call.server_tx.reply_to, invite.cseq.seq, now
        )
        self._arm_session_timer(call, timer, now)

    def answer_offer(self, call_id: str, now: float, *, sdp: bytes) -> None:
        """Answer the pending re-INVITE/UPDATE from the far end with 200 and `sdp`."""
        call = self._calls.get(call_id)
        if call is None or call.pending_offer_tx is None or call.dialog is None:
            raise CallError(f"no offer pending on call {call_id}")
        tx, request = call.pending_offer_tx, call.pending_offer_request
        timer = call.pending_offer_timer
        call.pending_offer_tx = call.pending_offer_request = call.pending_offer_timer = None
        assert request is not None  # set with pending_offer_tx
        response = new_response(request, 200)
        response.headers.add("Contact", self._contact(self.config.user))
        response.headers.add("Allow", ALLOWED_METHODS)
        self._add_timer_to_response(response, request, timer)
        response.headers.add("Content-Type", SDP)
        response.body = sdp
        call.local_sdp = sdp
        tx.respond(response, now)
        if request.method == "INVITE":
            self._start_2xx_retransmission(call, response, tx.reply_to, request.cseq.seq, now)
        self._arm_session_timer(call, timer, now)

    def reject_offer(self, call_id: str, now: float, *, status: int = 488) -> None:
        """Refuse the pending re-INVITE/UPDATE (the session stays as it was)."""
        call = self._calls.get(call_id)
        if call is None or call.pending_offer_tx is None:
            raise CallError(f"no offer pending on call {call_id}")
        tx, request = call.pending_offer_tx, call.pending_offer_request
        call.pending_offer_tx = call.pending_offer_request = call.pending_offer_timer = None
        assert request is not None  # set with pending_offer_tx
        tx.respond(new_response(request, status), now)

    # ------------------------------------------------------------- commands: transfer
    def accept_transfer(self, call_id: str, now: float) -> None:
        """Take the pending REFER: 202 Accepted, then NOTIFY "100 Trying" (RFC 3515 §2.4.4)."""
        _, transfer = self._pending_transfer(call_id)
        tx, request = transfer.tx, transfer.request
        assert tx is not None  # _pending_transfer checked it
        transfer.tx = None
        response = new_response(request, 202)
        response.headers.add("Contact", self._contact(self.config.user))
        if not transfer.target.subscription:
            response.headers.add("Refer-Sub", "false")  # RFC 4488: no NOTIFYs follow
        tx.respond(response, now)
        transfer.active = transfer.target.subscription
        self.notify_transfer(call_id, now, 100, "Trying")

    def reject_transfer(self, call_id: str, now: float, *, status: int = 603) -> None:
        """Refuse the pending REFER (the call goes on as it was)."""
        call, transfer = self._pending_transfer(call_id)
        assert transfer.tx is not None  # _pending_transfer checked it
        transfer.tx.respond(new_response(transfer.request, status), now)
        call.transfer = None

    def notify_transfer(self, call_id: str, now: float, status: int, reason: str = "") -> None:
        """Tell the transferor how the call to the target goes (a NOTIFY with a sipfrag);
        a final status (200 and above) ends the subscription. Does nothing when there is no
        subscription (none asked, already ended, or the transferor's dialog is gone)."""
        call = self._calls.get(call_id)
        if call is None or call.transfer is None or not call.transfer.active:
            return
        dialog = call.dialog
        if dialog is None or call.state != CallState.CONFIRMED:
            return
        final = status >= 200
        notify = dialog.next_request("NOTIFY", self._via(), contact=self._contact(self.config.user))
        notify.headers.add("Event", call.transfer.event)
        notify.headers.add(
            "Subscription-State",
            "terminated;reason=noresource" if final else f"active;expires={SUBSCRIPTION_SECONDS}",
        )
        if self.config.user_agent:
            notify.headers.add("User-Agent", self.config.user_agent)
        notify.headers.add("Content-Type", SIPFRAG_CONTENT_TYPE)
        notify.body = sipfrag(status, reason)
        if final:
            call.transfer = None
        self._new_client_tx(
            NonInviteClientTransaction, notify, self._dialog_destination(call, dialog), call, now
        )

    def _pending_transfer(self, call_id: str) -> tuple[_Call, _Transfer]:
        call = self._calls.get(call_id)
        if call is None or call.transfer is None or call.transfer.tx is None:
            raise CallError(f"no transfer pending on call {call_id}")
        return call, call.transfer

    # -------------------------------------------------------------- commands: register
    def register(self, key: str, settings: RegistrationSettings, now: float) -> None:
        """Keep `settings.aor` registered until `unregister(key)`; each change of state is
        reported as `RegistrationChanged(key, ...)`."""
        if key in self._registrations:
            raise CallError(f"registration {key!r} exists")
        registration = Registration(key, settings)
        self._registrations[key] = registration
        if settings.credentials is not None:
            self._registration_credentials[key] = _Credentials(settings.credentials)
        self._start_register(registration, now)

    def unregister(self, key: str, now: float) -> None:
        """Remove our binding (REGISTER with Expires: 0), then forget the registration."""
        registration = self._registrations.get(key)
        if registration is None:
            return
        if registration.state in (RegistrationState.REGISTERED, RegistrationState.REGISTERING):
            registration.state = RegistrationState.UNREGISTERING
            registration.next_action = None
            self._registration_targets.pop(key, None)
            self._begin_register_request(registration, now)
        else:
            self._forget_registration(registration, "unregistered")

    def registration_state(self, key: str) -> RegistrationState | None:
        registration = self._registrations.get(key)
        return registration.state if registration is not None else None

    # ------------------------------------------------------------------ internals: out
    def _send(self, data: bytes, addr: Address) -> None:
        self._outbox.append((data, addr))
        if self.config.trace:
            try:
                message = parse_message(data, stream=self.config.reliable)
            except SipParseError:
                return
            self._trace("sent", message, addr, data)

    def _trace(
        self, direction: str, message: Request | Response, addr: Address, data: bytes
    ) -> None:
        if isinstance(message, Request):
            summary = f"{message.method} {message.uri}"
        else:
            summary = f"{message.status} {message.reason} ({message.cseq.method})"
        self._events.append(MessageTrace(direction, summary, addr, data))

    def _via(self) -> str:
        return f"SIP/2.0/{self._transport_token} {self._sent_by};branch={_new_branch()};rport"

    def _contact(self, user: str) -> str:
        return f"<{self._contact_uri(user)}>"

    def _contact_uri(self, user: str) -> SipUri:
        host, port = self.config.address
        params = (
            {}
            if self.config.transport.lower() == "udp"
            else {"transport": self.config.transport.lower()}
        )
        scheme = "sips" if self.config.transport.lower() == "tls" else "sip"
        return SipUri.build(
            _host_for_uri(host), user=_escape_user(user), port=port, scheme=scheme, params=params
        )

    def _destination(self, uri: Uri) -> Address:
        return uri_address(uri, self.config.transport)

    def _needs_locating(self, uri: SipUri) -> bool:
        return self.config.resolve_names and needs_dns(uri)

    def _dialog_destination(self, call: _Call, dialog: Dialog) -> Address:
        """Next hop of an in-dialog request: the route set, else the call's outbound proxy
        (a gateway behind NAT reaches phones through it), else the remote target."""
        if not dialog.route_set and call.route is not None:
            if call.destination is not None:
                return call.destination  # the proxy's address, as located for the INVITE
            return self._destination(call.route)
        hop = dialog.next_hop()
        if isinstance(hop, SipUri):
            return self._destination(hop)
        # A tel: or other non-SIP target cannot be routed: go back where the dialog began.
        fallback = call.destination or call.origin
        if fallback is None:
            raise CallError(f"call {call.call_id} has no SIP address to send to")
        return fallback

    def _dialog_peers(self, call: _Call, dialog: Dialog) -> list[Address]:
        """The addresses a request inside this dialog may come from (see the module doc)."""
        peers = [self._dialog_destination(call, dialog)]
        if isinstance(dialog.remote_target, SipUri):
            peers.append(self._destination(dialog.remote_target))
        if call.destination is not None:
            peers.append(call.destination)
        if call.origin is not None:
            peers.append(call.origin)
        return peers

    def _from_dialog_peer(self, call: _Call, dialog: Dialog, source: Address) -> bool:
        return any(
            self._names.is_same(peer, source, match_port=self._match_port)
            for peer in self._dialog_peers(call, dialog)
        )

    def _new_client_tx(
        self,
        cls: type[_ClientTx],
        request: Request,
        destination: Address,
        owner: _Call | Registration,
        now: float,
    ) -> _ClientTx:
        tx = cls(
            request,
            destination,
            self._send,
            self,
            reliable=self.config.reliable,
            timers=self.config.timers,
        )
        self._client_txs[tx.key] = tx
        self._tx_owner[id(tx)] = owner
        tx.start(now)
        return tx

    def _new_server_tx(
        self, cls: type[_ServerTx], request: Request, reply_to: Address, source: Address
    ) -> _ServerTx:
        tx = cls(
            request,
            reply_to,
            self._send,
            self,
            reliable=self.config.reliable,
            timers=self.config.timers,
            source=source,
        )
        self._server_txs[tx.key] = tx
        return tx

    def _send_invite(self, call: _Call, now: float) -> None:
        """Send (or send again) our INVITE: to the next located address, or ask for the
        next hop's addresses first."""
        assert call.invite is not None
        hop = call.route or call.invite.uri
        assert isinstance(hop, SipUri)
        if call.targets is None and self._needs_locating(hop):
            call.progress.move(CallState.LOCATING)
            self._events.append(LocateRequest(call.call_id, str(hop), self.config.transport))
            return
        if call.targets:
            call.destination = call.targets[0]
        call.progress.move(CallState.CALLING)
        assert call.destination is not None  # located, or known from the start
        call.invite_tx = self._new_client_tx(
            InviteClientTransaction, call.invite, call.destination, call, now
        )

    def _resend_invite(self, call: _Call, now: float, *, next_cseq: bool) -> None:
        """Our INVITE again as a new transaction (new branch): after a 422, a redirect, or
        to the next address of the same server (RFC 3263 §4.3: the same CSeq)."""
        invite = call.invite
        assert invite is not None
        retry = Request(invite.method, invite.uri, invite.headers.copy(), invite.body)
        retry.headers.replace_first("Via", self._via())
        if next_cseq:
            retry.headers.set("CSeq", f"{invite.cseq.seq + 1} INVITE")
        call.invite = retry
        call.early_dialogs.clear()
        call.rseq.clear()
        self._send_invite(call, now)

    def _fail_over(self, call: _Call, now: float) -> bool:
        """Try the next address of the server our INVITE went to (RFC 3263 §4.3)."""
        if not call.targets or len(call.targets) < 2 or call.state != CallState.CALLING:
            return False
        call.targets.pop(0)
        self._resend_invite(call, now, next_cseq=False)
        return True

    def _send_cancel(self, call: _Call, now: float) -> None:
        if call.invite is None or call.state not in (
            CallState.PROCEEDING,
            CallState.CANCEL_PENDING,
        ):
            return
        call.progress.move(CallState.CANCELLING)
        invite = call.invite
        # §9.1: same Request-URI, Call-ID, From, To, CSeq number, top Via and routes.
        cancel = same_transaction_request(invite, "CANCEL", invite.headers.get("To") or "")
        assert call.destination is not None  # the INVITE went there
        self._new_client_tx(NonInviteClientTransaction, cancel, call.destination, call, now)
        call.cancel_deadline = now + 64 * self.config.timers.t1

    def _send_bye(
        self,
        call: _Call,
        now: float,
        reason: EndReason,
        status: int | None = None,
        detail: str = "",
    ) -> None:
        if call.dialog is None or call.state in (CallState.TERMINATING, CallState.TERMINATED):
            return
        call.progress.move(CallState.TERMINATING)
        call.end_reason, call.end_status, call.end_detail = reason, status, detail
        self._stop_session_timer(call)
        self._drop_transfer(call, now)
        bye = call.dialog.next_request("BYE", self._via())
        if reason == EndReason.SESSION_EXPIRED:
            bye.headers.add("Reason", 'SIP;cause=408;text="Session expired"')
        if self.config.user_agent:
            bye.headers.add("User-Agent", self.config.user_agent)
        self._new_client_tx(
            NonInviteClientTransaction, bye, self._dialog_destination(call, call.dialog), call, now
        )

    def _end(
        self,
        call: _Call,
        reason: EndReason,
        status: int | None,
        detail: str,
        *,
        now: float,
        targets: tuple[str, ...] = (),
    ) -> None:
        if call.ended:
            return
        call.progress.move(CallState.TERMINATED)
        call.uas_2xx_next = None
        call.cancel_deadline = None
        self._stop_session_timer(call)
        if call.pending_offer_tx is not None:
            # A re-INVITE/UPDATE the owner had not answered yet: its transaction would
            # wait forever, and its sender for a final response (§15.1.2: 487).
            tx, request = call.pending_offer_tx, call.pending_offer_request
            call.pending_offer_tx = call.pending_offer_request = None
            assert request is not None  # set with pending_offer_tx
            tx.respond(new_response(request, 487), now)
        self._drop_transfer(call, now)
        self._calls.pop(call.call_id, None)
        self._events.append(CallEnded(call.call_id, reason, status, detail, targets))

    def _drop_transfer(self, call: _Call, now: float) -> None:
        """The call is ending: a REFER still waiting for the owner gets its final answer."""
        if call.transfer is not None and call.transfer.tx is not None:
            call.transfer.tx.respond(new_response(call.transfer.request, 487), now)
        call.transfer = None

    # ------------------------------------------------------------- session timers
    def _arm_session_timer(self, call: _Call, timer: SessionTimer | None, now: float) -> None:
        """A 2xx set the session timer (or turned it off): the refresh or the expiry."""
        call.timer = timer
        call.timer_refresh_at = call.timer_expiry_at = None
        if timer is None or call.state != CallState.CONFIRMED:
            return
        if timer.we_refresh:
            call.timer_refresh_at = timer.refresh_due(now)
        else:
            call.timer_expiry_at = timer.expiry_due(now)

    def _stop_session_timer(self, call: _Call) -> None:
        call.timer_refresh_at = call.timer_expiry_at = None

    def _send_refresh(self, call: _Call, now: float) -> None:
        """Refresh the session (RFC 4028 §7.4): UPDATE without a body where the peer allows
        it, else a re-INVITE with the SDP we last sent (its version unchanged)."""
        timer, dialog = call.timer, call.dialog
        if timer is None or dialog is None or call.state != CallState.CONFIRMED:
            return
        if call.refresh_tx is not None or call.pending_offer_tx is not None:
            call.timer_refresh_at = now + 2.0  # an offer/answer is under way: a bit later
            return
        interval = max(timer.interval, call.min_se)
        method = "INVITE" if call.refresh_uses_invite else "UPDATE"
        request = dialog.next_request(method, self._via(), contact=self._contact(self.config.user))
        request.headers.add("Session-Expires", f"{interval};refresher=uac")
        request.headers.add("Min-SE", str(max(self.config.min_se, call.min_se)))
        request.headers.add("Supported", SUPPORTED_AS_UAS)
        request.headers.add("Allow", ALLOWED_METHODS)
        if self.config.user_agent:
            request.headers.add("User-Agent", self.config.user_agent)
        if method == "INVITE" and call.local_sdp:
            request.headers.add("Content-Type", SDP)
            request.body = call.local_sdp
        cls = InviteClientTransaction if method == "INVITE" else NonInviteClientTransaction
        call.refresh_tx = self._new_client_tx(
            cls, request, self._dialog_destination(call, dialog), call, now
        )

    def _refresh_response(
        self, call: _Call, tx: ClientTransaction, response: Response, now: float
    ) -> None:
        status = response.status
        if status < 200:
            return
        if tx.method == "INVITE" and status < 300:
            self._ack_2xx(call, call.dialog, tx.request, response)
            if call.refresh_tx is not tx:
                return  # a retransmitted 2xx: ACKed again, nothing more
        call.refresh_tx = None
        if call.state != CallState.CONFIRMED:
            return
        if status < 300:
            if call.dialog is not None:
                call.dialog.update_target(response)
            self._arm_session_timer(call, timer_from_response(response.headers), now)
        elif status == 422:
            min_se = min_se_of(response.headers)
            if min_se is None or call.session_retries >= MAX_SESSION_RETRIES:
                self._send_bye(
                    call, now, EndReason.SESSION_EXPIRED, status, "session refresh refused"
                )
                return
            call.session_retries += 1
            call.min_se = max(call.min_se, min_se)
            self._send_refresh(call, now)
        elif status in (405, 501) and tx.method == "UPDATE":
            call.refresh_uses_invite = True  # it does not take UPDATE after all
            self._send_refresh(call, now)
        elif status in (491, 500):
            # Glare (§14.1) or a busy server: again after a few seconds.
            call.timer_refresh_at = now + self._retry_after(response, 2.1, 4.0)
        elif status in (401, 407) and self._retry_in_dialog_with_auth(call, tx, response, now):
            return
        else:
            detail = f"session refresh answered {status} {response.reason}".strip()
            self._send_bye(call, now, EndReason.SESSION_EXPIRED, status, detail)

    def _retry_after(self, response: Response, low: float, high: float) -> float:
        value = (response.headers.get("Retry-After") or "").partition(";")[0].strip()
        if value.isdecimal() and 0 < int(value) <= 32:
            return float(value)
        return self._random.uniform(low, high)

    def _ack_2xx(
        self, call: _Call, dialog: Dialog | None, request: Request, response: Response
    ) -> None:
        """ACK a 2xx to our INVITE or re-INVITE (§13.2.2.4), remembered for retransmissions."""
        seq = request.cseq.seq
        sent = call.acks.get(seq)
        if sent is not None:
            self._send(*sent)
            return
        if dialog is None:
            return
        ack = dialog.next_request("ACK", self._via(), cseq=seq)
        for name in ("Authorization", "Proxy-Authorization"):
            for value in request.headers.get_all(name):
                ack.headers.add(name, value)
        wire = ack.serialize()
        destination = self._dialog_destination(call, dialog)
        call.acks[seq] = (wire, destination)
        self._send(wire, destination)

    # ------------------------------------------------------------------ registration
    def _start_register(self, registration: Registration, now: float) -> None:
        if registration.state in (RegistrationState.UNREGISTERING, RegistrationState.STOPPED):
            return
        registration.state = RegistrationState.REGISTERING
        self._registration_targets.pop(registration.key, None)
        self._begin_register_request(registration, now)

    def _begin_register_request(self, registration: Registration, now: float) -> None:
        credentials = self._registration_credentials.get(registration.key)
        if credentials is not None:
            credentials.attempts.clear()
        if self._needs_locating(registration.next_hop):
            self._events.append(
                LocateRequest(registration.key, str(registration.next_hop), self.config.transport)
            )
            return
        self._send_register(registration, now)

    def _send_register(self, registration: Registration, now: float) -> None:
        expires = (
            0 if registration.state == RegistrationState.UNREGISTERING else registration.requested
        )
        contact = self._contact(registration.contact_user)
        request = registration.build_request(self._via(), contact, expires=expires)
        if self.config.user_agent:
            request.headers.add("User-Agent", self.config.user_agent)
        self._send_register_request(registration, request, now)

    def _send_register_request(
        self, registration: Registration, request: Request, now: float
    ) -> None:
        targets = self._registration_targets.get(registration.key)
        destination = targets[0] if targets else self._destination(registration.next_hop)
        self._new_client_tx(NonInviteClientTransaction, request, destination, registration, now)

    def _registration_response(
        self, registration: Registration, tx: ClientTransaction, response: Response, now: float
    ) -> None:
        status = response.status
        if status < 200:
            return
        registration.last_status = status
        if registration.state == RegistrationState.UNREGISTERING:
            if status in (401, 407) and self._retry_register_with_auth(
                registration, tx, response, now
            ):
                return
            self._forget_registration(registration, "unregistered")
            return
        if status < 300:
            granted = registration.granted_expires(
                response, self._contact_uri(registration.contact_user)
            )
            if granted <= 0:
                self._registration_failed(
                    registration, status, "the registrar kept no binding", now
                )
                return
            registration.registered(granted, now)
            self._events.append(
                RegistrationChanged(
                    registration.key, registration.state.value, status, "registered", granted
                )
            )
        elif status in (401, 407):
            if not self._retry_register_with_auth(registration, tx, response, now):
                return
        elif status == 423:
            min_expires = (response.headers.get("Min-Expires") or "").strip()
            if (
                min_expires.isdecimal()
                and registration.min_expires_retries < MAX_MIN_EXPIRES_RETRIES
                and int(min_expires) > registration.requested
            ):
                registration.min_expires_retries += 1
                registration.requested = min(int(min_expires), 86400)
                self._send_register(registration, now)
            else:
                self._registration_failed(registration, status, "423 Interval Too Brief", now)
        elif status == 503 and self._register_fail_over(registration, now):
            return
        else:
            self._registration_failed(
                registration, status, f"{status} {response.reason}".strip(), now
            )

    def _retry_register_with_auth(
        self, registration: Registration, tx: ClientTransaction, response: Response, now: float
    ) -> bool:
        """Answer a challenge to our REGISTER; False (after reporting) when we cannot."""
        credentials = self._registration_credentials.get(registration.key)
        if credentials is None:
            outcome: Request | str = "authentication required, no credentials"
        else:
            outcome = credentials.retry(tx.request, response, self._via())
        if isinstance(outcome, str):
            if registration.state == RegistrationState.UNREGISTERING:
                self._forget_registration(registration, outcome)
            else:
                self._registration_failed(registration, response.status, outcome, now)
            return False
        registration.cseq = outcome.cseq.seq
        self._send_register_request(registration, outcome, now)
        return True

    def _register_fail_over(self, registration: Registration, now: float) -> bool:
        targets = self._registration_targets.get(registration.key)
        if not targets or len(targets) < 2:
            return False
        targets.pop(0)
        self._send_register(registration, now)
        return True

    def _registration_failed(
        self, registration: Registration, status: int | None, detail: str, now: float
    ) -> None:
        wait = registration.failed(now)
        registration.last_detail = detail
        self._events.append(
            RegistrationChanged(
                registration.key, registration.state.value, status, detail, None, retry_in=wait
            )
        )

    def _forget_registration(self, registration: Registration, detail: str) -> None:
        registration.state = RegistrationState.STOPPED
        registration.next_action = None
        self._registrations.pop(registration.key, None)
        self._registration_credentials.pop(registration.key, None)
        self._registration_targets.pop(registration.key, None)
        self._events.append(
            RegistrationChanged(registration.key, registration.state.value, None, detail)
        )

    # ------------------------------------------------------ transaction user callbacks
    def transaction_response(self, tx: ClientTransaction, response: Response, now: float) -> None:
        probe = self._tx_probe.get(id(tx))
        if probe is not None:
            if response.status in (401, 407) and self._retry_probe(probe, response, now):
                return
            if response.status >= 200:
                self._probe_done(probe, response.status, response.reason)
            return
        owner = self._tx_owner.get(id(tx))
        if owner is None:
            return
        if isinstance(owner, Registration):
            if self._registrations.get(owner.key) is owner:
                self._registration_response(owner, tx, response, now)
            return
        call = owner
        method = tx.method
        if tx is call.invite_tx:
            self._invite_response(call, tx, response, now)
        elif tx is call.refresh_tx or (method == "INVITE" and tx.request.to.tag is not None):
            self._refresh_response(call, tx, response, now)
        elif method == "BYE":
            if response.status in (401, 407) and self._retry_in_dialog_with_auth(
                call, tx, response, now
            ):
                return
            if response.status >= 200:
                reason = call.end_reason or EndReason.LOCAL_HANGUP
                self._end(call, reason, call.end_status, call.end_detail, now=now)
        elif method == "NOTIFY" and response.status in (404, 405, 408, 481, 501):
            call.transfer = None  # the transferor no longer listens
        # CANCEL and PRACK responses need no action: the INVITE's final response decides.

    def transaction_timeout(self, tx: Transaction, now: float) -> None:
        probe = self._tx_probe.get(id(tx))
        if probe is not None:
            self._probe_done(probe, None, "no response")
            return
        owner = self._tx_owner.get(id(tx))
        if owner is None:
            return
        if isinstance(owner, Registration):
            if self._registrations.get(owner.key) is not owner:
                return
            if owner.state == RegistrationState.UNREGISTERING:
                self._forget_registration(owner, "no response to the unregistration")
            elif not self._register_fail_over(owner, now):
                target = tx.destination if isinstance(tx, ClientTransaction) else None
                where = f" from {target[0]}:{target[1]}" if target else ""
                self._registration_failed(owner, None, f"no response{where}", now)
            return
        call = owner
        if tx is call.invite_tx:
            if call.state in (CallState.CANCEL_PENDING, CallState.CANCELLING):
                self._end(call, EndReason.CANCELLED, None, "no response to INVITE", now=now)
            elif not self._fail_over(call, now) and not self._next_redirect(call, now):
                destination = tx.destination
                self._end(
                    call,
                    EndReason.UNREACHABLE,
                    None,
                    f"no response from {destination[0]}:{destination[1]}",
                    now=now,
                )
        elif tx is call.refresh_tx:
            call.refresh_tx = None
            self._send_bye(
                call, now, EndReason.SESSION_EXPIRED, None, "no response to session refresh"
            )
        elif isinstance(tx, NonInviteClientTransaction) and tx.method == "BYE":
            self._end(
                call,
                call.end_reason or EndReason.LOCAL_HANGUP,
                call.end_status,
                call.end_detail or "no response to BYE",
                now=now,
            )
        elif isinstance(tx, NonInviteClientTransaction) and tx.method == "NOTIFY":
            call.transfer = None
        # An InviteServerTransaction: the ACK for our non-2xx final never came; no matter.

    def transaction_terminated(self, tx: Transaction) -> None:
        if isinstance(tx, ClientTransaction):
            self._client_txs.pop(tx.key, None)
        else:
            self._server_txs.pop(tx.key, None)
        self._tx_owner.pop(id(tx), None)
        self._tx_probe.pop(id(tx), None)

    # ------------------------------------------------------------- INVITE responses
    def _invite_response(
        self, call: _Call, tx: InviteClientTransaction, response: Response, now: float
    ) -> None:
        status = response.status
        if status < 200:
            self._invite_provisional(call, response, now)
        elif status < 300:
            self._invite_success(call, response, now)
        elif call.ended:
            return
        elif call.state in (CallState.CANCEL_PENDING, CallState.CANCELLING):
            self._end(call, EndReason.CANCELLED, status, response.reason, now=now)
        elif status in (401, 407):
            self._invite_challenged(call, tx, response, now)
        elif status == 422 and self._retry_session_interval(call, response, now):
            return
        elif 300 <= status < 400 and self._follow_redirect(call, response, now):
            return
        elif status == 503 and self._fail_over(call, now):
            return
        elif status >= 400 and self._next_redirect(call, now):
            return  # that redirect target failed: the next one the 3xx gave
        else:
            detail = f"{status} {response.reason}".strip()
            targets: tuple[str, ...] = ()
            if 300 <= status < 400:
                detail += ": " + self._redirect_refusal(call)
                if call.redirects is None:  # the owner decides: it gets the Contacts
                    targets = tuple(str(uri) for uri in redirect_targets(response))
            elif status == 421:
                required = ", ".join(response.headers.tokens("Require"))
                if required:
                    detail += f" (requires {_bounded(required)})"
            self._end(call, reason_for_status(status), status, detail, now=now, targets=targets)

    def _invite_challenged(
        self, call: _Call, tx: InviteClientTransaction, response: Response, now: float
    ) -> None:
        if call.credentials is None:
            self._end(
                call,
                EndReason.AUTH_FAILED,
                response.status,
                "authentication required, no credentials",
                now=now,
            )
            return
        outcome = call.credentials.retry(tx.request, response, self._via())
        if isinstance(outcome, str):
            self._end(call, EndReason.AUTH_FAILED, response.status, outcome, now=now)
            return
        call.invite = outcome
        call.early_dialogs.clear()
        call.rseq.clear()
        call.targets = call.targets[:1] if call.targets else call.targets  # same server
        self._send_invite(call, now)

    def _retry_session_interval(self, call: _Call, response: Response, now: float) -> bool:
        """422 Session Interval Too Small (RFC 4028 §7.3): again with the interval it asks."""
        min_se = min_se_of(response.headers)
        if min_se is None or call.session_retries >= MAX_SESSION_RETRIES or call.invite is None:
            return False
        call.session_retries += 1
        call.min_se = max(call.min_se, min_se)
        call.session_interval = max(call.session_interval, call.min_se)
        call.invite.headers.set("Session-Expires", str(call.session_interval))
        call.invite.headers.set("Min-SE", str(max(call.min_se, self.config.min_se)))
        self._resend_invite(call, now, next_cseq=True)
        return True

    def _follow_redirect(self, call: _Call, response: Response, now: float) -> bool:
        redirects = call.redirects
        if redirects is None or redirects.hops >= redirects.max_hops:
            return False
        redirects.hops += 1
        redirects.status = response.status
        fresh: list[SipUri] = []
        for uri in redirect_targets(response):
            if any(uri.equivalent(seen) for seen in [*redirects.tried, *redirects.queue, *fresh]):
                continue
            if redirects.policy(uri):
                fresh.append(uri)
        redirects.queue[:0] = fresh  # the newest 3xx's targets first
        return self._next_redirect(call, now)

    def _next_redirect(self, call: _Call, now: float) -> bool:
        """Call the next target a 3xx gave (same Call-ID, From and To; new CSeq)."""
        redirects = call.redirects
        if redirects is None or not redirects.queue or call.invite is None:
            return False
        if call.state not in (CallState.CALLING, CallState.PROCEEDING):
            return False
        target = redirects.queue.pop(0)
        redirects.tried.append(target)
        call.invite.uri = target
        call.targets = None
        if call.route is None:
            call.destination = None if self._needs_locating(target) else self._destination(target)
        if call.credentials is not None:
            call.credentials.attempts.clear()
        self._events.append(CallRedirected(call.call_id, redirects.status, str(target)))
        self._resend_invite(call, now, next_cseq=True)
        return True

    def _redirect_refusal(self, call: _Call) -> str:
        redirects = call.redirects
        if redirects is None:
            return "redirects are not followed"
        if redirects.hops >= redirects.max_hops:
            return f"more than {redirects.max_hops} redirects"
        return "no target we may call"

    def _invite_provisional(self, call: _Call, response: Response, now: float) -> None:
        assert call.invite is not None  # responses come only to the INVITE we sent
        if call.ended or call.state == CallState.TERMINATING:
            return
        to_tag = response.to.tag
        reliable = (
            response.status > 100
            and to_tag is not None
            and any(tag.lower() == "100rel" for tag in response.headers.tokens("Require"))
        )
        if reliable and to_tag and not self._acknowledge_reliable(call, response, to_tag, now):
            return  # a retransmission, or out of order: already handled or to be dropped
        if call.state == CallState.CALLING:
            call.progress.move(CallState.PROCEEDING)
        self._events.append(ProgressEvent(call.call_id, response.status, response.reason))
        if to_tag and to_tag not in call.early_dialogs and response.status > 100:
            call.early_dialogs[to_tag] = Dialog.as_uac(call.invite, response)
        if response.status in (180, 181, 182) and "ringing" not in call.reported:
            call.reported.add("ringing")
            self._events.append(CallRinging(call.call_id))
        if response.body and response.content_type == SDP and response.status > 100:
            if reliable and call.answer_sdp is None:
                call.answer_sdp = response.body  # RFC 3262: this is the answer
            if "early_media" not in call.reported:
                call.reported.add("early_media")
                self._events.append(EarlyMedia(call.call_id, response.body))
        if call.state == CallState.CANCEL_PENDING:
            self._send_cancel(call, now)

    def _acknowledge_reliable(
        self, call: _Call, response: Response, to_tag: str, now: float
    ) -> bool:
        """PRACK a reliable provisional response (RFC 3262 §4); False to ignore it."""
        assert call.invite is not None  # responses come only to the INVITE we sent
        value = (response.headers.get("RSeq") or "").strip()
        if not value.isdecimal() or len(value) > 10:
            return False
        rseq = int(value)
        last = call.rseq.get(to_tag)
        if last is not None and rseq != last + 1:
            return False  # a retransmission (our PRACK is on its way) or out of order
        call.rseq[to_tag] = rseq
        dialog = call.early_dialogs.get(to_tag)
        if dialog is None:
            dialog = call.early_dialogs[to_tag] = Dialog.as_uac(call.invite, response)
        prack = dialog.next_request("PRACK", self._via())
        prack.headers.add("RAck", f"{rseq} {call.invite.cseq.seq} INVITE")
        if self.config.user_agent:
            prack.headers.add("User-Agent", self.config.user_agent)
        self._new_client_tx(
            NonInviteClientTransaction, prack, self._dialog_destination(call, dialog), call, now
        )
        return True

    def _invite_success(self, call: _Call, response: Response, now: float) -> None:
        assert call.invite is not None  # responses come only to the INVITE we sent
        to_tag = response.to.tag or ""
        if call.dialog is not None:
            if to_tag == call.dialog.remote_tag:
                self._ack_2xx(call, call.dialog, call.invite, response)  # a retransmission
            else:
                self._ack_and_bye_fork(call, response, now)
            return
        if call.ended:
            # Answered after we gave up (e.g. the CANCEL deadline passed): ACK, then BYE.
            self._ack_and_bye_fork(call, response, now)
            return
        dialog = Dialog.as_uac(call.invite, response)
        early = call.early_dialogs.get(to_tag)
        if early is not None:
            dialog.local_seq = max(dialog.local_seq, early.local_seq)  # our PRACKs' CSeqs
        dialog.confirmed = True
        call.dialog = dialog
        call.early_dialogs.clear()
        self._ack_2xx(call, dialog, call.invite, response)
        if call.state in (CallState.CANCEL_PENDING, CallState.CANCELLING):
            # The 200 crossed our CANCEL: the call is up, so end it with BYE (§9.1).
            call.cancel_deadline = None
            self._send_bye(call, now, EndReason.CANCELLED, 200, "answered while cancelling")
            return
        call.progress.move(CallState.CONFIRMED)
        answer = response.body if response.body else call.answer_sdp
        if response.body and response.content_type == SDP:
            call.answer_sdp = response.body
        if not answer:
            self._send_bye(call, now, EndReason.FAILED, 200, "2xx without an SDP answer")
            return
        call.refresh_uses_invite = not _allows(response.headers, "UPDATE")
        self._arm_session_timer(call, timer_from_response(response.headers), now)
        self._events.append(CallAnswered(call.call_id, answer))

    def _ack_and_bye_fork(self, call: _Call, response: Response, now: float) -> None:
        """A 2xx from another fork, or after we ended: ACK it and hang it up at once."""
        assert call.invite is not None  # responses come only to the INVITE we sent
        dialog = Dialog.as_uac(call.invite, response)
        ack = dialog.next_request("ACK", self._via(), cseq=call.invite.cseq.seq)
        destination = self._dialog_destination(call, dialog)
        self._send(ack.serialize(), destination)
        bye = dialog.next_request("BYE", self._via())
        # Reports nothing: the call it belonged to is accounted for.
        orphan = _Call(call.call_id, outgoing=True, state=CallState.TERMINATED)
        self._new_client_tx(NonInviteClientTransaction, bye, destination, orphan, now)

    def _retry_in_dialog_with_auth(
        self, call: _Call, tx: ClientTransaction, response: Response, now: float
    ) -> bool:
        """A request in the dialog (BYE, refresh) challenged: again with credentials.
        False when there are none or they were refused (the caller decides what then)."""
        if call.credentials is None or call.dialog is None:
            if tx.method == "BYE":
                self._end_after_bye(call, now)
                return True
            return False
        outcome = call.credentials.retry(tx.request, response, self._via())
        if isinstance(outcome, str):
            if tx.method == "BYE":
                self._end_after_bye(call, now)  # the call is over for us anyway
                return True
            return False
        call.dialog.local_seq = outcome.cseq.seq
        cls = InviteClientTransaction if tx.method == "INVITE" else NonInviteClientTransaction
        new_tx = self._new_client_tx(cls, outcome, tx.destination, call, now)
        if tx is call.refresh_tx:
            call.refresh_tx = new_tx
        return True

    def _end_after_bye(self, call: _Call, now: float) -> None:
        self._end(
            call,
            call.end_reason or EndReason.LOCAL_HANGUP,
            call.end_status,
            call.end_detail,
            now=now,
        )

    # ------------------------------------------------------------------ receiving
    def _receive_response(self, response: Response, addr: Address, now: float) -> None:
        vias = response.vias
        if len(vias) != 1 or f"{_host_for_uri(vias[0].host)}:{vias[0].port}" != self._sent_by:
            # §18.1.2: a response whose only Via is not ours was misrouted.
            self.counters["stray_responses"] += 1
            return
        key = (vias[0].branch, response.cseq.method)
        tx = self._client_txs.get(key)
        if tx is None:
            self.counters["stray_responses"] += 1
            if response.cseq.method == "INVITE" and response.is_success:
                self._stray_2xx(response, addr)
            return
        if not self._names.is_same(tx.destination, addr, match_port=self._match_port):
            # Whoever guessed the branch, the answer must come from where we asked.
            self.counters["spoofed_responses"] += 1
            return
        tx.receive_response(response, now)

    def _stray_2xx(self, response: Response, source: Address) -> None:
        """A 2xx retransmission after the INVITE transaction ended: ACK it again (§13.2.2.4)."""
        call = self._calls.get(response.call_id)
        if call is None or call.dialog is None or response.to.tag != call.dialog.remote_tag:
            return
        sent = call.acks.get(response.cseq.seq)
        if sent is None:
            return
        if not any(
            self._names.is_same(peer, source, match_port=self._match_port)
            for peer in (sent[1], *([call.destination] if call.destination else []))
        ):
            self.counters["spoofed_responses"] += 1
            return
        self._send(*sent)

    def _receive_request(self, request: Request, addr: Address, now: float) -> None:
        reply_to = self._stamp_via(request, addr)
        key = server_key(request)
        existing = self._server_txs.get(key)
        if existing is not None:
            if existing.receive_request(request, now) and request.method == "ACK":
                self._receive_ack(request, addr, now)
            return
        method = request.method
        if method == "ACK":
            self._receive_ack(request, addr, now)
            return
        if method == "CANCEL":
            self._receive_cancel(request, addr, reply_to, now)
            return
        call = dialog = None
        if request.to.tag is not None:
            call, dialog = self._find_dialog(request)
            if (
                call is not None
                and dialog is not None
                and not call.ended
                and not self._from_dialog_peer(call, dialog, addr)
            ):
                # Checked before any transaction or CSeq bookkeeping: a forged request
                # must leave no trace in the dialog, not even a higher remote CSeq.
                self.counters["spoofed_requests"] += 1
                return
        tx_cls = InviteServerTransaction if method == "INVITE" else NonInviteServerTransaction
        tx = self._new_server_tx(tx_cls, request, reply_to, addr)
        refusal = self._precheck(request)
        if refusal is not None:
            self.counters["refused_requests"] += 1
            tx.respond(refusal, now)
            return
        if request.to.tag is not None:
            self._in_dialog_request(request, tx, call, dialog, now)
        else:
            self._out_of_dialog_request(request, tx, now)

    def _stamp_via(self, request: Request, addr: Address) -> Address:
        """Add received/rport to the top Via (§18.2.1, RFC 3581); return where to reply."""
        vias = request.headers.get_list("Via")
        top = request.top_via
        host, port = top.sent_by
        params: dict[str, str | None] = {}
        if host != addr[0]:
            params["received"] = addr[0]
        if top.has_param("rport"):
            params["rport"] = str(addr[1])
            params["received"] = addr[0]
        if params:
            vias[0] = str(top.with_params(**params))
            request.headers.remove("Via")
            for value in reversed(vias):
                request.headers.prepend("Via", value)
        if self.config.reliable or top.has_param("rport"):
            return addr
        # §18.2.2 would send to a Via's maddr: we answer only the host the request came
        # from, so that no request can aim our responses at a third party.
        return (addr[0], port or 5060)

    def _precheck(self, request: Request) -> Response | None:
        """Refusals that do not depend on dialogs: scheme, extensions."""
        if not isinstance(request.uri, SipUri):
            return new_response(request, 416)
        required = (
            [tag for tag in request.headers.tokens("Require") if tag.lower() != "timer"]
            if "Require" in request.headers
            else []
        )
        if required:
            response = new_response(request, 420)
            response.headers.add("Unsupported", ", ".join(required))
            return response
        return None

    def _out_of_dialog_request(self, request: Request, tx: ServerTransaction, now: float) -> None:
        method = request.method
        if method == "OPTIONS":
            response = new_response(request, 200, to_tag=_new_tag())
            response.headers.add("Allow", ALLOWED_METHODS)
            response.headers.add("Accept", SDP)
            response.headers.add("Supported", SUPPORTED_AS_UAS)
            tx.respond(response, now)
        elif method == "INVITE" and self.config.accept_incoming:
            assert isinstance(tx, InviteServerTransaction)  # made for an INVITE
            self._incoming_invite(request, tx, now)
        elif method == "MESSAGE" and self.config.accept_messages:
            self._incoming_message(request, tx, now)
        elif method in ("INVITE", "BYE", "UPDATE", "INFO", "REFER"):
            # Not ours: no dialog, and we are not a proxy or an open relay.
            self.counters["refused_requests"] += 1
            status = 403 if method == "INVITE" else 481
            tx.respond(new_response(request, status, to_tag=_new_tag()), now)
        else:
            self._respond_unsupported(request, tx, now)

    def _respond_unsupported(self, request: Request, tx: ServerTransaction, now: float) -> None:
        status = 405 if request.method in KNOWN_UNSUPPORTED else 501
        response = new_response(request, status, to_tag=_new_tag())
        if status == 405:
            response.headers.add("Allow", ALLOWED_METHODS)
        tx.respond(response, now)

    def _find_dialog(self, request: Request) -> tuple[_Call | None, Dialog | None]:
        call = self._calls.get(request.call_id)
        if call is None:
            return None, None
        if call.dialog is not None and call.dialog.matches(request):
            return call, call.dialog
        for dialog in call.early_dialogs.values():
            if dialog.matches(request):
                return call, dialog
        return call, None

    def _in_dialog_request(
        self,
        request: Request,
        tx: ServerTransaction,
        call: _Call | None,
        dialog: Dialog | None,
        now: float,
    ) -> None:
        method = request.method
        if call is None or dialog is None or call.ended:
            tx.respond(new_response(request, 481), now)
            return
        if not dialog.check_remote_seq(request):
            tx.respond(new_response(request, 500, "CSeq out of order"), now)
            return
        if method == "BYE":
            tx.respond(new_response(request, 200), now)
            if call.outgoing and call.dialog is None:
                # BYE in an early dialog: the call is not coming.
                self._send_cancel(call, now)
            self._end(call, EndReason.REMOTE_HANGUP, None, "BYE from the far end", now=now)
        elif method in ("INVITE", "UPDATE"):
            self._receive_offer(call, dialog, request, tx, now)
        elif method == "OPTIONS":
            response = new_response(request, 200)
            response.headers.add("Allow", ALLOWED_METHODS)
            response.headers.add("Supported", SUPPORTED_AS_UAS)
            tx.respond(response, now)
        elif method == "INFO":
            tx.respond(new_response(request, 200), now)
            self._events.append(InfoReceived(call.call_id, request.content_type, request.body))
        elif method == "REFER":
            self._receive_refer(call, dialog, request, tx, now)
        else:
            self._respond_unsupported(request, tx, now)

    def _receive_refer(
        self, call: _Call, dialog: Dialog, request: Request, tx: ServerTransaction, now: float
    ) -> None:
        if dialog is not call.dialog or call.state != CallState.CONFIRMED:
            tx.respond(new_response(request, 481), now)  # no transfer before the answer
            return
        if not call.transfers_allowed:
            tx.respond(new_response(request, 603), now)  # this call's owner takes none
            return
        if call.transfer is not None:
            # One transfer at a time: the transferor may try again once this one ended.
            response = new_response(request, 491)
            tx.respond(response, now)
            return
        try:
            target = parse_refer(request.headers)
        except ReferError as exc:
            tx.respond(new_response(request, exc.status, str(exc)[:80]), now)
            return
        dialog.update_target(request)
        call.transfers += 1
        event = "refer" if call.transfers == 1 else f"refer;id={request.cseq.seq}"
        call.transfer = _Transfer(request, target, tx, event=event)
        self._events.append(
            TransferRequested(call.call_id, target.uri, target.replaces, target.referred_by)
        )

    def _receive_offer(
        self, call: _Call, dialog: Dialog, request: Request, tx: ServerTransaction, now: float
    ) -> None:
        outstanding_invite = (
            call.refresh_tx is not None
            and call.refresh_tx.method == "INVITE"
            and call.refresh_tx.state in (State.CALLING, State.PROCEEDING)
        )
        if (
            call.pending_offer_tx is not None
            or call.uas_2xx_next is not None
            or (outstanding_invite and request.method == "INVITE")
        ):
            # An offer is already being answered, or ours is out (§14.1, §14.2): the peer
            # must retry later.
            glare = outstanding_invite or request.method != "INVITE"
            response = new_response(request, 491 if glare else 500)
            response.headers.add("Retry-After", "1")
            tx.respond(response, now)
            return
        # An interval the peer's answer already set (below our Min-SE, as some PBXs do)
        # stays acceptable in its refreshes.
        min_se = self.config.min_se
        if call.timer is not None:
            min_se = min(min_se, call.timer.interval)
        timer, too_small = timer_for_request(
            request.headers, local_interval=self.config.session_expires, local_min_se=min_se
        )
        if too_small is not None:
            response = new_response(request, 422)
            response.headers.add("Min-SE", str(too_small))
            tx.respond(response, now)
            return
        if timer is None and call.timer is not None and "Session-Expires" not in request.headers:
            timer = call.timer  # a re-offer that says nothing of timers keeps ours going
        if request.method == "UPDATE" and not request.body:
            dialog.update_target(request)
            response = new_response(request, 200)
            response.headers.add("Contact", self._contact(self.config.user))
            self._add_timer_to_response(response, request, timer)
            tx.respond(response, now)
            self._arm_session_timer(call, timer, now)
            return
        if request.body and request.content_type != SDP:
            response = new_response(request, 415)
            response.headers.add("Accept", SDP)
            tx.respond(response, now)
            return
        dialog.update_target(request)
        call.pending_offer_tx = tx
        call.pending_offer_request = request
        call.pending_offer_timer = timer
        self._events.append(OfferReceived(call.call_id, request.body or None, request.method))

    def _add_timer_to_response(
        self, response: Response, request: Request, timer: SessionTimer | None
    ) -> None:
        response.headers.add("Supported", SUPPORTED_AS_UAS)
        if timer is None:
            return
        response.headers.add("Session-Expires", timer.header_in_response())
        if supports(request.headers, "timer"):
            response.headers.add("Require", "timer")

    def _receive_ack(self, request: Request, source: Address, now: float) -> None:
        call = self._calls.get(request.call_id)
        if call is None or call.uas_2xx_next is None:
            return
        if request.cseq.seq != call.uas_2xx_cseq:
            return
        dialog = call.dialog
        if (
            dialog is None
            or not dialog.matches(request)
            or not self._from_dialog_peer(call, dialog, source)
        ):
            # An ACK may carry the SDP answer: only the dialog's peer gives it.
            self.counters["spoofed_requests"] += 1
            return
        call.uas_2xx_next = None
        call.uas_2xx_wire = None
        self._events.append(AckReceived(call.call_id, request.body or None))

    def _receive_cancel(
        self, request: Request, source: Address, reply_to: Address, now: float
    ) -> None:
        # The INVITE it cancels has the same branch (§9.2).
        invite_key = server_key(Request("INVITE", request.uri, request.headers))
        invite_tx = self._server_txs.get(invite_key)
        if (
            isinstance(invite_tx, InviteServerTransaction)
            and invite_tx.source is not None
            and not self._names.is_same(invite_tx.source, source, match_port=self._match_port)
        ):
            self.counters["spoofed_requests"] += 1
            return
        tx = self._new_server_tx(NonInviteServerTransaction, request, reply_to, source)
        if not isinstance(invite_tx, InviteServerTransaction):
            tx.respond(new_response(request, 481), now)
            return
        tx.respond(new_response(request, 200), now)
        if invite_tx.state == State.PROCEEDING:
            call = self._calls.get(request.call_id)
            invite_tx.respond(self._terminated_response(invite_tx.request, call), now)
            if call is not None:
                self._end(call, EndReason.REMOTE_HANGUP, 487, "CANCEL from the caller", now=now)

    def _terminated_response(self, invite: Request, call: _Call | None) -> Response:
        tag = call.incoming_to_tag if call is not None else None
        return new_response(invite, 487, to_tag=tag or _new_tag())

    # ------------------------------------------------------------------ incoming messages
    def _incoming_message(self, request: Request, tx: ServerTransaction, now: float) -> None:
        refusal = pager.check_incoming(request)
        if refusal is not None:
            if "tag=" not in (refusal.headers.get("To") or ""):
                refusal.headers.set("To", f"{request.headers.get('To') or ''};tag={_new_tag()}")
            tx.respond(refusal, now)
            return
        key = f"message-{secrets.token_hex(8)}"
        self._received_messages[key] = _PendingMessage(tx, now + MESSAGE_REPLY_WITHIN)
        self._events.append(
            MessageReceived(
                key,
                tx.source or ("", 0),
                str(request.uri),
                request.headers.get("From") or "",
                request.headers.get("To") or "",
                request.body.decode("utf-8"),
            )
        )

    # ------------------------------------------------------------------ incoming calls
    def _incoming_invite(self, request: Request, tx: InviteServerTransaction, now: float) -> None:
        if request.call_id in self._calls:
            tx.respond(new_response(request, 482, to_tag=_new_tag()), now)
            return
        if request.body and request.content_type != SDP:
            response = new_response(request, 415, to_tag=_new_tag())
            response.headers.add("Accept", SDP)
            tx.respond(response, now)
            return
        if not _accepts_sdp(request):
            # We can only answer in SDP, and the caller says it cannot read it.
            response = new_response(request, 406, to_tag=_new_tag())
            response.headers.add("Warning", '399 - "only application/sdp answers"')
            tx.respond(response, now)
            return
        _, too_small = timer_for_request(
            request.headers,
            local_interval=self.config.session_expires,
            local_min_se=self.config.min_se,
        )
        if too_small is not None:
            response = new_response(request, 422, to_tag=_new_tag())
            response.headers.add("Min-SE", str(too_small))
            tx.respond(response, now)
            return
        call = _Call(request.call_id, outgoing=False, state=CallState.INCOMING)
        call.server_tx = tx
        call.origin = tx.source
        call.incoming_to_tag = _new_tag()
        self._calls[call.call_id] = call
        self._tx_owner[id(tx)] = call
        tx.respond(new_response(request, 100), now)
        self._events.append(
            IncomingCall(
                call.call_id,
                request.headers.get("From") or "",
                request.headers.get("To") or "",
                str(request.uri),
                request.body,
                tuple(request.headers),
            )
        )

    def _incoming(self, call_id: str) -> _Call:
        call = self._calls.get(call_id)
        if call is None or call.outgoing or call.server_tx is None:
            raise CallError(f"no incoming call {call_id}")
        if call.state != CallState.INCOMING or call.server_tx.state != State.PROCEEDING:
            raise CallError(f"call {call_id} is already answered or ended")
        return call

    def _uas_response(self, call: _Call, status: int, sdp: bytes | None) -> Response:
        assert call.server_tx is not None  # an incoming call's
        response = new_response(call.server_tx.request, status, to_tag=call.incoming_to_tag)
        response.headers.add("Contact", self._contact(self.config.user))
        if status == 200:
            response.headers.add("Allow", ALLOWED_METHODS)
        for value in call.server_tx.request.headers.get_all("Record-Route"):
            response.headers.add("Record-Route", value)
        if self.config.user_agent:
            response.headers.add("Server", self.config.user_agent)
        if sdp:
            response.headers.add("Content-Type", SDP)
            response.body = sdp
        return response

    def _reject_incoming(self, call: _Call, status: int, now: float) -> None:
        tx = call.server_tx
        if tx is not None and tx.state == State.PROCEEDING:
            tx.respond(new_response(tx.request, status, to_tag=call.incoming_to_tag), now)
        self._end(call, EndReason.REJECTED, status, "rejected by us", now=now)

    def _start_2xx_retransmission(
        self, call: _Call, response: Response, to: Address, cseq: int, now: float
    ) -> None:
        if self.config.reliable:
            call.uas_2xx_next = now + 64 * self.config.timers.t1  # only the give-up timer
            call.uas_2xx_interval = 64 * self.config.timers.t1
        else:
            call.uas_2xx_next = now + self.config.timers.t1
            call.uas_2xx_interval = self.config.timers.t1
        call.uas_2xx_wire = response.serialize()
        call.uas_2xx_to = to
        call.uas_2xx_cseq = cseq
        call.uas_2xx_deadline = now + 64 * self.config.timers.t1

    def _retransmit_2xx(self, call: _Call, now: float) -> None:
        if now >= call.uas_2xx_deadline:
            # No ACK for our 2xx (§13.3.1.4): the dialog is dead; end it with BYE.
            call.uas_2xx_next = None
            self._send_bye(call, now, EndReason.FAILED, None, "no ACK for our 2xx")
            return
        assert call.uas_2xx_wire is not None and call.uas_2xx_to is not None  # set together
        self._send(call.uas_2xx_wire, call.uas_2xx_to)
        call.uas_2xx_interval = min(call.uas_2xx_interval * 2, self.config.timers.t2)
        call.uas_2xx_next = min(now + call.uas_2xx_interval, call.uas_2xx_deadline)

    def _all_transactions(self) -> list[Transaction]:
        return [*self._client_txs.values(), *self._server_txs.values()]


def _accepts_sdp(request: Request) -> bool:
    if "Accept" not in request.headers:
        return True
    types = {t.split(";", 1)[0].strip().lower() for t in request.headers.get_list("Accept")}
    return bool(types & {SDP, "application/*", "*/*"})


def _allows(headers: Headers, method: str) -> bool:
    """Whether a message's Allow lists `method` (no Allow: assume not, RFC 3261 §20.5)."""
    return any(value.upper() == method for value in headers.tokens("Allow"))


def _new_tag() -> str:
    return secrets.token_hex(6)


def _new_branch() -> str:
    return MAGIC_COOKIE + secrets.token_hex(10)


def _host_for_uri(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _host_of(uri: Uri | None) -> str:
    if isinstance(uri, SipUri):
        return uri.host
    return "the next hop"


def _bounded(text: str, limit: int = 80) -> str:
    clean = "".join(ch for ch in text if " " <= ch < "\x7f")
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def _escape_user(user: str) -> str:
    """Escape a user part so that whatever the caller passes cannot break the URI."""
    safe = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()&=+$,;?/")
    return "".join(c if c in safe else "".join(f"%{b:02X}" for b in c.encode()) for c in user)


def _validated_headers(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Extra headers from the application: names must be tokens and values one line, so
    nothing a visitor typed can inject a header or end the header section."""
    reserved = {
        "via",
        "from",
        "to",
        "call-id",
        "cseq",
        "contact",
        "content-length",
        "content-type",
        "max-forwards",
        "route",
        "record-route",
        "supported",
        "session-expires",
        "min-se",
    }
    out = []
    for name, value in headers:
        if not is_token(name) or canonical_name(name).lower() in reserved:
            raise ValueError(f"header {name!r} cannot be set by the application")
        clean = "".join(c for c in value if c >= " " and c != "\x7f")
        out.append((canonical_name(name), clean.strip()))
    return out


__all__ = [
    "CallError",
    "ConfirmedDialog",
    "NameAddress",
    "RingingInvite",
    "UserAgent",
    "UserAgentConfig",
    "uri_address",
]
