"""A site with `register = true` keeps the gateway registered with its trunk: kamailio as
the registrar (digest 401, usrloc in memory), reached on loopback."""

from __future__ import annotations

import asyncio

import aiohttp

from gateway.admin.page import _environment
from gateway.config import parse_config
from gateway.process.gateway import Gateway
from gateway.storage import AdminSession, Database, RegistrationStatus
from sip_bridge import RegistrationChanged
from tests.support.ports import free_port_block, free_udp_port

KEY = "k" * 32  # the admin API key


def gateway_toml(registrar_port: int, password: str = "secret") -> str:
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
[admin]
api_keys = ["{KEY}"]
[[sites]]
id = "shop"
destination = "sip:operator@127.0.0.1:{registrar_port}"
username = "alice"
password = "{password}"
register = true
register_expires = 120
"""


async def test_register_true_registers_with_the_trunk_and_unregisters_on_stop(
    kamailio_factory, sipp_factory
):
    registrar = kamailio_factory(user="alice", password="secret")
    gateway = await Gateway.start(parse_config(gateway_toml(registrar.port), {}))
    try:
        change = await settled(gateway)
        assert (change.key, change.state, change.expires) == ("site:shop", "registered", 120)
        # The admin API shows it, as this worker stored it.
        (shown,) = await admin_registrations(gateway)
        assert shown["site"] == "shop" and shown["state"] == "registered"
        assert shown["registrar"] == f"sip:127.0.0.1:{registrar.port}"
        assert shown["expires_at"] == shown["changed_at"] + 120 and shown["detail"] == ""
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
    # A stopped worker has no registration left to show.
    database = await Database.open(gateway.config.storage.database)
    try:
        assert await database.registrations.all() == []
    finally:
        await database.close()


async def test_a_refused_registration_shows_as_failed_with_the_registrars_reason(
    kamailio_factory,
):
    registrar = kamailio_factory(user="alice", password="secret")
    gateway = await Gateway.start(parse_config(gateway_toml(registrar.port, "wrong"), {}))
    try:
        change = await settled(gateway)
        assert change.state == "failed"
        (shown,) = await admin_registrations(gateway)
        assert shown["site"] == "shop" and shown["state"] == "failed"
        # kamailio challenged the wrong password's answer again: the status and sip_bridge's
        # reading of it.
        assert (change.status, change.detail) == (401, "credentials refused")
        assert shown["detail"] == "401 credentials refused"
        assert shown["expires_at"] is None
        assert shown["retry_at"] == shown["changed_at"] + change.retry_in
        assert registrar.registrations() == []
    finally:
        await gateway.stop()


async def settled(gateway: Gateway) -> RegistrationChanged:
    """The site's registration once it is registered or failed, stored for the admin."""
    report = gateway.registrations
    assert report is not None
    done = asyncio.get_running_loop().create_future()
    on_change = gateway.endpoint.on_registration

    def watch(change: RegistrationChanged) -> None:
        assert on_change is not None
        on_change(change)
        if change.state in ("registered", "failed") and not done.done():
            done.set_result(change)

    gateway.endpoint.on_registration = watch
    # The REGISTER went out during start: its answer may have come in already.
    current = gateway.endpoint.registrations["site:shop"]
    if current.state in ("registered", "failed"):
        done.set_result(current)
    change = await asyncio.wait_for(done, 10)
    await report.flush()
    return change


async def admin_registrations(gateway: Gateway) -> list[dict]:
    async with aiohttp.ClientSession() as http:
        response = await http.get(
            f"{gateway.url}/api/admin/registrations",
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert response.status == 200
        return (await response.json())["registrations"]


def test_the_admin_page_shows_each_workers_registration_escaped():
    status = RegistrationStatus(
        worker="node-a/worker-1",
        site="shop",
        state="failed",
        registrar="sip:pbx.example.com",
        changed_at=1_800_000_000.0,
        detail="403 <script>alert(1)</script>",
        retry_at=1_800_000_030.0,
    )
    page = (
        _environment()
        .get_template("destinations.html")
        .render(
            sites=("shop",),
            outcomes=(),
            session=AdminSession("owner", "csrf", 0.0),
            destinations=[],
            deliveries=[],
            registrations=[status.public()],
            active="destinations",
        )
    )
    row = page.split('<table id="registrations">', 1)[1].split("</table>", 1)[0]
    assert "<td>node-a/worker-1</td><td>failed</td><td>sip:pbx.example.com</td>" in row
    assert "403 &lt;script&gt;alert(1)&lt;/script&gt; (again at 2027-01-15 08:00:30)" in row
    assert "<title>Destinations" in page
