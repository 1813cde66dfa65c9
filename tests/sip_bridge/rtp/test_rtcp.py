import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sip_bridge.rtp.rtcp import (
    Bye,
    ReceiverReport,
    ReceptionStatistics,
    ReportBlock,
    RtcpParseError,
    SdesChunk,
    SenderReport,
    SourceDescription,
    UnknownRtcpPacket,
    build_rtcp,
    cname_chunk,
    ntp_middle_32,
    ntp_timestamp,
    parse_rtcp,
    round_trip_time,
)

BLOCK = ReportBlock(0xCAFEBABE, 64, -3, 0x1_0005, 120, 0x12345678, 65536)


def test_compound_round_trip():
    packets = [
        SenderReport(1, 0xE1234567_89ABCDEF, 160000, 50, 8000, (BLOCK,)),
        SourceDescription(
            (SdesChunk(1, ((1, b"alice@host"), (6, b"tool"))), SdesChunk(2, ((1, b"xy"),)))
        ),
        Bye((1, 2), "call ended"),
    ]
    data = build_rtcp(packets)
    assert len(data) % 4 == 0
    assert parse_rtcp(data) == packets


def test_receiver_report_layout_matches_rfc3550():
    data = build_rtcp([ReceiverReport(0x01020304, (BLOCK,))])
    assert data == bytes.fromhex(
        "81 c9 00 07 01 02 03 04"  # V=2 RC=1 PT=201 length=7, SSRC
        "ca fe ba be 40 ff ff fd"  # source, fraction 64/256, cumulative -3 (24-bit)
        "00 01 00 05 00 00 00 78"  # extended highest seq, jitter 120
        "12 34 56 78 00 01 00 00"  # LSR, DLSR (1 s)
    )


def test_sdes_cname_and_unknown_packets():
    app = UnknownRtcpPacket(204, 0, b"name" + b"\x00" * 4)
    parsed = parse_rtcp(build_rtcp([ReceiverReport(9), cname_chunk(9, "me@example"), app]))
    assert parsed[1].chunks[0].cname == "me@example"
    assert parsed[2] == app
    # Chunk padding: item bytes + at least one null, to a 32-bit boundary.
    for name in ("a", "ab", "abc", "abcd"):
        raw = build_rtcp([cname_chunk(1, name)])
        assert len(raw) % 4 == 0
        assert parse_rtcp(raw)[0].chunks[0].cname == name


def test_padding_in_last_packet_is_removed():
    bye = bytearray(build_rtcp([ReceiverReport(5), Bye((5,))]))
    bye[8] |= 0x20  # padding flag on the BYE (the last packet)
    bye[10:12] = (2).to_bytes(2, "big")  # length + 1 word
    bye += b"\x00\x00\x00\x04"
    assert parse_rtcp(bytes(bye))[1] == Bye((5,))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\xc9\x00", "too short"),
        (bytes.fromhex("40c90001 00000001"), "version is 1"),
        (bytes.fromhex("80c90005 00000001"), "claims 24 bytes"),
        (bytes.fromhex("81c90001 00000001"), "RR with 1 report blocks needs 28"),
        (bytes.fromhex("80c80001 00000001"), "SR with 0 report blocks needs 24"),
        (bytes.fromhex("a0c90001 00000001 80cb0000"), "padding is allowed only in the last"),
        (bytes.fromhex("a0c90001 00000009"), "padding count 9"),
        (bytes.fromhex("81ca0001 00000001"), "not terminated"),
        (bytes.fromhex("81ca0002 00000001 01050000"), "item of 5 bytes is truncated"),
        (bytes.fromhex("82cb0001 00000001"), "BYE announces 2 sources"),
        (bytes.fromhex("81cb0002 00000001 09000000"), "reason of 9 bytes"),
        (bytes.fromhex("80c90001 00000001 0102"), "2 stray bytes"),
    ],
)
def test_malformed_rtcp_raises_precise_errors(data, message):
    with pytest.raises(RtcpParseError, match=message):
        parse_rtcp(data)


@given(st.binary(max_size=120))
def test_fuzz_parse_rtcp_raises_only_its_error(data):
    with contextlib.suppress(RtcpParseError):
        parse_rtcp(data)


@given(st.integers(0, 31), st.sampled_from([200, 201, 202, 203, 204]), st.binary(max_size=64))
def test_fuzz_well_framed_rtcp_bodies_raise_only_its_error(count, packet_type, body):
    body = body[: len(body) // 4 * 4]
    data = bytes([0x80 | count, packet_type]) + (len(body) // 4).to_bytes(2, "big") + body
    with contextlib.suppress(RtcpParseError):
        for packet in parse_rtcp(data):
            assert build_rtcp([packet])  # whatever parses can be built again


def test_ntp_conversion():
    assert ntp_timestamp(0.0) == 2208988800 << 32
    assert ntp_timestamp(1.5) == (2208988801 << 32) | (1 << 31)
    assert ntp_middle_32(0x1122334455667788) == 0x33445566


def test_round_trip_time_from_lsr_and_dlsr():
    sent_at = 1_700_000_000.0
    lsr = ntp_middle_32(ntp_timestamp(sent_at))
    block = ReportBlock(1, 0, 0, 0, 0, lsr, int(0.25 * 65536))  # peer held it 250 ms
    assert round_trip_time(block, sent_at + 0.310) == pytest.approx(0.060, abs=1e-4)
    assert round_trip_time(ReportBlock(1, 0, 0, 0, 0, 0, 0), sent_at) is None


def receive(stats, seqs, t0=10.0, spacing=0.02, ts_step=160):
    for i, seq in enumerate(seqs):
        stats.on_packet(seq & 0xFFFF, (1000 + i * ts_step) & 0xFFFFFFFF, t0 + i * spacing)


def test_loss_statistics_rfc3550_a3():
    stats = ReceptionStatistics(7, 8000, probation=0)
    receive(stats, [s for s in range(100) if s not in (10, 11, 50, 99)])  # 99 never seen
    assert stats.extended_highest_sequence == 98
    assert stats.expected == 99
    assert stats.cumulative_lost == 3
    block = stats.report_block(now=20.0)
    assert block.fraction_lost == (3 << 8) // 99  # 7: 3 of 99 in this interval
    assert block.cumulative_lost == 3
    # Next interval: 20 expected, 20 received -> fraction 0, cumulative unchanged.
    receive(stats, range(99, 119), t0=12.0)
    block = stats.report_block(now=21.0)
    assert (block.fraction_lost, block.cumulative_lost, block.highest_sequence) == (0, 3, 118)


def test_duplicates_make_cumulative_loss_negative_and_fraction_zero():
    stats = ReceptionStatistics(7, 8000, probation=0)
    receive(stats, [0, 1, 2, 2, 3, 3, 4])
    block = stats.report_block(now=0.0)
    assert (block.fraction_lost, block.cumulative_lost) == (0, -2)


def test_sequence_wrap_extends_highest_sequence():
    stats = ReceptionStatistics(7, 8000, probation=0)
    receive(stats, range(65530, 65546))
    assert stats.extended_highest_sequence == 65536 + 9
    assert stats.cumulative_lost == 0


def test_probation_and_restart_rfc3550_a1():
    stats = ReceptionStatistics(7, 8000)  # MIN_SEQUENTIAL = 2
    assert stats.on_packet(100, 0, 0.0) is False  # first packet: on probation
    assert stats.on_packet(101, 160, 0.02) is True
    assert stats.packets_received == 1
    # A jump of 20000: not believed until the next packet follows it.
    assert stats.on_packet(20101, 320, 0.04) is False
    assert stats.on_packet(20102, 480, 0.06) is True
    assert stats.extended_highest_sequence == 20102 and stats.packets_received == 1


def test_jitter_rfc3550_a8():
    stats = ReceptionStatistics(7, 8000, probation=0)
    # Packets every 20 ms of RTP time; arrivals alternate 0 and +5 ms late.
    for i in range(400):
        stats.on_packet(i, i * 160, i * 0.02 + (0.005 if i % 2 else 0.0))
    # |D| = 40 units every packet, so J converges to 40.
    assert stats.jitter == pytest.approx(40, abs=0.01)
    assert stats.report_block(8.0).jitter == 39 or stats.report_block(8.0).jitter == 40
    steady = ReceptionStatistics(8, 8000, probation=0)
    receive(steady, range(100))
    assert steady.jitter == pytest.approx(0, abs=1e-6)


def test_lsr_and_dlsr_echo_the_last_sender_report():
    stats = ReceptionStatistics(7, 8000, probation=0)
    first = stats.report_block(0.0)
    assert (first.last_sr, first.delay_since_last_sr) == (0, 0)
    report = SenderReport(7, 0x11112222_33334444, 0, 0, 0)
    stats.on_sender_report(report, arrival=100.0)
    block = stats.report_block(now=101.5)
    assert block.last_sr == 0x22223333
    assert block.delay_since_last_sr == int(1.5 * 65536)
