"""CPU time per RTP packet on the SIP leg's media path.

    python bench/rtp_packet_cost.py [--packets N] [--no-socket]

Measures, with time.process_time over many packets (no sockets for the first
three): the send path (PCM -> encode -> packetize), the receive path (parse ->
reception stats -> jitter buffer put/get -> decode -> concealment bookkeeping),
the G.711 relay path (parse -> jitter buffer -> packetize, no codec), and a real
time loopback run of RtpSession pairs (asyncio, UDP and pacing included).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sip_bridge.asyncio.rtp_session import RtpSession
from sip_bridge.rtp.codecs import codec_by_name
from sip_bridge.rtp.concealment import LossConcealer
from sip_bridge.rtp.jitter import JitterBuffer
from sip_bridge.rtp.packet import RtpPacketizer, parse_rtp
from sip_bridge.rtp.rtcp import ReceptionStatistics

PTIME = 0.02


def tone_frames(codec, count: int) -> list[np.ndarray]:
    n = codec.frame_samples
    t = np.arange(n * 50) / codec.sample_rate
    signal = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    return [signal[(k % 50) * n : (k % 50 + 1) * n] for k in range(count)]


def per_packet_us(seconds: float, packets: int) -> float:
    return seconds / packets * 1e6


def bench_send(name: str, packets: int) -> float:
    codec = codec_by_name(name)
    encoder = codec.create_encoder()
    writer = RtpPacketizer(codec.payload_type, ssrc=1, first_sequence_number=0)
    frames = tone_frames(codec, 50)
    step = codec.timestamp_step()
    start = time.process_time()
    timestamp = 0
    for k in range(packets):
        writer.build(encoder.encode(frames[k % 50]), timestamp, False)
        timestamp += step
    return per_packet_us(time.process_time() - start, packets)


def wire_packets(name: str, count: int) -> list[bytes]:
    codec = codec_by_name(name)
    encoder = codec.create_encoder()
    writer = RtpPacketizer(codec.payload_type, ssrc=1, first_sequence_number=0)
    step = codec.timestamp_step()
    return [
        bytes(writer.build(encoder.encode(frame), k * step))
        for k, frame in enumerate(tone_frames(codec, count))
    ]


def bench_receive(name: str, packets: int) -> float:
    codec = codec_by_name(name)
    data = wire_packets(name, packets)
    decoder = codec.create_decoder()
    jitter = JitterBuffer(codec.clock_rate, codec.timestamp_step())
    stats = ReceptionStatistics(1, codec.clock_rate, probation=0)
    concealer = LossConcealer(codec.frame_samples, codec.sample_rate)
    start = time.process_time()
    for k, datagram in enumerate(data):
        now = k * PTIME  # a fake clock: packets arrive and are pulled every 20 ms
        packet = parse_rtp(datagram)
        stats.on_packet(packet.sequence_number, packet.timestamp, now)
        jitter.put(packet.sequence_number, packet.timestamp, packet.payload, now, packet.marker)
        payload = jitter.get(now + 0.0105)
        if isinstance(payload, memoryview):
            concealer.good_frame(decoder.decode(payload))
    return per_packet_us(time.process_time() - start, packets)


def bench_relay(packets: int) -> float:
    data = wire_packets("PCMU", packets)
    jitter = JitterBuffer(8000, 160)
    writer = RtpPacketizer(0, ssrc=2, first_sequence_number=0)
    start = time.process_time()
    for k, datagram in enumerate(data):
        now = k * PTIME
        packet = parse_rtp(datagram)
        jitter.put(packet.sequence_number, packet.timestamp, packet.payload, now, packet.marker)
        payload = jitter.get(now + 0.0105)
        if isinstance(payload, memoryview):
            writer.build(payload, k * 160)
    return per_packet_us(time.process_time() - start, packets)


async def bench_loopback(name: str, pairs: int, seconds: float) -> tuple[float, float]:
    """Real time on loopback: `pairs` calls, both ends sending and pulling every 20 ms.

    Returns (CPU microseconds per packet, where one packet is sent, received and
    pulled as decoded PCM; the share of one core used).
    """
    from sip_bridge.asyncio.player import paced_ticks

    sessions = []
    for _ in range(pairs):
        a = await RtpSession.open("127.0.0.1", (45000, 45999))
        b = await RtpSession.open("127.0.0.1", (45000, 45999))
        a.start(("127.0.0.1", b.local_port), name)
        b.start(("127.0.0.1", a.local_port), name)
        sessions += [a, b]
    frames = tone_frames(sessions[0].codec, 50)
    ticks = round(seconds / PTIME)
    wall = time.perf_counter()
    start = time.process_time()
    k = 0
    async for due in paced_ticks(PTIME, ticks):
        frame = frames[k % 50]
        for session in sessions:
            session.send_pcm(frame)
            session.read_pcm(due)
        k += 1
    elapsed = time.process_time() - start
    wall = time.perf_counter() - wall
    received = sum(s.stats.packets_received for s in sessions)
    for session in sessions:
        await session.close()
    if received < 0.98 * ticks * len(sessions):
        raise RuntimeError(f"only {received} of {ticks * len(sessions)} packets arrived")
    return per_packet_us(elapsed, ticks * len(sessions)), elapsed / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--no-socket", action="store_true", help="skip the loopback run")
    args = parser.parse_args()
    n = args.packets
    print(f"CPU microseconds per RTP packet ({n} packets, 20 ms frames)")
    for name in ("PCMU", "PCMA", "G722"):
        print(f"  send    {name:5} PCM -> encode -> packetize         {bench_send(name, n):7.2f}")
    for name in ("PCMU", "PCMA", "G722"):
        cost = bench_receive(name, n)
        print(f"  receive {name:5} parse -> jitter -> decode -> PLC   {cost:7.2f}")
    print(f"  relay   G.711 parse -> jitter -> packetize        {bench_relay(n):7.2f}")
    if not args.no_socket:
        pairs = 10
        for name in ("PCMU", "G722"):
            cost, load = asyncio.run(bench_loopback(name, pairs, 3.0))
            print(
                f"  loopback {name:5} send_pcm + UDP + read_pcm, asyncio included"
                f" {cost:7.2f}   ({pairs} calls = {2 * pairs} legs: {100 * load:.0f} % of a core)"
            )


if __name__ == "__main__":
    main()
