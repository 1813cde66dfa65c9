"""`SrtpAudioChannel` against a stock aiortc peer: what it sends, aiortc's own receiver
decodes (a G.711 tone, checked by frequency); what aiortc's own sender sends, it receives
(payloads and timestamps in order). Both peers run here, over loopback ICE and DTLS-SRTP."""

from __future__ import annotations

import asyncio
import datetime
import fractions
import gc
import itertools
import re
import struct
import weakref
from types import SimpleNamespace

import av
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpsender import RTCRtpSender
from OpenSSL import SSL
from pylibsrtp import Policy, Session

from gateway.config.legs import BrowserLegSettings
from gateway.media.dtls_certificate import worker_certificate
from gateway.media.srtp_channel import SrtpAudioChannel
from gateway.media.webrtc_leg import WebRtcLeg, use_host_addresses
from sip_bridge.rtp.g711 import ulaw_encode

FRAMES = 60


def tone_frames(hz: float = 700) -> list[bytes]:
    t = np.arange(160 * FRAMES) / 8000
    pcm = (np.sin(2 * np.pi * hz * t) * 8000).astype(np.int16)
    return [ulaw_encode(pcm[i * 160 : (i + 1) * 160]) for i in range(FRAMES)]


class NumberedFrames(MediaStreamTrack):
    """aiortc's normal sending path: pre-encoded PCMU frames, each carrying its number."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.index = 0

    async def recv(self) -> av.Packet:
        if self.index >= FRAMES:
            await asyncio.sleep(3600)
            raise MediaStreamError
        await asyncio.sleep(0.02)
        packet = av.Packet(bytes([self.index]) * 160)
        packet.pts = self.index * 160
        packet.time_base = fractions.Fraction(1, 8000)
        self.index += 1
        return packet


async def peers() -> tuple[RTCPeerConnection, RTCPeerConnection]:
    use_host_addresses(["127.0.0.1"])
    ours = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    theirs = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    return ours, theirs


async def negotiate(offerer: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await offerer.setRemoteDescription(answerer.localDescription)
    for _ in range(500):
        if offerer.connectionState == answerer.connectionState == "connected":
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not connected: {offerer.connectionState}/{answerer.connectionState}")


def pcmu_payload_type(pc: RTCPeerConnection) -> int:
    (transceiver,) = pc.getTransceivers()
    return next(c.payloadType for c in transceiver._codecs if c.mimeType == "audio/PCMU")


async def test_what_the_channel_sends_stock_aiortc_decodes():
    ours, theirs = await peers()
    try:
        transceiver = ours.addTransceiver("audio", direction="sendonly")
        transceiver.setCodecPreferences(pcmu_only())
        received = asyncio.get_running_loop().create_future()
        theirs.on("track", lambda track: received.set_result(track))
        await negotiate(ours, theirs)
        channel = SrtpAudioChannel(transceiver, pcmu_payload_type(ours), None)
        assert channel.attach()
        track = await asyncio.wait_for(received, 5)
        frames = tone_frames()

        async def send() -> None:
            for k, payload in enumerate(frames):
                channel.send(payload, 1000 + 160 * k, marker=k == 0)
                await asyncio.sleep(0.02)

        sender = asyncio.create_task(send())
        pcm = []
        for _ in range(40):
            frame = await asyncio.wait_for(track.recv(), 5)
            pcm.append(frame.to_ndarray().reshape(-1))
        await sender
        audio = np.concatenate(pcm[10:]).astype(np.float64)
        rate = frame.sample_rate
        spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
        assert abs(np.argmax(spectrum) * rate / len(audio) - 700) < 10
        assert channel.packets_sent == FRAMES
    finally:
        await ours.close()
        await theirs.close()


def pcmu_only():
    return [c for c in RTCRtpSender.getCapabilities("audio").codecs if c.mimeType == "audio/PCMU"]


async def test_what_stock_aiortc_sends_the_channel_receives_in_order():
    ours, theirs = await peers()
    try:
        transceiver = ours.addTransceiver("audio", direction="recvonly")
        transceiver.setCodecPreferences(pcmu_only())
        theirs_track = NumberedFrames()
        await ours.setLocalDescription(await ours.createOffer())
        await theirs.setRemoteDescription(ours.localDescription)
        (their_transceiver,) = theirs.getTransceivers()
        their_transceiver.sender.replaceTrack(theirs_track)
        their_transceiver.direction = "sendonly"
        await theirs.setLocalDescription(await theirs.createAnswer())
        await ours.setRemoteDescription(theirs.localDescription)
        got: list[tuple[int, int]] = []
        channel = SrtpAudioChannel(
            transceiver,
            pcmu_payload_type(ours),
            lambda payload, timestamp: got.append((payload[0], timestamp)),
        )
        for _ in range(500):
            if ours.connectionState == "connected" and channel.attach():
                break
            await asyncio.sleep(0.01)
        assert channel.attached
        for _ in range(300):
            if len(got) >= 40:
                break
            await asyncio.sleep(0.02)
        assert len(got) >= 40, got
        numbers = [n for n, _ in got]
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
        steps = {(b[1] - a[1]) & 0xFFFFFFFF for a, b in itertools.pairwise(got)}
        assert steps == {160}
        # What the receiver reports say of the browser's stream: all of it, none lost.
        reception = channel.reception
        assert reception.packets_received == reception.packets_expected >= len(got)
        assert reception.packets_lost == 0
    finally:
        await ours.close()
        await theirs.close()


async def attached_sender(
    ours: RTCPeerConnection, theirs: RTCPeerConnection
) -> tuple[SrtpAudioChannel, RTCRtpTransceiver]:
    transceiver = ours.addTransceiver("audio", direction="sendonly")
    transceiver.setCodecPreferences(pcmu_only())
    await negotiate(ours, theirs)
    channel = SrtpAudioChannel(transceiver, pcmu_payload_type(ours), None)
    assert channel.attach()
    return channel, transceiver


async def test_a_payload_too_big_for_one_datagram_is_dropped_not_raised():
    # A phone's RTP relayed untouched (same codec both legs) can be any size.
    ours, theirs = await peers()
    try:
        channel, _ = await attached_sender(ours, theirs)
        assert channel.send(bytes(1500), 1000) is False
        assert channel.send_drops == 1
        assert channel.send(bytes(160), 1160)
        assert channel.packets_sent == 1
    finally:
        await ours.close()
        await theirs.close()


async def test_the_channel_keeps_alive_the_srtp_sessions_whose_contexts_it_uses():
    ours, theirs = await peers()
    try:
        channel, transceiver = await attached_sender(ours, theirs)
        assert channel.send(bytes(160), 1000)
    finally:
        await ours.close()
        await theirs.close()
    dtls = transceiver.sender.transport
    sessions = [weakref.ref(dtls._tx_srtp), weakref.ref(dtls._rx_srtp)]
    dtls._tx_srtp = dtls._rx_srtp = None  # aiortc lets go of them (libsrtp frees on collect)
    gc.collect()
    assert all(session() is not None for session in sessions)  # channel's pointers still valid


async def test_detach_gives_the_sockets_their_own_datagram_received_back():
    ours, theirs = await peers()
    try:
        channel, transceiver = await attached_sender(ours, theirs)
        protocols = list(transceiver.sender.transport.transport._connection._protocols)
        assert protocols
        assert all("datagram_received" in vars(p) for p in protocols)
        channel.detach()
        for protocol in protocols:
            assert "datagram_received" not in vars(protocol)  # no bound method on itself
            assert protocol.datagram_received.__func__ is type(protocol).datagram_received
    finally:
        await ours.close()
        await theirs.close()


async def test_an_offer_with_an_empty_mid_still_connects_over_the_channel():
    use_host_addresses(["127.0.0.1"])
    browser = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    leg = WebRtcLeg(BrowserLegSettings(codecs=("pcmu",)))
    try:
        browser.addTransceiver("audio")
        await browser.setLocalDescription(await browser.createOffer())
        offer = browser.localDescription.sdp
        assert "a=mid:0\r\n" in offer
        offer = offer.replace("a=mid:0\r\n", "a=mid:\r\n").replace("BUNDLE 0", "BUNDLE ")
        answer = await leg.answer(offer)
        # aiortc answers without a mid line; give the browser back the one it offered.
        answer = answer.replace("a=rtcp-mux\r\n", "a=rtcp-mux\r\na=mid:0\r\n", 1)
        answer = answer.replace("BUNDLE \r\n", "BUNDLE 0\r\n")
        await browser.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        await asyncio.wait_for(leg.connected.wait(), 5)
        assert leg._channel.attached  # no MID extension, no exception: our path, not aiortc's
    finally:
        await leg.close()
        await browser.close()


@pytest.mark.parametrize("narrowband_phones", [False, True])
async def test_opus_is_answered_for_narrowband_only_when_every_phone_is(narrowband_phones: bool):
    use_host_addresses(["127.0.0.1"])
    browser = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    leg = WebRtcLeg(BrowserLegSettings(codecs=("opus",), narrowband_phones=narrowband_phones))
    try:
        browser.addTransceiver("audio")
        await browser.setLocalDescription(await browser.createOffer())
        answer = await leg.answer(browser.localDescription.sdp)
        (payload_type,) = re.findall(r"^a=rtpmap:(\d+) opus/48000/2\r$", answer, re.M)
        fmtp = re.findall(rf"^a=fmtp:{payload_type} (.*)\r$", answer, re.M)
        expected = ["maxplaybackrate=8000;sprop-maxcapturerate=8000"]
        assert fmtp == (expected if narrowband_phones else [])
    finally:
        await leg.close()
        await browser.close()


def srtp_pair() -> tuple[Session, Session]:
    key = bytes(range(30))  # AES_CM_128_HMAC_SHA1_80: 16-byte key, 14-byte salt
    sender = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_OUTBOUND))
    receiver = Session(Policy(key=key, ssrc_type=Policy.SSRC_ANY_INBOUND))
    return sender, receiver


def test_reception_counts_losses_a_wrap_and_a_new_source_as_rtcp_reports_them():
    """The browser's stream as RTCP receiver reports describe it (RFC 3550 A.1/A.3):
    packets through the channel's receive path, SRTP and all, with two lost, the
    sequence number wrapping, one arriving late, then a new SSRC."""
    sender, receiver = srtp_pair()
    heard: list[int] = []
    transceiver = SimpleNamespace(receiver=SimpleNamespace())
    channel = SrtpAudioChannel(transceiver, 0, lambda payload, ts: heard.append(ts))
    channel._rx_srtp = receiver
    channel._rx_session = receiver._srtp[0]

    def arrive(sequence: int, ssrc: int = 1234) -> None:
        header = struct.pack("!BBHII", 0x80, 0, sequence, 160 * sequence, ssrc)
        channel._receive(sender.protect(header + bytes(160)))

    for sequence in [65530, 65531, 65533, 65534, 65535, 0, 1, 3, 4, 2]:  # 65532, 2 late
        arrive(sequence)
    reception = channel.reception
    assert reception.packets_received == 10 == len(heard)
    assert reception.packets_expected == 11  # 65530 .. 4 across the wrap
    assert reception.packets_lost == 1  # 65532 never came; 2 came late
    assert reception.cycles == 0x10000
    for sequence in [100, 101]:
        arrive(sequence, ssrc=99)  # a new stream: counted afresh
    assert channel.reception is not reception
    assert (channel.reception.packets_received, channel.reception.packets_lost) == (2, 0)


async def test_calls_share_the_workers_dtls_certificate_and_context():
    """Two calls at once answer with the worker's one certificate, handshake over its one
    OpenSSL context (no session cache) and carry audio."""
    use_host_addresses(["127.0.0.1"])
    browsers = [RTCPeerConnection(RTCConfiguration(iceServers=[])) for _ in range(2)]
    legs = [WebRtcLeg(BrowserLegSettings(codecs=("pcmu",))) for _ in range(2)]
    received = [asyncio.get_running_loop().create_future() for _ in range(2)]
    try:
        for browser, leg, heard in zip(browsers, legs, received, strict=True):
            browser.addTransceiver("audio")
            browser.on("track", lambda track, heard=heard: heard.set_result(track))
            await browser.setLocalDescription(await browser.createOffer())
            answer = await leg.answer(browser.localDescription.sdp)
            await browser.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        certificate = worker_certificate()
        fingerprint = certificate.getFingerprints()[0].value
        assert all(f"a=fingerprint:sha-256 {fingerprint}" in leg.pc.localDescription.sdp
                   for leg in legs)  # fmt: skip
        for leg in legs:
            await asyncio.wait_for(leg.connected.wait(), 5)
            assert leg._channel.attached
        (context,) = certificate._contexts.values()
        assert context.get_session_cache_mode() == SSL.SESS_CACHE_OFF
        for leg in legs:
            assert leg.pc.getTransceivers()[0].receiver.transport._ssl.get_context() is context

        async def send(leg: WebRtcLeg) -> None:
            for payload in tone_frames():
                leg.send(payload)
                await asyncio.sleep(0.02)

        senders = [asyncio.create_task(send(leg)) for leg in legs]
        for heard in received:
            track = await asyncio.wait_for(heard, 5)
            frames = [await asyncio.wait_for(track.recv(), 5) for _ in range(30)]
            audio = np.concatenate([f.to_ndarray().reshape(-1) for f in frames[10:]])
            spectrum = np.abs(np.fft.rfft(audio.astype(np.float64) * np.hanning(len(audio))))
            assert abs(np.argmax(spectrum) * frames[0].sample_rate / len(audio) - 700) < 10
        await asyncio.gather(*senders)
    finally:
        for leg in legs:
            await leg.close()
        for browser in browsers:
            await browser.close()


def test_the_worker_certificate_is_renewed_a_day_before_it_expires():
    now = datetime.datetime.now(datetime.UTC)
    first = worker_certificate(now)
    assert worker_certificate(now + datetime.timedelta(days=28)) is first
    renewed = worker_certificate(first.expires - datetime.timedelta(hours=23))
    assert renewed is not first and renewed.expires > first.expires
