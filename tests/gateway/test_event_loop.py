"""Workers run on uvloop: the loop that `gateway.process.event_loop.run` gives a coroutine."""

from __future__ import annotations

import asyncio

from gateway.process import event_loop


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_the_gateway_runs_on_uvloop():
    assert event_loop.run(_loop_module()).startswith("uvloop")
