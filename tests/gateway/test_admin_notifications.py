"""The admin API shows the site owner's side of notifications, on both databases: each
destination's health, and every webhook and mail delivery with its attempts."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web

from gateway.admin.api import admin_api_routes
from gateway.admin.service import AdminService
from gateway.config import parse_config
from gateway.health.monitor import HealthMonitor
from gateway.http.json_api import refusals
from gateway.notify.delivery import DeliveryLoop, RetryPolicy
from gateway.notify.publisher import Notifier
from gateway.storage import Database
from sip_bridge import OptionsResult
from tests.gateway.clock import FakeClock

KEY = "test-admin-key-0123456789abcdef"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CONFIG = parse_config(
    f"""
[[sites]]
id = "shop"
destinations = ["sip:alice@pbx.example", "sip:bob@pbx.example"]
health_interval = 0.5
[[sites.webhooks]]
url = "https://crm.example/hooks?token=abc"
secret = "{SECRET}"
[[sites]]
id = "other"
destination = "sip:desk@pbx.example"
health_interval = 0
""",
    {},
)


class Prober:
    """Alice answers, Bob never does (a test double for the network: the real OPTIONS are
    tested in test_destination_health.py)."""

    async def options(self, target, *, timeout, proxy=None):
        return OptionsResult("k", 200 if "alice" in target else None)


class Refusing:
    channel = "webhook"

    async def deliver(self, event):
        from gateway.notify.delivery import DeliveryError

        raise DeliveryError("POST https://crm.example/hooks: HTTP 503")


@pytest.fixture
async def api(aiohttp_client, database_url):
    database = await Database.open(database_url)
    clock = FakeClock()
    notifier = Notifier(CONFIG, database.outbox, clock=clock)
    health = HealthMonitor(CONFIG, Prober(), listener=notifier)
    service = AdminService(CONFIG, database, None, health=health, notifier=notifier)
    app = web.Application(middlewares=[refusals])
    app.add_routes(admin_api_routes(service, (KEY,)))
    client = await aiohttp_client(app)
    client.database, client.health, client.notifier, client.clock = (
        database,
        health,
        notifier,
        clock,
    )
    yield client
    await health.stop()
    await database.close()


async def get(api, path):
    response = await api.get(path, headers={"Authorization": f"Bearer {KEY}"})
    return response.status, await response.json()


async def test_destinations_show_health_and_deliveries_show_attempts(api):
    api.health.start()
    while not api.health.is_down("shop", "sip:bob@pbx.example"):
        await asyncio.sleep(0.05)
    await api.notifier.drain()
    _, body = await get(api, "/api/admin/destinations")
    by_uri = {d["destination"]: d for d in body["destinations"]}
    assert by_uri["sip:alice@pbx.example"]["health"]["state"] == "up"
    bob = by_uri["sip:bob@pbx.example"]["health"]
    assert bob["state"] == "down" and bob["misses"] >= 2 and bob["last_status"] is None
    assert bob["since"] <= bob["checked_at"]
    assert by_uri["sip:desk@pbx.example"]["health"] is None  # not checked

    loop = DeliveryLoop(
        api.database.outbox, {"webhook": Refusing()}, policy=RetryPolicy(), clock=api.clock
    )
    await loop.run_once()
    status, body = await get(api, "/api/admin/deliveries?site=shop")
    assert status == 200
    (delivery,) = body["deliveries"]
    assert delivery["type"] == "destination.down" and delivery["channel"] == "webhook"
    assert delivery["target"] == "https://crm.example/hooks"  # never the token
    assert delivery["state"] == "pending" and delivery["attempts"] == 1
    assert delivery["next_attempt_at"] == api.clock() + 30
    assert delivery["last_error"] == "POST https://crm.example/hooks: HTTP 503"
    assert (await get(api, "/api/admin/deliveries?site=other"))[1] == {"deliveries": []}
    assert (await get(api, "/api/admin/deliveries?outcome=missed"))[0] == 400
