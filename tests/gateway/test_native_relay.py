"""The path in C (gateway.media.native_relay): a stock aiortc peer as the browser (G.711,
or Opus, which the relay transcodes to and from the phone's G.711), a `WebRtcLeg` and an
`RtpSession` as the gateway's legs, and another `RtpSession` as the phone, all on loopback.
What each end hears is checked by its frequency, and the hand-overs between the Python and
the C path (engaging, a telephone event, a lost frame, mute) by the sequence numbers and
counters each end's receiver keeps: nothing lost, nothing repeated.

Real sockets and real time: each test waits (with a generous bound) for what it checks,
never for a fixed time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack
from aiortc.rtp import RtpPacket, is_rtcp

from gateway.config.legs import BrowserLegSettings
from gateway.media.bridge import MediaBridge, RtpLeg
from gateway.media.native_relay import NativeRelay
from gateway.media.transcoder import Transcoder, audio_codec
from gateway.media.webrtc_leg import WebRtcLeg, use_host_addresses
from sip_bridge import RtpSession
from sip_bridge.rtp.g711 import ulaw_decode, ulaw_encode
from tests.sip_bridge.rtp.tones import dominant_frequency, rms

HOST = "127.0.0.1"
PORTS = (43000, 43999)
BROWSER_HZ = 700
PHONE_HZ = 1100


def test_the_c_relay_is_built():
    assert NativeRelay.available(), "gateway/media/_g711relay.c is not built: run make"


class Tone(AudioStreamTrack):
    """aiortc's own paced audio track, playing a tone instead of silence."""

    def __init__(self, hz: float) -> None:
        super().__init__()
        self._hz = hz

    async def recv(self):
        frame = await super().recv()
        n = np.arange(frame.pts, frame.pts + frame.samples)
        pcm = (6000 * np.sin(2 * np.pi * self._hz * n / 8000)).astype(np.int16)
        frame.planes[0].update(pcm.tobytes())
        return frame


class Call:
    """A browser, the gateway's two legs bridged with the native relay, and a phone.
    `browser_codec`: what the browser leg answers with (the phone speaks PCMU)."""

    browser: RTCPeerConnection
    leg: WebRtcLeg
    gateway_rtp: RtpSession
    phone: RtpSession
    bridge: MediaBridge

    def __init__(self, browser_codec: str = "pcmu") -> None:
        self.browser_codec = browser_codec
        self.phone_gaps = 0  # frames the phone is to leave out of its timestamps (a loss)
        self.browser_drops = 0  # packets of the browser's lost on their way (not sent)
        self.heard_by_phone: list[bytes] = []  # payloads, in arrival order
        self.phone_sequences: list[int] = []
        self.heard_by_browser: list[np.ndarray] = []
        self.phone_said: list[bytes] = []  # the phone's payloads, as sent
        self.browser_said: list[bytes] = []  # the browser's, before SRTP
        self.browser_got: list[tuple[int, bytes]] = []  # (sequence, payload), after SRTP
        self._tasks: list[asyncio.Task] = []

    async def open(self) -> None:
        use_host_addresses([HOST])
        self.browser = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.browser.addTrack(Tone(BROWSER_HZ))
        received: asyncio.Future = asyncio.get_running_loop().create_future()
        self.browser.on("track", received.set_result)
        self.leg = WebRtcLeg(BrowserLegSettings(codecs=(self.browser_codec,)))
        await self.browser.setLocalDescription(await self.browser.createOffer())
        answer = await self.leg.answer(self.browser.localDescription.sdp)
        await self.browser.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        self._tap(self.browser.getTransceivers()[0])
        await asyncio.wait_for(self.leg.connected.wait(), 10)
        track = await asyncio.wait_for(received, 10)
        self.gateway_rtp = await RtpSession.open(HOST, PORTS)
        self.phone = await RtpSession.open(HOST, PORTS)
        self.gateway_rtp.start((HOST, self.phone.local_port), "PCMU")
        self.phone.start((HOST, self.gateway_rtp.local_port), "PCMU")
        self.phone.on_audio_packet = self._phone_heard
        self.bridge = MediaBridge(
            self.leg, RtpLeg(self.gateway_rtp, audio_codec("PCMU")), native=True
        )
        self.bridge.start()
        self._tasks = [
            asyncio.create_task(self._phone_talks()),
            asyncio.create_task(self._browser_listens(track)),
        ]

    def _tap(self, transceiver) -> None:
        """Keep the payloads the browser sends and receives (aiortc's own hooks)."""
        transport, receiver = transceiver.sender.transport, transceiver.receiver
        send, handle = transport._send_rtp, receiver._handle_rtp_packet

        async def sent(data: bytes) -> None:  # (aiortc sends its RTCP through here too)
            if not is_rtcp(data):
                if self.browser_drops > 0:
                    self.browser_drops -= 1
                    return
                self.browser_said.append(RtpPacket.parse(data).payload)
            await send(data)

        async def got(packet: RtpPacket, arrival_time_ms: int) -> None:
            self.browser_got.append((packet.sequence_number, packet.payload))
            await handle(packet, arrival_time_ms)

        transport._send_rtp = sent
        receiver._handle_rtp_packet = got

    def _phone_heard(self, payload: memoryview, timestamp: int) -> None:
        self.heard_by_phone.append(bytes(payload))

    async def _phone_talks(self) -> None:
        loop = asyncio.get_running_loop()
        start, k = loop.time(), 0
        while True:
            n = np.arange(k * 160, (k + 1) * 160)
            pcm = (6000 * np.sin(2 * np.pi * PHONE_HZ * n / 8000)).astype(np.int16)
            gap = self.phone_gaps > 0  # the next packet comes two frames on
            self.phone_gaps -= gap
            self.phone_said.append(ulaw_encode(pcm))
            self.phone.send_payload(self.phone_said[-1], 320 if gap else None)
            k += 1
            await asyncio.sleep(max(0.0, start + 0.02 * k - loop.time()))

    async def _browser_listens(self, track) -> None:
        while True:
            frame = await track.recv()
            pcm = frame.to_ndarray().reshape(-1)
            if frame.layout.name == "stereo":  # aiortc's Opus decoder: interleaved
                pcm = pcm[::2]
            if frame.sample_rate != 8000:
                pcm = pcm[:: frame.sample_rate // 8000]  # (a tone well below 4 kHz)
            self.heard_by_browser.append(pcm.copy())

    async def until(self, condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
        for _ in range(int(timeout / 0.02)):
            if condition():
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"not within {timeout} s: {what}")

    async def hear_each_way(self, frames: int, settle: int = 0) -> tuple[float, float]:
        """Waits until each end heard `frames` more frames: the frequencies the phone and
        the browser heard in them (the browser's after `settle` frames: its jitter buffer
        settling)."""
        phone_from, browser_from = len(self.heard_by_phone), len(self.heard_by_browser)
        await self.until(
            lambda: (
                len(self.heard_by_phone) - phone_from >= frames
                and len(self.heard_by_browser) - browser_from >= frames
            ),
            f"{frames} frames of audio each way",
        )
        return (
            phone_heard_hz(self.heard_by_phone[phone_from:]),
            browser_heard_hz(self.heard_by_browser[browser_from + settle :]),
        )

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.bridge.stop()
        await self.leg.close()
        await self.browser.close()
        await self.gateway_rtp.close()
        await self.phone.close()


@pytest.fixture
async def call(request):
    """A G.711 call; `@pytest.mark.parametrize("call", [...], indirect=True)` for Opus."""
    c = Call(getattr(request, "param", "pcmu"))
    try:
        await c.open()
        yield c
    finally:
        await c.close()


def phone_heard_hz(payloads: list[bytes]) -> float:
    return dominant_frequency(np.concatenate([ulaw_decode(p) for p in payloads]), 8000)


def browser_heard_hz(frames: list[np.ndarray]) -> float:
    return dominant_frequency(np.concatenate(frames), 8000)


def phone_losses(call: Call) -> int:
    reception = call.phone._reception
    assert reception is not None
    return reception.cumulative_lost


BOTH = pytest.mark.parametrize("call", ["pcmu", "opus"], indirect=True)
OPUS = pytest.mark.parametrize("call", ["opus"], indirect=True)


@BOTH
async def test_a_steady_call_runs_in_c_and_both_ends_hear_each_other(call: Call):
    native = call.bridge.native
    assert native is not None
    await call.until(lambda: native.engaged, "the relay engages")
    relay = native._relay
    frames_from = relay.a_frames, relay.b_frames
    phone_hz, browser_hz = await call.hear_each_way(100, settle=10)  # two seconds
    assert native.engaged
    assert relay.transcoding == (call.browser_codec == "opus")
    # The frames of those two seconds went through C, both ways.
    assert relay.a_frames - frames_from[0] >= 90
    assert relay.b_frames - frames_from[1] >= 90
    assert abs(phone_hz - BROWSER_HZ) < 10
    assert abs(browser_hz - PHONE_HZ) < 10
    # The hand-over from Python to C lost or repeated nothing: the phone's receiver saw
    # one sequence, and the browser's counted every packet we sent.
    assert phone_losses(call) == 0
    await call.until(lambda: native._relay.br_packets_sent > 0, "sent to the browser")
    native._copy_back()
    channel = call.leg._channel
    assert channel is not None and channel.packets_sent == relay.br_packets_sent
    stats = await call.browser.getStats()
    inbound = next(s for s in stats.values() if s.type == "inbound-rtp")
    assert inbound.packetsLost == 0


@BOTH
async def test_a_telephone_event_goes_through_python_then_c_again(call: Call):
    native = call.bridge.native
    assert native is not None
    await call.until(lambda: native.engaged, "the relay engages")
    await call.phone.send_dtmf("5")
    digit = await asyncio.wait_for(call.gateway_rtp.received_digits.get(), 10)
    assert digit.digit == "5"
    assert native.yields.get(3, 0) >= 1  # the event's first packet: not audio
    await call.until(lambda: native.engaged and native.engagements >= 2, "engaged again")
    heard_from = len(call.heard_by_phone)
    await call.until(lambda: len(call.heard_by_phone) - heard_from >= 50, "a second of audio")
    assert abs(phone_heard_hz(call.heard_by_phone[heard_from:]) - BROWSER_HZ) < 10
    assert phone_losses(call) == 0


async def test_mute_takes_the_path_back_and_unmute_gives_it_to_c_again(call: Call):
    native = call.bridge.native
    assert native is not None
    await call.until(lambda: native.engaged, "the relay engages")
    call.bridge.a_to_b.muted = True
    assert not native.engaged  # at once, before the next datagram
    muted_from = len(call.heard_by_phone)
    await call.until(lambda: len(call.heard_by_phone) - muted_from >= 100, "two muted seconds")
    assert not native.engaged
    assert rms(np.concatenate([ulaw_decode(p) for p in call.heard_by_phone[muted_from:]])) < 50
    engagements = native.engagements
    call.bridge.a_to_b.muted = False
    await call.until(lambda: native.engagements > engagements, "engaged again after unmute")
    heard_from = len(call.heard_by_phone)
    await call.until(lambda: len(call.heard_by_phone) - heard_from >= 50, "a second of audio")
    assert abs(phone_heard_hz(call.heard_by_phone[heard_from:]) - BROWSER_HZ) < 10
    assert phone_losses(call) == 0


async def test_hold_takes_the_path_back(call: Call):
    native = call.bridge.native
    assert native is not None
    await call.until(lambda: native.engaged, "the relay engages")
    # The phone's re-INVITE says it only sends: we send it nothing until it resumes.
    call.gateway_rtp.update_remote((HOST, call.phone.local_port), remote_direction="sendonly")
    assert not native.engaged
    held_from, browser_from = len(call.heard_by_phone), len(call.heard_by_browser)
    await call.until(
        lambda: len(call.heard_by_browser) - browser_from >= 100, "two seconds of the phone"
    )
    assert len(call.heard_by_phone) - held_from <= 2  # (at most what was on its way)
    assert not native.engaged


async def test_stopping_the_bridge_gives_every_socket_its_own_handler_back(call: Call):
    native = call.bridge.native
    assert native is not None
    await call.until(lambda: native.engaged, "the relay engages")
    protocol, endpoint = native._protocol, native._endpoint
    call.bridge.stop()
    assert not native.engaged
    assert "datagram_received" not in vars(endpoint)
    assert protocol.datagram_received != native._relay.from_browser
    assert call.gateway_rtp.native_guard is None and call.leg.native_guard is None


def python_transcoder(source: str, target: str) -> Transcoder:
    """A transcoder that takes the Python steps only (not even its own C frame step)."""
    transcoder = Transcoder(audio_codec(source), audio_codec(target))
    transcoder._native = None
    return transcoder


@OPUS
async def test_the_c_path_transcodes_to_the_same_bytes_as_the_python_steps(call: Call):
    """Python (the first second), then C: what each end got is what the Python transcoder
    makes of what the other end sent, byte for byte."""
    native = call.bridge.native
    assert native is not None
    await call.until(lambda: native.engaged, "the relay engages")
    await call.hear_each_way(50)
    assert native.engaged and native._relay.a_frames >= 40 and native._relay.b_frames >= 40
    assert phone_losses(call) == 0
    # The phone's G.711, encoded to Opus: the browser got one stream (sequence numbers
    # from its first packet) out of a transcoder that saw every frame the phone sent.
    said, got = list(call.phone_said), list(call.browser_got)
    to_browser = python_transcoder("PCMU", "opus")
    expected = [to_browser.convert(p)[0] for p in said]
    first, (sequence, _) = expected.index(got[0][1]), got[0]
    for at, payload in got:
        assert payload == expected[first + ((at - sequence) & 0xFFFF)], at
    # The browser's Opus, decoded to G.711: the bridge joined its stream somewhere; from
    # there every frame the phone heard is what a fresh transcoder makes of it.
    said, heard = list(call.browser_said), list(call.heard_by_phone)
    for start in range(len(said) - len(heard) + 1):
        to_phone = python_transcoder("opus", "PCMU")
        if [to_phone.convert(p)[0] for p in said[start : start + 3]] == heard[:3]:
            break
    else:
        raise AssertionError("no frame the browser sent starts what the phone heard")
    for k, payload in enumerate(said[start + 3 : start + len(heard)], start=3):
        assert to_phone.convert(payload) == [heard[k]], k


@OPUS
@pytest.mark.parametrize("lost_by", ["phone", "browser"])
async def test_a_lost_frame_is_concealed_in_python_then_c_transcodes_again(
    call: Call, lost_by: str
):
    native = call.bridge.native
    assert native is not None
    await call.until(lambda: native.engaged, "the relay engages")
    if lost_by == "phone":
        call.phone_gaps = 1  # the phone's timestamps skip a frame: one lost on its way
    else:
        call.browser_drops = 1  # one of the browser's packets lost on its way
    await call.until(lambda: native.yields.get(8, 0) >= 1, "the relay yields on the loss")
    await call.until(lambda: native.engaged and native.engagements >= 2, "engaged again")
    relay = native._relay
    # Towards the end that did not lose the frame: frames transcoded in C, what it heard.
    frames = (lambda: relay.b_frames) if lost_by == "phone" else (lambda: relay.a_frames)
    heard = call.heard_by_browser if lost_by == "phone" else call.heard_by_phone
    frames_from, heard_from = frames(), len(heard)
    await call.until(lambda: len(heard) - heard_from >= 50, "a second")
    assert frames() - frames_from >= 40  # transcoded in C again
    if lost_by == "phone":
        assert abs(browser_heard_hz(call.heard_by_browser[heard_from:]) - PHONE_HZ) < 10
        stats = await call.browser.getStats()
        inbound = next(s for s in stats.values() if s.type == "inbound-rtp")
        assert inbound.packetsLost == 0  # Python filled the gap with a concealed frame
    else:
        assert abs(phone_heard_hz(call.heard_by_phone[heard_from:]) - BROWSER_HZ) < 10
    assert phone_losses(call) == 0  # (the phone's stream has no gap either way)


@BOTH
async def test_without_native_relay_the_python_path_carries_the_call(call: Call):
    call.bridge.stop()
    call.bridge = MediaBridge(call.leg, RtpLeg(call.gateway_rtp, audio_codec("PCMU")))
    call.bridge.start()  # native=False: `[media] native_relay = false`
    assert call.bridge.native is None
    phone_hz, browser_hz = await call.hear_each_way(100, settle=10)
    assert abs(phone_hz - BROWSER_HZ) < 10
    assert abs(browser_hz - PHONE_HZ) < 10
    assert call.gateway_rtp.native_guard is None
    assert call.bridge.relayed_frames()[0] == 0  # none in C


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_failing_hand_over_leaves_the_call_to_python_and_the_sockets_open(call: Call):
    native = call.bridge.native
    assert native is not None
    await call.until(lambda: native.engaged, "the relay engages")

    def broken(reason: int) -> None:
        raise RuntimeError("a bug in the hand-over")

    native._relay.on_yield = broken
    await call.phone.send_dtmf("7")  # its first packet makes the relay yield
    await call.until(lambda: native._relay.yields >= 1, "the relay yields")
    assert not native.engaged
    # The exception stayed in the relay: both sockets still carry the call, in Python.
    phone_hz, browser_hz = await call.hear_each_way(50)
    assert abs(phone_hz - BROWSER_HZ) < 10
    assert abs(browser_hz - PHONE_HZ) < 10
