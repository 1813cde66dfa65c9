"""Delivery from the outbox on a fake clock, on both databases (SQLite and PostgreSQL):
retries back off and keep the row's id, give up after 24 hours, survive a new delivery loop
(a restart) on the same outbox, and a claim leases a row to one loop at a time."""

from __future__ import annotations

import math

import pytest

from gateway.notify.delivery import DeliveryError, DeliveryLoop, RetryPolicy
from gateway.notify.outbox import GIVEN_UP, OutboxEvent, delivery_state
from gateway.storage import Database
from tests.gateway.clock import FakeClock


class FlakySender:
    """Fails the first `failures` attempts of every row, and records each attempt."""

    channel = "webhook"

    def __init__(self, clock: FakeClock, failures: int, *, permanent: bool = False) -> None:
        self.clock = clock
        self.failures = failures
        self.permanent = permanent
        self.attempts: list[tuple[str, float]] = []

    async def deliver(self, event: OutboxEvent) -> None:
        self.attempts.append((event.id, self.clock()))
        if sum(1 for i, _ in self.attempts if i == event.id) <= self.failures:
            raise DeliveryError("HTTP 500", permanent=self.permanent)


async def open_outbox(url):
    """The gateway's database and its outbox."""
    database = await Database.open(url)
    return database, database.outbox


@pytest.fixture
async def outbox(database_url):
    database, store = await open_outbox(database_url)
    yield store
    await database.close()


def loop_of(outbox, sender, clock, backoff=30.0) -> DeliveryLoop:
    return DeliveryLoop(
        outbox, {"webhook": sender}, policy=RetryPolicy(backoff=backoff), clock=clock
    )


def test_retry_policy_doubles_up_to_an_hour_and_stops_after_a_day():
    policy = RetryPolicy(backoff=30)
    created = 1000.0
    assert policy.next_attempt(1, created, created) == created + 30
    assert policy.next_attempt(2, created, created + 30) == created + 30 + 60
    assert policy.next_attempt(3, created, created + 90) == created + 90 + 120
    assert policy.next_attempt(20, created, created + 5000) == created + 5000 + 3600
    # The last try falls on the deadline itself, then no more.
    assert policy.next_attempt(30, created, created + 86000) == created + 86400
    assert policy.next_attempt(31, created, created + 86400) is None


async def test_a_failing_receiver_gets_the_event_on_the_fourth_attempt_with_the_same_id(
    outbox,
):
    clock = FakeClock()
    sender = FlakySender(clock, failures=3)
    loop = loop_of(outbox, sender, clock)
    row = await outbox.enqueue("shop", "call.missed", {"channel": "webhook"}, clock())
    for wait in (0, 30, 60, 120):
        clock.advance(wait - 0.001)
        before = len(sender.attempts)
        await loop.run_once()
        assert len(sender.attempts) == before  # not due yet
        clock.advance(0.001)
        await loop.run_once()
        assert len(sender.attempts) == before + 1
    assert [event_id for event_id, _ in sender.attempts] == [row.id] * 4
    (stored,) = await outbox.find(site="shop")
    assert delivery_state(stored) == "delivered" and stored.attempts == 4
    assert stored.delivered_at == clock() and stored.last_error == ""
    clock.advance(10_000)
    await loop.run_once()
    assert len(sender.attempts) == 4  # delivered once is enough


async def test_the_schedule_survives_a_new_loop_on_the_same_outbox(database_url):
    clock = FakeClock()
    path = database_url
    first_db, first = await open_outbox(path)
    sender = FlakySender(clock, failures=2)
    row = await first.enqueue("shop", "destination.down", {"channel": "webhook"}, clock())
    await loop_of(first, sender, clock, backoff=5).run_once()
    await first_db.close()  # the gateway stops after the first failed attempt
    second_db, second = await open_outbox(path)
    again = loop_of(second, sender, clock, backoff=5)
    clock.advance(4.9)
    await again.run_once()
    assert len(sender.attempts) == 1  # the next attempt is due 5 s after the first
    clock.advance(0.1)
    await again.run_once()
    clock.advance(10)
    await again.run_once()
    assert [event_id for event_id, _ in sender.attempts] == [row.id] * 3
    (stored,) = await second.find()
    assert delivery_state(stored) == "delivered" and stored.attempts == 3
    await second_db.close()


async def test_delivery_is_given_up_24_hours_after_the_event(outbox, caplog):
    clock = FakeClock()
    sender = FlakySender(clock, failures=1000)
    loop = loop_of(outbox, sender, clock)
    created = clock()
    await outbox.enqueue("shop", "call.ended", {"channel": "webhook"}, created)
    while clock() <= created + 2 * 86400:
        await loop.run_once()
        (stored,) = await outbox.find()
        if delivery_state(stored) != "pending":
            break
        clock.now = stored.next_attempt_at
    assert delivery_state(stored) == "given_up" and stored.next_attempt_at == GIVEN_UP
    assert sender.attempts[-1][1] == created + 86400  # a last try at the deadline
    gaps = [b - a for (_, a), (_, b) in zip(sender.attempts, sender.attempts[1:], strict=False)]
    assert gaps[:3] == [30, 60, 120] and max(gaps) == 3600
    assert "given up after" in caplog.text


async def test_a_permanent_failure_is_given_up_at_once(outbox):
    clock = FakeClock()
    sender = FlakySender(clock, failures=1, permanent=True)
    loop = loop_of(outbox, sender, clock)
    await outbox.enqueue("shop", "call.ended", {"channel": "webhook"}, clock())
    await loop.run_once()
    (stored,) = await outbox.find()
    assert delivery_state(stored) == "given_up" and stored.last_error == "HTTP 500"
    assert math.isinf(stored.next_attempt_at)


async def test_a_row_without_a_sender_is_given_up(outbox):
    clock = FakeClock()
    loop = loop_of(outbox, FlakySender(clock, 0), clock)
    await outbox.enqueue("shop", "call.ended", {"channel": "carrier-pigeon"}, clock())
    await loop.run_once()
    (stored,) = await outbox.find()
    assert delivery_state(stored) == "given_up" and "no carrier-pigeon sender" in stored.last_error


async def test_a_claim_leases_the_row_to_one_loop(database_url):
    clock = FakeClock()
    one_db, one = await open_outbox(database_url)
    two_db, two = await open_outbox(database_url)
    await one.enqueue("shop", "call.ended", {"channel": "webhook"}, clock())
    first = await one.claim_due(clock(), lease=120)
    assert len(first) == 1 and first[0].attempts == 1
    assert await two.claim_due(clock(), lease=120) == []
    clock.advance(121)  # the first claimant died without a word: the lease runs out
    (again,) = await two.claim_due(clock(), lease=120)
    assert again.id == first[0].id and again.attempts == 2
    await one_db.close()
    await two_db.close()
