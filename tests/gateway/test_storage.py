"""The storage layer on both engines (SQLite and a real PostgreSQL 15): the callback store's
claim-once guarantees and the moves of its lifecycle, call records, calls in progress, the
outbox, admin sessions, and the schema migrations from an empty database and from the
previous version."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys

import pytest
from sqlalchemy import text

from gateway.storage import (
    CallbackStatus,
    CallRating,
    CallRecord,
    Database,
    LiveCall,
    StorageError,
    migrate,
)
from gateway.storage.engine import DatabaseUrl, create_engine
from gateway.storage.reachability import Reachability
from tests.support.database import claim_due


@pytest.fixture
async def database(database_url):
    db = await Database.open(database_url)
    yield db
    await db.close()


# --------------------------------------------------------------------- callbacks
async def test_callback_lifecycle_and_history(database):
    store = database.callbacks
    cb = await store.add(
        site="shop", number="+441632960123", details={"name": "Ann"}, due_at=1100, now=1000
    )
    assert cb.status is CallbackStatus.SCHEDULED and cb.details == {"name": "Ann"}
    assert await claim_due(store, 1099, "w1") == []
    assert await store.claim(cb.id, "w1", 1099) is None  # not due yet
    (claimed,) = await claim_due(store, 1100, "w1")
    assert claimed.id == cb.id and claimed.status == "dialing" and claimed.attempts == 1
    assert await claim_due(store, 1200, "w2") == []  # never claimed twice
    assert await store.claim(cb.id, "w2", 1200) is None
    assert await store.retry_at(cb.id, 1300, "visitor did not answer", now=1150) is True
    assert await store.claim(cb.id, "w2", 1299) is None  # tried again at its new time only
    (again,) = await claim_due(store, 1300, "w1")
    assert again.attempts == 2
    assert await store.finish(cb.id, CallbackStatus.DONE, "talked 42 s", now=1400) is True
    final = await store.get(cb.id)
    assert final.status is CallbackStatus.DONE
    assert [e for _, e, _ in final.history] == [
        "requested",
        "dialing",
        "scheduled",
        "dialing",
        "done",
    ]
    assert await store.count_for_number("+441632960123", since=0) == 1
    assert await store.count_for_number("+441632960123", since=1001) == 0


async def test_the_store_makes_only_the_moves_of_the_lifecycle(database):
    store = database.callbacks
    cb = await store.add(site="s", number="+441632960123", details={}, due_at=0, now=0)
    # Not placed yet: it cannot end, nor be tried again.
    assert await store.finish(cb.id, CallbackStatus.DONE, "", now=1) is False
    assert await store.retry_at(cb.id, 50, "", now=1) is False
    assert len(await claim_due(store, 1, "w1")) == 1
    assert await store.cancel(cb.id, now=2) is CallbackStatus.DIALING  # too late
    assert await store.place_again(cb.id, now=2) is CallbackStatus.DIALING  # not over
    assert await store.finish(cb.id, CallbackStatus.FAILED, "busy", now=3) is True
    # Final: nothing moves it any more on its own.
    assert await store.finish(cb.id, CallbackStatus.DONE, "", now=4) is False
    assert await store.retry_at(cb.id, 50, "", now=4) is False
    assert await store.cancel(cb.id, now=4) is CallbackStatus.FAILED
    assert await store.claim(cb.id, "w1", now=4) is None
    with pytest.raises(ValueError):
        await store.finish(cb.id, CallbackStatus.SCHEDULED, "", now=4)
    final = await store.get(cb.id)
    assert [e for _, e, _ in final.history] == ["requested", "dialing", "failed"]
    assert final.public()["status"] == "failed" and final.public()["final"] is True
    assert final.admin()["final"] is True


async def test_waiting_is_recorded_once_per_wait_and_due_skips_sites(database):
    store = database.callbacks
    a = await store.add(site="a", number="+441632960123", details={}, due_at=0, now=0)
    b = await store.add(site="b", number="+441632960124", details={}, due_at=1, now=0)
    await store.add(site="b", number="+441632960125", details={}, due_at=6, now=0)  # later
    assert [c.id for c in await store.due(5)] == [a.id, b.id]
    assert [c.id for c in await store.due(5, limit=1)] == [a.id]
    assert [c.id for c in await store.due(5, skip_sites=frozenset({"a"}))] == [b.id]
    assert await store.due(5, skip_sites=frozenset({"a", "b"})) == []
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
    await store.claim(a.id, "w1", 9)
    await store.note_waiting(a.id, "all lines are busy", 10)  # claimed meanwhile: no wait
    assert (await store.get(a.id)).history[-1][1] == "dialing"


async def test_callbacks_left_dialing_by_a_dead_worker_are_never_redialled(database_url):
    first = await Database.open(database_url)
    cb = await first.callbacks.add(site="s", number="+15005550006", details={}, due_at=10, now=0)
    await claim_due(first.callbacks, 10, "w1")
    await first.close()  # the worker "dies" mid-call
    other = await Database.open(database_url)
    assert await other.callbacks.dialing_claimers() == {"w1"}
    assert await other.callbacks.interrupt_left_dialing(15, "w2") == []  # not its claim
    assert (await other.callbacks.get(cb.id)).status == "dialing"
    (interrupted,) = await other.callbacks.interrupt_left_dialing(20, "w1", "w1 died")
    assert interrupted.id == cb.id
    assert interrupted.status is CallbackStatus.INTERRUPTED and interrupted.status.final
    assert interrupted.history[-1] == (20, "interrupted", "w1 died")
    assert await claim_due(other.callbacks, 100, "w1") == []
    assert await other.callbacks.dialing_claimers() == set()
    await other.close()


async def test_concurrent_claimers_on_two_connections_each_get_a_callback_once(database_url):
    one, two = await Database.open(database_url), await Database.open(database_url)
    added = [
        await one.callbacks.add(site="s", number=f"+1500555{i:04d}", details={}, due_at=5, now=0)
        for i in range(20)
    ]
    # Both read the same due list, then race for every callback in it.
    first, second = await asyncio.gather(
        claim_due(one.callbacks, 5, "a", 20), claim_due(two.callbacks, 5, "b", 20)
    )
    ids = [c.id for c in first] + [c.id for c in second]
    assert sorted(ids) == sorted(c.id for c in added)  # each one claimed, by one claimer
    # And head to head on one callback at a time.
    more = [
        await one.callbacks.add(site="s", number=f"+1500556{i:04d}", details={}, due_at=5, now=0)
        for i in range(10)
    ]
    for callback in more:
        got = await asyncio.gather(
            one.callbacks.claim(callback.id, "a", 5), two.callbacks.claim(callback.id, "b", 5)
        )
        assert len([c for c in got if c is not None]) == 1
        assert (await one.callbacks.get(callback.id)).attempts == 1
    await one.close()
    await two.close()


async def test_claims_name_their_node_and_worker_and_each_is_interrupted_alone(database):
    store = database.callbacks
    for _ in range(3):
        await store.add(site="s", number="+441632960123", details={}, due_at=0, now=0)
    ids = {}
    for owner in ("a/worker-0", "b/worker-0", "a/worker-1"):
        (claimed,) = await claim_due(store, 1, owner, limit=1)
        ids[owner] = claimed.id
    assert await store.dialing_claimers() == set(ids)
    # Node a's worker 0 died: node b's worker of the same number is not touched.
    assert [c.id for c in await store.interrupt_left_dialing(5, "a/worker-0")] == [
        ids["a/worker-0"]
    ]
    statuses = {owner: (await store.get(i)).status for owner, i in ids.items()}
    assert statuses == {
        "a/worker-0": "interrupted",
        "b/worker-0": "dialing",
        "a/worker-1": "dialing",
    }


async def test_the_site_cancels_and_places_again(database):
    store = database.callbacks
    waiting = await store.add(site="s", number="+441632960123", details={}, due_at=50, now=0)
    assert await store.cancel(waiting.id, 1, by="by the site") is CallbackStatus.CANCELLED
    assert (await store.get(waiting.id)).history[-1][1:] == ("cancelled", "by the site")
    assert await store.place_again(waiting.id, 2) == "cancelled"  # only failed/interrupted
    failed = await store.add(site="s", number="+441632960124", details={}, due_at=0, now=0)
    await claim_due(store, 1, "w")
    await store.finish(failed.id, CallbackStatus.FAILED, "visitor not reached: busy", 2)
    assert await store.cancel(failed.id, 3) == "failed"
    assert await store.place_again(failed.id, 10) is CallbackStatus.SCHEDULED
    assert (await store.get(failed.id)).history[-1][1:] == ("scheduled", "placed again by the site")
    (claimed,) = await claim_due(store, 10, "w")
    assert claimed.id == failed.id and claimed.attempts == 1
    assert await store.place_again("nope", 10) is None
    assert await store.cancel("nope", 10) is None
    found = await store.find(site="s", status="dialing")
    assert [c.id for c in found] == [failed.id]
    assert found[0].admin()["number"] == "+441632960124"


# --------------------------------------------------------------------- records
def record(record_id: str, site: str, started: float, outcome: str, **more) -> CallRecord:
    return CallRecord(
        id=record_id, kind="call", site=site, started_at=started, outcome=outcome, **more
    )


async def test_records_filtered_newest_first_deleted_and_purged(database):
    records = database.records
    quality = {"sip": {"codec": "PCMU", "mos": 4.3}}
    await records.add(record("a", "shop", 100, "answered", talk_seconds=30.5, quality=quality))
    await records.add(record("b", "shop", 200, "missed", end_cause="busy"))
    await records.add(record("c", "other", 300, "refused"))
    assert [r.id for r in await records.find()] == ["c", "b", "a"]
    assert [r.id for r in await records.find(site="shop")] == ["b", "a"]
    assert [r.id for r in await records.find(outcome="missed")] == ["b"]
    assert [r.id for r in await records.find(since=200, until=300)] == ["b"]
    assert [r.id for r in await records.find(limit=1)] == ["c"]
    got = await records.get("a")
    assert got.quality == quality and got.talk_seconds == 30.5
    assert (await records.delete("b")).end_cause == "busy"
    assert await records.get("b") is None and await records.delete("b") is None
    assert await records.purge("shop", before=150) == 1  # a: older than the retention
    assert [r.id for r in await records.find()] == ["c"]
    with pytest.raises(ValueError):
        record("d", "shop", 1, "lost")


async def exercise_live_calls(live) -> None:
    for worker, call_id in (("a/worker-0", "x"), ("b/worker-0", "y"), ("b/worker-0", "z")):
        await live.started(
            LiveCall(call_id, "call", worker, "shop", "connecting", started_at=1, updated_at=1)
        )
    await live.changed("x", "answered", 5, answered_at=5, destination="sip:op@pbx")
    calls = {c.id: c for c in await live.all()}
    assert calls["x"].state == "answered" and calls["x"].destination == "sip:op@pbx"
    assert calls["x"].answered_at == 5 and calls["y"].answered_at is None
    assert await live.workers() >= {"a/worker-0", "b/worker-0"}
    assert [c.id for c in await live.of_worker("b/worker-0")] == ["y", "z"]
    assert await live.forget_worker("b/worker-0") == 2
    assert await live.of_worker("b/worker-0") == []
    await live.ended("x")
    assert await live.all() == []


async def test_live_calls_of_every_worker(database):
    await exercise_live_calls(database.live)


async def test_live_calls_of_every_node_in_redis(redis_url):
    from gateway.storage import RedisLiveCalls
    from gateway.storage.redis_server import RedisUrl, connect

    client = connect(RedisUrl.parse(redis_url))
    try:
        await exercise_live_calls(RedisLiveCalls(client))
    finally:
        await client.aclose()


async def test_outbox_leases_retries_and_delivers_once(database):
    outbox = database.outbox
    event = await outbox.enqueue("shop", "call.missed", {"id": "call1"}, now=10)
    assert event.id.startswith("msg_")
    (claimed,) = await outbox.claim_due(10, lease=30)
    assert claimed.id == event.id and claimed.attempts == 1 and claimed.payload == {"id": "call1"}
    assert await outbox.claim_due(20, lease=30) == []  # leased
    await outbox.failed(event.id, "HTTP 500", retry_at=45)
    assert await outbox.claim_due(44, lease=30) == []
    (again,) = await outbox.claim_due(45, lease=30)
    assert again.id == event.id and again.attempts == 2 and again.last_error == "HTTP 500"
    await outbox.delivered(event.id, 46)
    assert await outbox.claim_due(1000, lease=30) == []
    assert (await outbox.find(site="shop"))[0].delivered_at == 46


async def test_admin_users_sessions_and_failed_logins(database):
    admin = database.admin
    await admin.set_users([("ann", "$argon2id$hash-a"), ("bob", "$argon2id$hash-b")])
    assert await admin.password_hash("ann") == "$argon2id$hash-a"
    token, _ = await admin.create_session("bob", now=100, lifetime=60)
    assert (await admin.session(token, 150)).user == "bob"
    assert await admin.session(token, 161) is None  # expired
    token, _ = await admin.create_session("bob", now=200, lifetime=60)
    await admin.set_users([("ann", "$argon2id$hash-a")])  # bob removed: his sessions end
    assert await admin.session(token, 201) is None
    assert await admin.password_hash("bob") is None
    for at in (1, 2, 3):
        await admin.login_failed("10.0.0.1", "ann", at)
    await admin.login_failed("10.0.0.2", "ann", 4)
    assert await admin.failed_logins("10.0.0.1", "ann", since=2) == (2, 3)


# --------------------------------------------------------------------- migrations
async def test_schema_from_empty_and_from_the_previous_version(database_url):
    # Bring a fresh database to the previous version only, with a callback in it.
    engine = create_engine(DatabaseUrl.parse(database_url))
    assert await migrate.current_version(engine) is None
    assert await migrate.upgrade(engine, "0001") == (None, "0001")
    async with engine.begin() as db:
        await db.execute(
            text(
                "INSERT INTO callbacks (id, site, number, details, due_at, status, created_at)"
                " VALUES ('old', 'shop', '+441632960123', '{}', 5, 'scheduled', 1)"
            )
        )
    await engine.dispose()
    with pytest.raises(StorageError, match="python -m gateway migrate"):
        await Database.open(database_url, upgrade=False)
    database = await Database.open(database_url)
    assert database.schema == ("0001", migrate.head())
    assert (await database.callbacks.get("old")).number == "+441632960123"
    await database.records.add(record("r", "shop", 1, "answered"))
    await database.close()
    again = await Database.open(database_url, upgrade=False)  # the newest: accepted as is
    assert again.schema == (migrate.head(), migrate.head())
    await again.close()


async def test_records_of_0002_gain_ratings(database_url):
    # 0003_call_ratings: records written before it read as unrated and can be rated.
    engine = create_engine(DatabaseUrl.parse(database_url))
    assert await migrate.upgrade(engine, "0002") == (None, "0002")
    async with engine.begin() as db:
        await db.execute(
            text(
                "INSERT INTO call_records (id, kind, site, started_at, outcome)"
                " VALUES ('old', 'call', 'shop', 5, 'answered')"
            )
        )
    await engine.dispose()
    database = await Database.open(database_url)
    assert database.schema == ("0002", migrate.head())
    old = await database.records.get("old")
    assert (old.rating, old.rating_comment, old.rated_at) == (None, "", None)
    assert await database.ratings.add(CallRating("old", "shop", 3, "ok", 60))
    assert (await database.records.get("old")).rating_comment == "ok"
    await database.close()


async def test_a_callback_database_of_the_previous_release_is_adopted(tmp_path):
    path = tmp_path / "callbacks.db"
    with sqlite3.connect(path) as old:  # the schema the SQLite-only store created
        old.executescript(
            """
            CREATE TABLE callbacks (id TEXT PRIMARY KEY, site TEXT NOT NULL, number TEXT NOT
              NULL, details TEXT NOT NULL, due_at REAL NOT NULL, status TEXT NOT NULL,
              attempts INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL, claimed_by TEXT);
            CREATE TABLE callback_events (seq INTEGER PRIMARY KEY AUTOINCREMENT,
              callback_id TEXT NOT NULL REFERENCES callbacks (id), at REAL NOT NULL,
              event TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '');
            INSERT INTO callbacks VALUES ('kept', 'shop', '+441632960123', '{"name": "Ann"}',
              5, 'scheduled', 0, 1, NULL);
            """
        )
    database = await Database.open(f"sqlite:///{path}")
    assert database.schema == ("0001", migrate.head())
    assert (await database.callbacks.get("kept")).details == {"name": "Ann"}
    await database.close()


async def test_bad_urls_and_unreachable_servers_are_clear_errors(tmp_path):
    with pytest.raises(StorageError, match="sqlite:///"):
        await Database.open("mysql://db/x")
    with pytest.raises(StorageError, match=r"postgresql://gw:\*\*\*@127.0.0.1:9/x") as refused:
        await Database.open("postgresql://gw:secret@127.0.0.1:9/x")
    assert "secret" not in str(refused.value)  # the password never reaches a log


def test_the_newest_version_is_alembics_head():
    from alembic.script import ScriptDirectory

    assert migrate.head() == ScriptDirectory(str(migrate.MIGRATIONS)).get_current_head()


def test_a_database_at_the_newest_version_opens_without_alembic(database_url):
    # A running gateway's processes never hold Alembic (~12 MB each, docs/benchmark.md):
    # its version is read with one query. A fresh interpreter, so no other test's import
    # of Alembic counts.
    program = (
        "import asyncio, sys\n"
        "from gateway.storage import Database\n"
        "async def main():\n"
        f"    await (await Database.open({database_url!r})).close()\n"
        "    print('alembic' in sys.modules)\n"
        "asyncio.run(main())\n"
    )
    first = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    again = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
    assert (first.stdout, again.stdout) == ("True\n", "False\n"), first.stderr + again.stderr


# ------------------------------------------------------------------- reachability
async def test_reachability_looks_only_when_no_other_query_answered_within_its_period(
    database_url,
):
    db = await Database.open(database_url)
    now = [100.0]
    reach = Reachability(db.engine, "test", period=2.0, clock=lambda: now[0])
    try:
        await reach.tick()  # nothing answered yet: a look
        assert (reach.looks, reach.down) == (1, None)
        await reach.tick()  # its own answer is no reason to skip the next look
        assert reach.looks == 2
        await db.callbacks.due(now[0])  # another query answers
        now[0] += 1.9
        await reach.tick()
        assert reach.looks == 2
        now[0] += 0.2  # that answer is older than the period now
        await reach.tick()
        assert (reach.looks, reach.down) == (3, None)
    finally:
        await db.close()
