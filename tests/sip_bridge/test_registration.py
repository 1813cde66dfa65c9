"""Registration (RFC 3261 §10) against a scripted registrar on the fake clock: digest,
the binding time granted, refresh before it runs out, retries with a growing wait, 423,
and unregistering."""

from __future__ import annotations

import pytest

from sip_bridge.digest import verify_authorization
from sip_bridge.events import RegistrationChanged
from sip_bridge.registration import RegistrationSettings, RegistrationState
from sip_bridge.useragent import UserAgent, UserAgentConfig

from .loop import Wire
from .scripted import ScriptedPeer

GATEWAY = ("127.0.0.1", 5070)
REGISTRAR = ("127.0.0.1", 5090)
CHALLENGE = 'Digest realm="pbx", nonce="n1", qop="auth", algorithm=MD5'


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
def ua(wire: Wire) -> UserAgent:
    return wire.add(UserAgent(UserAgentConfig(address=GATEWAY)))


@pytest.fixture
def registrar(wire: Wire, ua: UserAgent) -> ScriptedPeer:
    return ScriptedPeer(wire, ua, REGISTRAR)


def changes(wire: Wire) -> list[RegistrationChanged]:
    return [e for e in wire.events[GATEWAY] if isinstance(e, RegistrationChanged)]


def settings(**options) -> RegistrationSettings:
    return RegistrationSettings(
        aor="sip:alice@127.0.0.1:5090", credentials=("alice", "s3cret"), expires=600, **options
    )


def ok_with_contact(registrar: ScriptedPeer, request, expires: int) -> None:
    contact = request.headers.get("Contact")
    registrar.respond(
        request,
        200,
        contact=False,
        headers=(
            ("Contact", f"{contact};expires={expires}"),
            ("Contact", "<sip:other@x>;expires=9"),
        ),
    )


def test_register_with_digest_refresh_and_unregister(wire, ua, registrar):
    ua.register("trunk", settings(), wire.now)
    wire.flush()
    first = registrar.last("REGISTER")
    assert str(first.uri) == "sip:127.0.0.1:5090"
    assert first.headers.get("To") == "<sip:alice@127.0.0.1:5090>"
    assert first.headers.get("Contact") == "<sip:alice@127.0.0.1:5070>"
    assert first.headers.get("Expires") == "600"
    registrar.respond(first, 401, headers=(("WWW-Authenticate", CHALLENGE),), contact=False)
    second = registrar.last("REGISTER")
    assert second.call_id == first.call_id and second.cseq.seq == first.cseq.seq + 1
    assert verify_authorization(
        second.headers.get("Authorization"), password="s3cret", method="REGISTER"
    )
    ok_with_contact(registrar, second, 120)  # the registrar grants less than asked
    (registered,) = changes(wire)
    assert (registered.state, registered.expires) == ("registered", 120)
    wire.advance(59)
    assert len(registrar.requests("REGISTER")) == 2
    wire.advance(1)  # halfway through the 120 s granted
    refresh = registrar.last("REGISTER")
    assert refresh.call_id == first.call_id and refresh.cseq.seq == second.cseq.seq + 1
    ok_with_contact(registrar, refresh, 120)
    ua.unregister("trunk", wire.now)
    wire.flush()
    bye = registrar.last("REGISTER")
    assert bye.headers.get("Expires") == "0"
    registrar.respond(bye, 200, contact=False)
    assert changes(wire)[-1].state == "stopped"
    assert ua.registration_state("trunk") is None
    wire.advance(600)
    assert len(registrar.requests("REGISTER")) == 4  # nothing after unregistering


def test_failures_are_retried_with_a_doubling_wait(wire, ua, registrar):
    ua.register("trunk", settings(retry_base=10, retry_max=35), wire.now)
    wire.flush()
    registrar.respond(registrar.last("REGISTER"), 503, contact=False)
    assert changes(wire)[-1].retry_in == 10
    times = []
    for _ in range(3):
        before = len(registrar.requests("REGISTER"))
        start = wire.now
        while len(registrar.requests("REGISTER")) == before:
            wire.advance(1)
        times.append(wire.now - start)
        registrar.respond(registrar.last("REGISTER"), 500, contact=False)
    assert times == [10, 20, 35]  # doubling, capped at retry_max
    assert ua.registration_state("trunk") == RegistrationState.FAILED
    # A registrar that never answers: the same (timer F), with the reason said.
    wire.advance(35)
    wire.advance(33)
    assert changes(wire)[-1].detail == "no response from 127.0.0.1:5090"


def test_refused_credentials_and_423_min_expires(wire, ua, registrar):
    ua.register("trunk", settings(), wire.now)
    wire.flush()
    registrar.respond(registrar.last("REGISTER"), 423, headers=(("Min-Expires", "1200"),))
    retry = registrar.last("REGISTER")
    assert retry.headers.get("Expires") == "1200"
    for _ in range(2):
        registrar.respond(
            registrar.last("REGISTER"), 401, headers=(("WWW-Authenticate", CHALLENGE),)
        )
    failed = changes(wire)[-1]
    assert (failed.state, failed.status, failed.detail) == ("failed", 401, "credentials refused")
