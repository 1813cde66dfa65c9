"""No task, thread, socket or peer connection outlives its call."""

from __future__ import annotations

import asyncio
import os
import threading

from .conftest import open_call_page, wait_for_status
from .test_browser_call import assert_all_released


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.05)


async def one_call(page, gateway, hang_up: str) -> None:
    await open_call_page(page, gateway)
    await page.get_by_role("button", name="Call").click()
    await wait_for_status(page, "In call")
    if hang_up == "visitor":
        await page.get_by_role("button", name="Hang up").click()
    await wait_for_status(page, "Call ended", timeout=10)
    await assert_all_released(gateway)


async def test_calls_leave_nothing_behind(gateway_factory, sipp_factory, page):
    uas = sipp_factory("uas_answer_echo", rtp_echo=True, calls=4)
    gateway = await gateway_factory(destination=uas.uri)
    await one_call(page, gateway, "visitor")  # warm-up: pools and caches fill once
    await page.goto("about:blank")  # the page's socket closes too
    await settle()
    fds, threads = open_fds(), threading.active_count()
    tasks = set(asyncio.all_tasks())
    for _ in range(3):
        await one_call(page, gateway, "visitor")
    await page.goto("about:blank")
    await settle()
    assert open_fds() == fds
    assert threading.active_count() <= threads
    # engine.io's ping task of a closed websocket sleeps out its ping interval, then ends:
    # it belongs to the connection (closed above), not to a call.
    left = [
        t
        for t in asyncio.all_tasks() - tasks
        if not t.done() and "_send_ping" not in repr(t.get_coro())
    ]
    assert not left, [t.get_coro() for t in left]
    assert gateway.endpoint.ua.active_calls == 0
    await uas.assert_passed_async()
