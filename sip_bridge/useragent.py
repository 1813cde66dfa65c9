"""The sans-I/O SIP user agent: calls out (and, optionally, in) over one transport, and
asks whether a peer is there (OPTIONS outside any dialog, `options`).

Shaped like aioquic's `QuicConnection`: the owner feeds `receive_datagram(data, addr, now)`,
sends what `datagrams_to_send(now)` returns, wakes it at `get_timer()` with
`handle_timer(now)`, and reads `next_event()`. Nothing here touches a socket or a clock.

It is a user agent, not a proxy: requests outside our dialogs other than OPTIONS (and INVITE
when `accept_incoming` is set, for a phone) are refused, so it can never relay a call.

The edge facing the network (what a datagram must pass before it can change anything):
- `allowed_peers`: datagrams from addresses outside these networks are dropped unread.
- `request_rate`: requests beyond a token bucket per source IP are dropped unread.
- A response is taken only from the address its request was sent to (the next hop: the
  outbound proxy, or the host of the Request-URI), IP and port on UDP, IP on TCP/TLS.
- A request inside a dialog (BYE, re-INVITE, UPDATE, INFO, ACK for our 2xx) is taken only
  from the dialog's peer: the address we send the dialog's requests to (first route, the
  outbound proxy, or the remote target), the remote target itself, where the INVITE went,
  or where an incoming INVITE came from. Same port on UDP; on TCP/TLS, where connections
  come from ephemeral ports and a source cannot be forged blind, the same IP. A CANCEL
  is taken only from the sender of the INVITE it cancels.
  Anything else is dropped without an answer: answering would reflect traffic to a forged
  source, and a 481 could make a genuine but misrouted peer drop its side of the call.
- Host names in URIs are compared through the resolutions the I/O layer reports
  (`address_resolved`).
Each drop is counted in `counters`.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field
from typing import TypeVar

from sip_bridge import digest
from sip_bridge.dialog import Dialog
from sip_bridge.errors import SipParseError
from sip_bridge.events import (
    AckReceived,
    CallAnswered,
    CallEnded,
    CallProgress,
    CallRinging,
    EarlyMedia,
    EndReason,
    Event,
    IncomingCall,
    InfoReceived,
    MessageTrace,
    OfferReceived,
    OptionsResult,
    reason_for_status,
)
from sip_bridge.headers import Headers, canonical_name, is_token
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

ALLOWED_METHODS = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO"
KNOWN_UNSUPPORTED = frozenset(
    {"REGISTER", "SUBSCRIBE", "NOTIFY", "REFER", "MESSAGE", "PUBLISH", "PRACK"}
)
SDP = "application/sdp"
_ClientTx = TypeVar("_ClientTx", bound=ClientTransaction)
_ServerTx = TypeVar("_ServerTx", bound=ServerTransaction)


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


@dataclass
class _Credentials:
    client: digest.DigestClient
    attempts: dict[str, int] = field(default_factory=dict)  # per realm


@dataclass
class _Probe:
    """An OPTIONS outside any dialog (`UserAgent.options`), until its final response."""

    key: str
    tx: NonInviteClientTransaction
    deadline: float | None  # give up then, before timer F; None: timer F only


class _Call:
    """What the UA keeps for one call (one Call-ID)."""

    def __init__(self, call_id: str, outgoing: bool) -> None:
        self.call_id = call_id
        self.outgoing = outgoing
        self.invite: Request | None = None
        self.invite_tx: InviteClientTransaction | None = None
        self.server_tx: InviteServerTransaction | None = None
        self.destination: Address | None = None
        self.route: SipUri | None = None  # outbound proxy of this call, if any
        self.dialog: Dialog | None = None  # the confirmed dialog
        self.early_dialogs: dict[str, Dialog] = {}
        self.credentials: _Credentials | None = None
        self.provisional_seen = False
        self.ringing_reported = False
        self.early_media_reported = False
        self.cancel_wanted = False
        self.cancel_sent = False
        self.cancel_deadline: float | None = None
        self.ack_wire: bytes | None = None
        self.ack_destination: Address | None = None
        self.ended = False
        self.end_reason: EndReason | None = None
        self.end_status: int | None = None
        self.end_detail = ""
        self.bye_sent = False
        # A re-INVITE/UPDATE from the far end waiting for the owner's answer.
        self.pending_offer_tx: ServerTransaction | None = None
        self.pending_offer_request: Request | None = None
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


class UserAgent:
    def __init__(self, config: UserAgentConfig) -> None:
        self.config = config
        self._outbox: list[tuple[bytes, Address]] = []
        self._events: deque[Event | MessageTrace | OptionsResult] = deque()
        self._calls: dict[str, _Call] = {}
        self._client_txs: dict[tuple, ClientTransaction] = {}
        self._server_txs: dict[tuple, ServerTransaction] = {}
        self._tx_call: dict[int, _Call] = {}
        self._probes: dict[str, _Probe] = {}  # by the owner's key
        self._tx_probe: dict[int, _Probe] = {}
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
            if call.uas_2xx_next is not None:
                deadlines.append(call.uas_2xx_next)
            if call.cancel_deadline is not None:
                deadlines.append(call.cancel_deadline)
        deadlines.extend(p.deadline for p in self._probes.values() if p.deadline is not None)
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
        for probe in list(self._probes.values()):
            if probe.deadline is not None and probe.deadline <= now:
                self._probe_done(probe, None, "no response in time")
                probe.tx.abandon()

    def next_event(self) -> Event | MessageTrace | OptionsResult | None:
        return self._events.popleft() if self._events else None

    @property
    def active_calls(self) -> int:
        return len(self._calls)

    @property
    def call_ids(self) -> list[str]:
        """The Call-IDs of the calls not ended yet."""
        return list(self._calls)

    def live_calls(self) -> list[ConfirmedDialog | RingingInvite]:
        """The calls that another process would have to end if this one died: answered
        calls not yet hung up, and our INVITEs still ringing (a supervisor ends them for a
        dead worker, gateway/process/journal.py). Calls without a routable next hop are
        left out: nothing could reach them."""
        live: list[ConfirmedDialog | RingingInvite] = []
        for call in self._calls.values():
            dialog = call.dialog
            if dialog is not None:
                if not dialog.confirmed or call.bye_sent:
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
            elif call.outgoing and call.invite is not None and call.destination is not None:
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
        display_name: str | None = None,
        credentials: tuple[str, str] | None = None,
        headers: list[tuple[str, str]] | None = None,
        call_id: str | None = None,
        proxy: str | None = None,
    ) -> str:
        """Start a call to `target` with our SDP offer; returns its Call-ID.

        `proxy` (a SIP URI) overrides the configured outbound proxy for this call.
        """
        uri = parse_uri(target)
        if not isinstance(uri, SipUri):
            raise ValueError(f"can only call sip: or sips: URIs, not {target!r}")
        extra = _validated_headers(headers or [])
        call_id = call_id or f"{secrets.token_hex(12)}@{_host_for_uri(self.config.address[0])}"
        if call_id in self._calls:
            raise CallError(f"call {call_id} exists")
        call = _Call(call_id, outgoing=True)
        call.extra_headers = extra
        if credentials is not None:
            call.credentials = _Credentials(
                digest.DigestClient(digest.DigestCredentials(*credentials))
            )
        display = display_name if display_name is not None else self.config.display_name
        user = from_user or self.config.user
        domain = self.config.from_domain or self.config.address[0]
        from_uri = SipUri.build(_host_for_uri(domain), user=_escape_user(user))
        from_party = f"<{from_uri}>;tag={_new_tag()}"
        if display:
            from_party = f"{quote_display_name(display)} {from_party}"
        route = parse_sip_uri(proxy) if proxy else self._proxy
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
        if self.config.user_agent:
            headers_.add("User-Agent", self.config.user_agent)
        for name, value in extra:
            headers_.add(name, value)
        headers_.add("Content-Type", SDP)
        call.invite = Request("INVITE", uri.without_headers(), headers_, sdp)
        try:  # text that cannot go on the wire (a lone surrogate) fails here, not later
            call.invite.serialize()
        except UnicodeEncodeError as exc:
            raise ValueError(f"the INVITE cannot be encoded: {exc.reason}") from None
        call.route = route
        call.destination = self._destination(route or uri)
        self._calls[call_id] = call
        self._start_invite(call, now)
        return call_id

    def hangup(self, call_id: str, now: float, *, status: int = 486) -> None:
        """End a call in whatever state it is: CANCEL, BYE, or reject an incoming one.

        `status` is the response for an incoming call not answered yet.
        """
        call = self._calls.get(call_id)
        if call is None or call.ended:
            return
        if not call.outgoing and call.dialog is None:
            self._reject_incoming(call, status, now)
            return
        if call.dialog is not None:
            self._send_bye(call, now, EndReason.LOCAL_HANGUP)
            return
        call.cancel_wanted = True
        if call.provisional_seen:
            self._send_cancel(call, now)
        elif call.invite_tx is None or call.invite_tx.state == State.TERMINATED:
            self._end(call, EndReason.CANCELLED, None, "cancelled before sending", now=now)

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
        tx = NonInviteClientTransaction(
            request,
            self._destination(route or uri),
            self._send,
            self,
            reliable=self.config.reliable,
            timers=self.config.timers,
        )
        probe = _Probe(key, tx, None if timeout is None else now + timeout)
        self._probes[key] = probe
        self._tx_probe[id(tx)] = probe
        self._client_txs[tx.key] = tx
        tx.start(now)

    def _probe_done(self, probe: _Probe, status: int | None, reason: str) -> None:
        if self._probes.get(probe.key) is probe:
            del self._probes[probe.key]
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
        response = self._uas_response(call, 200, sdp)
        call.server_tx.respond(response, now)
        self._start_2xx_retransmission(
            call, response, call.server_tx.reply_to, invite.cseq.seq, now
        )

    def answer_offer(self, call_id: str, now: float, *, sdp: bytes) -> None:
        """Answer the pending re-INVITE/UPDATE from the far end with 200 and `sdp`."""
        call = self._calls.get(call_id)
        if call is None or call.pending_offer_tx is None or call.dialog is None:
            raise CallError(f"no offer pending on call {call_id}")
        tx, request = call.pending_offer_tx, call.pending_offer_request
        call.pending_offer_tx = call.pending_offer_request = None
        assert request is not None  # set with pending_offer_tx
        response = new_response(request, 200)
        response.headers.add("Contact", self._contact(self.config.user))
        response.headers.add("Allow", ALLOWED_METHODS)
        response.headers.add("Content-Type", SDP)
        response.body = sdp
        tx.respond(response, now)
        if request.method == "INVITE":
            self._start_2xx_retransmission(call, response, tx.reply_to, request.cseq.seq, now)

    def reject_offer(self, call_id: str, now: float, *, status: int = 488) -> None:
        call = self._calls.get(call_id)
        if call is None or call.pending_offer_tx is None:
            raise CallError(f"no offer pending on call {call_id}")
        tx, request = call.pending_offer_tx, call.pending_offer_request
        call.pending_offer_tx = call.pending_offer_request = None
        assert request is not None  # set with pending_offer_tx
        tx.respond(new_response(request, status), now)

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
        host, port = self.config.address
        params = (
            {}
            if self.config.transport.lower() == "udp"
            else {"transport": self.config.transport.lower()}
        )
        scheme = "sips" if self.config.transport.lower() == "tls" else "sip"
        uri = SipUri.build(
            _host_for_uri(host), user=_escape_user(user), port=port, scheme=scheme, params=params
        )
        return f"<{uri}>"

    def _destination(self, uri: Uri) -> Address:
        return uri_address(uri, self.config.transport)

    def _dialog_destination(self, call: _Call, dialog: Dialog) -> Address:
        """Next hop of an in-dialog request: the route set, else the call's outbound proxy
        (a gateway behind NAT reaches phones through it), else the remote target."""
        if not dialog.route_set and call.route is not None:
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
        self, cls: type[_ClientTx], request: Request, destination: Address, call: _Call, now: float
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
        self._tx_call[id(tx)] = call
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

    def _start_invite(self, call: _Call, now: float) -> None:
        assert call.invite is not None and call.destination is not None  # set by invite()
        call.invite_tx = self._new_client_tx(
            InviteClientTransaction, call.invite, call.destination, call, now
        )

    def _send_cancel(self, call: _Call, now: float) -> None:
        if call.cancel_sent or call.invite is None:
            return
        call.cancel_sent = True
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
        if call.bye_sent or call.dialog is None:
            return
        call.bye_sent = True
        call.end_reason, call.end_status, call.end_detail = reason, status, detail
        bye = call.dialog.next_request("BYE", self._via())
        if self.config.user_agent:
            bye.headers.add("User-Agent", self.config.user_agent)
        self._new_client_tx(
            NonInviteClientTransaction, bye, self._dialog_destination(call, call.dialog), call, now
        )

    def _end(
        self, call: _Call, reason: EndReason, status: int | None, detail: str, *, now: float
    ) -> None:
        if call.ended:
            return
        call.ended = True
        call.uas_2xx_next = None
        call.cancel_deadline = None
        if call.pending_offer_tx is not None:
            # A re-INVITE/UPDATE the owner had not answered yet: its transaction would
            # wait forever, and its sender for a final response (§15.1.2: 487).
            tx, request = call.pending_offer_tx, call.pending_offer_request
            call.pending_offer_tx = call.pending_offer_request = None
            assert request is not None  # set with pending_offer_tx
            tx.respond(new_response(request, 487), now)
        self._calls.pop(call.call_id, None)
        self._events.append(CallEnded(call.call_id, reason, status, detail))

    # ------------------------------------------------------ transaction user callbacks
    def transaction_response(self, tx: ClientTransaction, response: Response, now: float) -> None:
        probe = self._tx_probe.get(id(tx))
        if probe is not None:
            if response.status >= 200:
                self._probe_done(probe, response.status, response.reason)
            return
        call = self._tx_call.get(id(tx))
        if call is None:
            return
        if tx.method == "INVITE":
            assert isinstance(tx, InviteClientTransaction)  # made for an INVITE
            self._invite_response(call, tx, response, now)
        elif tx.method == "BYE":
            if response.status in (401, 407) and self._retry_with_auth(call, tx, response, now):
                return
            if response.status >= 200:
                reason = call.end_reason or EndReason.LOCAL_HANGUP
                self._end(call, reason, call.end_status, call.end_detail, now=now)
        # CANCEL responses need no action: the INVITE's final response decides.

    def transaction_timeout(self, tx: Transaction, now: float) -> None:
        probe = self._tx_probe.get(id(tx))
        if probe is not None:
            self._probe_done(probe, None, "no response")
            return
        call = self._tx_call.get(id(tx))
        if call is None:
            return
        if isinstance(tx, InviteClientTransaction):
            if call.cancel_sent:
                self._end(call, EndReason.CANCELLED, None, "no response to INVITE", now=now)
            else:
                self._end(
                    call,
                    EndReason.UNREACHABLE,
                    None,
                    f"no response from {tx.destination[0]}:{tx.destination[1]}",
                    now=now,
                )
        elif isinstance(tx, NonInviteClientTransaction) and tx.method == "BYE":
            self._end(
                call,
                call.end_reason or EndReason.LOCAL_HANGUP,
                call.end_status,
                call.end_detail or "no response to BYE",
                now=now,
            )
        elif isinstance(tx, InviteServerTransaction):
            pass  # the ACK for our non-2xx final never came: nothing more to do

    def transaction_terminated(self, tx: Transaction) -> None:
        if isinstance(tx, ClientTransaction):
            self._client_txs.pop(tx.key, None)
        else:
            self._server_txs.pop(tx.key, None)
        self._tx_call.pop(id(tx), None)
        self._tx_probe.pop(id(tx), None)

    # ------------------------------------------------------------- INVITE responses
    def _invite_response(
        self, call: _Call, tx: InviteClientTransaction, response: Response, now: float
    ) -> None:
        status = response.status
        if tx is not call.invite_tx:
            return  # a response to an INVITE superseded by the authenticated retry
        if status < 200:
            self._invite_provisional(call, response, now)
        elif status < 300:
            self._invite_success(call, response, now)
        elif call.ended:
            return
        elif status in (401, 407) and self._retry_with_auth(call, tx, response, now):
            return
        elif call.cancel_sent and status == 487:
            self._end(call, EndReason.CANCELLED, status, response.reason, now=now)
        else:
            detail = f"{status} {response.reason}".strip()
            self._end(call, reason_for_status(status), status, detail, now=now)

    def _invite_provisional(self, call: _Call, response: Response, now: float) -> None:
        assert call.invite is not None  # responses come only to the INVITE we sent
        if call.ended:
            return
        call.provisional_seen = True
        self._events.append(CallProgress(call.call_id, response.status, response.reason))
        to_tag = response.to.tag
        if to_tag and to_tag not in call.early_dialogs and response.status > 100:
            call.early_dialogs[to_tag] = Dialog.as_uac(call.invite, response)
        if response.status in (180, 181, 182) and not call.ringing_reported:
            call.ringing_reported = True
            self._events.append(CallRinging(call.call_id))
        if (
            response.body
            and response.content_type == SDP
            and response.status > 100
            and not call.early_media_reported
        ):
            call.early_media_reported = True
            self._events.append(EarlyMedia(call.call_id, response.body))
        if call.cancel_wanted:
            self._send_cancel(call, now)

    def _invite_success(self, call: _Call, response: Response, now: float) -> None:
        assert call.invite is not None  # responses come only to the INVITE we sent
        to_tag = response.to.tag or ""
        if call.dialog is not None:
            if to_tag == call.dialog.remote_tag:
                self._resend_ack(call)  # a retransmitted 2xx: ACK it again
            else:
                self._ack_and_bye_fork(call, response, now)
            return
        if call.ended:
            # Answered after we gave up (e.g. the CANCEL deadline passed): ACK, then BYE.
            self._ack_and_bye_fork(call, response, now)
            return
        dialog = Dialog.as_uac(call.invite, response)
        dialog.confirmed = True
        call.dialog = dialog
        call.early_dialogs.clear()
        self._send_ack(call, dialog, response)
        if call.cancel_wanted:
            # The 200 crossed our CANCEL: the call is up, so end it with BYE (§9.1).
            self._send_bye(call, now, EndReason.CANCELLED, 200, "answered while cancelling")
            call.cancel_deadline = None
            return
        if not response.body:
            self._send_bye(call, now, EndReason.FAILED, 200, "2xx without an SDP answer")
            return
        self._events.append(CallAnswered(call.call_id, response.body))

    def _send_ack(self, call: _Call, dialog: Dialog, response: Response) -> None:
        assert call.invite is not None  # responses come only to the INVITE we sent
        ack = dialog.next_request("ACK", self._via(), cseq=call.invite.cseq.seq)
        for name in ("Authorization", "Proxy-Authorization"):
            for value in call.invite.headers.get_all(name):
                ack.headers.add(name, value)
        call.ack_wire = ack.serialize()
        call.ack_destination = self._dialog_destination(call, dialog)
        self._send(call.ack_wire, call.ack_destination)

    def _resend_ack(self, call: _Call) -> None:
        if call.ack_wire is not None:
            assert call.ack_destination is not None  # set with ack_wire
            self._send(call.ack_wire, call.ack_destination)

    def _ack_and_bye_fork(self, call: _Call, response: Response, now: float) -> None:
        """A 2xx from another fork, or after we ended: ACK it and hang it up at once."""
        assert call.invite is not None  # responses come only to the INVITE we sent
        dialog = Dialog.as_uac(call.invite, response)
        ack = dialog.next_request("ACK", self._via(), cseq=call.invite.cseq.seq)
        destination = self._dialog_destination(call, dialog)
        self._send(ack.serialize(), destination)
        bye = dialog.next_request("BYE", self._via())
        orphan = _Call(call.call_id, outgoing=True)
        orphan.ended = True  # reports nothing: the call it belonged to is accounted for
        self._new_client_tx(NonInviteClientTransaction, bye, destination, orphan, now)

    def _retry_with_auth(
        self, call: _Call, tx: ClientTransaction, response: Response, now: float
    ) -> bool:
        """Answer a 401/407 by resending the request with credentials; False gives up."""
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        values = response.headers.get_all(header)
        creds = call.credentials
        if creds is None:
            self._fail_auth(call, response, now, "authentication required, no credentials")
            return True
        try:
            challenge = digest.choose_challenge(values)
        except digest.DigestError as exc:
            self._fail_auth(call, response, now, f"unusable challenge: {exc}")
            return True
        # One try per realm, and one more when the server says our nonce was stale: a
        # second plain challenge for the same realm means the credentials were refused.
        attempts = creds.attempts.get(challenge.realm, 0)
        if attempts >= 2 or (attempts == 1 and not challenge.stale):
            self._fail_auth(call, response, now, "credentials refused")
            return True
        creds.attempts[challenge.realm] = attempts + 1
        original = tx.request
        retry = Request(original.method, original.uri, original.headers.copy(), original.body)
        retry.headers.replace_first("Via", self._via())
        cseq = original.cseq
        retry.headers.set("CSeq", f"{cseq.seq + 1} {cseq.method}")
        auth_header = "Authorization" if response.status == 401 else "Proxy-Authorization"
        retry.headers.remove(auth_header)
        retry.headers.add(
            auth_header,
            creds.client.authorization(
                challenge, method=original.method, uri=str(original.uri), body=original.body
            ),
        )
        if original.method == "INVITE":
            call.invite = retry
            call.provisional_seen = False
            self._start_invite(call, now)
        else:
            if call.dialog is not None:
                call.dialog.local_seq = cseq.seq + 1
            self._new_client_tx(NonInviteClientTransaction, retry, tx.destination, call, now)
        return True

    def _fail_auth(self, call: _Call, response: Response, now: float, detail: str) -> None:
        if call.dialog is not None and call.bye_sent:
            # A BYE we cannot authenticate: the call is over for us anyway.
            self._end(
                call,
                call.end_reason or EndReason.LOCAL_HANGUP,
                call.end_status,
                call.end_detail,
                now=now,
            )
            return
        self._end(call, EndReason.AUTH_FAILED, response.status, detail, now=now)

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
        if (
            call is not None
            and call.dialog is not None
            and call.destination is not None
            and (response.to.tag == call.dialog.remote_tag)
        ):
            if not self._names.is_same(call.destination, source, match_port=self._match_port):
                self.counters["spoofed_responses"] += 1
                return
            self._resend_ack(call)

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
            [tag for tag in request.headers.get_list("Require") if tag.lower() != "timer"]
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
            tx.respond(response, now)
        elif method == "INVITE" and self.config.accept_incoming:
            assert isinstance(tx, InviteServerTransaction)  # made for an INVITE
            self._incoming_invite(request, tx, now)
        elif method in ("INVITE", "BYE", "UPDATE", "INFO"):
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
            tx.respond(response, now)
        elif method == "INFO":
            tx.respond(new_response(request, 200), now)
            self._events.append(InfoReceived(call.call_id, request.content_type, request.body))
        else:
            self._respond_unsupported(request, tx, now)

    def _receive_offer(
        self, call: _Call, dialog: Dialog, request: Request, tx: ServerTransaction, now: float
    ) -> None:
        if call.pending_offer_tx is not None or call.uas_2xx_next is not None:
            # An offer is already being answered (§14.2): the peer must retry later.
            response = new_response(request, 500 if request.method == "INVITE" else 491)
            response.headers.add("Retry-After", "1")
            tx.respond(response, now)
            return
        if request.method == "UPDATE" and not request.body:
            dialog.update_target(request)
            response = new_response(request, 200)
            response.headers.add("Contact", self._contact(self.config.user))
            tx.respond(response, now)
            return
        if request.body and request.content_type != SDP:
            response = new_response(request, 415)
            response.headers.add("Accept", SDP)
            tx.respond(response, now)
            return
        dialog.update_target(request)
        call.pending_offer_tx = tx
        call.pending_offer_request = request
        self._events.append(OfferReceived(call.call_id, request.body or None, request.method))

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
        call = _Call(request.call_id, outgoing=False)
        call.server_tx = tx
        call.origin = tx.source
        call.incoming_to_tag = _new_tag()
        self._calls[call.call_id] = call
        self._tx_call[id(tx)] = call
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
        if call.server_tx.state != State.PROCEEDING:
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


def _new_tag() -> str:
    return secrets.token_hex(6)


def _new_branch() -> str:
    return MAGIC_COOKIE + secrets.token_hex(10)


def _host_for_uri(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


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
    }
    out = []
    for name, value in headers:
        if not is_token(name) or canonical_name(name).lower() in reserved:
            raise ValueError(f"header {name!r} cannot be set by the application")
        clean = "".join(c for c in value if c >= " " and c != "\x7f")
        out.append((canonical_name(name), clean.strip()))
    return out


__all__ = ["CallError", "NameAddress", "UserAgent", "UserAgentConfig"]
