"""A site with `register = true` keeps the gateway registered with its trunk: kamailio as
the registrar (digest 401, usrloc in memory), reached on loopback."""

from __future__ import annotations

import asyncio

from gateway.calls.registrations import log_registration
from gateway.config import parse_config
from gateway.process.gateway import Gateway
from sip_bridge import RegistrationChanged
from tests.support.ports import free_port_block, free_udp_port


def gateway_toml(registrar_port: int) -> str:
    http, sip, rtp = free_udp_port(), free_udp_port(), free_port_block(10)
    return f"""
[http]
listen = "127.0.0.1:{http}"
[sip]
listen = "127.0.0.1:{sip}"
[media]
rtp_ports = "{rtp}-{rtp + 9}"
[demo]
enabled = false
[[sites]]
id = "shop"
destination = "sip:operator@127.0.0.1:{registrar_port}"
username = "alice"
password = "secret"
register = true
register_expires = 120
"""


async def test_register_true_registers_with_the_trunk_and_unregisters_on_stop(
    kamailio_factory, sipp_factory
):
    registrar = kamailio_factory(user="alice", password="secret")
    gateway = await Gateway.start(parse_config(gateway_toml(registrar.port), {}))
    registered = asyncio.get_running_loop().create_future()

    def on_change(change: RegistrationChanged) -> None:
        log_registration(change)
        if change.state in ("registered", "failed") and not registered.done():
            registered.set_result(change)

    gateway.endpoint.on_registration = on_change
    # The REGISTER went out during start: its answer may have come in already.
    current = gateway.endpoint.registrations["site:shop"]
    if current.state in ("registered", "failed"):
        registered.set_result(current)
    try:
        change = await asyncio.wait_for(registered, 10)
        assert (change.key, change.state, change.expires) == ("site:shop", "registered", 120)
        ((aor, contact, expires),) = registrar.registrations()
        sip_port = gateway.config.sip.listen[1]
        assert aor == "sip:alice@127.0.0.1"
        assert contact == f"<sip:alice@127.0.0.1:{sip_port}>" and expires == "120"
        # The trunk reaches the gateway at the bound Contact: an OPTIONS for alice, sent to
        # the registrar, is answered by the gateway (through kamailio's lookup).
        options = sipp_factory("uac_options", remote=registrar.address, service="alice")
        await options.assert_passed_async()
    finally:
        await gateway.stop()
    # Stopping removed the binding (Expires: 0), with credentials again.
    registrar.wait_for_registrations(2)
    assert registrar.registrations()[-1][2] == "0"
