"""Fuzzing every parser that reads network or browser input, with hypothesis.

Two kinds of cases per parser: recorded real messages (corpus/) broken by `Mutator`, and
inputs generated from scratch. The property is always the same: the parser returns a value
or raises its one precise exception (a ValueError subclass with a message); nothing else
escapes, and what it accepts can be used (typed views, serialization, offer/answer) without
raising either. Case counts and times per parser are printed at the end of the run.
"""

from __future__ import annotations

import contextlib
import json
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signaling.payloads import PayloadError, parse_client_event
from sip_bridge import sdp
from sip_bridge.errors import SipParseError
from sip_bridge.message import (
    RequestParseError,
    Response,
    StreamFramer,
    bad_request_response,
    parse_message,
)
from sip_bridge.rtp.dtmf import DtmfParseError, DtmfReceiver, parse_telephone_event
from sip_bridge.rtp.packet import RtpParseError, is_rtcp, parse_rtp
from sip_bridge.rtp.rtcp import (
    ReceptionStatistics,
    RtcpParseError,
    SenderReport,
    UnknownRtcpPacket,
    build_rtcp,
    parse_rtcp,
)

from . import corpus
from .mutate import Mutator

_FUZZ = settings(
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
    database=None,  # a fuzz run explores; a failure is reproduced from the printed case
)


def fuzz(examples: int) -> settings:
    return settings(_FUZZ, max_examples=examples)


def mutated(samples: tuple[bytes, ...], *, text: bool = True) -> st.SearchStrategy[bytes]:
    """A corpus sample broken by 1-6 mutations, driven by hypothesis (so it shrinks)."""

    @st.composite
    def build(draw) -> bytes:
        original = draw(st.sampled_from(samples))
        rng = draw(st.randoms(use_true_random=False))
        return Mutator(rng, samples, text=text).mutate(original)

    return build()


# ------------------------------------------------------------------------------ SIP
def _use_sip_message(message) -> None:
    """Everything the user agent reads from a parsed message must be readable."""
    message.call_id, message.cseq, message.from_, message.to, message.vias  # noqa: B018
    message.top_via, message.contacts, message.record_routes, message.content_type  # noqa: B018
    if isinstance(message, Response):
        message.is_success  # noqa: B018
    else:
        message.max_forwards  # noqa: B018
    again = parse_message(message.serialize())
    assert again.serialize() == message.serialize()


def _parse_sip(data: bytes, stream: bool = False) -> None:
    try:
        message = parse_message(data, stream=stream)
    except RequestParseError as exc:
        # Our 400 for it is well-formed SIP whenever the request gave us what a response
        # needs (only valid values are copied).
        reply = bad_request_response(exc)
        wire = reply.serialize()
        assert reply.status >= 400
        if all(n in reply.headers for n in ("Via", "From", "To", "Call-ID", "CSeq")):
            parsed = parse_message(wire)
            assert isinstance(parsed, Response) and parsed.status == reply.status
        return
    except SipParseError as exc:
        assert exc.reason
        return
    _use_sip_message(message)


@fuzz(4000)
@given(mutated(corpus.sip_messages()))
def test_sip_parser_on_mutated_real_messages(fuzz_cases, data):
    count = _counter(fuzz_cases, "SIP parser (mutated corpus)")
    count()
    _parse_sip(data)


_HEADER_NAMES = (
    "Via", "v", "From", "f", "To", "t", "Call-ID", "i", "CSeq", "Contact", "m", "Max-Forwards",
    "Content-Length", "l", "Content-Type", "c", "Record-Route", "Route", "Require", "Accept",
    "WWW-Authenticate", "Authorization", "Proxy-Authenticate", "Expires", "X-Custom",
)  # fmt: skip
_VALUE_ALPHABET = st.sampled_from(
    [*'abcz019 ;:,=<>@"\\%.[]-_*?/\t', "sip:", "SIP/2.0/UDP ", "tag=", "branch=z9hG4bK"]
)


@st.composite
def sip_soup(draw) -> bytes:
    """Messages built from SIP's own pieces in random order and number."""
    if draw(st.booleans()):
        start = f"SIP/2.0 {draw(st.integers(0, 999))} {draw(st.text(max_size=8))}"
    else:
        method = draw(st.sampled_from(["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "X"]))
        uri = draw(st.sampled_from(["sip:a@h", "sip:[::1]:5060", "tel:+1", "sip:h;lr", "*"]))
        start = f"{method} {uri} SIP/2.0"
    lines = [start]
    for _ in range(draw(st.integers(0, 14))):
        name = draw(st.sampled_from(_HEADER_NAMES))
        value = "".join(draw(st.lists(_VALUE_ALPHABET, max_size=12)))
        lines.append(f"{name}: {value}")
    body = draw(st.binary(max_size=40))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogatepass") + body


@fuzz(1000)
@given(sip_soup(), st.booleans())
def test_sip_parser_on_generated_messages(fuzz_cases, data, stream):
    count = _counter(fuzz_cases, "SIP parser (generated)")
    count()
    _parse_sip(data, stream)


@fuzz(300)
@given(
    st.lists(mutated(corpus.sip_messages()), min_size=1, max_size=4),
    st.lists(st.integers(1, 700), min_size=1, max_size=8),
)
def test_stream_framer_on_mutated_streams(fuzz_cases, messages, cuts):
    count = _counter(fuzz_cases, "SIP stream framer")
    count()
    stream = b"\r\n".join(messages)
    framer = StreamFramer()
    position = 0
    chunks = iter(cuts * (len(stream) // max(1, sum(cuts)) + 1))
    try:
        while position < len(stream):
            size = next(chunks)
            for framed in framer.feed(stream[position : position + size]):
                _parse_sip(framed, stream=True)
            position += size
    except SipParseError:
        pass  # framing lost: the transport closes the connection


# ------------------------------------------------------------------------------ SDP
OUR_OFFER = sdp.build_offer(
    address="127.0.0.1", port=40000, codecs=["PCMU", "PCMA", "G722"], session_id=1,
    session_version=1,
)  # fmt: skip


def _use_sdp(body: bytes) -> None:
    try:
        description = sdp.parse_sdp(body)
    except sdp.SdpError as exc:
        assert str(exc)
        return
    serialized = description.serialize()
    # Serializing writes CRLF line ends: a body near the cap that used bare LF may grow
    # past it, and is then (rightly) refused; below the cap it must round-trip.
    if len(serialized) <= sdp.MAX_SDP_BYTES:
        again = sdp.parse_sdp(serialized)
        assert again.serialize() == serialized
    # As an offer from a phone (we answer) and as the answer to our offer.
    with contextlib.suppress(sdp.SdpError):
        sdp.build_answer(
            description, address="127.0.0.1", port=40002, codecs=["PCMU", "PCMA"], session_id=2,
            session_version=1,
        )  # fmt: skip
    with contextlib.suppress(sdp.SdpError):
        sdp.negotiate_answer(OUR_OFFER, description)


@fuzz(2000)
@given(mutated(corpus.sdp_bodies()))
def test_sdp_parser_and_offer_answer_on_mutated_real_bodies(fuzz_cases, body):
    count = _counter(fuzz_cases, "SDP parser + offer/answer")
    count()
    _use_sdp(body)


@st.composite
def sdp_soup(draw) -> bytes:
    kinds = "vosctmabikzeupr"
    lines = []
    for _ in range(draw(st.integers(0, 16))):
        kind = draw(st.sampled_from(kinds))
        value = "".join(
            draw(
                st.lists(
                    st.sampled_from(
                        ["audio ", "0 ", "8 ", "101 ", "RTP/AVP ", "IN IP4 ", "127.0.0.1",
                         "rtpmap:", "PCMU/8000", "telephone-event/8000", "fmtp:", "0-15",
                         "sendonly", "ptime:", "20", " ", "/", ":", "-", "::1", "IP6 "]
                    ),
                    max_size=8,
                )
            )
        )  # fmt: skip
        lines.append(f"{kind}={value}")
    return ("\r\n".join(lines) + "\r\n").encode()


@fuzz(800)
@given(sdp_soup())
def test_sdp_parser_on_generated_descriptions(fuzz_cases, body):
    count = _counter(fuzz_cases, "SDP parser (generated)")
    count()
    _use_sdp(body)


# ------------------------------------------------------------------------------ RTP
def _use_rtp(data: bytes) -> None:
    is_rtcp(data)
    try:
        packet = parse_rtp(data)
    except RtpParseError as exc:
        assert str(exc)
        return
    assert 0 <= packet.payload_type < 128 and len(packet.payload) <= len(data) - 12
    bytes(packet.payload)


@fuzz(1500)
@given(mutated(corpus.packets("rtp"), text=False))
def test_rtp_parser_on_mutated_real_packets(fuzz_cases, data):
    count = _counter(fuzz_cases, "RTP parser")
    count()
    _use_rtp(data)


@fuzz(500)
@given(st.binary(max_size=80))
def test_rtp_parser_on_random_bytes(fuzz_cases, data):
    count = _counter(fuzz_cases, "RTP parser")
    count()
    _use_rtp(b"\x80" + data if data[:1] == b"\x01" else data)


# ----------------------------------------------------------------------------- RTCP
def _use_rtcp(data: bytes) -> None:
    try:
        packets = parse_rtcp(data)
    except RtcpParseError as exc:
        assert str(exc)
        return
    known = [p for p in packets if not isinstance(p, UnknownRtcpPacket)]
    try:
        rebuilt = build_rtcp(known)
    except ValueError:
        return  # e.g. 31+ items: nothing the session ever builds
    if rebuilt:
        parse_rtcp(rebuilt)  # what we rebuild from what we accepted is readable again
    stats = ReceptionStatistics(1234, 8000)
    for packet in packets:
        if isinstance(packet, SenderReport):
            stats.on_sender_report(packet, 1.0)


@fuzz(1500)
@given(mutated(corpus.packets("rtcp"), text=False))
def test_rtcp_parser_on_mutated_real_packets(fuzz_cases, data):
    count = _counter(fuzz_cases, "RTCP parser")
    count()
    _use_rtcp(data)


@fuzz(500)
@given(
    st.lists(
        st.tuples(st.integers(0, 31), st.integers(192, 210), st.binary(max_size=40)),
        min_size=1,
        max_size=4,
    )
)
def test_rtcp_parser_on_generated_compounds(fuzz_cases, parts):
    count = _counter(fuzz_cases, "RTCP parser")
    count()
    data = b"".join(
        bytes([0x80 | c, t]) + (len(b) // 4).to_bytes(2, "big") + b for c, t, b in parts
    )
    _use_rtcp(data)


# ------------------------------------------------------------------------ RFC 4733
@fuzz(1200)
@given(st.lists(mutated(corpus.packets("dtmf"), text=False), min_size=1, max_size=12))
def test_telephone_event_receiver_on_mutated_real_packets(fuzz_cases, datagrams):
    count = _counter(fuzz_cases, "RFC 4733 parser + receiver")
    receiver = DtmfReceiver(8000)
    for data in datagrams:
        count()
        try:
            packet = parse_rtp(data)
        except RtpParseError:
            continue
        try:
            digits = receiver.receive(packet.timestamp, packet.payload)
        except DtmfParseError as exc:
            assert str(exc)
            continue
        for digit in (*digits, *receiver.audio_resumed(packet.timestamp)):
            assert digit.digit in "0123456789*#ABCD" and len(digit.digit) == 1
    receiver.flush()


@fuzz(800)
@given(st.binary(max_size=12), st.integers(0, 2**32 - 1))
def test_telephone_event_payload_on_random_bytes(fuzz_cases, payload, timestamp):
    count = _counter(fuzz_cases, "RFC 4733 parser + receiver")
    count()
    try:
        event = parse_telephone_event(payload)
    except DtmfParseError:
        assert len(payload) < 4
        return
    assert 0 <= event.event <= 255 and 0 <= event.volume <= 63
    DtmfReceiver().receive(timestamp, payload)


# ------------------------------------------------------------------------ socket.io
EVENT_NAMES = ("call:start", "call:candidate", "call:hangup", "call:dtmf", "call:mute")
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=30)
    | st.sampled_from(["v=0", "candidate:1 1 udp 1 1.2.3.4 5 typ host", "", "\ud800", "0"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["sdp", "candidate", "sdpMid", "sdpMLineIndex", "digits", "muted", "x"])
            | st.text(max_size=5),
            children,
            max_size=4,
        )
    ),
    max_leaves=12,
)


def _parse_event(name: object, args: tuple) -> None:
    try:
        parse_client_event(name, args)
    except PayloadError as exc:
        assert exc.message and exc.code


@fuzz(1500)
@given(
    st.sampled_from(EVENT_NAMES) | st.text(max_size=12) | json_values,
    st.lists(json_values, max_size=3).map(tuple),
)
def test_socketio_payloads_generated(fuzz_cases, name, args):
    count = _counter(fuzz_cases, "socket.io event payloads")
    count()
    _parse_event(name, args)


@st.composite
def mutated_recorded_event(draw) -> tuple[object, tuple]:
    """A recorded event with its JSON text or its values mutated."""
    name, args = draw(st.sampled_from(corpus.socketio_events()))
    rng: random.Random = draw(st.randoms(use_true_random=False))
    if rng.random() < 0.5:
        text = json.dumps([name, *args]).encode()
        broken = Mutator(rng, [text]).mutate(text)
        try:
            decoded = json.loads(broken)
        except (ValueError, RecursionError):
            return name, args
        if isinstance(decoded, list) and decoded:
            return decoded[0], tuple(decoded[1:])
        return name, (decoded,)
    payload = json.loads(json.dumps(args[0])) if args else {}
    if isinstance(payload, dict) and payload:
        key = rng.choice(sorted(payload))
        choice = rng.randrange(4)
        if choice == 0:
            del payload[key]
        elif choice == 1:
            payload[key] = draw(json_values)
        elif choice == 2:
            payload[key + "x"] = payload[key]
        elif isinstance(payload[key], str):
            payload[key] = (
                Mutator(rng, [b""]).mutate(payload[key].encode()).decode("utf-8", "surrogateescape")
            )
    other_name = rng.choice((name, name, rng.choice(EVENT_NAMES)))
    return other_name, (payload,)


@fuzz(1500)
@given(mutated_recorded_event())
def test_socketio_payloads_mutated_from_recorded(fuzz_cases, event):
    count = _counter(fuzz_cases, "socket.io event payloads")
    count()
    _parse_event(*event)


def _counter(fuzz_cases, target: str):
    """One counter per target per test, created on the first hypothesis example."""
    cache = fuzz_cases.__dict__.setdefault("counters", {})
    if target not in cache:
        cache[target] = fuzz_cases(target)
    return cache[target]
