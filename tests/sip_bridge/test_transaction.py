"""Each RFC 3261 §17 transaction machine alone, on a fake clock: every timer and count."""

from __future__ import annotations

import pytest

from sip_bridge.headers import Headers
from sip_bridge.message import Request, Response, new_response, parse_message
from sip_bridge.transaction import (
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    State,
    TimerSettings,
)
from sip_bridge.uri import parse_uri

PEER = ("127.0.0.1", 5090)


class Recorder:
    """Plays the transaction user and the transport."""

    def __init__(self) -> None:
        self.sent: list[tuple[float, bytes]] = []
        self.responses: list[int] = []
        self.timeouts = 0
        self.terminated = 0
        self.now = 0.0

    def send(self, data: bytes, address) -> None:
        self.sent.append((self.now, data))

    def transaction_response(self, tx, response, now) -> None:
        self.responses.append(response.status)

    def transaction_timeout(self, tx, now) -> None:
        self.timeouts += 1

    def transaction_terminated(self, tx) -> None:
        self.terminated += 1

    def times(self, prefix: bytes) -> list[float]:
        return [t for t, d in self.sent if d.startswith(prefix)]


def request(method: str) -> Request:
    h = Headers()
    h.add("Via", "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKtest;rport")
    h.add("Max-Forwards", "70")
    h.add("From", "<sip:a@127.0.0.1>;tag=1")
    h.add("To", "<sip:b@127.0.0.1>")
    h.add("Call-ID", "tx-test")
    h.add("CSeq", f"1 {method}")
    return Request(method, parse_uri("sip:b@127.0.0.1:5090"), h)


def run(tx, rec: Recorder, until: float, step: float = 0.01) -> None:
    while rec.now < until:
        rec.now = round(rec.now + step, 4)
        deadline = tx.get_timer()
        if deadline is not None and deadline <= rec.now:
            tx.handle_timer(rec.now)


def client(cls, method: str, *, reliable=False):
    rec = Recorder()
    tx = cls(request(method), PEER, rec.send, rec, reliable=reliable, timers=TimerSettings())
    tx.start(0.0)
    return tx, rec


def test_invite_client_timer_a_b():
    tx, rec = client(InviteClientTransaction, "INVITE")
    run(tx, rec, 33)
    assert rec.times(b"INVITE") == [0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert rec.timeouts == 1 and tx.state == State.TERMINATED


def test_invite_client_provisional_stops_a_and_b():
    tx, rec = client(InviteClientTransaction, "INVITE")
    tx.receive_response(new_response(tx.request, 180, to_tag="x"), 0.1)
    run(tx, rec, 100)
    assert rec.times(b"INVITE") == [0] and rec.timeouts == 0
    assert tx.state == State.PROCEEDING


def test_invite_client_timer_d_absorbs_retransmitted_finals():
    tx, rec = client(InviteClientTransaction, "INVITE")
    busy = new_response(tx.request, 486, to_tag="x")
    tx.receive_response(busy, 0.1)
    rec.now = 10
    tx.receive_response(busy, 10)
    assert len(rec.times(b"ACK")) == 2 and rec.responses == [486]
    run(tx, rec, 31.9)
    assert tx.state == State.COMPLETED
    run(tx, rec, 32.2)
    assert tx.state == State.TERMINATED


def test_invite_client_reliable_has_no_retransmissions_and_no_timer_d():
    tx, _rec = client(InviteClientTransaction, "INVITE", reliable=True)
    assert tx.timer_names() == {"B"}
    tx.receive_response(new_response(tx.request, 486, to_tag="x"), 0.1)
    assert tx.state == State.TERMINATED


def test_invite_client_2xx_goes_to_accepted_and_timer_m():
    tx, rec = client(InviteClientTransaction, "INVITE")
    ok = new_response(tx.request, 200, to_tag="x")
    tx.receive_response(ok, 0.1)
    tx.receive_response(ok, 0.6)  # retransmission passed up (RFC 6026)
    assert rec.responses == [200, 200] and not rec.times(b"ACK")
    run(tx, rec, 32.2)
    assert tx.state == State.TERMINATED


def test_non_invite_client_timers_e_f_k():
    tx, rec = client(NonInviteClientTransaction, "BYE")
    run(tx, rec, 5)
    assert rec.times(b"BYE") == [0, 0.5, 1.5, 3.5]
    tx.receive_response(new_response(tx.request, 100), rec.now)
    run(tx, rec, 13.6)
    # In Proceeding, E fires every T2.
    assert rec.times(b"BYE")[4:] == [7.5, 11.5]
    tx.receive_response(new_response(tx.request, 200), rec.now)
    start = rec.now
    assert tx.state == State.COMPLETED
    run(tx, rec, start + 4.9)
    assert tx.state == State.COMPLETED
    run(tx, rec, start + 5.1)
    assert tx.state == State.TERMINATED and rec.responses == [100, 200]


def test_non_invite_client_timer_f():
    tx, rec = client(NonInviteClientTransaction, "OPTIONS")
    run(tx, rec, 33)
    assert len(rec.times(b"OPTIONS")) == 11 and rec.timeouts == 1


def server(cls, method: str, *, reliable=False):
    rec = Recorder()
    tx = cls(request(method), PEER, rec.send, rec, reliable=reliable, timers=TimerSettings())
    return tx, rec


def test_invite_server_timers_g_h():
    tx, rec = server(InviteServerTransaction, "INVITE")
    tx.respond(new_response(tx.request, 486, to_tag="t"), 0.0)
    run(tx, rec, 33)
    times = rec.times(b"SIP/2.0 486")
    assert times == [0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert rec.timeouts == 1 and tx.state == State.TERMINATED


def test_invite_server_ack_confirms_then_timer_i():
    tx, rec = server(InviteServerTransaction, "INVITE")
    tx.respond(new_response(tx.request, 486, to_tag="t"), 0.0)
    ack = request("ACK")
    assert tx.receive_request(ack, 0.2) is False
    assert tx.state == State.CONFIRMED
    run(tx, rec, 5.1)
    assert tx.state == State.CONFIRMED  # timer I = T4 after the ACK at 0.2
    run(tx, rec, 5.3)
    assert tx.state == State.TERMINATED and rec.times(b"SIP/2.0 486") == [0]


def test_invite_server_retransmitted_invite_gets_last_response():
    tx, rec = server(InviteServerTransaction, "INVITE")
    tx.respond(new_response(tx.request, 180, to_tag="t"), 0.0)
    tx.receive_request(tx.request, 0.5)
    assert len(rec.times(b"SIP/2.0 180")) == 2


def test_invite_server_2xx_accepted_passes_ack_and_timer_l():
    tx, rec = server(InviteServerTransaction, "INVITE")
    tx.respond(new_response(tx.request, 200, to_tag="t"), 0.0)
    assert tx.state == State.ACCEPTED
    assert tx.receive_request(request("ACK"), 0.1) is True
    tx.receive_request(tx.request, 0.2)  # retransmitted INVITE absorbed
    assert len(rec.times(b"SIP/2.0 200")) == 1
    run(tx, rec, 32.1)
    assert tx.state == State.TERMINATED


@pytest.mark.parametrize("reliable", [False, True])
def test_non_invite_server_timer_j(reliable):
    tx, rec = server(NonInviteServerTransaction, "BYE", reliable=reliable)
    tx.receive_request(tx.request, 0.0)  # nothing to resend yet
    assert rec.sent == []
    tx.respond(new_response(tx.request, 200), 0.0)
    if reliable:
        assert tx.state == State.TERMINATED
        return
    tx.receive_request(tx.request, 1.0)
    assert len(rec.times(b"SIP/2.0 200")) == 2
    run(tx, rec, 31.9)
    assert tx.state == State.COMPLETED
    run(tx, rec, 32.1)
    assert tx.state == State.TERMINATED


def test_ack_for_non_2xx_is_built_per_17_1_1_3():
    tx, rec = client(InviteClientTransaction, "INVITE")
    tx.request.headers.add("Route", "<sip:proxy.example.com;lr>")
    tx.receive_response(new_response(tx.request, 603, to_tag="far"), 0.1)
    ack = parse_message(rec.sent[-1][1])
    assert isinstance(ack, Request) and ack.method == "ACK"
    assert ack.top_via.branch == "z9hG4bKtest" and ack.to.tag == "far"
    assert ack.cseq.seq == 1 and str(ack.uri) == str(tx.request.uri)
    assert isinstance(new_response(tx.request, 200), Response)
