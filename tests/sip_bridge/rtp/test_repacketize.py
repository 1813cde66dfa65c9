"""Packets cut to the peer's ptime from 20 ms frames (sip_bridge.rtp.repacketize)."""

from __future__ import annotations

from sip_bridge.rtp.repacketize import Repacketizer, packet_time


def frames(count: int, start: int = 1000) -> list[tuple[bytes, int]]:
    return [(bytes([n]) * 160, start + 160 * n) for n in range(count)]


def test_packet_time_is_the_peers_within_10_to_60_ms():
    assert [packet_time(p) for p in (None, 5, 10, 30, 60, 70, 25)] == [20, 20, 10, 30, 60, 20, 20]


def test_20_ms_frames_become_30_ms_packets_with_their_timestamps():
    cutter = Repacketizer(240)
    out = []
    for n, (payload, timestamp) in enumerate(frames(6)):
        out += cutter.push(payload, timestamp, marker=n == 0)
    assert [(len(p), ts, m) for p, ts, m in out] == [
        (240, 1000, True),
        (240, 1240, False),
        (240, 1480, False),
        (240, 1720, False),
    ]
    assert out[0][0] == bytes([0]) * 160 + bytes([1]) * 80  # bytes kept in order


def test_10_ms_packets_and_a_gap_upstream():
    cutter = Repacketizer(80)
    assert [ts for _, ts, _ in cutter.push(b"a" * 160, 0)] == [0, 80]
    # A 30 ms packetizer with a lost frame: the half-filled packet goes out as it is.
    cutter = Repacketizer(240)
    assert cutter.push(b"a" * 160, 0) == []
    out = cutter.push(b"b" * 160, 320, marker=True)  # 160..319 lost
    assert [(len(p), ts) for p, ts, _ in out] == [(160, 0)]
    out = cutter.push(b"c" * 160, 480)
    assert [(p[:1], len(p), ts, m) for p, ts, m in out] == [(b"b", 240, 320, True)]


def test_timestamps_wrap():
    cutter = Repacketizer(240)
    out = cutter.push(b"x" * 160, 0xFFFFFFC0) + cutter.push(b"y" * 160, 0x60)
    assert [ts for _, ts, _ in out] == [0xFFFFFFC0]
    assert [ts for _, ts, _ in cutter.push(b"z" * 160, 0x100)] == [0xB0]
