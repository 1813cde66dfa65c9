"""Which workers are alive, and what becomes of a dead one's calls, on a real Redis and a
real database: each dead worker is claimed once, a new life of a name waits while its
former one is being ended, a worker taken for dead learns it, and the reaper turns what it
left into records, interrupted callbacks (the site told) and released limits."""

from __future__ import annotations

import asyncio

import pytest

from gateway.access.admission import CallAdmission
from gateway.access.redis_ledger import RedisLedger
from gateway.config import parse_config
from gateway.process.failover import Heartbeat, Lease, Reaper, Watcher
from gateway.storage import Database, LiveCall, RedisLiveCalls, RegistrationStatus
from gateway.storage.presence import Presence
from gateway.storage.redis_server import RedisUrl, connect
from tests.support.database import claim_due

NOW = 1_800_000_000.0
CONFIG = """
[[sites]]
id = "shop"
destination = "sip:desk@pbx.example.com"
callback = { dial = "sip:{number}@trunk.example.com", countries = ["GB"] }
[[sites.webhooks]]
url = "https://hooks.shop.example/gateway"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"""


@pytest.fixture
async def redis(redis_url):
    client = connect(RedisUrl.parse(redis_url))
    yield client
    await client.aclose()


@pytest.fixture
async def database(tmp_path):
    db = await Database.open(f"sqlite:///{tmp_path / 'gateway.db'}")
    yield db
    await db.close()


async def test_each_silent_worker_is_claimed_by_one_watcher_only(redis) -> None:
    presence = Presence(redis)
    for worker in ("a/worker-0", "a/worker-1", "b/worker-0"):
        assert await presence.join(worker)
    # Three watchers look at once; 0 s of silence: every listed worker counts as silent.
    found = await asyncio.gather(*(presence.claim_lost(0, f"w{i}") for i in range(3)))
    claimed = [worker for batch in found for worker in batch]
    assert sorted(claimed) == ["a/worker-0", "a/worker-1", "b/worker-0"]
    assert await presence.alive() == {}
    assert await presence.reaping("a/worker-1") is not None


async def test_a_new_life_waits_while_its_former_life_is_ended(redis) -> None:
    presence = Presence(redis)
    assert await presence.join("a/worker-0")
    await presence.beat("a/worker-0", [{"kind": "dialog", "call_id": "c1"}])
    assert await presence.claim("a/worker-0", "the supervisor of a")
    assert not await presence.claim("a/worker-0", "a watcher of b")  # one claimer
    assert not await presence.join("a/worker-0")  # its new life must wait
    assert await presence.dialogs("a/worker-0") == [{"kind": "dialog", "call_id": "c1"}]
    await presence.done("a/worker-0")
    assert await presence.dialogs("a/worker-0") == []
    assert await presence.join("a/worker-0")
    assert not await presence.claim_absent("a/worker-0", "a watcher")  # alive again


async def test_a_worker_taken_for_dead_while_alive_learns_it_from_its_next_beat(redis) -> None:
    presence = Presence(redis)
    assert await presence.join("a/worker-0")
    assert not (await presence.beat("a/worker-0", [])).claimed
    assert await presence.claim_lost(0, "a watcher of b") == ["a/worker-0"]
    await presence.done("a/worker-0")
    beat = await presence.beat("a/worker-0", None)
    assert beat.claimed and beat.absent
    assert not (await presence.beat("a/worker-0", None)).claimed  # told once
    # Redis that lost its data (restarted) is no claim: the worker just lists itself again.
    await redis.flushall()
    beat = await presence.beat("a/worker-0", None)
    assert beat.absent and not beat.claimed


async def test_a_heartbeat_publishes_dialogs_when_they_change_and_leaves_cleanly(redis) -> None:
    presence = Presence(redis)
    dialogs: list[dict] = []
    claimed: list[bool] = []
    heartbeat = Heartbeat(
        presence, "a/worker-0", lambda: list(dialogs), on_claimed=lambda: claimed.append(True)
    )
    await heartbeat.join()
    assert "a/worker-0" in await presence.alive()
    dialogs.append({"kind": "dialog", "call_id": "c1"})
    await heartbeat.beat()
    assert await presence.dialogs("a/worker-0") == dialogs
    await presence.claim_lost(0, "b/worker-0")
    await heartbeat.beat()
    assert claimed == [True]
    await heartbeat.stop()
    assert "a/worker-0" not in await presence.alive()
    assert await presence.dialogs("a/worker-0") == []


async def test_the_reaper_ends_what_a_dead_worker_left(redis, database) -> None:
    """Its call and its callback in progress become a record and an interrupted callback,
    the site is told of both, and their places in the limits are freed."""
    config = parse_config(CONFIG)
    (site,) = config.sites
    live = RedisLiveCalls(redis)
    ledger = RedisLedger(redis, "a/worker-0")
    gate = CallAdmission(max_calls=10, max_calls_per_client=10, ledger=ledger)
    await gate.admit(site, "192.0.2.1", NOW)
    await live.started(
        LiveCall(
            "call1", "call", "a/worker-0", "shop", "answered", NOW, NOW + 5, answered_at=NOW + 2
        )
    )
    callback = await database.callbacks.add(
        site="shop", number="+442079460123", details={}, due_at=NOW, now=NOW
    )
    await gate.admit_callback(site, callback.id, NOW)  # its slot, in the shared ledger
    for worker in ("a/worker-0", "b/worker-0"):  # each worker's registration with the trunk
        await database.registrations.record(
            RegistrationStatus(worker, "shop", "registered", "sip:pbx.example", NOW, NOW + 120)
        )
    await claim_due(database.callbacks, NOW, "a/worker-0")
    await live.started(
        LiveCall(callback.id, "callback", "a/worker-0", "shop", "calling_operator", NOW, NOW)
    )
    assert await ledger.live_calls(NOW + 1, site="shop") == 2
    # Another node's worker of the same number is not touched.
    await live.started(LiveCall("call2", "call", "b/worker-0", "shop", "ringing", NOW, NOW))
    presence = Presence(redis)
    for worker in ("a/worker-0", "b/worker-0"):
        await presence.join(worker)
    await presence.beat("b/worker-0", None)
    reaper = Reaper(
        config,
        database,
        live,
        RedisLedger(redis, "b/worker-0"),
        by="b/worker-0",
        clock=lambda: NOW + 60,
    )
    watcher = Watcher(presence, reaper, claimer="b/worker-0", sip=None, dead_after=30)
    await redis.zadd("gateway:alive", {"a/worker-0": 0})  # its last beat, long ago
    await watcher.check()
    record = await database.records.get("call1")
    assert (record.outcome, record.end_cause, record.worker) == ("answered", "lost", "a/worker-0")
    assert record.talk_seconds == 58 and record.ended_at == NOW + 60
    assert record.end_detail.startswith("a/worker-0 stopped beating for 30 s")
    assert (await database.records.get(callback.id)).number == "+442079460123"
    assert (await database.callbacks.get(callback.id)).status == "interrupted"
    assert [c.id for c in await live.all()] == ["call2"]
    assert [r.worker for r in await database.registrations.all()] == ["b/worker-0"]
    assert await ledger.live_calls(NOW + 61, site="shop") == 0
    told = sorted(event.type for event in await database.outbox.find())
    assert told == ["call.ended", "callback.ended"]
    # Claimed once: the next look finds nothing more to do.
    await presence.beat("b/worker-0", None)
    await watcher.check()
    assert len(await database.outbox.find()) == 2


async def test_leftovers_of_a_worker_listed_nowhere_are_swept(redis, database) -> None:
    """A node that died while Redis was down, or a name of an earlier release: its entries
    stay without a heartbeat; the sweep ends them."""
    config = parse_config(CONFIG)
    live = RedisLiveCalls(redis)
    await live.started(LiveCall("old", "call", "worker-0", "shop", "ringing", NOW, NOW))
    presence = Presence(redis)
    reaper = Reaper(
        config, database, live, RedisLedger(redis, "b/worker-0"), by="b/worker-0", clock=lambda: NOW
    )
    watcher = Watcher(presence, reaper, claimer="b/worker-0", sip=None)
    await watcher.check()
    assert (await database.records.get("old")).outcome == "failed"
    assert await live.all() == []


async def test_one_worker_of_the_service_holds_a_chores_lease(redis) -> None:
    presence = Presence(redis)
    changes: dict[str, list[bool]] = {"a/worker-0": [], "b/worker-0": []}
    leases = [
        Lease(presence, "health-reports", holder, changes[holder].append)
        for holder in ("a/worker-0", "b/worker-0")
    ]
    for lease in leases:
        await lease.renew()
    assert changes == {"a/worker-0": [True], "b/worker-0": []}
    await leases[0].renew()  # its holder keeps it
    await redis.delete("gateway:lease:health-reports")  # its holder stopped long ago
    await leases[1].renew()
    await leases[0].renew()
    assert changes == {"a/worker-0": [True, False], "b/worker-0": [True]}
