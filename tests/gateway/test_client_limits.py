"""The per-client counters of the HTTP face (gateway.http.client_limits), on a fake clock."""

from __future__ import annotations

import logging

import pytest

from gateway.http import client_limits
from gateway.http.client_limits import OpenPerClient, RatePerClient


def test_open_things_are_capped_per_client_and_freed_on_close(caplog) -> None:
    caplog.set_level(logging.WARNING)
    sockets = OpenPerClient(2, "sockets", "http.sockets_per_client")
    assert sockets.open("192.0.2.1") and sockets.open("192.0.2.1")
    assert not sockets.open("192.0.2.1") and not sockets.open("192.0.2.1")
    assert sockets.open("192.0.2.2")  # another client
    # One line per burst, naming the setting.
    assert [r.getMessage() for r in caplog.records] == [
        "client 192.0.2.1 holds 2 sockets: more are refused (http.sockets_per_client)"
    ]
    sockets.close("192.0.2.1")
    assert sockets.open("192.0.2.1")
    sockets.close("192.0.2.1")
    sockets.close("192.0.2.1")
    assert sockets.held("192.0.2.1") == 0


def test_an_ipv6_64_is_one_client() -> None:
    sockets = OpenPerClient(1, "sockets", "key")
    assert sockets.open("2001:db8::1")
    assert not sockets.open("2001:db8::ffff:1")
    assert sockets.open("2001:db8:0:1::1")


def test_a_rate_allows_a_burst_then_refills() -> None:
    rate = RatePerClient(3, period=60.0)
    assert [rate.take("192.0.2.1", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert rate.take("192.0.2.1", 0.0) == pytest.approx(20.0)  # one more in 20 s
    assert rate.take("192.0.2.2", 0.0) == 0.0
    assert rate.take("192.0.2.1", 19.0) == pytest.approx(1.0)
    assert rate.take("192.0.2.1", 20.5) == 0.0
    assert rate.take("192.0.2.1", 1000.0) == 0.0  # refilled, never above the burst
    assert [rate.take("192.0.2.1", 1000.0) for _ in range(3)][-1] > 0


def test_a_rate_keeps_a_bounded_number_of_clients(monkeypatch) -> None:
    monkeypatch.setattr(client_limits, "MAX_TRACKED_CLIENTS", 100)
    rate = RatePerClient(1)
    for n in range(1000):
        rate.take(f"10.0.{n // 250}.{n % 250}", 0.0)
    assert len(rate._buckets) == 100
