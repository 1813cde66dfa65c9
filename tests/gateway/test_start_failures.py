"""A port of the configuration held by another process: `python -m gateway` stops at start
with the key and the address, exits non-zero, and its supervisor does not restart the
worker that failed (gateway/process/binding.py)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.support.gateway_process import GatewayProcess
from tests.support.ports import free_port_block, free_udp_port


def toml(ports: dict[str, int]) -> str:
    return f"""
[http]
listen = "127.0.0.1:{ports["http"]}"
[sip]
listen = "127.0.0.1:{ports["sip"]}"
[media]
rtp_ports = "{ports["rtp"]}-{ports["rtp"] + 19}"
[ice]
port = {ports["ice"]}
[demo]
enabled = true
sip_listen = "127.0.0.1:{ports["demo"]}"
[[sites]]
id = "shop"
destination = "sip:operator@127.0.0.1:{ports["demo"]}"
"""


def hold(kind: int, port: int, *, reuse_port: bool = False) -> socket.socket:
    """Bind `port` on 127.0.0.1 as another program would (and listen, for TCP)."""
    sock = socket.socket(socket.AF_INET, kind)
    if reuse_port:  # as another gateway's workers would: SO_REUSEPORT lets this user join
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    if kind == socket.SOCK_STREAM:
        sock.listen()
    return sock


CASES = {
    # name: (workers, what is held, the key and address the error must name)
    "http": (1, lambda p: hold(socket.SOCK_STREAM, p["http"]), "http.listen", "http", 0),
    "http shared": (
        2,
        lambda p: hold(socket.SOCK_STREAM, p["http"], reuse_port=True),
        "http.listen",
        "http",
        0,
    ),
    "sip of worker 1": (2, lambda p: hold(socket.SOCK_DGRAM, p["sip"] + 1), "sip.listen", "sip", 1),
    "demo phone": (2, lambda p: hold(socket.SOCK_DGRAM, p["demo"]), "demo.sip_listen", "demo", 0),
    "rtp": (1, lambda p: hold(socket.SOCK_DGRAM, p["rtp"] + 7), "media.rtp_ports", "rtp", 0),
    "ice of worker 1": (2, lambda p: hold(socket.SOCK_DGRAM, p["ice"] + 1), "ice.port", "ice", 1),
    "one process": (0, lambda p: hold(socket.SOCK_DGRAM, p["sip"]), "sip.listen", "sip", 0),
}


@pytest.fixture
def ports() -> Iterator[dict[str, int]]:
    yield {
        "http": free_udp_port(),
        "sip": free_port_block(3),
        "demo": free_udp_port(),
        "rtp": free_port_block(20),
        "ice": free_port_block(2),
    }


@pytest.mark.parametrize("case", list(CASES))
async def test_a_port_in_use_stops_the_start_naming_its_key(tmp_path, ports, case):
    workers, take, key, port_name, offset = CASES[case]
    held = take(ports)
    gateway = GatewayProcess(tmp_path, toml(ports), workers=workers)
    try:
        gateway.start()
        assert await gateway.wait_async(60) == 1, gateway.output()
        errors = gateway.stderr()
        address = f"127.0.0.1:{ports[port_name] + offset}"
        if key == "media.rtp_ports":
            address = f"127.0.0.1:{ports['rtp']}-{ports['rtp'] + 19}"
        assert f"{key}: cannot bind {address}: " in errors, gateway.output()
        assert "in use by another process" in errors, gateway.output()
        # Once: a worker that cannot bind is not started again.
        assert errors.count("cannot start") == 1, gateway.output()
        assert "died" not in gateway.stdout(), gateway.output()
    finally:
        gateway.stop()
        held.close()
