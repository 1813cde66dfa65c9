"""pytest fixtures that start real peers and always stop them at teardown.

Use from a conftest.py::

    from tests.support.fixtures import *  # noqa: F403

Then, in a test module::

    @pytest.mark.sipp_scenario("uas_answer_echo", rtp_echo=True)
    async def test_call(sipp_uas):
        ... call sipp_uas.uri / sipp_uas.address, RTP to sipp_uas.media_port ...
        await sipp_uas.assert_passed_async()   # or: assert sipp_uas.wait() == 0

    def test_two(sipp_factory):
        uas = sipp_factory("uas_busy")                      # a UAS, listening
        uac = sipp_factory("uac_options", remote=address)   # a UAC sending to ``address``

    def test_phone(baresip_factory):
        phone = baresip_factory(codecs=("PCMA",), tone_hz=700)

Peers write into the test's ``tmp_path`` (one sub-directory each), so their traces and
recordings survive a failure for inspection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .baresip import BaresipPhone
from .database import database_url, postgres_server
from .dnsmasq import Dnsmasq
from .kamailio import Kamailio
from .ledgers import ledger, ledger_factory, redis_server, redis_url
from .sipp import Sipp

__all__ = [
    "baresip_factory",
    "baresip_phone",
    "database_url",
    "dnsmasq_factory",
    "in_temporary_directory",
    "kamailio_factory",
    "ledger",
    "ledger_factory",
    "postgres_server",
    "pytest_configure",
    "redis_server",
    "redis_url",
    "sipp_factory",
    "sipp_uas",
]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "sipp_scenario(name, **options): the scenario (and Sipp options) of the sipp_uas fixture",
    )
    config.addinivalue_line(
        "markers", "baresip_options(**options): BaresipPhone options of the baresip_phone fixture"
    )


@pytest.fixture(autouse=True)
def in_temporary_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs in its own temporary directory: a gateway's state directory and
    SQLite database (`var/`, relative to the working directory) are the test's own."""
    monkeypatch.chdir(tmp_path)


def _peer_dir(tmp_path: Path, kind: str) -> Path:
    index = 1
    while (tmp_path / f"{kind}{index}").exists():
        index += 1
    return tmp_path / f"{kind}{index}"


@pytest.fixture
def sipp_factory(tmp_path: Path) -> Iterator[Callable[..., Sipp]]:
    """Start SIPp instances: ``sipp_factory(scenario, **Sipp options) -> Sipp`` (started)."""
    started: list[Sipp] = []

    def start(scenario: str | Path, **options: Any) -> Sipp:
        sipp = Sipp(scenario, _peer_dir(tmp_path, "sipp"), **options)
        started.append(sipp)
        return sipp.start()

    yield start
    for sipp in started:
        sipp.stop()


@pytest.fixture
def sipp_uas(request: pytest.FixtureRequest, sipp_factory: Callable[..., Sipp]) -> Sipp:
    """A SIPp UAS running the scenario named by ``@pytest.mark.sipp_scenario(name, **opts)``
    or by indirect parametrization (``request.param``: a name, or a (name, options) pair)."""
    marker = request.node.get_closest_marker("sipp_scenario")
    if hasattr(request, "param"):
        name, options = request.param if isinstance(request.param, tuple) else (request.param, {})
    elif marker is not None:
        name, options = marker.args[0], dict(marker.kwargs)
    else:
        raise pytest.UsageError("sipp_uas needs @pytest.mark.sipp_scenario(name) or a param")
    return sipp_factory(name, **options)


@pytest.fixture
def baresip_factory(tmp_path: Path) -> Iterator[Callable[..., BaresipPhone]]:
    """Start baresip phones: ``baresip_factory(**BaresipPhone options)`` (started)."""
    started: list[BaresipPhone] = []

    def start(**options: Any) -> BaresipPhone:
        phone = BaresipPhone(_peer_dir(tmp_path, "baresip"), **options)
        started.append(phone)
        return phone.start()

    yield start
    for phone in started:
        phone.stop()


@pytest.fixture
def baresip_phone(
    request: pytest.FixtureRequest, baresip_factory: Callable[..., BaresipPhone]
) -> BaresipPhone:
    """A baresip phone with the options of ``@pytest.mark.baresip_options(**options)``."""
    marker = request.node.get_closest_marker("baresip_options")
    return baresip_factory(**(dict(marker.kwargs) if marker else {}))


@pytest.fixture
def dnsmasq_factory(tmp_path: Path) -> Iterator[Callable[..., Dnsmasq]]:
    """Start DNS servers: ``dnsmasq_factory(records, ttl=60) -> Dnsmasq`` (listening)."""
    started: list[Dnsmasq] = []

    def start(records: list[str], **options: Any) -> Dnsmasq:
        server = Dnsmasq(_peer_dir(tmp_path, "dnsmasq"), records, **options)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def kamailio_factory(tmp_path: Path) -> Iterator[Callable[..., Kamailio]]:
    """Start registrars: ``kamailio_factory(user=..., password=..., realm=...)`` (listening)."""
    started: list[Kamailio] = []

    def start(**options: Any) -> Kamailio:
        server = Kamailio(_peer_dir(tmp_path, "kamailio"), **options)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
