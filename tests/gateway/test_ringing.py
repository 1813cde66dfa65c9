"""The ringing core (gateway/calls/ringing.py) on a fake clock: every strategy, the races a
real network makes, and how a SIP end becomes the page's cause. No sockets, no tasks."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from gateway.api import EndCause
from gateway.calls.ringing import (
    BrowserConnected,
    Cancel,
    Connect,
    DestinationAnswered,
    DestinationEarlyMedia,
    DestinationEnded,
    DestinationRedirected,
    End,
    HangUp,
    RefuseTransfer,
    Ring,
    Ringing,
    RingingAction,
    RingingState,
    RingPlan,
    TransferAsked,
    TransferStarted,
)
from gateway.sites.routing import RingStrategy
from sip_bridge import EndReason

PARALLEL, SEQUENTIAL, ROUND_ROBIN = (
    RingStrategy.PARALLEL,
    RingStrategy.SEQUENTIAL,
    RingStrategy.ROUND_ROBIN,
)
T0 = 1000.0  # the fake clock's start: the browser's offer was answered


def actions(ringing: Ringing) -> list[RingingAction]:
    out = []
    while (action := ringing.next_action()) is not None:
        out.append(action)
    return out


def started(strategy: RingStrategy, destinations: int = 3, **plan: object) -> Ringing:
    """A call whose browser connected at T0 + 0.3; its first actions drained."""
    ringing = Ringing(RingPlan(destinations, strategy, **plan), T0)  # type: ignore[arg-type]
    ringing.handle(BrowserConnected(), T0 + 0.3)
    return ringing


def busy(destination: int) -> DestinationEnded:
    return DestinationEnded(destination, EndReason.BUSY, "486 Busy Here")


# --------------------------------------------------------------------- the browser first


def test_nobody_is_rung_before_the_browsers_media_path_is_up() -> None:
    ringing = Ringing(RingPlan(2, PARALLEL, connect_timeout=5), T0)
    assert actions(ringing) == []
    assert ringing.get_timer() == T0 + 5
    ringing.handle_timer(T0 + 4.999)
    assert actions(ringing) == []
    ringing.handle(BrowserConnected(), T0 + 0.4)
    assert actions(ringing) == [Ring(0), Ring(1)]


def test_a_browser_that_never_connects_ends_the_call_unrung_at_the_connect_timeout() -> None:
    ringing = Ringing(RingPlan(2, PARALLEL, connect_timeout=5), T0)
    ringing.handle_timer(T0 + 5)
    assert actions(ringing) == [
        End(EndCause.FAILED, "the browser's media did not connect within 5 s")
    ]
    assert ringing.get_timer() is None
    # Connected too late: still nobody is rung.
    ringing.handle(BrowserConnected(), T0 + 5.1)
    assert actions(ringing) == []


def test_the_visitor_hanging_up_before_the_browser_connects_rings_nobody() -> None:
    ringing = Ringing(RingPlan(1), T0)
    ringing.handle(HangUp(EndCause.VISITOR_HUNG_UP), T0 + 1)
    assert actions(ringing) == [End(EndCause.VISITOR_HUNG_UP)]
    ringing.handle(BrowserConnected(), T0 + 1.1)
    assert actions(ringing) == []


# --------------------------------------------------------------------- strategies


def test_parallel_rings_all_and_the_first_answer_cancels_the_others() -> None:
    ringing = started(PARALLEL)
    assert actions(ringing) == [Ring(0), Ring(1), Ring(2)]
    ringing.handle(DestinationAnswered(1), T0 + 3)
    assert actions(ringing) == [Cancel(0), Cancel(2), Connect(1, answered=True)]
    assert ringing.winner == 1 and ringing.state is RingingState.CONNECTED
    # The cancelled ones confirm their end: nothing more to do.
    ringing.handle(DestinationEnded(0, EndReason.CANCELLED), T0 + 3.1)
    ringing.handle(DestinationEnded(2, EndReason.CANCELLED), T0 + 3.1)
    assert actions(ringing) == []
    assert ringing.get_timer() is None  # talking: no ring timer left
    ringing.handle(DestinationEnded(1, EndReason.REMOTE_HANGUP, "BYE"), T0 + 60)
    assert actions(ringing) == [End(EndCause.OPERATOR_HUNG_UP, "BYE")]


def test_sequential_rings_in_order_moving_on_after_a_ring_timeout_and_after_busy() -> None:
    ringing = started(SEQUENTIAL, ring_timeout=10)
    assert actions(ringing) == [Ring(0)]
    assert ringing.get_timer() == T0 + 0.3 + 10
    ringing.handle_timer(T0 + 10.3)
    assert actions(ringing) == [Cancel(0), Ring(1)]
    ringing.handle(busy(1), T0 + 11)
    assert actions(ringing) == [Ring(2)]
    assert ringing.get_timer() == T0 + 21
    ringing.handle(DestinationAnswered(2), T0 + 12)
    assert actions(ringing) == [Connect(2, answered=True)]


@pytest.mark.parametrize(("first", "order"), [(0, [0, 1, 2]), (2, [2, 0, 1]), (4, [1, 2, 0])])
def test_round_robin_starts_where_the_call_says_and_wraps(first: int, order: list[int]) -> None:
    ringing = started(ROUND_ROBIN, first=first)
    rung = [a.destination for a in actions(ringing) if isinstance(a, Ring)]
    for _ in range(2):
        ringing.handle(busy(rung[-1]), T0 + 1)
        rung += [a.destination for a in actions(ringing) if isinstance(a, Ring)]
    assert rung == order


def test_sequential_ignores_first() -> None:
    ringing = started(SEQUENTIAL, first=2)
    assert actions(ringing) == [Ring(0)]


def test_when_every_destination_failed_the_last_ones_cause_ends_the_call() -> None:
    ringing = started(SEQUENTIAL, destinations=2)
    ringing.handle(busy(0), T0 + 1)
    ringing.handle(DestinationEnded(1, EndReason.DECLINED, "603 Decline"), T0 + 2)
    assert actions(ringing) == [Ring(0), Ring(1), End(EndCause.DECLINED, "603 Decline")]


def test_the_last_destination_ringing_out_ends_the_call_no_answer() -> None:
    ringing = started(SEQUENTIAL, destinations=2, ring_timeout=5)
    ringing.handle(busy(0), T0 + 1)
    ringing.handle_timer(T0 + 6)
    assert actions(ringing) == [
        Ring(0),
        Ring(1),
        Cancel(1),
        End(EndCause.NO_ANSWER, "ring timeout"),
    ]


def test_a_single_destination_rings_for_its_ring_timeout() -> None:
    ringing = started(PARALLEL, destinations=1, ring_timeout=30)
    assert ringing.get_timer() == T0 + 30.3
    ringing.handle_timer(T0 + 30.2)  # early wake-up: nothing
    assert actions(ringing) == [Ring(0)]
    ringing.handle_timer(T0 + 30.3)
    assert actions(ringing) == [Cancel(0), End(EndCause.NO_ANSWER, "ring timeout")]


# --------------------------------------------------------------------- overall vs per destination


def test_the_overall_ring_time_cuts_the_round_short_and_skips_the_rest() -> None:
    ringing = started(SEQUENTIAL, ring_timeout=10, ring_total=15)
    assert actions(ringing) == [Ring(0)]
    ringing.handle_timer(T0 + 10.3)
    assert actions(ringing) == [Cancel(0), Ring(1)]
    assert ringing.get_timer() == T0 + 15.3  # min(own 10 s, what is left of the 15 s)
    ringing.handle_timer(T0 + 15.3)
    assert actions(ringing) == [Cancel(1), End(EndCause.NO_ANSWER, "ring timeout")]
    assert ringing.destinations[2].value == "waiting"  # never rung


def test_an_overall_ring_time_shorter_than_the_per_destination_one_wins() -> None:
    ringing = started(PARALLEL, destinations=2, ring_timeout=30, ring_total=12)
    assert ringing.get_timer() == T0 + 12.3
    ringing.handle_timer(T0 + 12.3)
    assert actions(ringing) == [
        Ring(0),
        Ring(1),
        Cancel(0),
        Cancel(1),
        End(EndCause.NO_ANSWER, "ring timeout"),
    ]


def test_a_failure_after_the_overall_time_ends_the_call_without_ringing_on() -> None:
    ringing = started(SEQUENTIAL, ring_timeout=30, ring_total=5)
    ringing.handle(busy(0), T0 + 6)  # the timer was late; the rule holds
    assert actions(ringing) == [Ring(0), End(EndCause.BUSY, "486 Busy Here")]


# --------------------------------------------------------------------- races


def test_two_answers_at_once_the_second_is_hung_up() -> None:
    ringing = started(PARALLEL, destinations=2)
    actions(ringing)
    ringing.handle(DestinationAnswered(0), T0 + 2)
    ringing.handle(DestinationAnswered(1), T0 + 2)  # its 200 crossed our CANCEL
    assert actions(ringing) == [Cancel(1), Connect(0, answered=True), Cancel(1)]
    assert ringing.winner == 0


def test_an_answer_after_its_destination_rang_out_is_hung_up_and_ringing_goes_on() -> None:
    ringing = started(SEQUENTIAL, destinations=2, ring_timeout=5)
    ringing.handle_timer(T0 + 5.3)
    assert actions(ringing) == [Ring(0), Cancel(0), Ring(1)]
    ringing.handle(DestinationAnswered(0), T0 + 5.35)  # 200 crossing the CANCEL
    assert actions(ringing) == [Cancel(0)]
    assert ringing.winner is None and ringing.state is RingingState.RINGING
    ringing.handle(DestinationAnswered(1), T0 + 7)
    assert actions(ringing) == [Connect(1, answered=True)]


def test_an_answer_after_the_call_ended_is_hung_up() -> None:
    ringing = started(PARALLEL, destinations=1)
    ringing.handle(HangUp(EndCause.VISITOR_HUNG_UP), T0 + 2)
    assert actions(ringing) == [Ring(0), Cancel(0), End(EndCause.VISITOR_HUNG_UP)]
    ringing.handle(DestinationAnswered(0), T0 + 2.01)
    assert actions(ringing) == [Cancel(0)]
    ringing.handle(DestinationEnded(0, EndReason.LOCAL_HANGUP), T0 + 2.1)
    assert actions(ringing) == []


def test_a_failure_while_another_rings_changes_nothing() -> None:
    ringing = started(PARALLEL, destinations=2)
    actions(ringing)
    ringing.handle(DestinationEnded(0, EndReason.UNREACHABLE, "408"), T0 + 1)
    assert actions(ringing) == []
    assert ringing.get_timer() == T0 + 30.3
    ringing.handle(DestinationAnswered(1), T0 + 4)
    assert actions(ringing) == [Connect(1, answered=True)]


def test_a_destination_that_could_not_be_placed_counts_as_failed() -> None:
    ringing = started(SEQUENTIAL, destinations=2)
    ringing.handle(DestinationEnded(0, EndReason.FAILED, "no RTP ports"), T0 + 0.31)
    assert actions(ringing) == [Ring(0), Ring(1)]


def test_the_first_cause_decided_wins() -> None:
    ringing = started(PARALLEL, destinations=1)
    ringing.handle(DestinationAnswered(0), T0 + 1)
    ringing.handle(HangUp(EndCause.TIME_LIMIT, "maximum call duration"), T0 + 1801)
    ringing.handle(HangUp(EndCause.VISITOR_HUNG_UP), T0 + 1801)
    ringing.handle(DestinationEnded(0, EndReason.LOCAL_HANGUP), T0 + 1801.1)
    assert actions(ringing) == [
        Ring(0),
        Connect(0, answered=True),
        Cancel(0),
        End(EndCause.TIME_LIMIT, "maximum call duration"),
    ]
    assert ringing.cause is EndCause.TIME_LIMIT


def test_the_end_of_a_destination_told_twice_is_taken_once() -> None:
    ringing = started(PARALLEL, destinations=2)
    ringing.handle(busy(0), T0 + 1)
    ringing.handle(busy(0), T0 + 1)
    assert actions(ringing) == [Ring(0), Ring(1)]


# --------------------------------------------------------------------- early media


def test_early_media_plays_only_from_a_destination_ringing_alone() -> None:
    ringing = started(PARALLEL, destinations=2)
    actions(ringing)
    ringing.handle(DestinationEarlyMedia(0), T0 + 1)
    assert actions(ringing) == []  # one of two: a guess
    ringing.handle(busy(1), T0 + 2)
    ringing.handle(DestinationEarlyMedia(0), T0 + 2.1)
    assert actions(ringing) == [Connect(0, answered=False)]
    ringing.handle(DestinationAnswered(0), T0 + 3)
    assert actions(ringing) == [Connect(0, answered=True)]


def test_early_media_after_the_answer_or_from_a_given_up_destination_is_ignored() -> None:
    ringing = started(PARALLEL, destinations=2)
    ringing.handle(DestinationAnswered(0), T0 + 1)
    actions(ringing)
    ringing.handle(DestinationEarlyMedia(1), T0 + 1.1)
    ringing.handle(DestinationEarlyMedia(0), T0 + 1.1)
    assert actions(ringing) == []


# --------------------------------------------------------------------- causes


@pytest.mark.parametrize(
    ("reason", "cause"),
    [
        (EndReason.BUSY, EndCause.BUSY),
        (EndReason.NO_ANSWER, EndCause.NO_ANSWER),
        (EndReason.DECLINED, EndCause.DECLINED),
        (EndReason.UNREACHABLE, EndCause.UNREACHABLE),
        (EndReason.NOT_FOUND, EndCause.UNREACHABLE),
        (EndReason.NOT_ACCEPTABLE, EndCause.NO_COMMON_CODEC),
        (EndReason.AUTH_FAILED, EndCause.PHONE_SYSTEM_REFUSED),
        (EndReason.SESSION_EXPIRED, EndCause.SESSION_EXPIRED),
        (EndReason.FAILED, EndCause.FAILED),
    ],
)
def test_a_destinations_failure_before_the_answer_becomes_the_pages_cause(
    reason: EndReason, cause: EndCause
) -> None:
    ringing = started(PARALLEL, destinations=1)
    ringing.handle(DestinationEnded(0, reason, "detail"), T0 + 1)
    assert actions(ringing)[-1] == End(cause, "detail")


@pytest.mark.parametrize(
    ("reason", "cause"),
    [
        (EndReason.REMOTE_HANGUP, EndCause.OPERATOR_HUNG_UP),
        (EndReason.MEDIA_TIMEOUT, EndCause.FAILED),
        (EndReason.UNREACHABLE, EndCause.UNREACHABLE),  # a transport error mid-call
    ],
)
def test_the_answered_destinations_end_becomes_the_pages_cause(
    reason: EndReason, cause: EndCause
) -> None:
    ringing = started(PARALLEL, destinations=2)
    ringing.handle(DestinationAnswered(1), T0 + 1)
    actions(ringing)
    ringing.handle(DestinationEnded(1, reason, "why"), T0 + 9)
    assert actions(ringing) == [End(cause, "why")]


def test_a_status_no_named_cause_covers_is_the_phone_system_refusing_in_its_words() -> None:
    ringing = started(SEQUENTIAL, destinations=2)
    ringing.handle(DestinationEnded(0, EndReason.BUSY, "486 Busy Here", 486), T0 + 1)
    ringing.handle(
        DestinationEnded(1, EndReason.FAILED, "421 (requires 100rel)", status=421), T0 + 2
    )
    assert actions(ringing)[-1] == End(
        EndCause.PHONE_SYSTEM_REFUSED, "421 (requires 100rel)", "421 Extension Required"
    )


# --------------------------------------------------------------------- redirects

ALLOWED = ("sip:sales@pbx.example", "sip:desk@pbx.example", "sip:night@pbx.example")


def redirecting(strategy: RingStrategy = SEQUENTIAL, destinations: int = 2, **plan: object):
    """A started call whose site allows redirects to ALLOWED only."""
    return started(strategy, destinations, may_send_to=lambda uri: uri in ALLOWED, **plan)


def test_a_redirect_rings_the_allowed_targets_in_order_in_place_of_the_destination() -> None:
    ringing = redirecting(ring_timeout=30)
    assert actions(ringing) == [Ring(0)]
    targets = ("sip:premium@elsewhere.example", ALLOWED[0], ALLOWED[1])
    ringing.handle(DestinationRedirected(0, 302, targets), T0 + 1)
    assert actions(ringing) == [Ring(2)]  # the first allowed target, an added destination
    assert ringing.redirect_target(2) == (0, ALLOWED[0])
    assert ringing.redirect_target(0) is None
    assert ringing.get_timer() == T0 + 31  # its own ring time
    ringing.handle(busy(2), T0 + 2)
    assert actions(ringing) == [Ring(3)]  # the next of the same 3xx, before destination 1
    assert ringing.redirect_target(3) == (0, ALLOWED[1])
    ringing.handle(DestinationAnswered(3), T0 + 3)
    assert actions(ringing) == [Connect(3, answered=True)]
    assert ringing.winner == 3


def test_a_redirect_target_that_rings_out_moves_on_to_the_next_then_to_the_site_list() -> None:
    ringing = redirecting(ring_timeout=10)
    actions(ringing)
    ringing.handle(DestinationRedirected(0, 301, (ALLOWED[0], ALLOWED[1])), T0 + 1)
    assert actions(ringing) == [Ring(2)]
    ringing.handle_timer(T0 + 11)
    assert actions(ringing) == [Cancel(2), Ring(3)]
    ringing.handle(busy(3), T0 + 12)
    assert actions(ringing) == [Ring(1)]  # the site's next destination


def test_a_redirect_to_nowhere_the_site_may_call_fails_that_destination() -> None:
    ringing = redirecting(destinations=1)
    actions(ringing)
    ringing.handle(DestinationRedirected(0, 302, ("sip:premium@elsewhere.example",)), T0 + 1)
    assert actions(ringing) == [
        End(
            EndCause.REDIRECT_FAILED,
            "302 Moved Temporarily: no target we may call",
            "302 Moved Temporarily",
        )
    ]


def test_a_site_without_redirect_targets_follows_none() -> None:
    ringing = started(SEQUENTIAL, destinations=2)  # the plan's default: nowhere
    actions(ringing)
    ringing.handle(DestinationRedirected(0, 302, ALLOWED), T0 + 1)
    assert actions(ringing) == [Ring(1)]  # on to the next site destination
    ringing.handle(busy(1), T0 + 2)
    assert actions(ringing) == [End(EndCause.BUSY, "486 Busy Here")]


def test_redirects_stop_at_the_hop_limit_and_a_target_is_rung_once() -> None:
    ringing = redirecting(destinations=1, max_redirects=2)
    actions(ringing)
    ringing.handle(DestinationRedirected(0, 302, (ALLOWED[0],)), T0 + 1)
    assert actions(ringing) == [Ring(1)]
    # A loop back to a target already rung is not followed; a new one is.
    ringing.handle(DestinationRedirected(1, 302, (ALLOWED[0], ALLOWED[1])), T0 + 2)
    assert actions(ringing) == [Ring(2)]
    ringing.handle(DestinationRedirected(2, 302, (ALLOWED[2],)), T0 + 3)
    assert actions(ringing) == [
        End(
            EndCause.REDIRECT_FAILED,
            "302 Moved Temporarily: more than 2 redirects",
            "302 Moved Temporarily",
        )
    ]


def test_a_redirect_while_others_ring_in_parallel_keeps_them_ringing() -> None:
    ringing = redirecting(PARALLEL, destinations=2)
    assert actions(ringing) == [Ring(0), Ring(1)]
    ringing.handle(DestinationRedirected(0, 302, (ALLOWED[0],)), T0 + 1)
    assert actions(ringing) == [Ring(2)]
    ringing.handle(busy(1), T0 + 2)
    assert actions(ringing) == []  # the redirect target still rings
    ringing.handle(DestinationAnswered(2), T0 + 3)
    assert actions(ringing) == [Connect(2, answered=True)]


def test_a_redirect_crossing_our_cancel_or_after_the_end_rings_nobody() -> None:
    ringing = redirecting(PARALLEL, destinations=2)
    actions(ringing)
    ringing.handle(DestinationAnswered(1), T0 + 1)
    assert actions(ringing) == [Cancel(0), Connect(1, answered=True)]
    ringing.handle(DestinationRedirected(0, 302, (ALLOWED[0],)), T0 + 1.1)
    assert actions(ringing) == []
    ringing.handle(HangUp(EndCause.VISITOR_HUNG_UP), T0 + 5)
    ringing.handle(DestinationRedirected(1, 302, (ALLOWED[1],)), T0 + 5.1)
    assert actions(ringing) == [Cancel(1), End(EndCause.VISITOR_HUNG_UP)]


# --------------------------------------------------------------------- transfers

SALES = ALLOWED[0]


def answered_by(destination: int, destinations: int = 2, **plan: object) -> Ringing:
    """A call `destination` answered at T0 + 1, in a site that allows ALLOWED."""
    ringing = redirecting(PARALLEL, destinations, ring_timeout=20, **plan)
    ringing.handle(DestinationAnswered(destination), T0 + 1)
    actions(ringing)
    return ringing


def test_a_transfer_rings_the_target_and_hands_it_the_call() -> None:
    ringing = answered_by(1)
    ringing.handle(TransferAsked(1, SALES), T0 + 10)
    assert actions(ringing) == [TransferStarted(1, 2), Ring(2)]
    assert ringing.redirect_target(2) == (1, SALES) and ringing.transfer_target(2)
    assert ringing.get_timer() == T0 + 30  # the target rings for ring_timeout
    ringing.handle(DestinationEarlyMedia(2), T0 + 11)
    assert actions(ringing) == [Connect(2, answered=False)]
    ringing.handle(DestinationAnswered(2), T0 + 12)
    assert actions(ringing) == [Connect(2, answered=True), Cancel(1)]  # BYE to the operator
    assert ringing.winner == 2 and ringing.get_timer() is None
    ringing.handle(DestinationEnded(1, EndReason.LOCAL_HANGUP), T0 + 12.1)
    assert actions(ringing) == []  # the operator's BYE confirmed: nothing ends
    ringing.handle(DestinationEnded(2, EndReason.REMOTE_HANGUP, "BYE"), T0 + 90)
    assert actions(ringing) == [End(EndCause.OPERATOR_HUNG_UP, "BYE")]


def test_a_transfer_the_target_does_not_take_goes_back_to_the_operator() -> None:
    ringing = answered_by(0)
    ringing.handle(TransferAsked(0, SALES), T0 + 10)
    actions(ringing)
    ringing.handle(busy(2), T0 + 11)
    assert actions(ringing) == [Connect(0, answered=True)]
    assert ringing.transfer is None and ringing.winner == 0
    # A second transfer may follow; this one rings out.
    ringing.handle(TransferAsked(0, ALLOWED[1]), T0 + 20)
    assert actions(ringing) == [TransferStarted(0, 3), Ring(3)]
    ringing.handle_timer(T0 + 39.9)
    assert actions(ringing) == []
    ringing.handle_timer(T0 + 40)
    assert actions(ringing) == [Cancel(3), Connect(0, answered=True)]
    ringing.handle(DestinationAnswered(3), T0 + 40.1)  # crossed our CANCEL
    assert actions(ringing) == [Cancel(3)]
    assert ringing.winner == 0


def test_a_transfer_target_that_redirects_fails_the_transfer() -> None:
    ringing = answered_by(0)
    ringing.handle(TransferAsked(0, SALES), T0 + 10)
    actions(ringing)
    ringing.handle(DestinationRedirected(2, 302, (ALLOWED[1],)), T0 + 11)
    assert actions(ringing) == [Connect(0, answered=True)]  # back to the operator
    assert ringing.get_timer() is None


def test_an_operator_who_leaves_during_a_transfer_ends_nothing_until_the_target_fails() -> None:
    ringing = answered_by(0)
    ringing.handle(TransferAsked(0, SALES), T0 + 10)
    actions(ringing)
    ringing.handle(DestinationEnded(0, EndReason.REMOTE_HANGUP, "BYE"), T0 + 10.5)
    assert actions(ringing) == []
    ringing.handle_timer(T0 + 30)
    assert actions(ringing) == [
        Cancel(2),
        End(EndCause.TRANSFER_FAILED, "the transfer target did not answer"),
    ]


def test_an_operator_who_leaves_during_a_transfer_is_replaced_by_the_target() -> None:
    ringing = answered_by(0)
    ringing.handle(TransferAsked(0, SALES), T0 + 10)
    actions(ringing)
    ringing.handle(DestinationEnded(0, EndReason.REMOTE_HANGUP, "BYE"), T0 + 10.5)
    ringing.handle(DestinationAnswered(2), T0 + 12)
    assert actions(ringing) == [Connect(2, answered=True)]  # nobody left to hang up


@pytest.mark.parametrize(
    ("when", "who", "target", "status"),
    [
        ("answered", 0, "sip:premium@elsewhere.example", 403),  # not in transfer_to
        ("answered", 1, SALES, 403),  # not the destination that has the call
        ("ringing", 0, SALES, 403),  # not answered yet
        ("transferring", 0, ALLOWED[1], 491),  # one transfer at a time
    ],
)
def test_transfers_the_site_does_not_allow_are_refused(
    when: str, who: int, target: str, status: int
) -> None:
    if when == "ringing":
        ringing = redirecting(PARALLEL, 2)
        actions(ringing)
    else:
        ringing = answered_by(0)
    if when == "transferring":
        ringing.handle(TransferAsked(0, SALES), T0 + 5)
        actions(ringing)
    ringing.handle(TransferAsked(who, target), T0 + 10)
    assert actions(ringing) == [RefuseTransfer(who, status)]


def test_the_visitor_hanging_up_during_a_transfer_stops_both_legs() -> None:
    ringing = answered_by(0)
    ringing.handle(TransferAsked(0, SALES), T0 + 10)
    actions(ringing)
    ringing.handle(HangUp(EndCause.VISITOR_HUNG_UP), T0 + 11)
    assert actions(ringing) == [Cancel(0), Cancel(2), End(EndCause.VISITOR_HUNG_UP)]


# --------------------------------------------------------------------- misuse


def test_events_for_destinations_the_call_does_not_have_are_refused() -> None:
    ringing = started(PARALLEL, destinations=2)
    with pytest.raises(ValueError):
        ringing.handle(DestinationAnswered(2), T0 + 1)
    with pytest.raises(ValueError):
        ringing.handle(DestinationAnswered(-1), T0 + 1)


@pytest.mark.parametrize(
    "plan",
    [
        {"destinations": 0},
        {"destinations": 1, "ring_timeout": 0},
        {"destinations": 1, "connect_timeout": -1},
        {"destinations": 1, "ring_total": 0},
    ],
)
def test_a_plan_that_cannot_ring_is_refused(plan: dict) -> None:
    with pytest.raises(ValueError):
        RingPlan(**plan)


# --------------------------------------------------------------------- any order of events

EVENT = st.one_of(
    st.tuples(st.just("connected"), st.just(0)),
    st.tuples(st.just("answered"), st.integers(0, 2)),
    st.tuples(st.just("early"), st.integers(0, 2)),
    st.tuples(st.just("ended"), st.integers(0, 2)),
    st.tuples(st.just("redirected"), st.integers(0, 2)),
    st.tuples(st.just("transfer"), st.integers(0, 2)),
    st.tuples(st.just("target"), st.just(0)),
    st.tuples(st.just("hangup"), st.just(0)),
    st.tuples(st.just("timer"), st.just(0)),
)


@settings(max_examples=300, deadline=None)
@example(  # a transfer's target rings while the operator talks (sequential)
    strategy=RingStrategy.SEQUENTIAL,
    ring_total=None,
    steps=[
        (("connected", 0), 0.0),
        (("timer", 0), 0.0),
        (("timer", 0), 0.0),
        (("answered", 2), 0.0),
        (("transfer", 2), 0.0),
    ],
)
@given(
    strategy=st.sampled_from(list(RingStrategy)),
    ring_total=st.sampled_from([None, 7.0, 40.0]),
    steps=st.lists(st.tuples(EVENT, st.floats(0, 8)), max_size=25),
)
def test_whatever_happens_the_rules_hold(
    strategy: RingStrategy, ring_total: float | None, steps: list
) -> None:
    plan = RingPlan(
        3,
        strategy,
        ring_timeout=10,
        ring_total=ring_total,
        connect_timeout=5,
        may_send_to=lambda uri: uri in ALLOWED,
    )
    ringing = Ringing(plan, 0.0)
    now, browser_up = 0.0, False
    done: list[RingingAction] = []
    live: set[int] = set()  # rung, neither cancelled nor ended
    talking: set[int] = set()  # of those, the ones that answered and got the call
    reasons = [EndReason.BUSY, EndReason.REMOTE_HANGUP, EndReason.CANCELLED]
    for (kind, destination), step in steps:
        now += step
        if kind == "timer":
            deadline = ringing.get_timer()
            if deadline is not None:
                now = max(now, deadline)
                ringing.handle_timer(now)
                after = ringing.get_timer()
                assert after is None or after > now, "a timer due again at once: a busy loop"
        elif kind == "connected":
            browser_up = True
            ringing.handle(BrowserConnected(), now)
        elif kind == "answered":
            ringing.handle(DestinationAnswered(destination), now)
        elif kind == "early":
            ringing.handle(DestinationEarlyMedia(destination), now)
        elif kind == "ended":
            live.discard(destination)
            ringing.handle(DestinationEnded(destination, reasons[destination]), now)
        elif kind == "redirected":
            live.discard(destination)
            ringing.handle(DestinationRedirected(destination, 302, ALLOWED[destination:]), now)
        elif kind == "transfer":
            ringing.handle(TransferAsked(destination, ALLOWED[destination]), now)
        elif kind == "target":  # the newest added destination (a redirect's, a transfer's)
            added = len(ringing.destinations) - 1
            if added > 2:
                live.discard(added)
                ringing.handle(DestinationRedirected(added, 302, ALLOWED), now)
        else:
            ringing.handle(HangUp(EndCause.VISITOR_HUNG_UP), now)
        for action in actions(ringing):
            done.append(action)
            if isinstance(action, Ring):
                assert browser_up, "rang before the browser's media was up"
                if strategy is not RingStrategy.PARALLEL:
                    # A transfer's target rings while the operator who asked talks on.
                    assert not live - talking, "rang a second destination while one rang"
                live.add(action.destination)
            elif isinstance(action, Connect) and action.answered:
                talking.add(action.destination)
            elif isinstance(action, Cancel):
                live.discard(action.destination)
    rung = [a.destination for a in done if isinstance(a, Ring)]
    # The call's first answer; a transfer's target (or the operator again) may follow.
    transfers = {a.target for a in done if isinstance(a, TransferStarted)}
    answered = {
        a.destination
        for a in done
        if isinstance(a, Connect) and a.answered and a.destination not in transfers
    }
    ends = [a for a in done if isinstance(a, End)]
    assert len(rung) == len(set(rung)), "a destination rung twice"
    assert len(answered) <= 1, "two destinations got the call"
    assert len(ends) <= 1, "ended twice"
    if ends:
        after = done[done.index(ends[0]) + 1 :]
        # After the end: only late answers hung up, and REFERs answered (refused).
        assert all(isinstance(a, Cancel | RefuseTransfer) for a in after), after
        assert not live, "the call ended with a destination still live"
        assert ringing.get_timer() is None
