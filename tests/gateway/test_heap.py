"""`HeapTrimmer`: a finished call's memory goes back once calls end (gateway/process/heap.py).

aiortc's objects sit in reference cycles: a closed peer connection is freed only by a full
collection, which CPython runs late. The trimmer runs one, then `malloc_trim`, shortly
after a call ends and at most every `interval` seconds."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import weakref

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection

from gateway.media.webrtc_leg import use_host_addresses
from gateway.process.heap import HeapTrimmer, malloc_trim

# The trimmer's delay and interval run on the event loop's timers: on looptime's fake clock
# here, so "after 0.2 s" is exactly that, however busy the machine.
pytestmark = pytest.mark.looptime


@contextlib.contextmanager
def automatic_gc_off():
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def closed_peer_connection() -> weakref.ref:
    use_host_addresses(["127.0.0.1"])
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    await pc.close()
    return weakref.ref(pc)


async def test_a_closed_peer_connection_outlives_its_call_until_the_trimmer_runs():
    with automatic_gc_off():
        pc = await closed_peer_connection()
        await asyncio.sleep(0.1)
        # Nothing of ours holds it: only its own reference cycles keep it.
        assert pc() is not None
        trimmer = HeapTrimmer(delay=0.05, interval=10)
        trimmer.call_ended()
        await asyncio.sleep(0.3)
        assert trimmer.trims == 1
        assert pc() is None


async def test_calls_ending_together_make_one_trim_then_wait_for_the_interval():
    trimmer = HeapTrimmer(delay=0.05, interval=0.5)
    try:
        for _ in range(5):
            trimmer.call_ended()
        await asyncio.sleep(0.2)
        assert trimmer.trims == 1
        trimmer.call_ended()  # within the interval: waits for its end
        await asyncio.sleep(0.1)
        assert trimmer.trims == 1
        await asyncio.sleep(0.4)
        assert trimmer.trims == 2
    finally:
        trimmer.close()


async def test_close_cancels_a_pending_trim():
    trimmer = HeapTrimmer(delay=0.05)
    trimmer.call_ended()
    trimmer.close()
    await asyncio.sleep(0.15)
    assert trimmer.trims == 0


def test_malloc_trim_runs_here():
    malloc_trim()  # glibc on this machine: returns whether it released anything
