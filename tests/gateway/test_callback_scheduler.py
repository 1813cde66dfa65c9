"""Scheduled callbacks fire at their time, after a restart, exactly once, and only with
their slot in the limits taken: one that must wait stays scheduled. Rounds are run one by
one (`run_once`) on a fake clock: nothing here waits for the event loop's timing."""

from __future__ import annotations

import asyncio
import socket

from gateway.access.admission import CallAdmission
from gateway.access.redis_ledger import RedisLedger
from gateway.callbacks.scheduler import CallbackScheduler, MustWait
from gateway.callbacks.service import RequestACall
from gateway.config import parse_config
from gateway.storage import Callback, CallbackStatus, Database
from gateway.storage.redis_server import RedisUrl, connect
from tests.support.database import CallbackStoreHandle, open_callback_store

from .clock import FakeClock


class RecordingJob:
    """Stands in for the SIP work of a callback (tested with real phones elsewhere):
    what is tested here is when, how often and with what slot the scheduler runs it."""

    def __init__(self, callback: Callback, slot: object, store, clock, runs: list) -> None:
        self.callback, self.slot, self.store, self.clock, self.runs = (
            callback,
            slot,
            store,
            clock,
            runs,
        )

    async def run(self) -> CallbackStatus:
        self.runs.append((self.callback.id, self.clock(), self.slot))
        await self.store.finish(self.callback.id, CallbackStatus.DONE, "", self.clock())
        return CallbackStatus.DONE


class Slot:
    def __init__(self, name: str) -> None:
        self.name = name
        self.released = 0

    def answered(self) -> None:
        pass

    def release(self) -> None:
        self.released += 1


def scheduler(store, clock, runs: list, **options) -> CallbackScheduler:
    return CallbackScheduler(
        store,
        lambda cb, slot: RecordingJob(cb, slot, store, clock, runs),
        owner=options.pop("owner", "w0"),
        clock=clock,
        **options,
    )


async def finished(scheduler: CallbackScheduler) -> None:
    await asyncio.gather(*scheduler.running.values())


async def test_scheduled_callback_fires_on_time_after_a_restart_once(tmp_path):
    runs: list = []
    clock = FakeClock(1000.0)
    path = tmp_path / "cb.db"
    store = await open_callback_store(path)
    callback = await store.add(
        site="shop", number="+441632960123", details={}, due_at=1060.0, now=clock()
    )
    await store.close()  # the gateway restarts before it is due

    store = await open_callback_store(path)
    first = scheduler(store, clock, runs)
    assert await first.run_once() == 0  # not yet due
    clock.now = 1060.0
    assert await first.run_once() == 1
    await finished(first)
    assert runs == [(callback.id, 1060.0, None)]
    clock.now = 2000.0
    second = scheduler(store, clock, runs, owner="w1")
    assert await first.run_once() == 0
    assert await second.run_once() == 0
    assert len(runs) == 1  # once, whoever else looks
    assert (await store.get(callback.id)).status == "done"
    await store.close()


async def test_callback_of_a_removed_site_fails_with_a_reason(tmp_path):
    clock = FakeClock(10.0)
    store = await open_callback_store(tmp_path / "cb.db")
    callback = await store.add(site="gone", number="+15005550006", details={}, due_at=5, now=0)
    slot = Slot("gone")

    async def admit(cb: Callback) -> Slot:
        return slot

    gone = CallbackScheduler(store, lambda cb, slot: None, admit=admit, owner="w0", clock=clock)
    assert await gone.run_once() == 1
    await finished(gone)
    stored = await store.get(callback.id)
    assert stored.status == "failed" and "no longer configured" in stored.history[-1][2]
    assert slot.released == 1
    await store.close()


async def test_a_callback_that_must_wait_stays_scheduled_and_goes_when_a_line_frees(tmp_path):
    runs: list = []
    clock = FakeClock(100.0)
    store = await open_callback_store(tmp_path / "cb.db")
    callback = await store.add(site="shop", number="+441632960123", details={}, due_at=0, now=0)
    lines = {"free": False}

    async def admit(cb: Callback) -> Slot:
        if not lines["free"]:
            raise MustWait("all lines are busy")
        return Slot(cb.site)

    waiting = scheduler(store, clock, runs, admit=admit)
    for _ in range(3):  # round after round, the line is taken
        assert await waiting.run_once() == 0
        clock.advance(1)
    stored = await store.get(callback.id)
    assert stored.status == "scheduled" and stored.attempts == 0  # waiting is no attempt
    lines["free"] = True
    assert await waiting.run_once() == 1
    await finished(waiting)
    stored = await store.get(callback.id)
    assert [(event, detail) for _, event, detail in stored.history] == [
        ("requested", ""),
        ("waiting", "all lines are busy"),  # once, however many rounds it waited
        ("dialing", ""),
        ("done", ""),
    ]
    assert stored.attempts == 1
    ((_, _, slot),) = runs
    assert slot.name == "shop"  # the job holds the slot it was admitted with
    await store.close()


async def test_a_site_that_must_wait_holds_up_no_other_site(tmp_path):
    runs: list = []
    clock = FakeClock(100.0)
    store = await open_callback_store(tmp_path / "cb.db")
    busy = [
        await store.add(site="busy", number="+441632960123", details={}, due_at=i, now=0)
        for i in range(3)
    ]  # the oldest
    free = await store.add(site="free", number="+441632960124", details={}, due_at=10, now=0)

    async def admit(cb: Callback) -> Slot:
        if cb.site == "busy":
            raise MustWait("all lines are busy")
        return Slot(cb.site)

    rounds = scheduler(store, clock, runs, admit=admit, max_running=3)
    assert await rounds.run_once() == 1
    await finished(rounds)
    assert [r[0] for r in runs] == [free.id]
    for callback in busy:
        stored = await store.get(callback.id)
        assert stored.status == "scheduled"
        assert stored.history[-1][1:] == ("waiting", "all lines are busy")
    await store.close()


async def test_a_full_gateway_claims_nothing(tmp_path):
    runs: list = []
    store = await open_callback_store(tmp_path / "cb.db")
    for site in ("a", "b"):
        await store.add(site=site, number="+441632960123", details={}, due_at=0, now=0)
    asked: list[str] = []

    async def admit(cb: Callback) -> Slot:
        asked.append(cb.site)
        raise MustWait("the gateway is at its call limit", everywhere=True)

    full = scheduler(store, FakeClock(5.0), runs, admit=admit)
    assert await full.run_once() == 0
    assert asked == ["a"] and runs == []  # one refusal says it for every site
    assert await store.due(5.0) != []
    await store.close()


async def test_a_slot_taken_for_a_callback_another_worker_claimed_is_given_back(tmp_path):
    runs: list = []
    clock = FakeClock(5.0)
    store = await open_callback_store(tmp_path / "cb.db")
    callback = await store.add(site="shop", number="+441632960123", details={}, due_at=0, now=0)
    slots: list[Slot] = []

    async def admit(cb: Callback) -> Slot:
        slots.append(Slot(cb.site))
        return slots[-1]

    other = await open_callback_store(tmp_path / "cb.db")
    late = scheduler(store, clock, runs, admit=admit)
    (due,) = await store.due(clock())
    assert await other.claim(due.id, "w1", clock()) is not None
    # The round saw it due a moment ago; by its claim, it is the other worker's.
    late.store = _StaleDue(store, [due])
    assert await late.run_once() == 0
    assert runs == [] and [s.released for s in slots] == [1]
    assert (await store.get(callback.id)).status == "dialing"  # the other worker's
    await other.close()
    await store.close()


class _StaleDue:
    """The store as a worker sees it that read the due list before another worker's
    claim: `due` answers that list once."""

    def __init__(self, store: CallbackStoreHandle, due: list[Callback]) -> None:
        self._store, self._due = store, due

    async def due(self, now, limit=10, skip_sites=frozenset()):
        due, self._due = self._due, []
        return due

    def __getattr__(self, name):
        return getattr(self._store, name)


async def test_a_due_callback_waits_while_the_shared_ledger_cannot_be_reached(tmp_path):
    """Redis down: the callback's slot in the limits every node shares cannot be taken, so
    it is not placed (no limit would hold): it stays scheduled and its history says why."""
    config = parse_config(
        """
[[sites]]
id = "shop"
destination = "sip:desk@pbx.example.com"
callback = { dial = "sip:{number}@trunk.example.com", countries = ["GB"] }
"""
    )
    with socket.socket() as nobody:  # bound, never listening: connections are refused
        nobody.bind(("127.0.0.1", 0))
        client = connect(RedisUrl.parse(f"redis://127.0.0.1:{nobody.getsockname()[1]}"))
        ledger = RedisLedger(client, "a/worker-0")
        admission = CallAdmission(max_calls=10, max_calls_per_client=10, ledger=ledger)
        database = await Database.open(f"sqlite:///{tmp_path / 'gateway.db'}")
        clock = FakeClock(1_800_000_000.0)
        service = RequestACall(
            config,
            None,  # type: ignore[arg-type]  # no SIP: nothing is placed
            None,  # type: ignore[arg-type]  # no requests
            admission,
            database.callbacks,
            owner="a/worker-0",
            clock=clock,
        )
        try:
            callback = await database.callbacks.add(
                site="shop", number="+442079460123", details={}, due_at=clock(), now=clock()
            )
            assert await service.scheduler.run_once() == 0
            stored = await database.callbacks.get(callback.id)
            assert stored.status is CallbackStatus.SCHEDULED
            assert stored.history[-1][1:] == ("waiting", "the shared storage cannot be reached")
        finally:
            await database.close()
            await client.aclose()
