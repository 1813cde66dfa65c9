import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sip_bridge.rtp.packet import RtpPacket, RtpPacketizer, RtpParseError, is_rtcp, parse_rtp


def raw_packet(
    *,
    version=2,
    padding=b"",
    csrcs=(),
    extension=None,
    marker=False,
    pt=0,
    seq=1,
    ts=2,
    ssrc=3,
    payload=b"abc",
):
    first = version << 6 | (0x20 if padding else 0) | (0x10 if extension else 0) | len(csrcs)
    data = struct.pack("!BBHII", first, (0x80 if marker else 0) | pt, seq, ts, ssrc)
    data += b"".join(struct.pack("!I", c) for c in csrcs)
    if extension is not None:
        profile, words = extension
        data += struct.pack("!HH", profile, len(words) // 4) + words
    return data + payload + padding


def test_parse_minimal_header():
    data = bytes.fromhex("80 e0 ff ff 00 00 00 a0 de ad be ef") + b"\xff" * 160
    packet = parse_rtp(data)
    assert packet == RtpPacket(96, True, 0xFFFF, 160, 0xDEADBEEF, (), packet.payload)
    assert bytes(packet.payload) == b"\xff" * 160


def test_parse_csrc_extension_and_padding():
    data = raw_packet(
        csrcs=(7, 8),
        extension=(0xBEDE, b"\x10\x01\x00\x00"),
        padding=b"\x00\x00\x03",
        payload=b"voice",
        pt=8,
        seq=42,
        ts=0xFFFFFFFF,
    )
    packet = parse_rtp(data)
    assert packet.csrcs == (7, 8)
    assert packet.extension_profile == 0xBEDE
    assert bytes(packet.payload) == b"voice"
    assert (packet.payload_type, packet.sequence_number, packet.timestamp) == (8, 42, 0xFFFFFFFF)
    assert packet.marker is False


def test_payload_is_a_view_not_a_copy():
    data = bytearray(raw_packet(payload=b"xyz"))
    packet = parse_rtp(data)
    data[-1] = ord("Z")
    assert bytes(packet.payload) == b"xyZ"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x80\x00\x00", "too short: 3 bytes"),
        (raw_packet(version=1), "version is 1"),
        (raw_packet(csrcs=(1, 2, 3), payload=b"")[:20], "announces 3 CSRCs"),
        (bytes([0x90]) + raw_packet(payload=b"")[1:], "extension header is missing"),
        (raw_packet(extension=(1, b"\x00" * 8), payload=b"")[:-4], "runs past the end"),
        (raw_packet(padding=b"\x00"), "padding count is zero"),
        (raw_packet(padding=b"\x00\x09", payload=b""), "longer than the payload"),
    ],
)
def test_malformed_packets_raise_precise_errors(data, message):
    with pytest.raises(RtpParseError, match=message):
        parse_rtp(data)


def test_packetizer_builds_parseable_packets_in_a_reused_buffer():
    writer = RtpPacketizer(0, ssrc=0x11223344, first_sequence_number=0xFFFF)
    first = writer.build(b"\x01" * 160, 1000, marker=True)
    assert bytes(first[:12]) == bytes.fromhex("80 80 ff ff 00 00 03 e8 11 22 33 44")
    copy = bytes(first)
    second = writer.build(b"\x02" * 4, 1160 + 2**32, payload_type=101)
    parsed = parse_rtp(bytes(second))
    assert (parsed.sequence_number, parsed.timestamp, parsed.payload_type) == (0, 1160, 101)
    assert parsed.marker is False and bytes(parsed.payload) == b"\x02" * 4
    assert parse_rtp(copy).sequence_number == 0xFFFF
    assert second.obj is first.obj  # same buffer: nothing allocated per packet
    assert (writer.packets_sent, writer.octets_sent) == (2, 164)


def test_packetizer_refuses_bad_input():
    with pytest.raises(ValueError):
        RtpPacketizer(128)
    with pytest.raises(ValueError):
        RtpPacketizer(0).build(b"\x00" * 9000, 0)


@pytest.mark.parametrize(
    ("second_byte", "rtcp"),
    [
        (200, True),
        (201, True),
        (202, True),
        (203, True),
        (223, True),
        (192, True),
        (0, False),
        (8, False),
        (0x80 | 9, False),
        (101, False),
        (0x80 | 101, False),
        (96, False),
    ],
)
def test_demux_rtp_from_rtcp(second_byte, rtcp):
    assert is_rtcp(bytes([0x80, second_byte]) + b"\x00" * 10) is rtcp


def test_demux_short_datagram_is_not_rtcp():
    assert is_rtcp(b"\x80") is False


@given(st.binary(max_size=80))
def test_fuzz_parse_rtp_raises_only_its_error(data):
    try:
        packet = parse_rtp(data)
    except RtpParseError:
        return
    assert 0 <= packet.payload_type < 128
    assert len(packet.payload) <= len(data) - 12


@given(
    st.integers(0, 127),
    st.booleans(),
    st.integers(0, 0xFFFF),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=200),
)
def test_fuzz_build_then_parse_round_trips(pt, marker, seq, ts, payload):
    writer = RtpPacketizer(pt, ssrc=5, first_sequence_number=seq)
    packet = parse_rtp(bytes(writer.build(payload, ts, marker)))
    assert (packet.payload_type, packet.marker, packet.sequence_number, packet.timestamp) == (
        pt,
        marker,
        seq,
        ts,
    )
    assert bytes(packet.payload) == payload
