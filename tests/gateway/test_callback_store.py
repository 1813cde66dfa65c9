"""The callback store: due callbacks claimed once, survivors of a crash never redialled."""

from __future__ import annotations

import asyncio

import pytest

from gateway.callbacks.lifecycle import CallbackStatus
from gateway.callbacks.store import SqliteCallbackStore, interrupt_orphans


async def test_lifecycle_and_history(tmp_path):
    store = await SqliteCallbackStore.open(tmp_path / "cb.db", now=1000)
    cb = await store.add(
        site="shop", number="+441632960123", details={"name": "Ann"}, due_at=1100, now=1000
    )
    assert cb.status == "scheduled" and cb.details == {"name": "Ann"}
    assert await store.claim_due(1099, "w1") == []
    (claimed,) = await store.claim_due(1100, "w1")
    assert claimed.id == cb.id and claimed.status == "dialing" and claimed.attempts == 1
    assert await store.claim_due(1200, "w2") == []  # never claimed twice
    await store.retry_at(cb.id, 1300, "visitor did not answer", now=1150)
    (again,) = await store.claim_due(1300, "w1")
    assert again.attempts == 2
    await store.finish(cb.id, "done", "talked 42 s", now=1400)
    final = await store.get(cb.id)
    assert final.status == "done"
    assert [e for _, e, _ in final.history] == [
        "requested",
        "dialing",
        "scheduled",
        "dialing",
        "done",
    ]
    assert await store.count_for_number("+441632960123", since=0) == 1
    await store.close()


async def test_callbacks_left_dialing_by_a_dead_process_are_not_redialled(tmp_path):
    path = tmp_path / "cb.db"
    store = await SqliteCallbackStore.open(path, now=0)
    cb = await store.add(site="s", number="+15005550006", details={}, due_at=10, now=0)
    await store.claim_due(10, "w1")
    await store.close()  # the process "dies" mid-call
    other_worker = await SqliteCallbackStore.open(path, now=15, owner="w2")
    assert (await other_worker.get(cb.id)).status == "dialing"  # not its claim
    await other_worker.close()
    reopened = await SqliteCallbackStore.open(path, now=20, owner="w1")
    assert (await reopened.get(cb.id)).status == "interrupted"
    assert await reopened.claim_due(100, "w1") == []
    await reopened.close()


async def test_concurrent_claims_share_nothing(tmp_path):
    path = tmp_path / "cb.db"
    store = await SqliteCallbackStore.open(path, now=0)
    for i in range(20):
        await store.add(site="s", number=f"+1500555{i:04d}", details={}, due_at=5, now=0)
    other = await SqliteCallbackStore.open(path, now=0)
    first, second = await asyncio.gather(store.claim_due(5, "a", 20), other.claim_due(5, "b", 20))
    ids = [c.id for c in first] + [c.id for c in second]
    assert len(ids) == 20 and len(set(ids)) == 20
    await store.close()
    await other.close()


async def test_claims_of_workers_that_no_longer_exist_are_interrupted_at_start(tmp_path):
    store = await SqliteCallbackStore.open(tmp_path / "cb.db", now=0)
    for _ in range(3):
        await store.add(site="s", number="+441632960123", details={}, due_at=0, now=0)
    ids = {}
    for owner in ("worker-0", "worker-2", "gateway"):
        (claimed,) = await store.claim_due(1, owner, limit=1)
        ids[owner] = claimed.id
    await store.close()
    # The supervisor starts again with two workers: worker-2 will never come back.
    assert interrupt_orphans(tmp_path / "cb.db", workers=2, now=5) == 1
    store = await SqliteCallbackStore.open(tmp_path / "cb.db", now=6, owner="somebody")
    statuses = {owner: (await store.get(i)).status for owner, i in ids.items()}
    assert statuses == {"worker-0": "dialing", "worker-2": "interrupted", "gateway": "dialing"}
    await store.close()
    assert interrupt_orphans(tmp_path / "missing.db", workers=2, now=5) == 0


async def test_the_store_makes_only_the_moves_of_the_lifecycle(tmp_path):
    store = await SqliteCallbackStore.open(tmp_path / "cb.db", now=0)
    cb = await store.add(site="s", number="+441632960123", details={}, due_at=0, now=0)
    # Not placed yet: it cannot end, nor be tried again.
    assert await store.finish(cb.id, CallbackStatus.DONE, "", now=1) is False
    assert await store.retry_at(cb.id, 50, "", now=1) is False
    assert len(await store.claim_due(1, "w1")) == 1
    assert await store.cancel(cb.id, now=2) is CallbackStatus.DIALING  # too late
    assert await store.finish(cb.id, CallbackStatus.FAILED, "busy", now=3) is True
    # Final: nothing moves it any more.
    assert await store.finish(cb.id, CallbackStatus.DONE, "", now=4) is False
    assert await store.retry_at(cb.id, 50, "", now=4) is False
    assert await store.cancel(cb.id, now=4) is CallbackStatus.FAILED
    with pytest.raises(ValueError):
        await store.finish(cb.id, CallbackStatus.SCHEDULED, "", now=4)
    final = await store.get(cb.id)
    assert [e for _, e, _ in final.history] == ["requested", "dialing", "failed"]
    assert final.public()["status"] == "failed" and final.public()["final"] is True
    await store.close()


async def test_waiting_is_recorded_once_per_wait_and_due_skips_sites(tmp_path):
    store = await SqliteCallbackStore.open(tmp_path / "cb.db", now=0)
    a = await store.add(site="a", number="+441632960123", details={}, due_at=0, now=0)
    b = await store.add(site="b", number="+441632960124", details={}, due_at=1, now=0)
    assert [c.id for c in await store.due(5)] == [a.id, b.id]
    assert [c.id for c in await store.due(5, skip_sites=frozenset({"a"}))] == [b.id]
    for now in (5, 6, 7):
        await store.note_waiting(a.id, "all lines are busy", now)
    await store.note_waiting(a.id, "the site is closed", 8)
    history = (await store.get(a.id)).history
    assert [(at, e, d) for at, e, d in history][1:] == [
        (5, "waiting", "all lines are busy"),
        (8, "waiting", "the site is closed"),
    ]
    shown = (await store.get(a.id)).public()
    assert shown["status"] == "scheduled" and shown["final"] is False
    await store.close()
