"""A destination's health from its OPTIONS outcomes (pure), and the monitor that probes on a
real SIP endpoint: a port where nobody listens is down after two intervals, and the site's
calls skip it."""

from __future__ import annotations

import logging

import pytest

from gateway.config import parse_config
from gateway.health.monitor import HealthMonitor
from gateway.health.state import DestinationHealth, Health
from sip_bridge import OptionsResult


def test_two_unanswered_probes_in_a_row_make_it_down_since_the_first():
    health = DestinationHealth("shop", "sip:desk@127.0.0.1:9")
    assert health.record(None, 100.0) is None and health.state == Health.UNKNOWN
    assert health.record(None, 130.0) == Health.DOWN
    assert health.down and health.since == 100.0 and health.misses == 2
    assert health.record(None, 160.0) is None  # told once
    assert health.record(200, 190.0) == Health.UP
    assert health.state == Health.UP and health.since == 190.0 and health.misses == 0


def test_one_miss_between_answers_changes_nothing():
    health = DestinationHealth("shop", "sip:desk@pbx.example")
    assert health.record(200, 0.0) is None  # unknown -> up: nothing to tell
    assert health.state == Health.UP and health.since == 0.0
    assert health.record(None, 30.0) is None
    assert health.record(404, 60.0) is None  # any answer: someone is there
    assert health.record(None, 90.0) is None and not health.down
    assert health.view() == {
        "site": "shop",
        "destination": "sip:desk@pbx.example",
        "state": "up",
        "since": 0.0,
        "checked_at": 90.0,
        "last_status": None,
        "misses": 1,
    }


@pytest.mark.parametrize("status", [408, 480, 503, 504])
def test_answers_that_say_nobody_is_there_count_as_misses(status):
    health = DestinationHealth("shop", "sip:desk@pbx.example")
    health.record(status, 0.0)
    assert health.record(status, 30.0) == Health.DOWN


class ScriptedProber:
    """Answers OPTIONS from a script of statuses per destination (None: no answer)."""

    def __init__(self, script: dict[str, list[int | None]]) -> None:
        self.script = script
        self.sent: list[tuple[str, float, str | None]] = []

    async def options(self, target, *, timeout, proxy=None):
        self.sent.append((target, timeout, proxy))
        statuses = self.script[target]
        return OptionsResult("k", statuses.pop(0) if len(statuses) > 1 else statuses[0])


SITE = """
[[sites]]
id = "shop"
destinations = ["sip:a@127.0.0.1:9", {uri = "sip:b@127.0.0.1:9", proxy = "sip:127.0.0.1:7"}]
health_interval = 0.5
[[sites]]
id = "quiet"
destination = "sip:c@127.0.0.1:9"
health_interval = 0
"""


class Listener:
    def __init__(self) -> None:
        self.changes: list[tuple[str, str, bool]] = []

    def destination_changed(self, site, destination, *, up, since, last_status):
        self.changes.append((site, destination, up))


async def test_the_monitor_reports_each_change_once_and_only_where_it_reports(caplog):
    config = parse_config(SITE, {})
    prober = ScriptedProber(
        {"sip:a@127.0.0.1:9": [None, None, None, 200], "sip:b@127.0.0.1:9": [200]}
    )
    listener = Listener()
    monitor = HealthMonitor(config, prober, listener=listener, clock=lambda: 1000.0)
    quiet = HealthMonitor(config, ScriptedProber(prober.script), report=False, listener=Listener())
    with caplog.at_level(logging.INFO, logger="gateway.health.monitor"):
        for outcome in (None, None, None, 200):
            monitor._record(monitor._health[("shop", "sip:a@127.0.0.1:9")], outcome)
            quiet._record(quiet._health[("shop", "sip:a@127.0.0.1:9")], outcome)
    assert listener.changes == [
        ("shop", "sip:a@127.0.0.1:9", False),
        ("shop", "sip:a@127.0.0.1:9", True),
    ]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage().split(" is ")[1].split(":")[0] for r in warnings] == [
        "down",
        "up again (SIP 200)",
    ]
    assert monitor.is_down("shop", "sip:a@127.0.0.1:9") is False
    assert {h["destination"] for h in monitor.snapshot()} == {
        "sip:a@127.0.0.1:9",
        "sip:b@127.0.0.1:9",
    }  # the quiet site is not checked
    assert monitor.snapshot("quiet") == []


async def wait_until(condition, timeout: float = 10.0) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


async def test_a_dead_port_is_down_and_a_phone_is_up_over_real_sockets(caplog):
    from sip_bridge import SipEndpoint, UserAgentConfig
    from tests.support.ports import free_udp_port

    dead = free_udp_port()
    phone = await SipEndpoint.open(
        UserAgentConfig(address=("127.0.0.1", 0), user="desk", accept_incoming=True)
    )
    gateway = await SipEndpoint.open(UserAgentConfig(address=("127.0.0.1", 0)))
    config = parse_config(
        f"""
[[sites]]
id = "shop"
destinations = ["sip:desk@127.0.0.1:{phone.local_address[1]}", "sip:desk@127.0.0.1:{dead}"]
health_interval = 0.5
""",
        {},
    )
    listener = Listener()
    monitor = HealthMonitor(config, gateway, listener=listener)
    monitor.start()
    try:
        with caplog.at_level(logging.WARNING, logger="gateway.health.monitor"):
            await wait_until(lambda: monitor.is_down("shop", f"sip:desk@127.0.0.1:{dead}"))
        states = {h["destination"]: h["state"] for h in monitor.snapshot()}
        assert states == {
            f"sip:desk@127.0.0.1:{phone.local_address[1]}": "up",
            f"sip:desk@127.0.0.1:{dead}": "down",
        }
        assert listener.changes == [("shop", f"sip:desk@127.0.0.1:{dead}", False)]
        assert f"destination sip:desk@127.0.0.1:{dead} of site shop is down" in caplog.text
    finally:
        await monitor.stop()
        await gateway.close()
        await phone.close()
