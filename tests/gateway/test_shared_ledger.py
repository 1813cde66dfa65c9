"""The limits of workers sharing one ledger file hold for the machine, not per worker.

Each "worker" here is a CallAdmission or CallTokens on its own SQLite connection to the
same file, as the worker processes have; the race test uses real processes.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from gateway.access.admission import CallAdmission, LimitRefused
from gateway.access.challenge import ProofOfWork, solve
from gateway.access.ledger import SharedLedger
from gateway.access.tokens import CallTokens, TokenError
from gateway.config import SiteConfig, parse_config

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


def workers(path: Path, n: int = 2) -> list[CallAdmission]:
    return [
        CallAdmission(
            max_calls=50,
            max_calls_per_client=2,
            ledger=SharedLedger.open(path / "ledger.sqlite3", owner=f"worker-{i}"),
        )
        for i in range(n)
    ]


def refusal(gate: CallAdmission, site: SiteConfig, address: str, now: float) -> str:
    with pytest.raises(LimitRefused) as caught:
        gate.admit(site, address, now)
    return caught.value.code


def test_a_visitor_gets_the_same_calls_whichever_worker_takes_them(tmp_path: Path) -> None:
    one, two = workers(tmp_path)
    site = shop()
    for i, gate in enumerate((one, two, one)):
        gate.ended(gate.admit(site, "192.0.2.7", NOW + i), NOW + i)
    # The fourth call in 15 minutes is refused by the worker that took none of the last two.
    assert refusal(two, site, "192.0.2.7", NOW + 10) == "rate_limited"
    # Another visitor is not affected.
    two.admit(site, "192.0.2.8", NOW + 10)


def test_concurrent_calls_of_a_visitor_and_a_site_count_over_all_workers(tmp_path: Path) -> None:
    one, two = workers(tmp_path)
    site = shop(calls_per_client_15min=10)
    first = one.admit(site, "192.0.2.7", NOW)
    two.admit(site, "192.0.2.7", NOW)
    assert refusal(one, site, "192.0.2.7", NOW) == "too_many_calls"
    one.admit(site, "192.0.2.9", NOW)
    assert refusal(two, site, "192.0.2.10", NOW) == "site_busy"
    one.ended(first, NOW + 1)
    two.admit(site, "192.0.2.10", NOW + 1)


def test_the_spend_guard_adds_the_talk_time_of_every_worker(tmp_path: Path) -> None:
    one, two = workers(tmp_path)
    site = shop(calls_per_client_15min=10)
    a = one.admit(site, "192.0.2.1", NOW)
    b = two.admit(site, "192.0.2.2", NOW)
    one.answered(a, NOW)
    two.answered(b, NOW)
    assert one.ended(a, NOW + 2 * MINUTE) == pytest.approx(2 * MINUTE)
    # 2 minutes ended on worker one + 3 minutes still talking on worker two = the budget.
    assert two.used_minutes("shop", NOW + 3 * MINUTE) == pytest.approx(5)
    assert refusal(one, site, "192.0.2.3", NOW + 3 * MINUTE) == "budget_exhausted"


def test_calls_a_dead_worker_left_stop_counting_once_released(tmp_path: Path) -> None:
    one, two = workers(tmp_path)
    site = shop(calls_per_client_15min=10)
    for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        one.admit(site, address, NOW)
    assert refusal(two, site, "192.0.2.4", NOW) == "site_busy"
    supervisor = SharedLedger.open(tmp_path / "ledger.sqlite3", owner="supervisor")
    assert supervisor.release("worker-0", NOW + 5) == 3
    two.admit(site, "192.0.2.4", NOW + 5)


def test_a_call_token_is_used_once_on_the_whole_machine(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    one, two = (
        CallTokens(SECRET, 60, used=SharedLedger.open(path, owner=f"worker-{i}")) for i in (0, 1)
    )
    token = one.issue("shop", "https://shop.example", NOW)
    two.redeem(token, site_id="shop", origin="https://shop.example", now=NOW + 1)
    with pytest.raises(TokenError, match="already used"):
        one.redeem(token, site_id="shop", origin="https://shop.example", now=NOW + 2)


def test_a_solved_challenge_is_used_once_on_the_whole_machine(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    one, two = (
        ProofOfWork(SECRET, 8, used=SharedLedger.open(path, owner=f"worker-{i}")) for i in (0, 1)
    )
    challenge = one.challenge("shop", NOW)["challenge"]
    proof = {"challenge": challenge, "solution": solve(challenge, 8)}
    one.check("shop", proof, NOW + 1)
    with pytest.raises(Exception, match="already used"):
        two.check("shop", proof, NOW + 2)


def _admit_in_a_process(path: str, index: int, start, results) -> None:
    ledger = SharedLedger.open(Path(path), owner=f"worker-{index}")
    gate = CallAdmission(max_calls=50, max_calls_per_client=50, ledger=ledger)
    site = shop(
        calls_per_client_15min=10**6, calls_per_client_hour=10**6, calls_per_client_day=10**6
    )
    start.wait()
    admitted, most, held = 0, 0, []
    for n in range(400):
        try:
            held.append(gate.admit(site, f"198.51.100.{index}", NOW + n))
            admitted += 1
            most = max(most, ledger.live_calls(site="shop"))
        except LimitRefused as exc:
            assert exc.code == "site_busy"
        if len(held) == 2 or (held and n % 3 == 0):  # each holds up to two calls
            gate.ended(held.pop(0), NOW + n)
    results.put((admitted, most))


def test_worker_processes_racing_never_admit_more_than_the_site_allows(tmp_path: Path) -> None:
    """Four processes start and end 400 calls each at the same time, holding up to two
    each; max_site_calls is 3 and never exceeded, though together they want up to 8."""
    path = str(tmp_path / "ledger.sqlite3")
    SharedLedger.open(Path(path), owner="setup").close()  # schema before the race
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    processes = [
        context.Process(target=_admit_in_a_process, args=(path, i, start, results))
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
    assert sum(admitted for admitted, _ in outcomes) < 4 * 400  # some were refused
