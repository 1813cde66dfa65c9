"""The client events' schema, without sockets: typed results, and only PayloadError for junk."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signaling.payloads import (
    Candidate,
    Dtmf,
    Hangup,
    Mute,
    PayloadError,
    StartCall,
    parse_client_event,
)

HOST = "candidate:842163049 1 udp 1677729535 192.0.2.7 46154 typ srflx raddr 0.0.0.0 rport 0"
MDNS = "candidate:1 1 udp 2113937151 9b36eaac-bb2e-49bb-bb78-21c41c499900.local 51102 typ host"


def test_each_event_parses_to_its_type() -> None:
    assert parse_client_event("call:start", ({"sdp": "v=0\r\n"},)) == StartCall("v=0\r\n")
    assert parse_client_event(
        "call:candidate", ({"candidate": HOST, "sdpMid": "0", "sdpMLineIndex": 0},)
    ) == Candidate(HOST, "0", 0)
    assert parse_client_event("call:hangup", ({},)) == Hangup()
    assert parse_client_event("call:dtmf", ({"digits": "*31#"},)) == Dtmf("*31#")
    assert parse_client_event("call:mute", ({"muted": False},)) == Mute(False)


def test_candidates_know_end_of_candidates_and_mdns() -> None:
    end = parse_client_event(
        "call:candidate", ({"candidate": "", "sdpMid": None, "sdpMLineIndex": None},)
    )
    assert isinstance(end, Candidate)
    assert end.is_end_of_candidates and not end.is_mdns
    mdns = parse_client_event(
        "call:candidate", ({"candidate": MDNS, "sdpMid": None, "sdpMLineIndex": 0},)
    )
    assert isinstance(mdns, Candidate)
    assert mdns.is_mdns and not mdns.is_end_of_candidates
    host = Candidate(HOST, "0", None)
    assert not host.is_mdns
    # .local elsewhere on the line (an extension value) does not make it an mDNS candidate
    assert not Candidate(HOST + " ufrag a.local", "0", 0).is_mdns


def test_the_sdp_limit_counts_utf8_bytes() -> None:
    exactly = "v=0" + "a" * (64 * 1024 - 3)
    assert parse_client_event("call:start", ({"sdp": exactly},)) == StartCall(exactly)
    with pytest.raises(PayloadError, match="longer than 65536 bytes"):
        parse_client_event("call:start", ({"sdp": exactly + "a"},))
    with pytest.raises(PayloadError, match="longer than 65536 bytes"):
        parse_client_event("call:start", ({"sdp": exactly[:-1] + "é"},))


def test_error_codes() -> None:
    with pytest.raises(PayloadError) as unknown:
        parse_client_event("call:transfer", ({},))
    assert unknown.value.code == "unknown_event"
    assert str(unknown.value) == "unknown event 'call:transfer'"
    with pytest.raises(PayloadError) as bad:
        parse_client_event("call:mute", ({"muted": None},))
    assert bad.value.code == "bad_payload"
    assert bad.value.to_payload() == {
        "code": "bad_payload",
        "message": "call:mute: muted must be a boolean, got null",
    }
    assert isinstance(bad.value, ValueError)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
EVENTS = st.sampled_from(
    ["call:start", "call:candidate", "call:hangup", "call:dtmf", "call:mute", "call:x", ""]
)
KEYS = st.sampled_from(["sdp", "candidate", "sdpMid", "sdpMLineIndex", "digits", "muted", "x"])


@given(EVENTS | JSON, st.lists(JSON, max_size=3).map(tuple))
def test_junk_raises_only_payload_error(event: object, args: tuple[object, ...]) -> None:
    with contextlib.suppress(PayloadError):
        parse_client_event(event, args)


@given(EVENTS, st.dictionaries(KEYS, JSON | st.text(), max_size=4))
def test_near_misses_raise_only_payload_error(event: str, payload: dict[str, object]) -> None:
    try:
        parse_client_event(event, (payload,))
    except PayloadError as exc:
        assert exc.message and exc.code in {"bad_payload", "unknown_event"}


@given(st.text(max_size=200))
def test_any_candidate_line_raises_only_payload_error(line: str) -> None:
    try:
        result = parse_client_event(
            "call:candidate", ({"candidate": line, "sdpMid": "0", "sdpMLineIndex": 0},)
        )
    except PayloadError:
        return
    assert isinstance(result, Candidate)
    assert isinstance(result.is_mdns, bool)
