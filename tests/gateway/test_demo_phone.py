"""The built-in demo phone, called over real SIP and RTP on loopback: by the SIP stack of
`sip_bridge` (as the gateway calls it), by SIPp (hold and resume, INVITE without an offer)
and by baresip. Audio is judged by frequency: the echo of our tone, the 880 Hz beep."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import numpy as np
import pytest

from gateway.demo_phone import BEEP_HZ, BEEP_SECONDS, DemoPhone
from sip_bridge import MessageReceived, SipEndpoint, UserAgentConfig
from sip_bridge.asyncio.player import PcmRecorder
from sip_bridge.events import CallAnswered, CallRinging, EndReason
from sip_bridge.rtp.packet import RtpPacket, parse_rtp
from tests.sip_bridge.sip_call import answered, caller, exchange_audio
from tests.support.audio import assert_tone, assert_wav_has_tone, tone, ulaw_decode
from tests.support.ports import free_port_block, free_rtp_port_pair

HOST = "127.0.0.1"
RATES = {"PCMU": 8000, "PCMA": 8000, "G722": 16000}

# The phone's ringing, call limit, echo pacing and beeps, and the caller's jitter buffer and
# recorder, all run on the event loop's clock: looptime's fake one here, which jumps to the
# next timer (loopback datagrams arrive as they are sent). A test hears exactly what the
# schedule says, however busy the machine. Tests with SIPp or baresip (processes on real
# time) opt out.
pytestmark = pytest.mark.looptime
REAL_TIME = pytest.mark.looptime(False)


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture
async def start_phone() -> AsyncIterator[Callable[..., Awaitable[DemoPhone]]]:
    """Start demo phones on a free SIP port and RTP ports of their own; closed at teardown."""
    phones: list[DemoPhone] = []

    async def start(pairs: int = 8, **options: object) -> DemoPhone:
        options.setdefault("ring_seconds", 0.2)
        first = free_port_block(2 * pairs, align=2)
        phone = await DemoPhone.start((HOST, 0), (first, first + 2 * pairs - 1), **options)
        phones.append(phone)
        return phone

    yield start
    for phone in phones:
        await phone.close()


def phone_tasks() -> list[asyncio.Task]:
    """Tasks the demo phone started (its tasks are named "demo phone ...")."""
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("demo phone")]


async def eventually(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def assert_all_freed(phone: DemoPhone) -> None:
    await eventually(lambda: phone.active_calls == 0 and not phone_tasks())


def assert_ports_free(first: int, last: int) -> None:
    """Bind every port of the range (UDP): fails if any socket of a call is still open."""
    for port in range(first, last + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((HOST, port))


def level_at(samples: np.ndarray, rate: int, frequency: float) -> float:
    """Amplitude (fraction of full scale) of `frequency` in `samples`, Hann-windowed."""
    x = samples.astype(np.float64) / 32768
    window = np.hanning(len(x))
    n = np.arange(len(x))
    return 2 * abs(np.dot(x * window, np.exp(-2j * np.pi * frequency * n / rate))) / window.sum()


def loud_bursts(samples: np.ndarray, rate: int, threshold: float = 0.05) -> list[tuple[int, int]]:
    """(start, end) sample indexes of the stretches louder than `threshold` (10 ms blocks)."""
    block = rate // 100
    blocks = len(samples) // block
    peaks = np.abs(samples[: blocks * block].reshape(blocks, block).astype(np.int32)).max(axis=1)
    loud = peaks > threshold * 32768
    bursts, start = [], None
    for index, is_loud in enumerate(loud):
        if is_loud and start is None:
            start = index
        elif not is_loud and start is not None:
            bursts.append((start * block, index * block))
            start = None
    if start is not None:
        bursts.append((start * block, blocks * block))
    return bursts


# --- ringing, answer, end --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("listen", "ports", "options", "message"),
    [
        (("0.0.0.0", 0), (30000, 30009), {}, "concrete address"),
        ((HOST, 0), (30001, 30002), {}, "no even/odd port pair"),
        ((HOST, 0), (30000, 30009), {"beep_every": 0.1}, "beep_every"),
        ((HOST, 0), (30000, 30009), {"max_call_seconds": 0}, "max_call_seconds"),
        ((HOST, 0), (30000, 30009), {"codecs": ("OPUS",)}, "codecs"),
    ],
)
async def test_refuses_a_configuration_it_cannot_work_with(listen, ports, options, message):
    with pytest.raises(ValueError, match=message):
        await DemoPhone.start(listen, ports, **options)


async def test_rings_then_answers_after_ring_seconds(start_phone):
    phone = await start_phone(ring_seconds=0.5)
    loop = asyncio.get_running_loop()
    async with caller() as c:
        call = await c.call(phone.uri_for("demo"))
        await call.wait_for(CallRinging, timeout=2)
        rang_at = loop.time()
        await answered(call, c.media)
        ringing = loop.time() - rang_at
        assert ringing == pytest.approx(0.5, abs=0.01), f"answered {ringing:.3f} s after 180"
        kinds = [type(event) for event in call.history]
        assert kinds.index(CallRinging) < kinds.index(CallAnswered)
        assert c.media.negotiated.codec == "PCMU"
        assert c.media.negotiated.dtmf_send_payload_type is not None  # telephone-event
        assert phone.active_calls == 1
        call.hangup()
        ended = await asyncio.wait_for(call.ended, 5)
        assert ended.reason == EndReason.LOCAL_HANGUP
    await assert_all_freed(phone)


async def test_hanging_up_frees_the_call_and_its_ports(start_phone):
    phone = await start_phone(pairs=1)  # one RTP port pair: a second call at once gets 503
    first, last = phone.rtp_ports
    async with caller() as c, caller() as other:
        call = await c.call(phone.uri_for())
        await answered(call, c.media)
        refused = await other.call(phone.uri_for())
        ended = await asyncio.wait_for(refused.ended, 5)
        assert ended.status == 503
        assert phone.active_calls == 1
        call.hangup()
        await asyncio.wait_for(call.ended, 5)
        await assert_all_freed(phone)
        assert_ports_free(first, last)
        # The pair is free again for the next call.
        again = await other.call(phone.uri_for())
        await answered(again, other.media)
        again.hangup()
        await asyncio.wait_for(again.ended, 5)
    await assert_all_freed(phone)


async def test_caller_cancelling_while_it_rings(start_phone):
    phone = await start_phone(ring_seconds=5.0)
    async with caller() as c:
        call = await c.call(phone.uri_for())
        await call.wait_for(CallRinging, timeout=2)
        call.hangup()
        ended = await asyncio.wait_for(call.ended, 3)
        assert ended.reason == EndReason.CANCELLED
        await assert_all_freed(phone)  # long before the 5 s of ringing are over


async def test_ends_the_call_after_the_maximum_duration(start_phone):
    phone = await start_phone(ring_seconds=0.1, max_call_seconds=0.6)
    loop = asyncio.get_running_loop()
    async with caller() as c:
        call = await c.call(phone.uri_for())
        await answered(call, c.media)
        answered_at = loop.time()
        ended = await asyncio.wait_for(call.ended, 5)
        lasted = loop.time() - answered_at
        assert ended.reason == EndReason.REMOTE_HANGUP
        assert lasted == pytest.approx(0.6, abs=0.01), f"the phone hung up after {lasted:.2f} s"
    await assert_all_freed(phone)


async def test_refuses_an_offer_without_a_common_codec(start_phone):
    phone = await start_phone(codecs=("G722",))
    async with caller(codecs=["PCMU", "PCMA"]) as c:
        call = await c.call(phone.uri_for())
        ended = await asyncio.wait_for(call.ended, 5)
        assert ended.status == 488
        assert ended.reason == EndReason.NOT_ACCEPTABLE
    await assert_all_freed(phone)


async def test_close_hangs_up_and_frees_everything(start_phone):
    phone = await start_phone(pairs=2)
    first, last = phone.rtp_ports
    sip_port = phone.address[1]
    async with caller() as c:
        call = await c.call(phone.uri_for())
        await answered(call, c.media)
        await phone.close()
        ended = await asyncio.wait_for(call.ended, 3)
        assert ended.reason == EndReason.REMOTE_HANGUP
    assert phone.active_calls == 0
    assert not phone_tasks()
    assert_ports_free(first, last)
    assert_ports_free(sip_port, sip_port)


# --- audio -----------------------------------------------------------------------------------


@pytest.mark.parametrize("codec", ["PCMU", "PCMA", "G722"])
async def test_echoes_the_callers_voice_promptly(start_phone, codec):
    phone = await start_phone(beep_every=None)
    rate = RATES[codec]
    async with caller(codecs=[codec]) as c:
        call = await c.call(phone.uri_for())
        await answered(call, c.media)
        assert c.media.negotiated.codec == codec
        heard = await exchange_audio(c.media, tone(1000, 2.0, rate), 2.0)
        call.hangup()
        await asyncio.wait_for(call.ended, 5)
    assert_tone(heard, rate, 1000, skip_seconds=0.3, what=f"echo over {codec}")
    # Both sides started at once: the echo's onset is the round trip (two jitter buffers).
    onset = np.flatnonzero(np.abs(heard) > 0.1 * 32768)[0] / rate
    assert onset < 0.3, f"the echo started {onset:.3f} s after we did"
    await assert_all_freed(phone)


async def test_beeps_every_beep_every_seconds_in_silence(start_phone):
    phone = await start_phone(beep_every=1.0)
    async with caller() as c:
        call = await c.call(phone.uri_for())
        await answered(call, c.media)
        recorder = PcmRecorder(c.media.rtp)  # we send nothing at all: only beeps come back
        await recorder.record(2.4)
        call.hangup()
        await asyncio.wait_for(call.ended, 5)
    heard = recorder.samples()
    bursts = loud_bursts(heard, 8000)
    assert len(bursts) == 2, f"wanted the beeps at ~0.5 s and ~1.5 s, got bursts {bursts}"
    for start, end in bursts:
        assert abs((end - start) / 8000 - BEEP_SECONDS) <= 0.03
        assert_tone(heard[start:end], 8000, BEEP_HZ, min_seconds=0.1, what="beep")
    assert abs((bursts[1][0] - bursts[0][0]) / 8000 - 1.0) <= 0.03
    await assert_all_freed(phone)


async def test_beep_is_mixed_into_the_echo(start_phone):
    phone = await start_phone(beep_every=1.0)
    async with caller() as c:
        call = await c.call(phone.uri_for())
        await answered(call, c.media)
        heard = await exchange_audio(c.media, tone(1000, 2.0, 8000), 2.0)
        call.hangup()
        await asyncio.wait_for(call.ended, 5)
    window = 400  # 50 ms
    chunks = [heard[i : i + window] for i in range(0, len(heard) - window, window // 2)]
    levels = [(level_at(chunk, 8000, BEEP_HZ), level_at(chunk, 8000, 1000)) for chunk in chunks]
    with_beep = [(beep, voice) for beep, voice in levels if beep > 0.1]
    assert with_beep, f"no 880 Hz beep in what came back; levels {levels}"
    for beep, voice in with_beep:
        # Mixed, not switched: the echo goes on under the beep.
        assert beep < 0.4 and voice > 0.3, f"beep {beep:.2f}, echo {voice:.2f} of full scale"
    assert_tone(heard, 8000, 1000, skip_seconds=0.3, what="echo with beeps")
    await assert_all_freed(phone)


async def test_calls_at_once_each_hear_their_own_voice(start_phone):
    phone = await start_phone(beep_every=None)
    frequencies = (500, 1000, 1500)
    async with contextlib.AsyncExitStack() as stack:
        callers = [await stack.enter_async_context(caller()) for _ in frequencies]
        calls = [await c.call(phone.uri_for(f"user{i}")) for i, c in enumerate(callers)]
        for call, c in zip(calls, callers, strict=True):
            await answered(call, c.media)
        assert phone.active_calls == len(frequencies)
        heard = await asyncio.gather(
            *(
                exchange_audio(c.media, tone(hz, 1.5, 8000), 1.5)
                for c, hz in zip(callers, frequencies, strict=True)
            )
        )
        for call in calls:
            call.hangup()
        await asyncio.wait_for(asyncio.gather(*(call.ended for call in calls)), 5)
    for samples, hz in zip(heard, frequencies, strict=True):
        assert_tone(samples, 8000, hz, skip_seconds=0.3, what=f"caller of {hz} Hz")
    await assert_all_freed(phone)


async def test_logs_received_dtmf(start_phone, caplog):
    caplog.set_level(logging.INFO, logger="gateway.demo_phone")
    phone = await start_phone()
    async with caller() as c:
        call = await c.call(phone.uri_for())
        await answered(call, c.media)
        await c.media.rtp.send_dtmf("5#")
        await eventually(lambda: "demo phone: DTMF #" in caplog.messages, 2)
        call.hangup()
        await asyncio.wait_for(call.ended, 5)
    digits = [m for m in caplog.messages if m.startswith("demo phone: DTMF")]
    assert digits == ["demo phone: DTMF 5", "demo phone: DTMF #"]
    await assert_all_freed(phone)


# --- other peers -----------------------------------------------------------------------------

HOLD_RESUME_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!--
  Calls the demo phone (its media goes to the test's socket on [rtp_port]); 180 required
  before the 200; after 1 s holds (a=sendonly: the answer must say recvonly), after 1 s
  more resumes (the answer must not hold), and hangs up 1.2 s later.
-->
<scenario name="demo_phone_hold_resume">
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 1 1 IN IP4 127.0.0.1
      s=-
      c=IN IP4 127.0.0.1
      t=0 0
      m=audio [rtp_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=sendrecv

    ]]>
  </send>

  <recv response="100" optional="true"/>
  <recv response="180"/>
  <recv response="200" rrs="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="To:" check_it="true" assign_to="callee"/>
    </action>
  </recv>

  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To:[$callee]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>

  <pause milliseconds="1000"/>

  <send retrans="500">
    <![CDATA[

      INVITE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To:[$callee]
      Call-ID: [call_id]
      CSeq: 2 INVITE
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 1 2 IN IP4 127.0.0.1
      s=-
      c=IN IP4 127.0.0.1
      t=0 0
      m=audio [rtp_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=sendonly

    ]]>
  </send>

  <recv response="100" optional="true"/>
  <recv response="200" timeout="3000">
    <action>
      <ereg regexp="a=recvonly" search_in="body" check_it="true" assign_to="hold_answer"/>
    </action>
  </recv>

  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To:[$callee]
      Call-ID: [call_id]
      CSeq: 2 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>

  <pause milliseconds="1000"/>

  <send retrans="500">
    <![CDATA[

      INVITE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To:[$callee]
      Call-ID: [call_id]
      CSeq: 3 INVITE
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 1 3 IN IP4 127.0.0.1
      s=-
      c=IN IP4 127.0.0.1
      t=0 0
      m=audio [rtp_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=sendrecv

    ]]>
  </send>

  <recv response="100" optional="true"/>
  <recv response="200" timeout="3000">
    <action>
      <ereg regexp="m=audio [1-9]" search_in="body" check_it="true" assign_to="resume_answer"/>
      <ereg regexp="a=(sendonly|recvonly|inactive)" search_in="body" check_it_inverse="true"
            assign_to="resume_answer"/>
    </action>
  </recv>

  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To:[$callee]
      Call-ID: [call_id]
      CSeq: 3 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>

  <pause milliseconds="1200"/>

  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To:[$callee]
      Call-ID: [call_id]
      CSeq: 4 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>

  <recv response="200">
    <action>
      <log message="hold answer [$hold_answer], resume answer [$resume_answer]"/>
    </action>
  </recv>
</scenario>
"""


LATE_OFFER_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<!--
  Calls the demo phone with an INVITE without SDP: the phone's 200 must carry an offer, and
  the ACK carries our answer (media to the test's socket on [rtp_port]); hangs up 1.5 s later.
-->
<scenario name="demo_phone_late_offer">
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:caller@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>

  <recv response="100" optional="true"/>
  <recv response="180"/>
  <recv response="200" rrs="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="To:" check_it="true" assign_to="callee"/>
      <ereg regexp="m=audio [1-9][0-9]* RTP/AVP 0 8 9 101" search_in="body" check_it="true"
            assign_to="offer"/>
    </action>
  </recv>

  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To:[$callee]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=- 1 1 IN IP4 127.0.0.1
      s=-
      c=IN IP4 127.0.0.1
      t=0 0
      m=audio [rtp_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
      a=rtpmap:101 telephone-event/8000
      a=sendrecv

    ]]>
  </send>

  <pause milliseconds="1500"/>

  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To:[$callee]
      Call-ID: [call_id]
      CSeq: 2 BYE
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>

  <recv response="200">
    <action>
      <log message="offer [$offer]"/>
    </action>
  </recv>
</scenario>
"""


class _RtpCapture(asyncio.DatagramProtocol):
    """Keeps (arrival time, RTP packet) of everything the phone sends to our media port."""

    def __init__(self) -> None:
        self.packets: list[tuple[float, RtpPacket]] = []
        self._loop = asyncio.get_running_loop()

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.packets.append((self._loop.time(), parse_rtp(data)))

    def pcmu_audio(self, packets: list[RtpPacket] | None = None) -> np.ndarray:
        """The PCMU audio of `packets` (default: all), decoded in sequence order."""
        audio = [p for p in packets or [p for _, p in self.packets] if p.payload_type == 0]
        audio.sort(key=lambda packet: packet.sequence_number)
        return ulaw_decode(b"".join(bytes(packet.payload) for packet in audio))


@contextlib.asynccontextmanager
async def rtp_capture(port: int) -> AsyncIterator[_RtpCapture]:
    loop = asyncio.get_running_loop()
    transport, capture = await loop.create_datagram_endpoint(_RtpCapture, local_addr=(HOST, port))
    try:
        yield capture
    finally:
        transport.close()


async def run_sipp_caller(
    sipp_factory, tmp_path: Path, scenario: str, phone: DemoPhone, media_port: int
) -> None:
    """Run a SIPp caller scenario (announcing `media_port`) against `phone` until it passes."""
    path = tmp_path / "caller.xml"
    path.write_text(scenario)
    sipp = sipp_factory(
        path, remote=phone.address, service="demo", keys={"rtp_port": str(media_port)}
    )
    await sipp.assert_passed_async(timeout=15)


@REAL_TIME
async def test_hold_and_resume_by_re_invite(start_phone, sipp_factory, tmp_path: Path):
    """SIPp holds and resumes; the phone stops sending while held and beeps again after."""
    phone = await start_phone(ring_seconds=0.1, beep_every=0.5)
    media_port = free_rtp_port_pair()
    async with rtp_capture(media_port) as capture:
        await run_sipp_caller(sipp_factory, tmp_path, HOLD_RESUME_SCENARIO, phone, media_port)
    await assert_all_freed(phone)

    arrivals = np.array([at for at, _ in capture.packets])
    assert len(arrivals) > 50, f"only {len(arrivals)} RTP packets from the phone"
    gaps = np.diff(arrivals)
    hold = int(np.argmax(gaps))
    assert 0.8 <= gaps[hold] <= 1.3, f"longest pause in the phone's RTP {gaps[hold]:.2f} s"
    assert arrivals[hold] - arrivals[0] >= 0.7  # it sent before the hold...
    assert arrivals[-1] - arrivals[hold + 1] >= 0.9  # ...and again after the resume
    resumed = capture.pcmu_audio([packet for _, packet in capture.packets[hold + 1 :]])
    assert_tone(resumed, 8000, BEEP_HZ, min_seconds=0.1, what="beeps after the resume")


@REAL_TIME
async def test_invite_without_offer_gets_an_offer_and_the_answer_in_the_ack(
    start_phone, sipp_factory, tmp_path: Path
):
    phone = await start_phone(ring_seconds=0.1, beep_every=0.5)
    media_port = free_rtp_port_pair()
    async with rtp_capture(media_port) as capture:
        await run_sipp_caller(sipp_factory, tmp_path, LATE_OFFER_SCENARIO, phone, media_port)
    await assert_all_freed(phone)
    arrivals = [at for at, _ in capture.packets]
    assert len(arrivals) > 50 and arrivals[-1] - arrivals[0] >= 1.2, "no steady RTP stream"
    assert_tone(capture.pcmu_audio(), 8000, BEEP_HZ, min_seconds=0.1, what="beeps")


@REAL_TIME
@pytest.mark.parametrize("codec", ["PCMU", "G722"])
async def test_baresip_calls_the_demo_phone(start_phone, baresip_factory, codec):
    phone = await start_phone(beep_every=None)
    desk = baresip_factory(codecs=(codec,), tone_hz=700, tone_seconds=3)
    await asyncio.to_thread(desk.dial, phone.uri_for("demo"))
    await eventually(lambda: phone.active_calls == 1, 5)
    await desk.wait_for_calls_ended_async(1, timeout=15)  # it hangs up when its WAV ends
    await assert_all_freed(phone)
    assert desk.encoders()[-1] == (codec, RATES[codec])
    # What baresip heard is its own tone, sent back by the demo phone.
    assert_wav_has_tone(desk.last_recording().decoded, 700, skip_seconds=0.3)


# --- chat messages ----------------------------------------------------------------------------


async def test_a_chat_message_is_taken_and_answered_quoting_it(start_phone):
    phone = await start_phone()
    sender = await SipEndpoint.open(
        UserAgentConfig(address=(HOST, 0), accept_messages=True, user="visitor")
    )
    replies: list[MessageReceived] = []

    def take(message: MessageReceived) -> int:
        replies.append(message)
        return 200

    sender.on_message = take
    try:
        result = await sender.message(
            phone.uri_for(), "Is it open\ntoday? 👋", timeout=2, from_user="chat-abc"
        )
        assert result.status == 200
        await eventually(lambda: replies)
        (reply,) = replies
        assert reply.text == "Demo operator here: you wrote \u201cIs it open today? 👋\u201d."
        assert reply.request_uri.startswith("sip:chat-abc@127.0.0.1:")
        assert reply.source == phone.address
    finally:
        await sender.close()
    await assert_all_freed(phone)
