"""End to end: a running gateway's SIP port fuzzed over real sockets, then a normal call
through it to SIPp, whose socket.io connection is fuzzed too; the call goes on (audio
checked by frequency) and ends normally.

The seed is random per run and printed; `FUZZ_SEED=<n>` replays a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket

from signaling.payloads import Dtmf, PayloadError, parse_client_event
from tests.support.audio import assert_tone

from . import corpus
from .mutate import Mutator
from .visitor import Visitor

HOST = "127.0.0.1"
SIP_DATAGRAMS = 2000
SOCKETIO_EVENTS = 300
TONE_HZ = 1000
MAX_UDP_PAYLOAD = 65507


def sip_fuzz_datagrams(rng: random.Random, count: int) -> list[bytes]:
    seeds = corpus.sip_messages()
    mutator = Mutator(rng, seeds)
    return [
        mutator.mutate(rng.choice(seeds), rng.choice((0, 1, 1, 2, 4)))[:MAX_UDP_PAYLOAD]
        for _ in range(count)
    ]


def socketio_fuzz_events(rng: random.Random, count: int) -> list[tuple[object, list]]:
    """Mutated recorded events, as JSON that still decodes; never the events that end or
    replace the call they are sent into (hangup, start)."""
    recorded = [json.dumps([name, *args]).encode() for name, args in corpus.socketio_events()]
    mutator = Mutator(rng, recorded)
    events: list[tuple[object, list]] = []
    valid_dtmf = 0
    while len(events) < count:
        try:
            decoded = json.loads(mutator.mutate(rng.choice(recorded), rng.choice((1, 2, 3))))
        except (ValueError, RecursionError):
            continue
        if not isinstance(decoded, list) or not decoded or not isinstance(decoded[0], str):
            continue
        name, args = decoded[0], decoded[1:]
        if name in ("call:hangup", "call:start"):
            continue
        with contextlib.suppress(PayloadError):
            event = parse_client_event(name, tuple(args))
            if isinstance(event, Dtmf):
                valid_dtmf += 1
                if valid_dtmf > 3:
                    continue  # each digit plays for 180 ms, in turn: keep the run short
        events.append((name, args))
    return events


async def test_gateway_serves_a_normal_call_after_fuzzing(
    gateway_factory, sipp_factory, fuzz_cases
):
    seed = int(os.environ.get("FUZZ_SEED", random.randrange(2**32)))
    print(f"FUZZ_SEED={seed}")
    rng = random.Random(seed)
    uas = sipp_factory("uas_answer_echo", rtp_echo=True, timeout=60)
    gateway = await gateway_factory(destination=uas.uri)
    sip_address = gateway.endpoint.local_address
    ua = gateway.endpoint.ua

    # The SIP port, from several sockets (other ports, other addresses on loopback).
    sip_count = fuzz_cases("gateway SIP port (real UDP)")
    senders = []
    for host in (HOST, HOST, "127.0.0.2"):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((host, 0))
        senders.append(s)
    try:
        for n, datagram in enumerate(sip_fuzz_datagrams(rng, SIP_DATAGRAMS)):
            senders[n % len(senders)].sendto(datagram, sip_address)
            sip_count()
            if n % 20 == 19:
                # Let the gateway (same event loop) read them before more come: on a busy
                # machine a burst of big datagrams would overflow the socket's buffer.
                # Read: its drop counters (most fuzz is dropped) stop moving.
                counted, still = sum(ua.counters.values()), 0
                for _ in range(100):
                    await asyncio.sleep(0.002)
                    now = sum(ua.counters.values())
                    still = still + 1 if now == counted else 0
                    counted = now
                    if still == 2:
                        break
        await asyncio.sleep(0.5)
    finally:
        for s in senders:
            s.close()
    sip_count.done()
    counted = sum(ua.counters.values())
    assert counted > SIP_DATAGRAMS // 2, f"seed {seed}: the gateway saw only {counted}"
    assert gateway.endpoint.internal_errors == 0, f"seed {seed}"
    assert not gateway.calls.calls, f"seed {seed}"

    # A normal call; its own connection then gets the socket.io fuzz (except hangup, and
    # start, which would end or refuse... the call under test), and the call goes on.
    visitor = Visitor(TONE_HZ)
    try:
        await visitor.call(gateway)
        await visitor.wait_for_state("answered")
        event_count = fuzz_cases("gateway socket.io events (real)")
        refused = 0
        for name, args in socketio_fuzz_events(rng, SOCKETIO_EVENTS):
            if len(args) == 1:
                ack = await visitor.client.call(name, args[0], timeout=10)
                refused += not ack.get("ok")
            else:
                await visitor.client.emit(name, tuple(args))
            event_count()
        event_count.done()
        assert refused > 0, f"seed {seed}: the fuzz never reached a refusal"
        await visitor.client.call("call:mute", {"muted": False}, timeout=5)
        await asyncio.sleep(0.8)
        mark = visitor.mark()
        await asyncio.sleep(1.5)
        assert visitor.states[-1] == "answered", f"seed {seed}: {visitor.states}"
        assert_tone(visitor.heard_since(mark), visitor.rate, TONE_HZ, what=f"seed {seed}")
        await visitor.hangup()
        await visitor.wait_for_state("ended")
    finally:
        await visitor.close()
    await uas.assert_passed_async()
    assert gateway.endpoint.internal_errors == 0
