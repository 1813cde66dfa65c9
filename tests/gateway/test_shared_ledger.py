"""The limits of workers sharing one ledger hold for all of them, not per worker: on the
machine's SQLite file (workers of one node) and on Redis (every node).

Each "worker" here is a CallAdmission or CallTokens on its own connection to the same store,
as worker processes and nodes have; the race test uses real processes.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from pathlib import Path

import pytest

from gateway.access.admission import CallAdmission, LimitRefused, call_bound
from gateway.access.challenge import ChallengeError, ProofOfWork, solve
from gateway.access.ledger import Ledger, SqliteLedger
from gateway.access.redis_ledger import RedisLedger
from gateway.access.tokens import CallTokens, TokenError
from gateway.config import SiteConfig, parse_config
from gateway.storage.redis_server import RedisUrl, connect
from tests.support.ledgers import LedgerFactory

NOW = 1_800_000_000.0
MINUTE = 60.0
SECRET = b"0123456789abcdef0123456789abcdef"


LIMITS = {
    "max_calls": 50,
    "max_calls_per_client": 2,
    "max_site_calls": 3,
    "calls_per_client_15min": 3,
    "calls_per_client_hour": 10,
    "calls_per_client_day": 20,
    "daily_call_minutes": 5,
}


def shop(**limits: object) -> SiteConfig:
    values = "".join(f"{key} = {value!r}\n" for key, value in {**LIMITS, **limits}.items())
    config = parse_config(
        f"""
[limits]
{values}
[[sites]]
id = "shop"
destination = "sip:desk@pbx.example.com"
"""
    )
    return config.sites[0]


async def workers(make: LedgerFactory, n: int = 2) -> list[CallAdmission]:
    return [
        CallAdmission(max_calls=50, max_calls_per_client=2, ledger=await make(f"node/worker-{i}"))
        for i in range(n)
    ]


async def refusal(gate: CallAdmission, site: SiteConfig, address: str, now: float) -> str:
    with pytest.raises(LimitRefused) as caught:
        await gate.admit(site, address, now)
    return caught.value.code


async def test_a_visitor_gets_the_same_calls_whichever_worker_takes_them(ledger_factory) -> None:
    one, two = await workers(ledger_factory)
    site = shop()
    for i, gate in enumerate((one, two, one)):
        gate.ended(await gate.admit(site, "192.0.2.7", NOW + i), NOW + i)
        await gate.flush()
    # The fourth call in 15 minutes is refused by the worker that took none of the last two.
    assert await refusal(two, site, "192.0.2.7", NOW + 10) == "rate_limited"
    # Another visitor is not affected.
    await two.admit(site, "192.0.2.8", NOW + 10)


async def test_concurrent_calls_of_a_visitor_and_a_site_count_over_all_workers(
    ledger_factory,
) -> None:
    one, two = await workers(ledger_factory)
    site = shop(calls_per_client_15min=10)
    first = await one.admit(site, "192.0.2.7", NOW)
    await two.admit(site, "192.0.2.7", NOW)
    assert await refusal(one, site, "192.0.2.7", NOW) == "too_many_calls"
    await one.admit(site, "192.0.2.9", NOW)
    assert await refusal(two, site, "192.0.2.10", NOW) == "site_busy"
    one.ended(first, NOW + 1)
    await one.flush()
    await two.admit(site, "192.0.2.10", NOW + 1)


async def test_the_spend_guard_adds_the_talk_time_of_every_worker(ledger_factory) -> None:
    one, two = await workers(ledger_factory)
    site = shop(calls_per_client_15min=10)
    a = await one.admit(site, "192.0.2.1", NOW)
    b = await two.admit(site, "192.0.2.2", NOW)
    one.answered(a, NOW)
    two.answered(b, NOW)
    assert one.ended(a, NOW + 2 * MINUTE) == pytest.approx(2 * MINUTE)
    await one.flush()
    # 2 minutes ended on worker one + 3 minutes still talking on worker two = the budget.
    assert await two.used_minutes("shop", NOW + 3 * MINUTE) == pytest.approx(5)
    assert await refusal(one, site, "192.0.2.3", NOW + 3 * MINUTE) == "budget_exhausted"


async def test_an_answer_told_after_the_end_changes_nothing(ledger_factory) -> None:
    """Answers and ends reach the ledger in the background, in any order."""
    (gate,) = await workers(ledger_factory, 1)
    ledger = gate.ledger
    site = shop(calls_per_client_15min=10)
    call = await gate.admit(site, "192.0.2.1", NOW)
    await ledger.call_ended(call.row, NOW + 60, answered_at=NOW)
    await ledger.call_answered(call.row, NOW)  # late
    assert await ledger.talk_seconds("shop", NOW - 1, NOW + 600) == pytest.approx(60)
    assert await ledger.live_calls(NOW + 61, site="shop") == 0


async def test_calls_a_dead_worker_left_stop_counting_once_released(ledger_factory) -> None:
    one, two = await workers(ledger_factory)
    site = shop(calls_per_client_15min=10)
    for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        await one.admit(site, address, NOW)
    assert await refusal(two, site, "192.0.2.4", NOW) == "site_busy"
    supervisor = await ledger_factory("node/supervisor")
    assert await supervisor.release("node/worker-0", NOW + 5) == 3
    await two.admit(site, "192.0.2.4", NOW + 5)


async def test_a_call_whose_end_was_lost_stops_counting_after_its_bound(ledger_factory) -> None:
    (gate,) = await workers(ledger_factory, 1)
    if isinstance(gate.ledger, SqliteLedger):
        pytest.skip("the machine's ledger is released by its supervisor instead")
    site = shop(calls_per_client_15min=10, max_site_calls=1)
    await gate.admit(site, "192.0.2.1", NOW)  # its end never reaches the ledger
    assert await refusal(gate, site, "192.0.2.2", NOW + 60) == "site_busy"
    bound = call_bound(site)
    assert await gate.ledger.live_calls(NOW + bound + 1, site="shop") == 0
    other = await ledger_factory("node/worker-1")
    await CallAdmission(max_calls=50, max_calls_per_client=2, ledger=other).admit(
        site, "192.0.2.2", NOW + bound + 1
    )


async def test_a_call_token_is_used_once_on_the_whole_service(ledger_factory) -> None:
    one, two = [CallTokens(SECRET, 60, used=await ledger_factory(f"w{i}")) for i in (0, 1)]
    token = one.issue("shop", "https://shop.example", NOW)
    await two.redeem(token, site_id="shop", origin="https://shop.example", now=NOW + 1)
    with pytest.raises(TokenError, match="already used"):
        await one.redeem(token, site_id="shop", origin="https://shop.example", now=NOW + 2)


async def test_a_solved_challenge_is_used_once_on_the_whole_service(ledger_factory) -> None:
    one, two = [ProofOfWork(SECRET, 8, used=await ledger_factory(f"w{i}")) for i in (0, 1)]
    challenge = one.challenge("shop", NOW)["challenge"]
    proof = {"challenge": challenge, "solution": solve(challenge, 8)}
    await one.verify("shop", proof, "192.0.2.1", NOW + 1)
    with pytest.raises(ChallengeError, match="already used"):
        await two.verify("shop", proof, "192.0.2.1", NOW + 2)


def _admit_in_a_process(store: str, index: int, start, results) -> None:
    asyncio.run(_admit_many(store, index, start, results))


async def _admit_many(store: str, index: int, start, results) -> None:
    if store.startswith("redis://"):
        client = connect(RedisUrl.parse(store))
        ledger: Ledger = RedisLedger(client, f"node/worker-{index}")
    else:
        ledger = SqliteLedger.open(Path(store), owner=f"node/worker-{index}")
    gate = CallAdmission(max_calls=50, max_calls_per_client=50, ledger=ledger)
    site = shop(
        calls_per_client_15min=10**6, calls_per_client_hour=10**6, calls_per_client_day=10**6
    )
    start.wait()
    admitted, most, held = 0, 0, []
    for n in range(200):
        try:
            held.append(await gate.admit(site, f"198.51.100.{index}", NOW + n))
            admitted += 1
            most = max(most, await ledger.live_calls(NOW + n, site="shop"))
        except LimitRefused as exc:
            assert exc.code == "site_busy"
        if len(held) == 2 or (held and n % 3 == 0):  # each holds up to two calls
            gate.ended(held.pop(0), NOW + n)
    await gate.flush()
    await ledger.close()
    results.put((admitted, most))


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_worker_processes_racing_never_admit_more_than_the_site_allows(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    """Four processes (workers, or nodes) start and end 200 calls each at the same time,
    holding up to two each; max_site_calls is 3 and never exceeded, though together they
    want up to 8."""
    if kind == "redis":
        store = request.getfixturevalue("redis_url")
    else:
        store = str(tmp_path / "ledger.sqlite3")
        asyncio.run(SqliteLedger.open(Path(store), owner="setup").close())  # schema first
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    processes = [
        context.Process(target=_admit_in_a_process, args=(store, i, start, results))
        for i in range(4)
    ]
    for process in processes:
        process.start()
    start.set()
    outcomes = [results.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert max(most for _, most in outcomes) <= 3
    assert sum(admitted for admitted, _ in outcomes) < 4 * 200  # some were refused
