"""The progress of a call is one state with allowed moves (sip_bridge.call_state)."""

from __future__ import annotations

import pytest

from sip_bridge.call_state import TRANSITIONS, CallProgress, CallState, CallStateError
from sip_bridge.useragent import UserAgent, UserAgentConfig

from .loop import Wire
from .scripted import ANSWER, OFFER, ScriptedPeer


def test_every_state_is_reachable_and_every_call_can_end():
    reachable = {CallState.LOCATING, CallState.CALLING, CallState.INCOMING}
    frontier = list(reachable)
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()]:
            if nxt not in reachable:
                reachable.add(nxt)
                frontier.append(nxt)
    assert reachable == set(CallState)
    for state, moves in TRANSITIONS.items():
        assert state == CallState.TERMINATED or CallState.TERMINATED in moves
    assert TRANSITIONS[CallState.TERMINATED] == frozenset()


def test_a_move_the_table_does_not_list_is_refused():
    progress = CallProgress(CallState.TERMINATED)
    with pytest.raises(CallStateError, match="terminated to confirmed"):
        progress.move(CallState.CONFIRMED)
    progress = CallProgress(CallState.INCOMING)
    with pytest.raises(CallStateError):
        progress.move(CallState.CANCELLING)  # only our own INVITE can be cancelled
    assert progress.state == CallState.INCOMING


def test_the_user_agent_walks_the_table():
    wire = Wire()
    caller = wire.add(UserAgent(UserAgentConfig(address=("127.0.0.1", 5070))))
    peer = ScriptedPeer(wire, caller, ("127.0.0.1", 5090))
    call_id = caller.invite("sip:op@127.0.0.1:5090", wire.now, sdp=OFFER)
    seen = [caller.call_state(call_id)]
    wire.flush()
    invite = peer.last("INVITE")
    caller.hangup(call_id, wire.now)  # before any 1xx: the CANCEL must wait (§9.1)
    seen.append(caller.call_state(call_id))
    peer.respond(invite, 180)
    seen.append(caller.call_state(call_id))
    assert peer.methods() == ["INVITE", "CANCEL"]
    peer.respond(invite, 200, body=ANSWER)  # crossing the CANCEL: ACK, then BYE
    seen.append(caller.call_state(call_id))
    peer.respond(peer.last("BYE"), 200, contact=False)
    seen.append(caller.call_state(call_id))
    assert seen == [
        CallState.CALLING,
        CallState.CANCEL_PENDING,
        CallState.CANCELLING,
        CallState.TERMINATING,
        None,
    ]
