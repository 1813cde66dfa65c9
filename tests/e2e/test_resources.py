"""No task, thread, socket or peer connection outlives its call."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import threading
from pathlib import Path

import gateway.process.gateway as gateway_module
from gateway.config import parse_config
from gateway.process.gateway import Gateway

from .conftest import gateway_toml, open_call_page, wait_for_status
from .test_browser_call import assert_all_released

# What one call is made of: none may be alive once its call is over and the gateway has
# collected (gateway/process/heap.py). Counted without a collection of our own.
CALL_OBJECTS = {
    "Call",
    "WebRtcLeg",
    "SrtpAudioChannel",
    "CallMedia",
    "RtpSession",
    "RTCPeerConnection",
    "RTCDtlsTransport",
    "RTCIceTransport",
}


def live_call_objects() -> dict[str, int]:
    counts: dict[str, int] = {}
    for o in gc.get_objects():
        kind = type(o)
        if kind.__name__ in CALL_OBJECTS and kind.__module__.startswith(("gateway.", "aiortc.")):
            counts[kind.__name__] = counts.get(kind.__name__, 0) + 1
    return counts


def more_than(counts: dict[str, int], baseline: dict[str, int]) -> dict[str, int]:
    return {name: n for name, n in counts.items() if n > baseline.get(name, 0)}


def call_threads() -> int:
    """Threads but asyncio's default executor, a pool that keeps its workers (how many
    depends on how many lookups ever overlapped, not on calls still alive)."""
    return sum(1 for t in threading.enumerate() if not t.name.startswith("asyncio_"))


# TCP states of the server end of an HTTP connection the browser pools (established) or
# has just closed, before the server has noticed (close-wait): the connection's, not a call's.
HTTP_CONNECTION_STATES = {"01", "08"}


def open_fds(http_port: int) -> list[str]:
    """What the file descriptors of this process point at, but the server ends of HTTP
    connections: the browser keeps idle ones in its pool as long as it likes and closes
    them when it likes (not a call's doing)."""
    pooled = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            local, _, state, *rest = line.split()[1:]
            if state in HTTP_CONNECTION_STATES and int(local.rsplit(":", 1)[1], 16) == http_port:
                pooled.add(f"socket:[{rest[5]}]")
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target not in pooled:
                targets.append(target)
    return sorted(targets)


async def fds_back_to(http_port: int, before: list[str]) -> list[str]:
    """The descriptors once their count is back to `before`'s, or after 5 s: closes that
    a call scheduled (a transport's close runs on the loop's next turn) may land late on a
    busy machine."""
    for _ in range(50):
        now = open_fds(http_port)
        if len(now) <= len(before):
            break
        await asyncio.sleep(0.1)
    return now


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
    gateway.heap.interval = 0.5  # collect soon after each call (production: 10 s)
    await one_call(page, gateway, "visitor")  # warm-up: pools and caches fill once
    await page.goto("about:blank")  # the page's socket closes too
    await settle()
    http_port = gateway.config.http.listen[1]
    fds, threads = open_fds(http_port), call_threads()
    # What earlier tests of this process still hold is not this gateway's doing.
    gc.collect()
    baseline = live_call_objects()
    trims = gateway.heap.trims
    tasks = set(asyncio.all_tasks())
    for _ in range(3):
        await one_call(page, gateway, "visitor")
    await page.goto("about:blank")
    await settle()
    after = await fds_back_to(http_port, fds)
    assert len(after) == len(fds), sorted(set(after) - set(fds))
    assert call_threads() <= threads
    # engine.io's ping task of a closed websocket sleeps out its ping interval, then ends:
    # it belongs to the connection (closed above), not to a call.
    left = [
        t
        for t in asyncio.all_tasks() - tasks
        if not t.done() and "_send_ping" not in repr(t.get_coro())
    ]
    assert not left, [t.get_coro() for t in left]
    assert gateway.endpoint.ua.active_calls == 0
    # aiortc's objects sit in reference cycles: without the gateway's collection after
    # calls, dead calls' peer connections would stay until CPython's next full one.
    for _ in range(30):
        if not more_than(live_call_objects(), baseline):
            break
        await asyncio.sleep(0.1)
    assert gateway.heap.trims > trims
    assert more_than(live_call_objects(), baseline) == {}
    await uas.assert_passed_async()


async def test_a_stop_closes_open_pages_sockets_instead_of_waiting_for_them(page, monkeypatch):
    """Chromium's engine.io websocket ignores the server's close packet: without closing
    its connection, the stop would wait out aiohttp's shutdown timeout (made an hour here,
    so that waiting shows as this test's timeout) for each open page."""
    monkeypatch.setattr(gateway_module, "SHUTDOWN_TIMEOUT", 3600.0)
    # No call is placed: the destination is never reached.
    config = parse_config(gateway_toml(destination="sip:desk@127.0.0.1:9"), {})
    gateway = await Gateway.start(config)
    await open_call_page(page, gateway)
    for _ in range(100):
        if gateway.sio.eio.sockets:
            break
        await asyncio.sleep(0.05)
    assert gateway.sio.eio.sockets, "the page did not connect"
    await gateway.stop()
    assert not gateway.sio.eio.sockets
