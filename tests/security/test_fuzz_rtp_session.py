"""A live RtpSession, over real sockets, fed thousands of mutated RTP, RFC 4733 and RTCP
packets from its own (latched) peer: nothing escapes its datagram handler (asyncio would
close the socket), malformed packets are counted, and a clean stream is heard afterwards.

The seed is random per run and printed; `FUZZ_SEED=<n>` replays a run.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket

import pytest

from sip_bridge.asyncio.player import PcmRecorder
from sip_bridge.asyncio.rtp_session import RtpSession
from sip_bridge.rtp.packet import RtpPacketizer
from tests.support.audio import assert_tone, tone, ulaw_encode
from tests.support.ports import free_port_block

from . import corpus
from .mutate import Mutator

HOST = "127.0.0.1"
PACKETS = 3000


# The clean stream is paced, buffered and recorded on the event loop's clock: looptime's
# fake one, so a busy machine cannot make its packets late and the tone patchy.
@pytest.mark.looptime
async def test_live_session_survives_mutated_packets_from_its_peer(fuzz_cases):
    seed = int(os.environ.get("FUZZ_SEED", random.randrange(2**32)))
    print(f"FUZZ_SEED={seed}")
    rng = random.Random(seed)
    loop = asyncio.get_running_loop()
    errors: list[dict] = []
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: errors.append(context))
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind((HOST, 0))
    ports = free_port_block(10)
    session = await RtpSession.open(HOST, (ports, ports + 9))
    try:
        session.start(peer.getsockname(), "PCMU")
        rtp_port, rtcp_port = (HOST, session.local_port), (HOST, session.local_rtcp_port)
        kinds = {
            "rtp": Mutator(rng, corpus.packets("rtp"), text=False),
            "dtmf": Mutator(rng, corpus.packets("dtmf"), text=False),
            "rtcp": Mutator(rng, corpus.packets("rtcp"), text=False),
        }
        count = fuzz_cases("live RtpSession (datagrams)")
        for n in range(PACKETS):
            kind = rng.choice(("rtp", "rtp", "dtmf", "rtcp"))
            mutator = kinds[kind]
            packet = mutator.mutate(rng.choice(mutator.corpus), rng.choice((1, 1, 2, 4)))
            # RTCP on its own port and muxed on the RTP port; everything else on RTP.
            port = rtcp_port if kind == "rtcp" and rng.random() < 0.5 else rtp_port
            peer.sendto(packet[:1500], port)
            count()
            if n % 50 == 49:
                await asyncio.sleep(0.002)
                session.read_pcm(loop.time())  # the jitter buffer plays out as in a call
        await asyncio.sleep(0.2)
        count.done()
        stats = session.stats
        assert errors == [], f"seed {seed}: {errors[:1]}"
        assert not session.closed
        assert stats.malformed_rtp > 0 and stats.malformed_rtcp > 0, f"seed {seed}"

        # A clean stream from the same peer is heard.
        packetizer = RtpPacketizer(0, ssrc=0xC1EA)
        codes = ulaw_encode(tone(1000, 1.5, 8000)).tobytes()
        recorder = PcmRecorder(session)
        recording = asyncio.create_task(recorder.record(1.6))
        for i in range(0, len(codes), 160):
            peer.sendto(bytes(packetizer.build(codes[i : i + 160], i, i == 0)), rtp_port)
            await asyncio.sleep(0.02)
        await recording
        assert_tone(recorder.samples(), 8000, 1000, skip_seconds=0.3, what=f"seed {seed}")
        assert errors == [], f"seed {seed}: {errors[:1]}"
    finally:
        loop.set_exception_handler(previous_handler)
        await session.close()
        peer.close()
