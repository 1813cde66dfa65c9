"""Transfer as the transferee (RFC 3515, RFC 5589, RFC 4488, RFC 3891's Replaces in the
Refer-To), against a scripted transferor on the fake wire."""

from __future__ import annotations

import pytest

from sip_bridge.events import CallEnded, EndReason, TransferRequested
from sip_bridge.useragent import CallError, UserAgent, UserAgentConfig

from .loop import Wire
from .scripted import ANSWER, OFFER, ScriptedPeer

CALLER = ("127.0.0.1", 5070)
PEER = ("127.0.0.1", 5090)


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
def caller(wire: Wire) -> UserAgent:
    return wire.add(UserAgent(UserAgentConfig(address=CALLER)))


@pytest.fixture
def peer(wire: Wire, caller: UserAgent) -> ScriptedPeer:
    return ScriptedPeer(wire, caller, PEER)


@pytest.fixture
def answered(wire, caller, peer):
    call_id = caller.invite("sip:op@127.0.0.1:5090", wire.now, sdp=OFFER, transfers=True)
    wire.flush()
    invite = peer.last("INVITE")
    peer.respond(invite, 200, body=ANSWER)
    return call_id, invite


def transfers(wire: Wire) -> list[TransferRequested]:
    return [e for e in wire.events[CALLER] if isinstance(e, TransferRequested)]


def test_blind_transfer_is_offered_accepted_and_followed_by_notify(wire, caller, peer, answered):
    call_id, invite = answered
    refer = peer.send_in_dialog(
        invite,
        "REFER",
        headers=(
            ("Refer-To", "<sip:sales@127.0.0.1:5091>"),
            ("Referred-By", "<sip:op@127.0.0.1:5090>"),
        ),
    )
    (asked,) = transfers(wire)
    assert (asked.target, asked.replaces) == ("sip:sales@127.0.0.1:5091", None)
    assert asked.referred_by == "<sip:op@127.0.0.1:5090>"
    assert not peer.responses("REFER")  # the owner decides first
    caller.accept_transfer(call_id, wire.now)
    wire.flush()
    (accepted,) = peer.responses("REFER")
    assert accepted.status == 202 and accepted.cseq.seq == refer.cseq.seq
    trying = peer.last("NOTIFY")
    assert trying.headers.get("Event") == "refer"
    assert trying.headers.get("Subscription-State") == "active;expires=180"
    assert trying.headers.get("Content-Type") == "message/sipfrag;version=2.0"
    assert trying.body == b"SIP/2.0 100 Trying\r\n"
    assert trying.to.tag == "far1" and trying.headers.get("Contact")
    peer.respond(trying, 200, contact=False)
    caller.notify_transfer(call_id, wire.now, 180, "Ringing")
    caller.notify_transfer(call_id, wire.now, 200, "OK")
    wire.flush()
    ringing, done = peer.requests("NOTIFY")[1:]
    assert ringing.body == b"SIP/2.0 180 Ringing\r\n"
    assert done.body == b"SIP/2.0 200 OK\r\n"
    assert done.headers.get("Subscription-State") == "terminated;reason=noresource"
    assert done.cseq.seq == ringing.cseq.seq + 1 == trying.cseq.seq + 2
    caller.notify_transfer(call_id, wire.now, 200)  # the subscription is over: nothing
    wire.flush()
    assert len(peer.requests("NOTIFY")) == 3
    # The transferor leaves: the call with it ends as any call does.
    peer.send_in_dialog(invite, "BYE")
    assert [e.reason for e in wire.events[CALLER] if isinstance(e, CallEnded)] == [
        EndReason.REMOTE_HANGUP
    ]


def test_attended_transfer_carries_replaces_unescaped(wire, caller, peer, answered):
    _call_id, invite = answered
    peer.send_in_dialog(
        invite,
        "REFER",
        headers=(
            (
                "Refer-To",
                "<sip:bob@127.0.0.1:5091?Replaces=abc%40pbx%3Bto-tag%3Dt1%3Bfrom-tag%3Df1>",
            ),
        ),
    )
    (asked,) = transfers(wire)
    assert asked.target == "sip:bob@127.0.0.1:5091"
    assert asked.replaces == "abc@pbx;to-tag=t1;from-tag=f1"
    # The owner places the new call with it; the header goes out as given.
    new = caller.invite(asked.target, wire.now, sdp=OFFER, headers=[("Replaces", asked.replaces)])
    wire.flush()
    sent = [m for m in wire.messages_from(CALLER) if getattr(m, "call_id", "") == new]
    assert sent[0].headers.get("Replaces") == "abc@pbx;to-tag=t1;from-tag=f1"


@pytest.mark.parametrize(
    ("refer_to", "status"),
    [
        (None, 400),  # no Refer-To
        ("<tel:+441234567>", 403),  # not a SIP target
        ("<sip:x@127.0.0.1;method=BYE>", 403),
        ("not a uri <<", 400),
    ],
)
def test_a_refer_we_cannot_act_on_is_refused_and_the_call_goes_on(
    wire, caller, peer, answered, refer_to, status
):
    call_id, invite = answered
    headers = (("Refer-To", refer_to),) if refer_to else ()
    peer.send_in_dialog(invite, "REFER", headers=headers)
    assert peer.responses("REFER")[-1].status == status
    assert not transfers(wire)
    assert caller.call_state(call_id).value == "confirmed"


def test_rejected_transfer_and_one_at_a_time(wire, caller, peer, answered):
    call_id, invite = answered
    to = (("Refer-To", "<sip:a@127.0.0.1:5091>"),)
    peer.send_in_dialog(invite, "REFER", headers=to)
    peer.send_in_dialog(invite, "REFER", headers=to)
    assert [r.status for r in peer.responses("REFER")] == [491]
    caller.reject_transfer(call_id, wire.now, status=403)
    wire.flush()
    assert [r.status for r in peer.responses("REFER")] == [491, 403]
    with pytest.raises(CallError):
        caller.accept_transfer(call_id, wire.now)
    # A later REFER is taken, its NOTIFYs say which one they are about.
    third = peer.send_in_dialog(invite, "REFER", headers=to)
    caller.accept_transfer(call_id, wire.now)
    wire.flush()
    assert peer.last("NOTIFY").headers.get("Event") == f"refer;id={third.cseq.seq}"


def test_refer_sub_false_gets_no_notify(wire, caller, peer, answered):
    call_id, invite = answered
    peer.send_in_dialog(
        invite,
        "REFER",
        headers=(("Refer-To", "<sip:a@127.0.0.1:5091>"), ("Refer-Sub", "false")),
    )
    caller.accept_transfer(call_id, wire.now)
    caller.notify_transfer(call_id, wire.now, 200)
    wire.flush()
    (accepted,) = peer.responses("REFER")
    assert accepted.headers.get("Refer-Sub") == "false"
    assert not peer.requests("NOTIFY")


def test_a_refer_pending_when_the_call_ends_is_answered(wire, caller, peer, answered):
    call_id, invite = answered
    peer.send_in_dialog(invite, "REFER", headers=(("Refer-To", "<sip:a@127.0.0.1:5091>"),))
    caller.hangup(call_id, wire.now)
    wire.flush()
    assert peer.responses("REFER")[-1].status == 487


def test_a_call_whose_owner_takes_no_transfers_declines_refer(wire, caller, peer):
    call_id = caller.invite("sip:op@127.0.0.1:5090", wire.now, sdp=OFFER)
    wire.flush()
    invite = peer.last("INVITE")
    peer.respond(invite, 200, body=ANSWER)
    peer.send_in_dialog(invite, "REFER", headers=(("Refer-To", "<sip:a@127.0.0.1:5091>"),))
    assert peer.responses("REFER")[-1].status == 603
    assert not transfers(wire) and caller.call_state(call_id).value == "confirmed"
