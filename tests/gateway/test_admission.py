"""Call admission on a fake clock: concurrency, per-visitor windows, the spend guard; each
test on both ledgers (the machine's SQLite file and Redis)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.access.admission import CallAdmission, LimitRefused, client_key
from gateway.access.ledger import Ledger
from gateway.config import SiteConfig, parse_config

MINUTE = 60.0
HOUR = 3600.0
DAY = 24 * HOUR
VISITOR = "192.0.2.10"


def sites(**overrides: object) -> dict[str, SiteConfig]:
    """Two sites: `shop` with `overrides`, `demo` with the [limits] defaults below."""
    own = "".join(f"{key} = {value!r}\n" for key, value in overrides.items())
    config = parse_config(
        f"""
[limits]
max_calls = 6
max_calls_per_client = 3
max_site_calls = 4
calls_per_client_15min = 3
calls_per_client_hour = 4
calls_per_client_day = 5
max_call_duration = 600
daily_call_minutes = 10

[[sites]]
id = "shop"
destination = "sip:desk@pbx.example.com"
{own}
[[sites]]
id = "demo"
destination = "sip:operator@127.0.0.1:5080"
"""
    )
    return {site.id: site for site in config.sites}


@pytest.fixture
def gate(ledger: Ledger) -> CallAdmission:
    return CallAdmission(max_calls=6, max_calls_per_client=3, ledger=ledger)


async def refused(gate: CallAdmission, site: SiteConfig, address: str, now: float) -> LimitRefused:
    with pytest.raises(LimitRefused) as caught:
        await gate.admit(site, address, now)
    return caught.value


async def test_the_n_plus_first_call_in_15_minutes_is_refused_with_its_reason(
    gate: CallAdmission,
) -> None:
    shop = sites()["shop"]
    for minute in range(3):
        gate.ended(await gate.admit(shop, VISITOR, minute * MINUTE), minute * MINUTE + 1)
    refusal = await refused(gate, shop, VISITOR, 5 * MINUTE)
    assert refusal.code == "rate_limited"
    assert refusal.message == (
        "too many calls from this address in the last 15 minutes; try again in 10 minutes"
    )
    assert refusal.detail == (
        "192.0.2.10 started 3 calls of site shop in the last 15 minutes "
        "(calls_per_client_15min = 3)"
    )
    assert not refusal.warning
    # The page is told when one more call fits: when the first one leaves the window.
    assert refusal.retry_after == 10 * MINUTE
    # Another visitor, or the same visitor on another site, is not affected.
    await gate.admit(shop, "192.0.2.11", 5 * MINUTE)
    await gate.admit(sites()["demo"], VISITOR, 5 * MINUTE)
    # Once the first call is 15 minutes old, the visitor may call again.
    await gate.admit(shop, VISITOR, 15 * MINUTE)


async def test_the_hour_and_the_day_have_their_own_limits(gate: CallAdmission) -> None:
    shop = sites()["shop"]
    now = 0.0
    for _ in range(4):  # 4 per hour: spread so that 15 minutes never hold more than 3
        gate.ended(await gate.admit(shop, VISITOR, now), now)
        now += 14 * MINUTE
    refusal = await refused(gate, shop, VISITOR, now)
    assert refusal.code == "rate_limited"
    assert "in the last hour; try again in 4 minutes" in refusal.message
    assert "(calls_per_client_hour = 4)" in refusal.detail
    now = HOUR  # the first call has left the hour
    await gate.admit(shop, VISITOR, now)
    refusal = await refused(gate, shop, VISITOR, 2 * HOUR)
    assert "in the last 24 hours; try again in 22 hours" in refusal.message
    assert "(calls_per_client_day = 5)" in refusal.detail
    await gate.admit(shop, VISITOR, DAY)


async def test_a_site_overrides_the_defaults(gate: CallAdmission) -> None:
    shop = sites(calls_per_client_15min=1, max_site_calls=1)["shop"]
    assert (shop.calls_per_client_15min, shop.calls_per_client_hour) == (1, 4)
    call = await gate.admit(shop, VISITOR, 0)
    assert (await refused(gate, shop, "192.0.2.99", 1)).code == "site_busy"
    gate.ended(call, 2)
    assert (await refused(gate, shop, VISITOR, 3)).code == "rate_limited"
    await gate.admit(shop, "192.0.2.99", 3)


async def test_concurrent_calls_per_site_per_visitor_and_overall(gate: CallAdmission) -> None:
    all_sites = sites()
    shop, demo = all_sites["shop"], all_sites["demo"]
    calls = [await gate.admit(shop, f"192.0.2.{n}", 0) for n in range(4)]
    refusal = await refused(gate, shop, "192.0.2.50", 0)
    assert (refusal.code, refusal.message) == (
        "site_busy",
        "all lines are busy; try again in a few minutes",
    )
    assert refusal.detail == "site shop carries 4 calls (max_site_calls)"
    await gate.admit(demo, "198.51.100.1", 0)
    await gate.admit(demo, "198.51.100.1", 0)
    refusal = await refused(gate, demo, "198.51.100.2", 0)
    assert refusal.code == "busy"
    assert refusal.detail == "the gateway carries 6 calls (limits.max_calls)"
    for call in calls:
        gate.ended(call, 1)
    await gate.admit(demo, "198.51.100.1", 1)
    refusal = await refused(gate, demo, "198.51.100.1", 1)
    assert (refusal.code, refusal.message) == ("too_many_calls", "too many calls from this address")
    assert gate.live_calls == 3


async def test_ending_a_call_twice_releases_it_once(gate: CallAdmission) -> None:
    shop = sites()["shop"]
    call = await gate.admit(shop, VISITOR, 0)
    gate.ended(call, 1)
    gate.ended(call, 2)
    assert gate.live_calls == 0
    for n in range(4):
        await gate.admit(shop, f"192.0.2.{n}", 3)  # site count not driven below zero
    assert (await refused(gate, shop, "192.0.2.77", 3)).code == "site_busy"


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("192.0.2.1", "192.0.2.1"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:192.0.2.1", "192.0.2.1"),
        ("unknown", "unknown"),
    ],
)
def test_visitors_are_addresses_and_ipv6_counts_per_64(address: str, key: str) -> None:
    assert client_key(address) == key


async def test_an_ipv6_visitor_cannot_escape_by_changing_address(gate: CallAdmission) -> None:
    shop = sites()["shop"]
    for n in range(3):
        gate.ended(await gate.admit(shop, f"2001:db8:1:2::{n + 1:x}", n), n)
    assert (await refused(gate, shop, "2001:db8:1:2:dead:beef::1", 10)).code == "rate_limited"
    await gate.admit(shop, "2001:db8:1:3::1", 10)


# --- the spend guard -------------------------------------------------------------------------


async def talk(gate: CallAdmission, site: SiteConfig, start: float, minutes: float, n: int) -> None:
    call = await gate.admit(site, f"203.0.113.{n}", start)
    gate.answered(call, start + 5)  # ringing is free
    gate.ended(call, start + 5 + minutes * MINUTE)


async def test_spend_guard_refuses_new_calls_past_the_daily_budget(gate: CallAdmission) -> None:
    shop = sites(daily_call_minutes=10)["shop"]
    await talk(gate, shop, 0, 4, 1)
    await talk(gate, shop, HOUR, 5.5, 2)
    assert await gate.used_minutes("shop", 2 * HOUR) == pytest.approx(9.5)
    await talk(gate, shop, 2 * HOUR, 0.5, 3)  # exactly the budget now
    refusal = await refused(gate, shop, "203.0.113.4", 3 * HOUR)
    assert refusal.code == "budget_exhausted"
    assert refusal.message == "calls to this site are paused for today; try again later"
    assert refusal.detail.startswith(
        "site shop: spend guard: 10.0 of 10 call minutes used in the last 24 hours "
        "(daily_call_minutes)"
    )
    # The operator is warned once; further refusals are ordinary.
    assert refusal.warning
    assert not (await refused(gate, shop, "203.0.113.5", 3 * HOUR)).warning
    # Another site has its own budget.
    await gate.admit(sites()["demo"], "203.0.113.4", 3 * HOUR)
    # Once the first call's 4 minutes are 24 hours old, calls go through again.
    assert (await refused(gate, shop, "203.0.113.6", DAY)).code == "budget_exhausted"
    await gate.admit(shop, "203.0.113.6", DAY + 4 * MINUTE + 5.001)


async def test_calls_in_progress_count_against_the_budget(gate: CallAdmission) -> None:
    shop = sites(daily_call_minutes=10)["shop"]
    long_call = await gate.admit(shop, "203.0.113.1", 0)
    gate.answered(long_call, 0)
    await gate.admit(shop, "203.0.113.2", 9 * MINUTE)  # 9 minutes used so far: allowed
    assert (await refused(gate, shop, "203.0.113.3", 10 * MINUTE)).code == "budget_exhausted"
    assert gate.ended(long_call, 12 * MINUTE) == 12 * MINUTE
    assert await gate.used_minutes("shop", 12 * MINUTE) == pytest.approx(12)


async def test_unanswered_calls_cost_nothing_and_a_hold_does_not_restart_the_meter(
    gate: CallAdmission,
) -> None:
    shop = sites(daily_call_minutes=1)["shop"]
    for n in range(3):
        gate.ended(await gate.admit(shop, f"203.0.113.{n}", n * MINUTE), n * MINUTE + 50)
    assert await gate.used_minutes("shop", 3 * MINUTE) == 0
    call = await gate.admit(shop, "203.0.113.9", 3 * MINUTE)
    gate.answered(call, 3 * MINUTE)
    gate.answered(call, 3 * MINUTE + 40)  # answered again after a hold
    assert gate.ended(call, 3 * MINUTE + 50) == 50


# --- the windows, whatever the arrival times ----------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.floats(min_value=0, max_value=120, allow_nan=False), min_size=1, max_size=40),
    st.integers(min_value=1, max_value=4),
)
def test_never_more_calls_than_a_window_allows(gaps: list[float], limit: int) -> None:
    """The calls admitted never exceed the 15-minute limit in any 15 minutes, and one
    refused as rate_limited was refused because the window really was full, with a
    retry_after that lets the next one in."""
    shop = sites(calls_per_client_15min=limit, calls_per_client_hour=100, calls_per_client_day=100)[
        "shop"
    ]
    asyncio.run(_window_run(shop, gaps, limit))


async def _window_run(shop: SiteConfig, gaps: list[float], limit: int) -> None:
    gate = CallAdmission(max_calls=6, max_calls_per_client=3)
    window = 15 * MINUTE
    now, allowed = 0.0, []
    for gap in gaps:
        now += gap * 10
        try:
            call = await gate.admit(shop, VISITOR, now)
        except LimitRefused as refusal:
            assert refusal.code == "rate_limited"
            assert sum(1 for t in allowed if t > now - window) == limit
            amount, unit = refusal.message.rsplit("try again in ", 1)[1].split()
            wait = int(amount) * {"seconds": 1, "minutes": 60}[unit]
            oldest_in_window = min(t for t in allowed if t > now - window)
            # Rounded up to the unit: the oldest start in the window has aged out by then.
            assert oldest_in_window + window - now <= wait < oldest_in_window + window - now + 60
            continue
        gate.ended(call, now)
        allowed.append(now)
    for t in allowed:
        assert sum(1 for u in allowed if t - window < u <= t) <= limit


# --- callbacks: the same limits, in the same ledger -----------------------------------------


async def test_a_callback_request_is_refused_by_the_spend_guard_and_counts_in_the_windows(
    gate: CallAdmission,
) -> None:
    shop = sites(daily_call_minutes=10)["shop"]
    await gate.count_request(shop, VISITOR, 0)
    await gate.count_request(shop, VISITOR, 1)
    await gate.admit(shop, VISITOR, 2)  # requests and calls share calls_per_client_15min = 3
    with pytest.raises(LimitRefused) as caught:
        await gate.count_request(shop, VISITOR, 3)
    assert caught.value.code == "rate_limited"
    await talk(gate, shop, 10, 10, 1)  # the day's minutes are spent
    with pytest.raises(LimitRefused) as caught:
        await gate.count_request(shop, "198.51.100.7", 700)
    assert caught.value.code == "budget_exhausted"


async def test_writing_to_a_site_counts_in_the_windows_but_not_against_its_budget(
    gate: CallAdmission,
) -> None:
    """A chat started or a written message left costs no call minutes: a spent budget
    does not refuse it (it is the way to reach the site then), the windows do."""
    shop = sites(daily_call_minutes=10)["shop"]
    await talk(gate, shop, 0, 10, 1)  # the day's minutes are spent
    assert (await refused(gate, shop, VISITOR, 700)).code == "budget_exhausted"
    for second in range(3):
        await gate.count_contact(shop, VISITOR, 700 + second)
    with pytest.raises(LimitRefused) as caught:
        await gate.count_contact(shop, VISITOR, 710)  # calls_per_client_15min = 3
    assert caught.value.code == "rate_limited"
    assert caught.value.retry_after == 15 * MINUTE - 10


async def test_a_placed_callback_takes_a_slot_like_a_call_and_its_talk_is_billed(
    gate: CallAdmission,
) -> None:
    all_sites = sites(daily_call_minutes=10)
    shop, demo = all_sites["shop"], all_sites["demo"]
    calls = [await gate.admit(shop, f"192.0.2.{n}", 0) for n in range(3)]
    callback = await gate.admit_callback(shop, "cb1", 0)  # the site's fourth line
    with pytest.raises(LimitRefused) as caught:
        await gate.admit_callback(shop, "cb2", 0)
    assert caught.value.code == "site_busy"
    assert (await refused(gate, shop, "192.0.2.99", 0)).code == "site_busy"  # for calls too
    await gate.admit_callback(demo, "cb3", 0)
    await gate.admit_callback(demo, "cb4", 0)  # no per-visitor limit: nobody's address
    with pytest.raises(LimitRefused) as caught:
        await gate.admit_callback(demo, "cb5", 0)
    assert caught.value.code == "busy"  # max_calls = 6: calls and callbacks together
    for call in calls:
        gate.ended(call, 1)
    gate.answered(callback, 10)
    assert gate.ended(callback, 10 + 10 * MINUTE) == 10 * MINUTE
    with pytest.raises(LimitRefused) as caught:
        await gate.admit_callback(shop, "cb6", 11 * MINUTE)
    assert caught.value.code == "budget_exhausted"
    assert (await refused(gate, shop, "192.0.2.50", 11 * MINUTE)).code == "budget_exhausted"


# ----------------------------------------------------------------------------- trying it


async def test_someone_trying_the_demo_site_may_call_it_again_and_again() -> None:
    from gateway.config import load_config

    (demo,) = load_config(None, env={}).sites
    gate = CallAdmission(max_calls=50, max_calls_per_client=2)
    now = 0.0
    for _ in range(60):  # a call a minute for an hour, all from this machine
        gate.ended(await gate.admit(demo, "127.0.0.1", now), now + 30)
        now += MINUTE


def test_a_trial_start_says_how_to_raise_tight_limits() -> None:
    from gateway.config import load_config
    from gateway.process.gateway import limits_hint

    assert limits_hint(load_config(None, env={})) is None  # the demo site's are generous
    own = '[[sites]]\nid = "shop"\ndestination = "sip:desk@pbx.example.com"\n'
    hint = limits_hint(parse_config(own))
    assert hint is not None
    assert "'shop' lets one visitor start 5 calls in 15 minutes" in hint
    assert "GATEWAY_LIMITS_CALLS_PER_CLIENT_15MIN=100" in hint
    # Open to the world: its limits are the point, nothing to say.
    public = '[http]\nlisten = "0.0.0.0:8080"\npublic_url = "https://call.example.com"\n'
    assert limits_hint(parse_config(public + own)) is None
