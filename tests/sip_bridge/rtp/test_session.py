"""RtpSession over real loopback UDP sockets (run inside scripts/in-loopback-netns)."""

import asyncio
import os
import socket

import numpy as np
import pytest

from sip_bridge.asyncio.player import PcmRecorder, paced_ticks, play_pcm
from sip_bridge.asyncio.rtp_session import RtpPortsExhaustedError, RtpSession
from sip_bridge.rtp.g729 import G729Encoder
from sip_bridge.rtp.jitter import LOST
from sip_bridge.rtp.packet import RtpPacketizer, parse_rtp
from sip_bridge.rtp.rtcp import ReceiverReport, build_rtcp, parse_rtcp

from .tones import dominant_frequency, rms, tone

HOST = "127.0.0.1"
PORTS = (42000, 42999)

# The session's timers (media timeout, RTCP interval, DTMF event pacing) and its RTP clock
# run on the event loop's time: here looptime's fake one, which jumps to the next timer.
# Datagrams on loopback arrive as they are sent, so only time is faked: a pause is exactly
# as long as the test says, whatever else the machine is doing.
pytestmark = pytest.mark.looptime


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


async def connected_pair(codec="PCMU", **kwargs):
    a = await RtpSession.open(HOST, PORTS)
    b = await RtpSession.open(HOST, PORTS)
    a.start((HOST, b.local_port), codec, **kwargs)
    b.start((HOST, a.local_port), codec, **kwargs)
    return a, b


class RawPeer:
    """A bare UDP socket standing in for a phone, to see exactly what goes on the wire."""

    def __init__(self, port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, port))
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()

    async def receive(self, timeout=1.0):
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.sock_recvfrom(self.sock, 2048), timeout)

    async def receive_all(self, seconds):
        packets = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            try:
                packets.append(await self.receive(left))
            except TimeoutError:
                break
        return packets

    def send(self, data, address):
        self.sock.sendto(data, address)

    def close(self):
        self.sock.close()


@pytest.mark.parametrize("codec", ["PCMU", "PCMA", "G722", "G729"])
async def test_two_sessions_exchange_tones(codec):
    a, b = await connected_pair(codec)
    rate = a.codec.sample_rate
    heard_by_a, heard_by_b = PcmRecorder(a), PcmRecorder(b)
    await asyncio.gather(
        play_pcm(a, tone(440, rate, 0.8)),
        play_pcm(b, tone(1000, rate, 0.8)),
        heard_by_a.record(0.9),
        heard_by_b.record(0.9),
    )
    at_a, at_b = heard_by_a.samples(), heard_by_b.samples()
    assert len(at_a) == len(at_b) == round(0.9 / 0.02) * a.frame_samples
    assert abs(dominant_frequency(at_a, rate) - 1000) <= 5
    assert abs(dominant_frequency(at_b, rate) - 440) <= 5
    assert rms(at_b) > 2000  # the tone itself, not faint leakage
    assert a.stats.packets_sent == b.stats.packets_received == 40
    assert a.stats.jitter.late == 0
    await a.close()
    await b.close()


async def test_relay_path_passes_payloads_untouched():
    a, b = await connected_pair("PCMA")
    payloads = [bytes([i]) * 160 for i in range(10)]
    got = []

    async def send():
        async for _ in paced_ticks(0.02, len(payloads)):
            assert a.send_payload(sent_payloads.pop(0))

    async def receive():
        async for due in paced_ticks(0.02, 20):
            item = b.read_payload(due)
            if item is not None and item is not LOST:
                got.append(bytes(item))

    sent_payloads = list(payloads)
    await asyncio.gather(send(), receive())
    assert got == payloads
    assert b.stats.jitter.lost == 0
    await a.close()
    await b.close()


async def test_symmetric_rtp_sends_from_the_port_it_listens_on():
    phone = RawPeer()
    session = await RtpSession.open(HOST, PORTS)
    session.start(phone.address, "PCMU")
    session.send_pcm(np.zeros(160, np.int16))
    data, source = await phone.receive()
    assert source == (HOST, session.local_port)
    packet = parse_rtp(data)
    assert packet.payload_type == 0 and packet.marker and len(packet.payload) == 160
    await session.close()
    phone.close()


async def test_latching_drops_a_third_partys_packets():
    phone, intruder = RawPeer(), RawPeer()
    session = await RtpSession.open(HOST, PORTS)
    session.start(phone.address, "PCMU")
    local = (HOST, session.local_port)
    intruder_writer = RtpPacketizer(0, ssrc=666)
    # Before latching, only the SDP address is accepted.
    intruder.send(bytes(intruder_writer.build(b"\x00" * 160, 0)), local)
    phone_writer = RtpPacketizer(0, ssrc=1)
    for k in range(5):
        phone.send(bytes(phone_writer.build(b"\xff" * 160, k * 160)), local)
        intruder.send(bytes(intruder_writer.build(b"\x00" * 160, k * 160)), local)
    await asyncio.sleep(0.1)
    assert session.stats.packets_received == 5
    assert session.stats.foreign_source_dropped == 6
    assert session.reception.ssrc == 1
    assert session.remote_address == phone.address
    await session.close()
    phone.close()
    intruder.close()


async def test_nat_latching_learns_the_source_and_answers_there():
    sdp_says = RawPeer()  # the address in the SDP, which never sends (private IP)
    behind_nat = RawPeer()
    session = await RtpSession.open(HOST, PORTS)
    session.start(sdp_says.address, "PCMU", latch_any_source=True)
    writer = RtpPacketizer(0, ssrc=9)
    behind_nat.send(bytes(writer.build(b"\xff" * 160, 0)), (HOST, session.local_port))
    await asyncio.sleep(0.05)
    assert session.remote_address == behind_nat.address
    session.send_pcm(np.zeros(160, np.int16))
    _, source = await behind_nat.receive()
    assert source == (HOST, session.local_port)
    # Latched now: even the SDP address is a stranger.
    sdp_says.send(bytes(writer.build(b"\xff" * 160, 160)), (HOST, session.local_port))
    await asyncio.sleep(0.05)
    assert session.stats.foreign_source_dropped == 1
    await session.close()
    sdp_says.close()
    behind_nat.close()


async def test_update_remote_moves_media_and_relatches():
    first, second = RawPeer(), RawPeer()
    session = await RtpSession.open(HOST, PORTS)
    session.start(first.address, "PCMU")
    session.send_pcm(np.zeros(160, np.int16))
    before = parse_rtp((await first.receive())[0])
    session.update_remote(second.address)
    await asyncio.sleep(0.4)  # the source pauses for 20 packet times
    session.send_pcm(np.zeros(160, np.int16))
    after = parse_rtp((await second.receive())[0])
    # The RTP clock kept running through the pause, and the marker flags the restart.
    assert after.marker
    assert after.sequence_number == (before.sequence_number + 1) & 0xFFFF
    assert 19 * 160 <= (after.timestamp - before.timestamp) % 2**32 <= 22 * 160
    writer = RtpPacketizer(0, ssrc=3)
    first.send(bytes(writer.build(b"\xff" * 160, 0)), (HOST, session.local_port))
    second.send(bytes(writer.build(b"\xff" * 160, 160)), (HOST, session.local_port))
    await asyncio.sleep(0.05)
    assert session.stats.foreign_source_dropped == 1
    assert session.stats.packets_received == 1
    # On hold (remote sendonly... here: recvonly means we may send; inactive: we may not).
    session.update_remote(second.address, remote_direction="inactive")
    assert session.send_pcm(np.zeros(160, np.int16)) is False
    await session.close()
    first.close()
    second.close()


async def test_malformed_and_unexpected_packets_are_counted_and_dropped():
    phone = RawPeer()
    session = await RtpSession.open(HOST, PORTS)
    session.start(phone.address, "PCMU")
    local = (HOST, session.local_port)
    phone.send(b"\x40" + b"\x00" * 20, local)  # RTP version 1
    phone.send(b"\x80\x00", local)  # too short
    phone.send(bytes.fromhex("80c90005 00000001"), local)  # RTCP (muxed) claiming too much
    phone.send(bytes.fromhex("80c90001"), (HOST, session.local_rtcp_port))
    writer = RtpPacketizer(0, ssrc=4)
    phone.send(bytes(writer.build(b"\x00", 0, payload_type=18)), local)  # G.729, not ours
    phone.send(bytes(writer.build(b"\x01\x02", 160, payload_type=101)), local)  # short event
    phone.send(bytes(writer.build(b"\x00", 320, payload_type=13)), local)  # comfort noise
    await asyncio.sleep(0.1)
    stats = session.stats
    assert (stats.malformed_rtp, stats.malformed_rtcp, stats.malformed_dtmf) == (2, 2, 1)
    assert (stats.unexpected_payload_type, stats.comfort_noise) == (1, 1)
    await session.close()
    phone.close()


async def test_dtmf_end_to_end_and_audio_paused_during_events():
    phone = RawPeer()
    a, b = await connected_pair("PCMU")
    digits = []
    b.on_dtmf = digits.append
    # Keep audio flowing from `a` while it sends digits.
    stop = asyncio.Event()

    async def audio():
        loop = asyncio.get_running_loop()
        start = loop.time()
        k = 0
        while not stop.is_set():
            a.send_pcm(tone(440, 8000, 0.02))
            k += 1
            await asyncio.sleep(max(0, start + k * 0.02 - loop.time()))

    audio_task = asyncio.create_task(audio())
    await asyncio.sleep(0.1)
    await a.send_dtmf("1#9", duration_ms=100)
    await asyncio.sleep(0.1)
    stop.set()
    await audio_task
    assert "".join(d.digit for d in digits) == "1#9"
    assert all(d.end_seen and d.duration == 800 for d in digits)
    assert b.received_digits.qsize() == 3
    assert a.stats.dtmf_events_sent == 3
    await a.close()
    await b.close()
    phone.close()


async def test_dtmf_on_the_wire_follows_rfc4733_and_keeps_the_clock():
    phone = RawPeer()
    session = await RtpSession.open(HOST, PORTS)
    session.start(phone.address, "PCMU", dtmf_send_pt=96)
    session.send_pcm(np.zeros(160, np.int16))
    await asyncio.sleep(0.02)
    session.send_pcm(np.zeros(160, np.int16))
    sending = asyncio.create_task(session.send_dtmf("5", duration_ms=60))
    await asyncio.sleep(0.05)
    assert session.send_pcm(np.zeros(160, np.int16)) is False  # event on the wire
    await sending
    assert session.send_pcm(np.zeros(160, np.int16)) is True
    packets = [parse_rtp(d) for d, _ in await phone.receive_all(0.2)]
    audio = [p for p in packets if p.payload_type == 0]
    events = [p for p in packets if p.payload_type == 96]
    assert [p.sequence_number for p in packets] == [
        (packets[0].sequence_number + i) & 0xFFFF for i in range(len(packets))
    ]
    assert [(bytes(p.payload).hex(), p.marker) for p in events] == [
        ("050a00a0", True),
        ("050a0140", False),
        ("058a01e0", False),
        ("058a01e0", False),
        ("058a01e0", False),
    ]
    assert {p.timestamp for p in events} == {(audio[1].timestamp + 160) % 2**32}
    # 5 packet times of event: audio resumes 5 frames after the event start.
    assert audio[2].timestamp == (audio[1].timestamp + 160 + 5 * 160) % 2**32
    await session.close()
    phone.close()


async def test_media_timeout_fires_and_is_suspended_on_hold():
    phone = RawPeer()
    session = await RtpSession.open(HOST, PORTS)
    fired = asyncio.Event()
    session.on_media_timeout = fired.set
    session.start(phone.address, "PCMU", media_timeout=0.3)
    writer = RtpPacketizer(0, ssrc=5)
    for k in range(10):  # RTP flows for 0.4 s: no timeout
        phone.send(bytes(writer.build(b"\xff" * 160, k * 160)), (HOST, session.local_port))
        await asyncio.sleep(0.04)
    assert not fired.is_set()
    session.update_remote(phone.address, remote_direction="sendonly")  # remote holds us
    await asyncio.sleep(0.6)
    assert not fired.is_set()
    session.update_remote(phone.address, remote_direction="sendrecv")  # resumed, RTP never comes
    loop = asyncio.get_running_loop()
    resumed = loop.time()
    await asyncio.wait_for(fired.wait(), 1.0)
    assert 0.3 <= loop.time() - resumed <= 0.5
    await session.close()
    phone.close()


async def test_rtcp_reports_flow_both_ways():
    a, b = await connected_pair("PCMU", rtcp_interval=0.15)
    for _ in range(25):
        a.send_pcm(tone(440, 8000, 0.02))
        b.send_pcm(tone(1000, 8000, 0.02))
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.4)
    for session in (a, b):
        stats = session.stats
        assert stats.rtcp_sent >= 2 and stats.rtcp_received >= 2
        assert stats.remote_fraction_lost == 0 and stats.remote_cumulative_lost == 0
        assert stats.remote_jitter is not None and stats.remote_jitter < 0.02
        assert stats.round_trip_time is not None and 0 <= stats.round_trip_time < 0.1
    assert a.reception.packets_received == 25
    await a.close()
    await b.close()


async def test_rtcp_goes_to_the_rtcp_port_and_bye_on_close():
    rtp_peer = RawPeer()
    rtcp_peer = RawPeer(rtp_peer.address[1] + 1)
    session = await RtpSession.open(HOST, PORTS)
    session.start(rtp_peer.address, "PCMU", rtcp_interval=0.1)
    data, source = await rtcp_peer.receive()
    assert source == (HOST, session.local_rtcp_port)
    first = parse_rtcp(data)
    assert isinstance(first[0], ReceiverReport)  # nothing sent yet: RR, not SR
    assert first[1].chunks[0].cname == session.cname
    rtcp_peer.send(build_rtcp([ReceiverReport(77)]), (HOST, session.local_rtcp_port))
    await asyncio.sleep(0.02)
    await session.close()
    packets = [parse_rtcp(d) for d, _ in await rtcp_peer.receive_all(0.1)]
    assert any(type(p).__name__ == "Bye" for p in packets[-1])
    assert session.stats.rtcp_received == 1
    rtp_peer.close()
    rtcp_peer.close()


async def test_close_frees_sockets_and_tasks():
    before_fds = open_fds()
    before_tasks = asyncio.all_tasks()
    a, b = await connected_pair("G722", media_timeout=5)
    a.send_pcm(np.zeros(320, np.int16))
    dtmf = asyncio.create_task(a.send_dtmf("123"))
    await asyncio.sleep(0.05)
    assert len(open_fds() - before_fds) >= 4
    await a.close()
    await b.close()
    await asyncio.gather(dtmf, return_exceptions=True)
    await a.close()  # idempotent
    assert open_fds() - before_fds == set()
    assert asyncio.all_tasks() == before_tasks
    with pytest.raises(RuntimeError):
        await a.send_dtmf("1")


async def test_port_pairs_are_even_odd_and_exhaustion_is_reported():
    sessions = [await RtpSession.open(HOST, (43000, 43005)) for _ in range(3)]
    ports = sorted(s.local_port for s in sessions)
    assert ports == [43000, 43002, 43004]
    assert all(s.local_rtcp_port == s.local_port + 1 for s in sessions)
    with pytest.raises(RtpPortsExhaustedError, match="43000-43005"):
        await RtpSession.open(HOST, (43000, 43005))
    await sessions[1].close()
    again = await RtpSession.open(HOST, (43000, 43005))
    assert again.local_port == 43002
    for session in (sessions[0], sessions[2], again):
        await session.close()


@pytest.mark.parametrize("codec", ["PCMU", "G729"])
async def test_read_pcm_always_yields_a_frame(codec):
    a, b = await connected_pair(codec)
    assert np.array_equal(b.read_pcm(), np.zeros(160, np.int16))  # nothing received yet
    recorder = PcmRecorder(b)
    await asyncio.gather(play_pcm(a, tone(1000, 8000, 0.2)), recorder.record(0.6))
    frames = recorder.frames
    assert len(frames) == 30
    assert all(f.shape == (160,) and f.dtype == np.int16 for f in frames)
    assert rms(np.concatenate(frames[:12])) > 3000
    assert rms(np.concatenate(frames[-5:])) == 0  # concealment faded after the stream stopped
    await a.close()
    await b.close()


async def test_new_audio_ssrc_resets_playout_but_events_under_their_own_ssrc_do_not():
    phone = RawPeer()
    session = await RtpSession.open(HOST, PORTS)
    session.start(phone.address, "PCMU")
    local = (HOST, session.local_port)
    recorder = PcmRecorder(session)
    recording = asyncio.create_task(recorder.record(0.7))
    first_source, second_source = RtpPacketizer(0, ssrc=1), RtpPacketizer(0, ssrc=3)
    events = RtpPacketizer(101, ssrc=2)  # a gateway that gives events their own SSRC
    silence = b"\xff" * 160
    tick = 0
    async for _ in paced_ticks(0.02, 25):
        if tick < 12:
            phone.send(bytes(first_source.build(silence, tick * 160)), local)
        else:  # the call was transferred: a new source with its own clock
            phone.send(bytes(second_source.build(silence, 90000 + tick * 160)), local)
        if tick in (4, 5, 6):
            event = bytes.fromhex("050a00a0" if tick < 6 else "058a00f0")
            phone.send(bytes(events.build(event, 400)), local)
        tick += 1
    await recording
    stats = session.stats
    assert stats.ssrc_changes == 1
    assert [d.digit for d in (await _drain(session.received_digits))] == ["5"]
    assert session.reception.ssrc == 3
    assert session.reception.packets_received == 13
    assert stats.jitter.resyncs == 1
    await session.close()
    phone.close()


async def _drain(queue):
    items = []
    while not queue.empty():
        items.append(queue.get_nowait())
    return items


async def test_relayed_frames_follow_the_peers_ptime_and_a_codec_change():
    peer = RawPeer()
    session = await RtpSession.open(HOST, PORTS)
    try:
        session.start(peer.address, "PCMU", ptime=30)
        for n in range(6):  # six 20 ms frames as the bridge relays them
            session.relay_payload(bytes([0x10 + n]) * 160, None if n == 0 else 160)
        packets = [parse_rtp(data) for data, _ in await peer.receive_all(0.3)]
        assert [len(p.payload) for p in packets] == [240, 240, 240, 240]
        assert [p.timestamp - packets[0].timestamp for p in packets] == [0, 240, 480, 720]
        assert {p.payload_type for p in packets} == {0}
        # A re-INVITE moved the call to PCMA at 20 ms: payload type, size and marker change,
        # the stream (SSRC, sequence numbers) goes on.
        session.change_codec("PCMA", ptime=20)
        session.relay_payload(b"\xd5" * 160, None)
        session.relay_payload(b"\xd5" * 160, 160)
        after = [parse_rtp(data) for data, _ in await peer.receive_all(0.3)]
        assert [(p.payload_type, len(p.payload), p.marker) for p in after] == [
            (8, 160, True),
            (8, 160, False),
        ]
        assert after[0].ssrc == packets[0].ssrc
        assert after[0].sequence_number == (packets[-1].sequence_number + 1) & 0xFFFF
    finally:
        await session.close()
        peer.close()


async def test_g729_lost_and_malformed_packets_are_concealed_in_the_tone():
    phone = RawPeer()
    session = await RtpSession.open(HOST, PORTS)
    session.start(phone.address, "G729")
    local = (HOST, session.local_port)
    encoder = G729Encoder(160)
    writer = RtpPacketizer(18, ssrc=7)
    signal = tone(1000, 8000, 0.6)
    recorder = PcmRecorder(session)

    async def send():
        k = -1
        async for _ in paced_ticks(0.02, 30):
            k += 1
            payload = encoder.encode(signal[k * 160 : (k + 1) * 160])
            if k == 12:
                continue  # lost
            if k == 15:
                payload = payload[:3]  # a length RFC 3551 does not allow
            phone.send(bytes(writer.build(payload, k * 160)), local)

    await asyncio.gather(send(), recorder.record(0.7))
    frames = recorder.frames
    assert all(f.shape == (160,) and f.dtype == np.int16 for f in frames)
    heard = np.concatenate(frames)
    assert abs(dominant_frequency(heard, 8000) - 1000) <= 5
    assert session.stats.jitter.received == 29  # one lost on the way, one malformed kept
    await session.close()
    phone.close()
