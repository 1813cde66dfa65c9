"""A gateway with the site owner's side switched on (admin API key and a user), several
sites, and helpers to read its admin API and metrics."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from playwright.async_api import Page
from prometheus_client.parser import text_string_to_metric_families

from gateway.admin.auth import hash_password
from gateway.config import parse_config
from gateway.process.gateway import Gateway
from tests.support.ports import free_port_block, free_udp_port

API_KEY = "k" * 12 + "owner-side-test-key"
ADMIN_USER = "owner"
ADMIN_PASSWORD = "a long enough admin password"
_PASSWORD_HASH = hash_password(ADMIN_PASSWORD)
# The admin side switched on: the API key and one user.
ADMIN_TOML = f"""
[admin]
api_keys = ["{API_KEY}"]
[[admin.users]]
name = "{ADMIN_USER}"
password_hash = "{_PASSWORD_HASH}"
"""


def owner_toml(sites: dict[str, str], site_extra: dict[str, str] | None = None) -> str:
    """`sites`: id -> destination URI; one config with the admin side on. Health checks
    are off: a SIPp UAS takes an OPTIONS for a call it did not expect."""
    http, sip = free_udp_port(), free_udp_port()
    rtp = free_port_block(100)
    tables = "".join(
        f'[[sites]]\nid = "{site}"\ndestination = "{uri}"\nring_timeout = 20\n'
        "health_interval = 0\n"
        f"{(site_extra or {}).get(site, '')}\n"
        for site, uri in sites.items()
    )
    return f"""
[http]
listen = "127.0.0.1:{http}"
[sip]
listen = "127.0.0.1:{sip}"
[media]
rtp_ports = "{rtp}-{rtp + 99}"
browser_codecs = ["PCMU"]
[ice]
host_addresses = ["127.0.0.1"]
[demo]
enabled = false
{ADMIN_TOML}
{tables}"""


async def start_owner_gateway(sites: dict[str, str], **options: object) -> Gateway:
    return await Gateway.start(parse_config(owner_toml(sites, **options), {}))  # type: ignore[arg-type]


async def log_in(page: Page, url: str, password: str = ADMIN_PASSWORD) -> None:
    """Log in to the admin page in `page`'s browser context."""
    await page.goto(f"{url}/admin/login")
    await page.get_by_label("User name").fill(ADMIN_USER)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()


async def admin_get(
    gateway: Gateway, path: str, *, key: str | None = API_KEY
) -> tuple[int, object, dict[str, str]]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gateway.url}{path}", headers=headers) as response,
    ):
        text = await response.text()
        try:
            body: object = json.loads(text)
        except ValueError:
            body = text
        return response.status, body, dict(response.headers)


async def wait_for_records(gateway: Gateway, count: int) -> list[dict]:
    """The records once `count` are written (writes are queued off the call path)."""
    assert gateway.history is not None
    for _ in range(100):
        await gateway.history.flush()
        status, body, _ = await admin_get(gateway, "/api/admin/calls")
        assert status == 200, body
        calls = body["calls"]  # type: ignore[index]
        if len(calls) >= count:
            return calls
        await asyncio.sleep(0.1)
    raise AssertionError(f"{count} records expected, found {calls}")


def metric(exposition: str, name: str, **labels: str) -> float:
    """The value of one sample of the Prometheus text format (0 when absent). Every sample
    carries the node's name (`node`), which is not compared."""
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            own = {k: v for k, v in sample.labels.items() if k != "node"}
            if sample.name == name and own == labels:
                assert sample.labels.get("node"), sample
                return float(sample.value)
    return 0.0
