"""When the storage several nodes share fails (docs/deployment.md, "When a part fails"):
a call already up goes on, and new ones are refused with `unavailable` and the reason in
the log: PostgreSQL stopped, then Redis stopped. Real servers of the test's own, a real
gateway (aiortc visitor, SIPp operator)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.config import parse_config
from gateway.process.gateway import Gateway
from tests.support import postgres
from tests.support import redis_server as redis_servers

from .conftest import gateway_toml
from .test_abuse_limits import Visitor


@pytest.mark.sipp_scenario("uas_answer_echo", rtp_echo=True, timeout=60)
async def test_a_call_up_goes_on_and_new_ones_are_refused_while_storage_is_down(
    sipp_uas, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with postgres.postgres_server() as pg, redis_servers.redis_server() as redis:
        database = pg.create_database("down")
        storage = (
            f'[storage]\ndatabase = "{database}"\nredis = "{redis.url}"\nnode = "n1"\n'
            f'[access]\ntoken_secret = "{"s" * 32}"\n'
        )
        gateway = await Gateway.start(
            parse_config(gateway_toml(destination=sipp_uas.uri, extra=storage), {})
        )
        first, second = Visitor(gateway), Visitor(gateway)
        try:
            await first.connect()
            up = await first.start_call()
            assert up["ok"], up
            await first.state(up["call_id"], "answered")

            pg.stop()  # PostgreSQL goes away
            for _ in range(200):
                if gateway.database.reachability.down:
                    break
                await asyncio.sleep(0.05)
            await second.connect()  # tokens need no database
            refused = await second.start_call()
            assert refused["ok"] is False and refused["error"]["code"] == "unavailable", refused
            assert "calls cannot be taken right now" in refused["error"]["message"]
            assert "call refused (unavailable): site shop" in caplog.text
            assert "does not answer" in caplog.text and database.split("@")[1] in caplog.text

            redis.stop()  # and Redis too: not even a token can be used
            third = Visitor(gateway)
            with pytest.raises(Exception, match="One or more namespaces failed to connect"):
                await third.connect()
            assert "call token refused: the shared ledger" in caplog.text

            # The call up all along is still up: the operator hears the visitor's audio
            # echoed (no BYE so far), and it ends normally.
            assert not [m for m in sipp_uas.trace() if m.method == "BYE"]
            assert gateway.calls.calls and up["call_id"] in gateway.calls.calls
            assert await first.sio.call("call:hangup", {}, timeout=5) == {"ok": True}
            await first.state(up["call_id"], "ended")
            await sipp_uas.assert_passed_async(timeout=10)
        finally:
            await first.close()
            await second.close()
            await gateway.stop()
