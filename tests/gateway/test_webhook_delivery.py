"""Webhooks from a real gateway to a real HTTP receiver that verifies every request with
the Standard Webhooks library: a destination on a dead port goes down, and its
`destination.down` reaches a receiver that refuses the first three attempts on the fourth,
with the same webhook-id, although the gateway was restarted between attempts."""

from __future__ import annotations

import time

from gateway.config import parse_config
from gateway.process.gateway import Gateway
from tests.e2e.conftest import gateway_toml
from tests.support.ports import free_udp_port
from tests.support.webhook_receiver import WebhookReceiver

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


async def test_a_failing_receiver_gets_the_event_on_the_fourth_try_across_a_restart(tmp_path):
    receiver = await WebhookReceiver(SECRET, fail_first=3).start()
    dead = f"sip:desk@127.0.0.1:{free_udp_port()}"
    database = tmp_path / "gateway.db"
    extra = f'[storage]\ndatabase = "sqlite:///{database}"\n[notifications]\nretry_backoff = 0.5\n'
    hook = f'[[sites.webhooks]]\nurl = "{receiver.url}"\nsecret = "{SECRET}"\n'
    toml = gateway_toml(destination=dead, health_interval=0.5, extra=extra, site_extra=hook)
    first = await Gateway.start(parse_config(toml, {}))
    try:
        await receiver.wait_for(lambda d: len(d) >= 2)
    finally:
        await first.stop()
    stopped = time.monotonic()
    before_restart = len(receiver.deliveries)
    # The same configuration without health checks: the new process sends nothing new.
    again = await Gateway.start(parse_config(toml.replace("health_interval = 0.5", ""), {}))
    try:
        await receiver.wait_for(lambda d: any(x.status == 204 for x in d))
        rows = await again.notifications.notifier.deliveries(site="shop")
    finally:
        await again.stop()
        await receiver.stop()

    deliveries = receiver.deliveries
    assert all(d.verified for d in deliveries)
    assert {d.webhook_id for d in deliveries} == {deliveries[0].webhook_id}
    assert [d.status for d in deliveries] == [500, 500, 500, 204]
    assert 2 <= before_restart <= 3 and deliveries[-1].received_at > stopped
    body = deliveries[-1].body
    assert body["type"] == "destination.down"
    assert body["data"]["destination"] == dead and body["data"]["state"] == "down"
    stamps = [int(d.timestamp) for d in deliveries]
    assert stamps == sorted(stamps) and stamps[-1] > stamps[0]  # each attempt signed anew
    (row,) = rows
    assert row["id"] == deliveries[0].webhook_id
    assert (row["state"], row["attempts"], row["type"]) == ("delivered", 4, "destination.down")
    assert "token" not in row["target"]  # a query may hold a secret: never shown
