"""Fuzzing running user agents (sans-I/O, fake clock): thousands of mutated datagrams into a
gateway-side UA and a phone-side UA with a call up between them.

Mutations start from the recorded corpus and from the live call's own messages (its real
Call-ID and tags), so that they reach dialog matching, not only the parser. Nothing may
escape `receive_datagram` or `handle_timer`; datagrams from strangers must leave the call
untouched; afterwards a normal call still completes and every transaction drains.

The seed is random per run and printed; `FUZZ_SEED=<n>` replays a run.
"""

from __future__ import annotations

import contextlib
import os
import random

from sip_bridge.errors import SipParseError
from sip_bridge.events import CallAnswered, CallEnded, IncomingCall
from sip_bridge.headers import Headers
from sip_bridge.message import Request, Response, parse_message
from sip_bridge.useragent import UserAgent, UserAgentConfig
from tests.sip_bridge.loop import Wire

from . import corpus
from .mutate import Mutator

GATEWAY = ("127.0.0.1", 5070)
PHONE = ("127.0.0.1", 5080)
OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 20000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
)
ANSWER = OFFER.replace(b"20000", b"30000")
FROM_STRANGERS = 4000
FROM_PEERS = 1500


class Phone:
    """The phone's application: answers the calls it expects, rejects every other."""

    def __init__(self, wire: Wire, ua: UserAgent) -> None:
        self.wire, self.ua = wire, ua
        self.expected: set[str] = set()
        self.seen = 0

    def serve(self) -> None:
        events = self.wire.events[PHONE]
        for event in events[self.seen :]:
            if isinstance(event, IncomingCall):
                if event.call_id in self.expected:
                    self.ua.answer(event.call_id, self.wire.now, sdp=ANSWER)
                else:
                    self.ua.hangup(event.call_id, self.wire.now, status=403)
        self.seen = len(events)
        self.wire.flush()


def place_call(wire: Wire, gateway: UserAgent, phone: Phone) -> str:
    call_id = f"call-{len(phone.expected)}@fuzz"
    phone.expected.add(call_id)
    gateway.invite("sip:operator@127.0.0.1:5080", wire.now, sdp=OFFER, call_id=call_id)
    wire.flush()
    phone.serve()
    answered = [e for e in wire.events[GATEWAY] if isinstance(e, CallAnswered)]
    assert any(e.call_id == call_id for e in answered), "the call was not answered"
    return call_id


def ended(wire: Wire, address, call_id: str) -> list[CallEnded]:
    return [e for e in wire.events[address] if isinstance(e, CallEnded) and e.call_id == call_id]


def in_dialog_requests(wire: Wire, call_id: str) -> list[bytes]:
    """Requests either side could send inside the live call, with its real identifiers."""
    invite = next(
        m
        for m in _sent_by(wire, GATEWAY)
        if isinstance(m, Request) and m.method == "INVITE" and m.call_id == call_id
    )
    ok = next(
        m
        for m in _sent_by(wire, PHONE)
        if isinstance(m, Response) and m.status == 200 and m.call_id == call_id
    )
    sides = (
        (PHONE, ok.headers.get("To"), invite.headers.get("From"), invite.from_.uri),
        (GATEWAY, invite.headers.get("From"), ok.headers.get("To"), invite.uri),
    )
    out = []
    for address, from_, to, uri in sides:
        for seq, method in enumerate(("BYE", "INVITE", "UPDATE", "INFO", "OPTIONS", "ACK"), 10):
            h = Headers()
            h.add("Via", f"SIP/2.0/UDP {address[0]}:{address[1]};branch=z9hG4bKfz{seq};rport")
            h.add("Max-Forwards", "70")
            h.add("From", from_)
            h.add("To", to)
            h.add("Call-ID", call_id)
            h.add("CSeq", f"{seq} {method}")
            h.add("Contact", f"<sip:x@{address[0]}:{address[1]}>")
            body = ANSWER if method in ("INVITE", "UPDATE", "ACK") else b""
            if body:
                h.add("Content-Type", "application/sdp")
            out.append(Request(method, uri, h, body).serialize())
    return out


def _sent_by(wire: Wire, address) -> list[Request | Response]:
    """What `address` sent that parses (a 400 to a message without a Via has none either)."""
    out = []
    for src, _, data in wire.sent:
        if src == address:
            with contextlib.suppress(SipParseError):
                out.append(parse_message(data))
    return out


def feed(wire: Wire, targets, phone: Phone, mutator: Mutator, seeds, count: int, sources) -> None:
    rng = mutator.rng
    for n in range(count):
        ua = rng.choice(targets)
        # Replays and light damage get furthest; heavy damage tests the parser's edges.
        data = mutator.mutate(rng.choice(seeds), rng.choice((0, 1, 1, 2, 3, 6)))
        source = rng.choice(sources)
        ua.receive_datagram(data, source, wire.now)
        wire.flush()
        phone.serve()
        if n % 200 == 0:
            wire.advance(rng.choice((0.1, 0.6, 2.0)))


def test_running_user_agents_survive_thousands_of_mutated_datagrams(wire_seed, fuzz_cases):
    seed = wire_seed
    rng = random.Random(seed)
    wire = Wire()
    gateway = wire.add(UserAgent(UserAgentConfig(address=GATEWAY)))
    phone_ua = wire.add(
        UserAgent(UserAgentConfig(address=PHONE, user="operator", accept_incoming=True))
    )
    phone = Phone(wire, phone_ua)
    live = place_call(wire, gateway, phone)
    live_messages = [d for _, _, d in wire.sent] + in_dialog_requests(wire, live)
    seeds = [*live_messages, *live_messages, *corpus.sip_messages()]
    mutator = Mutator(rng, seeds)
    count = fuzz_cases("running UserAgent (datagrams)")

    # Strangers: same host other ports, other hosts. The live call must not notice.
    strangers = [("127.0.0.1", 5099), ("127.0.0.1", 5081), ("127.0.0.2", 5080), ("10.0.0.1", 5070)]
    feed(wire, [gateway, phone_ua], phone, mutator, seeds, FROM_STRANGERS, strangers)
    count(FROM_STRANGERS)
    assert not ended(wire, GATEWAY, live) and not ended(wire, PHONE, live), f"seed {seed}"
    assert gateway.counters["spoofed_requests"] + gateway.counters["parse_errors"] > 0

    # The call still works: it hangs up cleanly.
    gateway.hangup(live, wire.now)
    wire.flush()
    assert ended(wire, PHONE, live)[0].reason.value == "remote_hangup", f"seed {seed}"

    # The peers themselves sending broken messages (these may well end calls).
    second = place_call(wire, gateway, phone)
    seeds += in_dialog_requests(wire, second)
    feed(wire, [gateway, phone_ua], phone, mutator, seeds, FROM_PEERS, [GATEWAY, PHONE])
    count(FROM_PEERS)
    count.done()

    # Forged BYEs "from" a peer may have ended one side only: each side's application
    # (its media timeout) hangs up what is left. Then every transaction drains.
    wire.advance(40)
    for ua in (gateway, phone_ua):
        for call_id in ua.call_ids:
            ua.hangup(call_id, wire.now)
    wire.flush()
    wire.advance(70)
    assert gateway.active_calls == 0 and phone_ua.active_calls == 0, f"seed {seed}"
    # A normal call completes.
    last = place_call(wire, gateway, phone)
    gateway.hangup(last, wire.now)
    wire.flush()
    assert ended(wire, GATEWAY, last)[0].reason.value == "local_hangup", f"seed {seed}"
    wire.advance(70)
    assert gateway.active_calls == 0 and phone_ua.active_calls == 0, f"seed {seed}"
    assert gateway.transaction_count == 0 and phone_ua.transaction_count == 0, f"seed {seed}"


def pytest_generate_tests(metafunc):
    if "wire_seed" in metafunc.fixturenames:
        seed = int(os.environ.get("FUZZ_SEED", random.randrange(2**32)))
        metafunc.parametrize("wire_seed", [seed], ids=[f"seed={seed}"])
