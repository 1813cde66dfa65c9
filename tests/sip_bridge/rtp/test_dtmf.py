import pytest
from hypothesis import given
from hypothesis import strategies as st

from sip_bridge.rtp.dtmf import (
    DtmfDigit,
    DtmfParseError,
    DtmfReceiver,
    TelephoneEvent,
    build_telephone_event,
    dtmf_event_packets,
    parse_telephone_event,
)


def summary(packets):
    out = []
    for p in packets:
        e = parse_telephone_event(p.payload)
        out.append((e.event, e.end, e.volume, e.duration, p.marker, p.timestamp_offset))
    return out


def test_payload_layout_rfc4733():
    # event 11 ('#'), E bit, volume 10, duration 1280
    assert build_telephone_event(11, True, 10, 1280) == bytes.fromhex("0b 8a 05 00")
    assert parse_telephone_event(bytes.fromhex("05 0a 00 a0")) == TelephoneEvent(5, False, 10, 160)
    assert parse_telephone_event(bytes.fromhex("0b ca 05 00")).end  # R bit ignored
    assert parse_telephone_event(bytes.fromhex("0b 8a 05 00")).digit == "#"


def test_default_event_is_160ms_in_20ms_steps_with_three_end_packets():
    assert summary(dtmf_event_packets("5")) == [
        (5, False, 10, 160, True, 0),
        (5, False, 10, 320, False, 0),
        (5, False, 10, 480, False, 0),
        (5, False, 10, 640, False, 0),
        (5, False, 10, 800, False, 0),
        (5, False, 10, 960, False, 0),
        (5, False, 10, 1120, False, 0),
        (5, True, 10, 1280, False, 0),
        (5, True, 10, 1280, False, 0),
        (5, True, 10, 1280, False, 0),
    ]


def test_duration_not_a_multiple_of_ptime_and_other_parameters():
    assert summary(dtmf_event_packets("*", duration_ms=50, ptime_ms=30, volume=0)) == [
        (10, False, 0, 240, True, 0),
        (10, True, 0, 400, False, 0),
        (10, True, 0, 400, False, 0),
        (10, True, 0, 400, False, 0),
    ]
    wideband = summary(dtmf_event_packets("d", duration_ms=40, clock_rate=16000))
    assert wideband[0] == (15, False, 10, 320, True, 0)
    assert wideband[-1] == (15, True, 10, 640, False, 0)


def test_long_event_is_cut_into_segments():
    # 9 s at 8 kHz = 72000 units > 0xFFFF.
    packets = summary(dtmf_event_packets("0", duration_ms=9000))
    assert packets[0] == (0, False, 10, 160, True, 0)
    boundary = [i for i, p in enumerate(packets) if p[3] == 0xFFFF]
    assert len(boundary) == 1
    i = boundary[0]
    # 409 steps of 160 = 65440 < 65535 < 65600: the 410th packet time closes the segment.
    assert i == 409
    assert packets[i] == (0, False, 10, 0xFFFF, False, 0)
    # The new segment restarts at +0xFFFF without marker; its duration counts from there.
    assert packets[i + 1] == (0, False, 10, 160 * 411 - 0xFFFF, False, 0xFFFF)
    assert packets[-1] == (0, True, 10, 72000 - 0xFFFF, False, 0xFFFF)
    assert [p[1] for p in packets].count(True) == 3
    assert sum(p[4] for p in packets) == 1
    assert all(p[3] <= 0xFFFF for p in packets)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"digit": "E"}, "not a DTMF digit"),
        ({"digit": "12"}, "not a DTMF digit"),
        ({"digit": "1", "duration_ms": 39}, "at least 40 ms"),
    ],
)
def test_sender_rejects_bad_requests(kwargs, message):
    digit = kwargs.pop("digit")
    with pytest.raises(ValueError, match=message):
        dtmf_event_packets(digit, **kwargs)


def feed(receiver, packets, start_ts, drop=()):
    digits = []
    for i, packet in enumerate(packets):
        if i in drop:
            continue
        digits += receiver.receive(start_ts + packet.timestamp_offset, packet.payload)
    return digits


def test_receiver_reports_each_event_once_despite_three_end_packets():
    receiver = DtmfReceiver()
    got = feed(receiver, dtmf_event_packets("7"), 1000)
    assert got == [DtmfDigit("7", 1000, 1280, 10, True)]
    assert receiver.flush() == ()


def test_receiver_repeated_digits_are_separate_events():
    receiver = DtmfReceiver()
    got = feed(receiver, dtmf_event_packets("1"), 1000)
    got += feed(receiver, dtmf_event_packets("1"), 3000)
    assert [(d.digit, d.timestamp) for d in got] == [("1", 1000), ("1", 3000)]


def test_receiver_reports_event_whose_end_was_lost_when_the_next_starts():
    receiver = DtmfReceiver()
    first = dtmf_event_packets("4")
    assert feed(receiver, first, 5000, drop={7, 8, 9}) == []
    got = feed(receiver, dtmf_event_packets("#"), 7000)
    assert got == [DtmfDigit("4", 5000, 1120, 10, False), DtmfDigit("#", 7000, 1280, 10, True)]


def test_receiver_reports_event_whose_end_was_lost_when_audio_resumes():
    receiver = DtmfReceiver()
    feed(receiver, dtmf_event_packets("9"), 100, drop={7, 8, 9})
    assert receiver.audio_resumed(100 + 1120) == ()  # audio racing the event: not yet
    assert receiver.audio_resumed(100 + 1600 + 480) == (DtmfDigit("9", 100, 1120, 10, False),)
    assert receiver.audio_resumed(100 + 4000) == ()


def test_receiver_only_end_packet_arrives():
    receiver = DtmfReceiver()
    packets = dtmf_event_packets("B")
    assert feed(receiver, packets, 0, drop=set(range(9))) == [DtmfDigit("B", 0, 1280, 10, True)]


def test_receiver_ignores_late_packets_of_finished_events():
    receiver = DtmfReceiver()
    packets = dtmf_event_packets("2")
    feed(receiver, packets, 2**32 - 100)  # timestamps wrap between events
    feed(receiver, dtmf_event_packets("3"), 2000)
    # A reordered packet of the old event shows up: nothing new.
    assert receiver.receive(2**32 - 100, packets[3].payload) == ()
    assert receiver.flush() == ()


def test_receiver_joins_segments_of_a_long_event():
    receiver = DtmfReceiver()
    got = feed(receiver, dtmf_event_packets("0", duration_ms=9000), 10)
    assert got == [DtmfDigit("0", 10, 72000, 10, True)]


def test_receiver_ignores_non_dtmf_events_and_flushes_pending():
    receiver = DtmfReceiver()
    assert receiver.receive(10, build_telephone_event(16, True, 10, 800)) == ()  # flash
    assert receiver.receive(20, build_telephone_event(3, False, 10, 160)) == ()
    assert receiver.flush() == (DtmfDigit("3", 20, 160, 10, False),)
    assert receiver.flush() == ()


def test_receiver_rejects_short_payload():
    with pytest.raises(DtmfParseError, match="3 bytes"):
        DtmfReceiver().receive(0, b"\x01\x02\x03")


@given(st.binary(max_size=12))
def test_fuzz_parse_raises_only_its_error(data):
    try:
        event = parse_telephone_event(data)
    except DtmfParseError:
        assert len(data) < 4
        return
    assert 0 <= event.event <= 255 and 0 <= event.volume <= 63


@given(st.lists(st.tuples(st.integers(0, 2**32 - 1), st.binary(min_size=0, max_size=6))))
def test_fuzz_receiver_raises_only_parse_errors(packets):
    receiver = DtmfReceiver()
    for timestamp, payload in packets:
        try:
            for digit in receiver.receive(timestamp, payload):
                assert digit.digit in "0123456789*#ABCD"
        except DtmfParseError:
            pass


def test_receiver_awaits_an_end_only_while_an_event_is_unreported():
    """`awaiting_end` tells a session when audio packets need `audio_resumed` at all."""
    receiver = DtmfReceiver()
    assert not receiver.awaiting_end
    feed(receiver, dtmf_event_packets("9"), 100, drop={7, 8, 9})
    assert receiver.awaiting_end  # the end packets were lost
    assert receiver.audio_resumed(100 + 1600 + 480)
    assert not receiver.awaiting_end
    feed(receiver, dtmf_event_packets("5"), 9000)
    assert not receiver.awaiting_end  # reported at its end packet
