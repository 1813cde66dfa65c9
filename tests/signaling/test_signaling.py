"""The socket.io signaling over real sockets: a real aiohttp server, real socket.io clients."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest
import socketio

from gateway.api import CallRefused, CallState, CallUpdate, EndCause
from signaling import MAX_MESSAGE_BYTES
from signaling.namespace import MAX_QUEUED_EVENTS
from signaling.payloads import MAX_CANDIDATES_PER_CALL, MAX_SDP_BYTES
from tests.signaling.conftest import (
    DEMO_ORIGIN,
    HOST_CANDIDATE,
    ICE_SERVERS,
    OFFER_SDP,
    OTHER_SITE_ORIGIN,
    PAGE_ORIGIN,
    SITES,
    Connect,
    SignalingClient,
    SignalingServer,
    call_token,
    refused_connection,
)
from tests.signaling.memory_service import ANSWER_SDP


def candidate(line: str = HOST_CANDIDATE) -> dict[str, object]:
    return {"candidate": line, "sdpMid": "0", "sdpMLineIndex": 0}


async def assert_usable(client: SignalingClient, server: SignalingServer) -> None:
    """The connection still carries a whole normal call, and signaling holds no stale call."""
    client.pending("error")
    before = len(server.service.calls_to("start_call"))
    call_id = await client.start_call()
    assert len(server.service.calls_to("start_call")) == before + 1
    assert await client.next_state(call_id) == {"call_id": call_id, "state": "connecting"}
    assert await client.call("call:candidate", candidate()) == {"ok": True}
    assert await client.call("call:dtmf", {"digits": "1"}) == {"ok": True}
    assert await client.call("call:hangup", {}) == {"ok": True}
    assert await client.next_state(call_id) == {
        "call_id": call_id,
        "state": "ended",
        "cause": "visitor_hung_up",
    }
    assert client.pending("error") == []
    assert server.namespace.active_call_count == 0


# --- connecting ---------------------------------------------------------------------------


async def test_connect_sends_the_session_with_ice_servers(connect: Connect) -> None:
    client = await connect()
    assert await client.next("session") == {"ice_servers": ICE_SERVERS}


async def test_the_page_origin_of_the_gateway_may_use_any_site(connect: Connect) -> None:
    client = await connect(site="shop", origin=PAGE_ORIGIN)
    assert await client.next("session") == {"ice_servers": ICE_SERVERS}


async def test_a_site_accepts_each_of_its_origins(connect: Connect) -> None:
    for origin in (OTHER_SITE_ORIGIN, "https://www.shop.example", "https://WWW.Shop.example"):
        client = await connect(site="shop", origin=origin)
        assert (await client.next("session"))["ice_servers"] == ICE_SERVERS


@pytest.mark.parametrize(
    ("site", "origin", "auth", "reason"),
    [
        ("nope", DEMO_ORIGIN, None, "unknown site 'nope'"),
        ("demo", OTHER_SITE_ORIGIN, None, "origin 'https://shop.example' may not use site 'demo'"),
        ("shop", DEMO_ORIGIN, None, "may not use site 'shop'"),
        ("demo", "http://127.0.0.1:8080.evil.example", None, "may not use site"),
        ("demo", None, None, "an Origin header is required"),
        (None, DEMO_ORIGIN, {"site": "demo"}, 'auth must be {"site": "<site id>", "token"'),
        (None, DEMO_ORIGIN, {"site": "demo", "token": "t", "x": 1}, 'auth must be {"site"'),
        (None, DEMO_ORIGIN, ["demo"], 'auth must be {"site"'),
        (None, DEMO_ORIGIN, {"site": 7, "token": "t"}, "auth.site must be a site id"),
        (None, DEMO_ORIGIN, {"site": "x" * 65, "token": "t"}, "auth.site must be a site id"),
    ],
)
async def test_connect_is_refused_with_a_reason(
    signaling_server: SignalingServer,
    site: str | None,
    origin: str | None,
    auth: object,
    reason: str,
) -> None:
    if auth is None:
        # A valid token of a page of the site: what is refused is the site or the origin.
        own_site = site if site in SITES else "demo"
        token = await call_token(signaling_server.url, own_site, SITES[own_site].origins[0])
        auth = {"site": site, "token": token}
    refusal = await refused_connection(signaling_server, auth, origin)
    assert reason in refusal
    assert signaling_server.namespace.client_count == 0


async def test_a_failing_site_lookup_refuses_the_connection(
    connect: Connect, signaling_server: SignalingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(site_id: str) -> None:
        raise RuntimeError("database down")

    monkeypatch.setattr(signaling_server.service, "site", broken)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await connect()
    assert signaling_server.namespace.client_count == 0


async def test_connecting_without_a_websocket_is_refused(signaling_server: SignalingServer) -> None:
    sio = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(
            signaling_server.url,
            transports=["polling"],
            headers={"Origin": DEMO_ORIGIN},
            auth={"site": "demo", "token": await call_token(signaling_server.url, "demo")},
            wait_timeout=5,
        )


# --- a call ------------------------------------------------------------------------------


async def test_start_acks_with_the_answer(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    client = await connect()
    ack = await client.call("call:start", {"sdp": OFFER_SDP})
    assert ack == {"ok": True, "call_id": "call-1", "sdp": ANSWER_SDP}
    [(site, address, offer)] = signaling_server.service.calls_to("start_call")
    assert (site, address, offer) == ("demo", "127.0.0.1", OFFER_SDP)


async def test_states_are_pushed_in_order_with_the_cause_last(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    service = signaling_server.service
    client = await connect()
    call_id = await client.start_call()
    sequence = [
        CallUpdate(CallState.RINGING),
        CallUpdate(CallState.EARLY_MEDIA),
        CallUpdate(CallState.ANSWERED),
        CallUpdate(CallState.ON_HOLD),
        CallUpdate(CallState.ANSWERED),
        CallUpdate(CallState.ENDED, EndCause.OPERATOR_HUNG_UP, detail="BYE from 10.0.0.9"),
    ]
    for update in sequence:
        service.push(call_id, update)
    received = [await client.next("call:state") for _ in range(len(sequence) + 1)]
    assert received == [
        {"call_id": call_id, "state": "connecting"},  # notified inside start_call
        {"call_id": call_id, "state": "ringing"},
        {"call_id": call_id, "state": "early_media"},
        {"call_id": call_id, "state": "answered"},
        {"call_id": call_id, "state": "on_hold"},
        {"call_id": call_id, "state": "answered"},
        # the detail stays in the gateway's logs: it may name internal addresses
        {"call_id": call_id, "state": "ended", "cause": "operator_hung_up"},
    ]
    # The call is over: its events are out of order now, and a new call may start.
    ack = await client.call("call:dtmf", {"digits": "5"})
    assert ack["error"]["code"] == "no_call"
    await assert_usable(client, signaling_server)


async def test_every_end_cause_reaches_the_page(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    client = await connect()
    for cause in EndCause:
        call_id = await client.start_call()
        assert (await client.next("call:state"))["state"] == "connecting"
        signaling_server.service.push(call_id, CallUpdate(CallState.ENDED, cause))
        assert await client.next("call:state") == {
            "call_id": call_id,
            "state": "ended",
            "cause": str(cause),
        }


async def test_a_call_that_ends_while_starting_is_acked_then_ended(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    service = signaling_server.service
    service.start_delay = 0.3
    client = await connect()
    ack_task = asyncio.create_task(client.call("call:start", {"sdp": OFFER_SDP}))
    await service.wait_for_request("start_call")
    # The gateway gives up before start_call returns (say, the SIP leg failed at once).
    start_notify = None
    while start_notify is None:
        await asyncio.sleep(0.01)
        start_notify = _notify_of_pending_start(signaling_server)
    start_notify(CallUpdate(CallState.ENDED, EndCause.UNREACHABLE))
    ack = await ack_task
    assert ack["ok"] is True
    assert await client.next("call:state") == {"call_id": ack["call_id"], "state": "connecting"}
    assert await client.next("call:state") == {
        "call_id": ack["call_id"],
        "state": "ended",
        "cause": "unreachable",
    }
    assert signaling_server.namespace.active_call_count == 0
    service.notifiers.pop(ack["call_id"])  # the fake would not have kept an ended call
    service.start_delay = 0
    await assert_usable(client, signaling_server)


def _notify_of_pending_start(server: SignalingServer):  # type: ignore[no-untyped-def]
    """The notify callback signaling handed to the start_call still in progress."""
    for session in server.namespace._sessions.values():
        slot = session.call
        if slot is not None and slot.call_id is None:
            namespace = server.namespace
            return lambda update: namespace._on_update(session, slot, update)
    return None


async def test_hangup_frees_the_slot_and_the_ended_state_follows(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    client = await connect()
    await assert_usable(client, signaling_server)
    assert signaling_server.service.calls_to("hangup") == [("call-1",)]
    await assert_usable(client, signaling_server)


async def test_dtmf_and_mute_reach_the_service(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    client = await connect()
    call_id = await client.start_call()
    assert await client.call("call:dtmf", {"digits": "0123456789*#ABCD"}) == {"ok": True}
    assert await client.call("call:mute", {"muted": True}) == {"ok": True}
    assert await client.call("call:mute", {"muted": False}) == {"ok": True}
    service = signaling_server.service
    assert service.calls_to("send_dtmf") == [(call_id, "0123456789*#ABCD")]
    assert service.calls_to("set_mute") == [(call_id, True), (call_id, False)]


async def test_end_of_candidates_reaches_the_service(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    client = await connect()
    call_id = await client.start_call()
    end = {"candidate": "", "sdpMid": None, "sdpMLineIndex": None}
    assert await client.call("call:candidate", end) == {"ok": True}
    assert signaling_server.service.calls_to("add_candidate") == [(call_id, "", None, None)]


async def test_mdns_candidates_never_reach_the_service(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    client = await connect()
    call_id = await client.start_call()
    mdns = "candidate:2 1 udp 2122262783 1f4712db-ea17-4bcf-a596-105139dfd8bf.local 54321 typ host"
    assert await client.call("call:candidate", candidate(mdns)) == {"ok": True, "dropped": "mdns"}
    upper = mdns.replace(".local", ".LOCAL")
    assert await client.call("call:candidate", candidate(upper)) == {"ok": True, "dropped": "mdns"}
    assert await client.call("call:candidate", candidate()) == {"ok": True}
    assert signaling_server.service.calls_to("add_candidate") == [(call_id, HOST_CANDIDATE, "0", 0)]


# --- refusals from the gateway -------------------------------------------------------------


@pytest.mark.parametrize(
    ("refusal", "error"),
    [
        (
            CallRefused("busy_here", "too many calls for this site"),
            {"code": "busy_here", "message": "too many calls for this site"},
        ),
        (
            # A limit that knows when it lifts: whole seconds, rounded up.
            CallRefused("rate_limited", "too many calls", retry_after=419.2),
            {"code": "rate_limited", "message": "too many calls", "retry_after": 420},
        ),
        (
            ValueError("offer has no audio section"),
            {"code": "rejected", "message": "offer has no audio section"},
        ),
        (
            RuntimeError("bug with secret 10.1.2.3"),
            {"code": "internal", "message": "internal error"},
        ),
    ],
)
async def test_a_refused_call_fails_the_ack_and_leaves_nothing(
    connect: Connect,
    signaling_server: SignalingServer,
    refusal: Exception,
    error: dict[str, str],
) -> None:
    signaling_server.service.refusal = refusal
    client = await connect()
    ack = await client.call("call:start", {"sdp": OFFER_SDP})
    assert ack == {"ok": False, "error": error}
    assert await client.next("error") == {**error, "event": "call:start"}
    assert signaling_server.namespace.active_call_count == 0
    await assert_usable(client, signaling_server)


async def test_a_service_error_on_a_request_is_reported(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    client = await connect()
    call_id = await client.start_call()
    # The gateway ended the call on its own but its ENDED has not arrived yet.
    signaling_server.service.notifiers.pop(call_id)
    ack = await client.call("call:dtmf", {"digits": "1"})
    assert ack == {"ok": False, "error": {"code": "rejected", "message": f"no call {call_id}"}}
    assert (await client.next("error"))["event"] == "call:dtmf"


# --- validation ----------------------------------------------------------------------------

LONE_SURROGATE = "\ud800"
BAD_START_PAYLOADS = [
    (("call:start", "v=0"), "payload must be an object, got string"),
    (("call:start", [OFFER_SDP]), "payload must be an object, got array"),
    (("call:start",), "expected exactly one payload object, got 0"),
    (("call:start", {"sdp": OFFER_SDP}, {"sdp": OFFER_SDP}), "exactly one payload object, got 2"),
    (("call:start", {}), "missing key sdp"),
    (("call:start", {"sdp": OFFER_SDP, "type": "offer"}), "unexpected key 'type'"),
    (("call:start", {"sdp": None}), "sdp must be a string, got null"),
    (("call:start", {"sdp": 0}), "sdp must be a string, got number"),
    (("call:start", {"sdp": "v=0" + "a" * MAX_SDP_BYTES}), "sdp is longer than 65536 bytes"),
    # 32768 characters, 65538 UTF-8 bytes: the limit is on bytes.
    (("call:start", {"sdp": "v=0\n" + "é" * 32767}), "sdp is longer than 65536 bytes"),
    (("call:start", {"sdp": "v=0\n" + LONE_SURROGATE}), "sdp is not valid Unicode"),
    (("call:start", {"sdp": "hello"}), "sdp is not an SDP offer"),
]
BAD_CALL_PAYLOADS = [
    (("call:candidate", HOST_CANDIDATE), "payload must be an object, got string"),
    (("call:candidate", {"candidate": HOST_CANDIDATE, "sdpMid": "0"}), "missing key sdpMLineIndex"),
    (
        ("call:candidate", {**candidate(), "usernameFragment": "abcd"}),
        "unexpected key 'usernameFragment'",
    ),
    (("call:candidate", {**candidate(), "candidate": 5}), "candidate must be a string"),
    (("call:candidate", {**candidate(), "candidate": "c" * 1025}), "longer than 1024 bytes"),
    (("call:candidate", {**candidate(), "candidate": "garbage"}), "not an ICE candidate line"),
    (("call:candidate", {**candidate(), "candidate": "   "}), "not an ICE candidate line"),
    (
        ("call:candidate", {**candidate(), "candidate": HOST_CANDIDATE.replace("typ", "type")}),
        "not an ICE candidate line",
    ),
    (("call:candidate", {**candidate(), "sdpMid": 0}), "sdpMid must be a string, got number"),
    (("call:candidate", {**candidate(), "sdpMid": "m" * 65}), "sdpMid is longer than 64 bytes"),
    (("call:candidate", {**candidate(), "sdpMLineIndex": True}), "sdpMLineIndex must be null or"),
    (("call:candidate", {**candidate(), "sdpMLineIndex": -1}), "sdpMLineIndex must be null or"),
    (("call:candidate", {**candidate(), "sdpMLineIndex": 1.5}), "sdpMLineIndex must be null or"),
    (
        ("call:candidate", {"candidate": HOST_CANDIDATE, "sdpMid": None, "sdpMLineIndex": None}),
        "sdpMid and sdpMLineIndex are both null",
    ),
    (("call:dtmf", {"digits": "12x"}), "digits must be 1-32 of 0-9 * # A-D, got '12x'"),
    (("call:dtmf", {"digits": ""}), "digits must be 1-32"),
    (("call:dtmf", {"digits": "1" * 33}), "digits must be 1-32"),
    (("call:dtmf", {"digits": "a"}), "digits must be 1-32"),
    (("call:dtmf", {"digits": "\uff11"}), "digits must be 1-32"),  # FULLWIDTH DIGIT ONE
    (("call:dtmf", {"digits": "1\n"}), "digits must be 1-32"),
    (("call:dtmf", {"digits": 1}), "digits must be 1-32 of 0-9 * # A-D, got 1"),
    (("call:dtmf", {"digit": "1"}), "missing key digits"),
    (("call:mute", {"muted": "yes"}), "muted must be a boolean, got string"),
    (("call:mute", {"muted": 1}), "muted must be a boolean, got number"),
    (("call:mute", {}), "missing key muted"),
    (("call:hangup", {"now": True}), "unexpected key 'now'"),
    (("call:hangup",), "expected exactly one payload object, got 0"),
    (("call:hangup", None), "payload must be an object, got null"),
]


@pytest.mark.parametrize(("message", "reason"), BAD_START_PAYLOADS + BAD_CALL_PAYLOADS)
async def test_a_bad_payload_is_answered_and_the_connection_stays_usable(
    connect: Connect,
    signaling_server: SignalingServer,
    message: tuple[object, ...],
    reason: str,
) -> None:
    client = await connect()
    event, *args = message
    # During a call, so that only the payload can be what is wrong.
    call_id = await client.start_call()
    assert (await client.next("call:state"))["state"] == "connecting"
    requests_before = list(signaling_server.service.requests)
    ack = await client.call(event, *args)
    assert ack["ok"] is False
    assert ack["error"]["code"] == "bad_payload"
    assert reason in ack["error"]["message"]
    error = await client.next("error")
    assert error == {**ack["error"], "event": event}
    assert signaling_server.service.requests == requests_before  # nothing reached the gateway
    # The same without an ack: only the error event answers.
    await client.emit(event, *args)
    assert (await client.next("error"))["message"] == ack["error"]["message"]
    # The call is untouched, and the connection carries a normal call afterwards.
    assert await client.call("call:hangup", {}) == {"ok": True}
    assert await client.next("call:state") == {
        "call_id": call_id,
        "state": "ended",
        "cause": "visitor_hung_up",
    }
    await assert_usable(client, signaling_server)


@pytest.mark.parametrize("event", ["call:bogus", "connect", "disconnect", "message", "x" * 200])
async def test_an_unknown_event_is_answered(
    connect: Connect, signaling_server: SignalingServer, event: str
) -> None:
    client = await connect()
    call_id = await client.start_call()
    assert (await client.next("call:state"))["state"] == "connecting"
    ack = await client.call(event, {})
    assert ack["ok"] is False
    assert ack["error"]["code"] == "unknown_event"
    assert ack["error"]["message"].startswith("unknown event '")
    assert len(ack["error"]["message"]) < 80  # a long name is not echoed back whole
    error = await client.next("error")
    assert error["code"] == "unknown_event"
    assert error.get("event") == (event if len(event) <= 40 else None)
    # An event named like socket.io's own must not pass for a real connect or disconnect.
    assert signaling_server.service.calls_to("hangup") == []
    assert signaling_server.namespace.client_count == 1
    assert await client.call("call:hangup", {}) == {"ok": True}
    assert await client.next("call:state") == {
        "call_id": call_id,
        "state": "ended",
        "cause": "visitor_hung_up",
    }
    await assert_usable(client, signaling_server)


# --- events out of order -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("call:candidate", candidate()),
        ("call:hangup", {}),
        ("call:dtmf", {"digits": "1"}),
        ("call:mute", {"muted": True}),
    ],
)
async def test_a_call_event_with_no_call_is_refused(
    connect: Connect, signaling_server: SignalingServer, event: str, payload: dict[str, object]
) -> None:
    client = await connect()
    ack = await client.call(event, payload)
    assert ack == {"ok": False, "error": {"code": "no_call", "message": "no call is active"}}
    assert await client.next("error") == {**ack["error"], "event": event}
    assert signaling_server.service.requests == []
    await assert_usable(client, signaling_server)


async def test_a_second_start_while_a_call_is_active_is_refused(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    client = await connect()
    call_id = await client.start_call()
    ack = await client.call("call:start", {"sdp": OFFER_SDP})
    assert ack["ok"] is False
    assert ack["error"]["code"] == "call_active"
    assert (await client.next("error"))["code"] == "call_active"
    assert len(signaling_server.service.calls_to("start_call")) == 1
    # The first call goes on.
    assert await client.call("call:dtmf", {"digits": "9"}) == {"ok": True}
    assert signaling_server.service.calls_to("send_dtmf") == [(call_id, "9")]


async def test_a_second_start_while_the_first_is_starting_is_refused(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    signaling_server.service.start_delay = 0.2
    client = await connect()
    first = asyncio.create_task(client.call("call:start", {"sdp": OFFER_SDP}))
    second = asyncio.create_task(client.call("call:start", {"sdp": OFFER_SDP}))
    assert (await first)["ok"] is True
    assert (await second)["error"]["code"] == "call_active"
    assert len(signaling_server.service.calls_to("start_call")) == 1


async def test_a_candidate_flood_is_cut_at_the_limit(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    client = await connect()
    call_id = await client.start_call()
    acks = [await client.call("call:candidate", candidate()) for _ in range(70)]
    assert acks[:MAX_CANDIDATES_PER_CALL] == [{"ok": True}] * MAX_CANDIDATES_PER_CALL
    for ack in acks[MAX_CANDIDATES_PER_CALL:]:
        assert ack["error"] == {
            "code": "too_many_candidates",
            "message": "more than 64 candidates for one call",
        }
    added = signaling_server.service.calls_to("add_candidate")
    assert added == [(call_id, HOST_CANDIDATE, "0", 0)] * MAX_CANDIDATES_PER_CALL
    # The limit is per call: the next call takes candidates again.
    assert await client.call("call:hangup", {}) == {"ok": True}
    await assert_usable(client, signaling_server)


async def test_too_many_queued_events_are_refused_not_queued(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    signaling_server.service.start_delay = 1.0
    client = await connect()
    start = asyncio.create_task(client.call("call:start", {"sdp": OFFER_SDP}))
    await signaling_server.service.wait_for_request("start_call")
    for _ in range(MAX_QUEUED_EVENTS + 20):
        await client.emit("call:mute", {"muted": True})
    errors = [await client.next("error") for _ in range(21)]
    assert {error["code"] for error in errors} == {"too_many_events"}
    assert (await start)["ok"] is True
    await signaling_server.service.wait_for_request("set_mute", MAX_QUEUED_EVENTS - 1)
    signaling_server.service.start_delay = 0
    assert await client.call("call:hangup", {}) == {"ok": True}
    await assert_usable(client, signaling_server)


# --- order under a slow gateway -------------------------------------------------------------


async def test_events_of_one_client_reach_the_service_in_order_when_it_is_slow(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    service = signaling_server.service
    service.start_delay = 0.3
    client = await connect()
    lines = [HOST_CANDIDATE.replace("50000", str(50000 + n)) for n in range(10)]
    # Everything sent at once, as a browser does: offer, trickled candidates, then more.
    await client.emit("call:start", {"sdp": OFFER_SDP})
    for line in lines[:5]:
        await client.emit("call:candidate", candidate(line))
    await client.emit("call:dtmf", {"digits": "1"})
    for line in lines[5:]:
        await client.emit("call:candidate", candidate(line))
    await client.emit("call:mute", {"muted": True})
    await client.emit("call:hangup", {})

    random_delays = random.Random(7)

    async def uneven_delays() -> None:
        # Requests that take different times must still not overtake each other.
        while "hangup" not in {request[0] for request in service.requests}:
            service.request_delay = random_delays.choice([0.0, 0.001, 0.02])
            await asyncio.sleep(0.005)

    jitter = asyncio.create_task(uneven_delays())
    await service.wait_for_request("hangup")
    jitter.cancel()
    order = [(request[0], *request[2:]) for request in service.requests]
    assert order == [
        ("start_call", "127.0.0.1", OFFER_SDP),
        *[("add_candidate", line, "0", 0) for line in lines[:5]],
        ("send_dtmf", "1"),
        *[("add_candidate", line, "0", 0) for line in lines[5:]],
        ("set_mute", True),
        ("hangup",),
    ]
    assert client.pending("error") == []


# --- disconnect ---------------------------------------------------------------------------


async def test_disconnect_hangs_up_the_call_and_frees_the_client(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    client = await connect()
    call_id = await client.start_call()
    await client.sio.disconnect()
    await signaling_server.service.wait_for_request("hangup")
    assert signaling_server.service.calls_to("hangup") == [(call_id,)]
    await signaling_server.settle()
    assert signaling_server.namespace.client_count == 0


async def test_disconnect_while_starting_hangs_up_once_the_call_exists(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    service = signaling_server.service
    service.start_delay = 0.3
    client = await connect()
    await client.emit("call:start", {"sdp": OFFER_SDP})
    for _ in range(5):
        await client.emit("call:candidate", candidate())
    await service.wait_for_request("start_call")
    await client.sio.disconnect()
    await service.wait_for_request("hangup")
    await signaling_server.settle()
    # Candidates queued behind the offer were dropped with the client: only the hangup ran.
    assert [request[0] for request in service.requests] == ["start_call", "hangup"]
    assert service.calls_to("hangup") == [("call-1",)]
    assert service.notifiers == {}


async def test_disconnect_without_a_call_calls_nothing(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    client = await connect()
    await client.sio.disconnect()
    await signaling_server.settle()
    assert signaling_server.service.requests == []


async def test_states_after_the_client_left_are_dropped(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    client = await connect()
    call_id = await client.start_call()
    notify = signaling_server.service.notifiers[call_id]
    await client.sio.disconnect()
    await signaling_server.settle()
    notify(CallUpdate(CallState.ANSWERED))  # a late notification must not fail or resurrect
    assert signaling_server.namespace.client_count == 0


# --- message sizes -----------------------------------------------------------------------


async def test_a_message_under_the_hard_cap_gets_our_error(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    client = await connect()
    ack = await client.call("call:start", {"sdp": "v=0" + "a" * (MAX_MESSAGE_BYTES - 1000)})
    assert ack["error"]["message"] == "call:start: sdp is longer than 65536 bytes"
    await assert_usable(client, signaling_server)


async def test_a_message_over_the_hard_cap_closes_the_connection(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    client = await connect()
    await client.start_call()
    await client.emit("call:start", {"sdp": "v=0" + "a" * MAX_MESSAGE_BYTES})
    await client.next("disconnect")
    # The server dropped the client, and with it the call.
    await signaling_server.service.wait_for_request("hangup")
    await signaling_server.settle()


# --- logging -----------------------------------------------------------------------------


async def test_calls_are_logged_by_the_gateway_not_twice_and_never_with_sdp(
    connect: Connect, signaling_server: SignalingServer, caplog: pytest.LogCaptureFixture
) -> None:
    # The gateway logs one line when a call starts and one when it ends, with its talk
    # time (gateway.calls.manager; tests/security/test_log_injection.py counts them in a
    # real gateway's log): signaling adds only DEBUG lines of its own.
    caplog.set_level(logging.DEBUG, logger="signaling")
    client = await connect()
    call_id = await client.start_call()
    await client.call("call:candidate", candidate())
    await client.call("call:dtmf", {"digits": "1"})
    await client.call("call:hangup", {})
    await client.next_state(call_id)  # connecting
    await client.next_state(call_id)  # ended
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO] == []
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert f"call {call_id} started" in everything
    assert "m=audio" not in everything and "a=ice-pwd" not in everything


async def test_an_internal_error_is_logged_with_its_traceback_but_not_sent(
    connect: Connect, signaling_server: SignalingServer, caplog: pytest.LogCaptureFixture
) -> None:
    signaling_server.service.refusal = RuntimeError("secret detail")
    client = await connect()
    ack = await client.call("call:start", {"sdp": OFFER_SDP})
    assert "secret detail" not in str(ack)
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert record.exc_info is not None
    assert "secret detail" in str(record.exc_info[1])


# --- pre-call checks ---------------------------------------------------------------------


async def test_a_check_is_started_stopped_and_ended_with_its_client(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    service = signaling_server.service
    client = await connect()
    ack = await client.call("check:start", {"sdp": OFFER_SDP})
    assert ack == {"ok": True, "check_id": "check-1", "sdp": ANSWER_SDP, "seconds": 15.0}
    assert service.calls_to("start_check") == [("demo", "127.0.0.1", OFFER_SDP)]
    assert await client.call("check:stop", {}) == {"ok": True}
    assert service.calls_to("stop_check") == [("check-1",)]
    assert await client.call("check:stop", {}) == {"ok": True}  # none going on: nothing
    assert service.calls_to("stop_check") == [("check-1",)]
    # A call ends the check going on; a client that leaves ends its check.
    await client.call("check:start", {"sdp": OFFER_SDP})
    await client.start_call()
    assert service.calls_to("stop_check")[-1] == ("check-2",)
    await client.call("call:hangup", {})
    await client.call("check:start", {"sdp": OFFER_SDP})
    await client.sio.disconnect()
    await service.wait_for_request("stop_check", 3)
    assert service.calls_to("stop_check")[-1] == ("check-4",)


async def test_a_check_is_refused_during_a_call_and_with_the_gateways_reason(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    service = signaling_server.service
    client = await connect()
    service.refusal = CallRefused("precheck_limited", "too many tests", retry_after=61.5)
    ack = await client.call("check:start", {"sdp": OFFER_SDP})
    assert ack == {
        "ok": False,
        "error": {"code": "precheck_limited", "message": "too many tests", "retry_after": 62},
    }
    await client.start_call()
    ack = await client.call("check:start", {"sdp": OFFER_SDP})
    assert ack["error"]["code"] == "call_active"
    bad = await client.call("check:start", {"sdp": "hello"})
    assert bad["error"]["code"] == "bad_payload"
    assert "check:start: sdp is not an SDP offer" in bad["error"]["message"]
    assert service.calls_to("start_check") == [("demo", "127.0.0.1", OFFER_SDP)]
