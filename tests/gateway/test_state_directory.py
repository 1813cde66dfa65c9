"""`[storage] state_directory`: where an instance keeps its ledger and journals, private to
its user, held by one running instance (gateway/process/state.py). Two real gateways of one
user on one host, on the same ports of two loopback addresses (as two containers sharing
/tmp would be), must not count each other's visitors; a third pointed at a directory held
by a running one must stop at start and name the holder."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gateway.process.state import LOCK_FILE, StateDirectory, StateDirectoryError, private_directory
from tests.support.gateway_process import GatewayProcess
from tests.support.ports import free_port_block, free_udp_port
from tests.support.signaling_client import aiortc_offer, start_call, visitor_socket


def test_the_state_directory_is_private_and_a_foreign_one_is_refused(tmp_path):
    mine = tmp_path / "state"
    private_directory(mine)
    assert stat.S_IMODE(mine.stat().st_mode) == 0o700
    private_directory(mine)  # again: fine
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone could have planted a journal or a link in it
    with pytest.raises(StateDirectoryError, match="only it may write"):
        private_directory(shared)
    link = tmp_path / "link"
    link.symlink_to(mine)
    with pytest.raises(StateDirectoryError):
        private_directory(link)


def test_a_held_state_directory_cannot_be_claimed_again_until_released(tmp_path):
    first = StateDirectory.claim(tmp_path / "state")
    assert (tmp_path / "state" / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    with pytest.raises(StateDirectoryError, match=f"in use by the gateway with pid {os.getpid()}"):
        StateDirectory.claim(tmp_path / "state")
    first.release()
    StateDirectory.claim(tmp_path / "state").release()


def instance_toml(host: str, ports: dict[str, int], state: Path | None) -> str:
    storage = f'[storage]\nstate_directory = "{state}"\n' if state is not None else ""
    return f"""
[http]
listen = "{host}:{ports["http"]}"
[sip]
listen = "{host}:{ports["sip"]}"
[media]
rtp_ports = "{ports["rtp"]}-{ports["rtp"] + 19}"
[ice]
host_addresses = ["{host}"]
port = {ports["ice"]}
[limits]
calls_per_client_15min = 1
{storage}
[[sites]]
id = "shop"
destination = "sip:nobody@127.0.0.1:{ports["nobody"]}"
ring_timeout = 5
"""


async def test_two_gateways_with_their_own_state_directories_share_nothing(tmp_path):
    ports = {
        "http": free_udp_port(),
        "sip": free_udp_port(),
        "rtp": free_port_block(20),
        "ice": free_udp_port(),
        "nobody": free_udp_port(),
    }
    tmpdir = tmp_path / "tmp"  # the shared /tmp of the two instances
    tmpdir.mkdir()
    hosts = {"a": "127.0.0.2", "b": "127.0.0.3"}
    gateways = {
        name: GatewayProcess(
            tmp_path / name,
            instance_toml(host, ports, tmp_path / name / "state"),
            env={"TMPDIR": str(tmpdir)},
        )
        for name, host in hosts.items()
    }
    try:
        for gateway in gateways.values():
            gateway.start()
        for gateway in gateways.values():
            await gateway.wait_ready()
        offer = await aiortc_offer()
        # One call per 15 minutes from this visitor: each gateway counts its own.
        for name, host in hosts.items():
            url = f"http://{host}:{ports['http']}"
            async with visitor_socket(url, url) as client:
                ack = await start_call(client, offer)
                assert ack["ok"], (name, ack, gateways[name].output())
        async with visitor_socket(url, url) as client:
            again = await start_call(client, offer)
        assert again["error"]["code"] == "rate_limited", again  # its own window holds
        for name in hosts:
            state = tmp_path / name / "state"
            assert (state / LOCK_FILE).is_file()
            assert {p.name for p in (state / "workers").iterdir()} >= {
                "ledger.sqlite3",
                "worker-0.json",
            }
        assert list(tmpdir.iterdir()) == []
    finally:
        for gateway in gateways.values():
            gateway.stop(grace=10)


async def test_a_second_gateway_on_a_held_state_directory_stops_and_names_the_holder(
    tmp_path,
):
    state = tmp_path / "state"

    def ports() -> dict[str, int]:
        return {
            "http": free_udp_port(),
            "sip": free_udp_port(),
            "rtp": free_port_block(20),
            "ice": free_udp_port(),
            "nobody": free_udp_port(),
        }

    holder = GatewayProcess(tmp_path / "one", instance_toml("127.0.0.1", ports(), state))
    second = GatewayProcess(tmp_path / "two", instance_toml("127.0.0.1", ports(), state), workers=0)
    try:
        holder.start()
        await holder.wait_ready()
        second.start()
        assert await second.wait_async(30) == 1, second.output()
        assert (
            f"cannot start: {state} ([storage] state_directory) is in use by the gateway "
            f"with pid {holder.pid}"
        ) in second.stderr(), second.output()
        assert holder.returncode is None  # the running one is untouched
    finally:
        second.stop()
        holder.stop(grace=10)
