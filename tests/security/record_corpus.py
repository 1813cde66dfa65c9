"""Record the fuzzing corpus from real peers: `tests/security/corpus/`.

Not a test; run it by hand when the corpus should be refreshed (it replaces the files):

    scripts/in-loopback-netns .venv/bin/python -m tests.security.record_corpus

What it records, all on loopback:
- SIP: every message of calls between our user agent and SIPp (answer + echo, digest
  401/407, busy, early media, hold/resume re-INVITEs, CANCEL crossing 200, far-end BYE),
  baresip answering our call and calling us, and SIPp sending OPTIONS; both directions.
- SDP: the bodies of those messages, plus the offer Chromium sends to the gateway.
- RTP, RTCP, RFC 4733: packets from SIPp (`rtp_stream`, `-rtp_echo`), baresip (audio,
  RTCP SR/SDES) and our own `RtpSession` (audio, telephone-event, RTCP SR/SDES/BYE),
  received on a plain socket that stands in for our media port.
- socket.io: the event frames Chromium's call page sends to the gateway (start, ICE
  candidates, DTMF, mute, hangup).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import tempfile
from pathlib import Path

from sip_bridge import sdp
from sip_bridge.asyncio.endpoint import SipCall, SipEndpoint
from sip_bridge.asyncio.rtp_session import RtpSession
from sip_bridge.events import CallAnswered, CallEnded, EarlyMedia, OfferReceived
from sip_bridge.rtp.packet import is_rtcp
from sip_bridge.useragent import UserAgentConfig
from tests.support.audio import tone
from tests.support.baresip import BaresipPhone
from tests.support.ports import free_rtp_port_pair
from tests.support.sipp import Sipp

HOST = "127.0.0.1"
CORPUS = Path(__file__).resolve().parent / "corpus"
PACKETS_PER_SOURCE = 24


class MediaTap:
    """A plain RTP/RTCP socket pair standing in for a media port: keeps what arrives."""

    def __init__(self) -> None:
        port = free_rtp_port_pair()
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.rtp.bind((HOST, port))
        self.rtcp.bind((HOST, port + 1))
        for s in (self.rtp, self.rtcp):
            s.setblocking(False)
        self.port = port
        self.received: list[tuple[bytes, tuple[str, int]]] = []

    def drain(self) -> None:
        for s in (self.rtp, self.rtcp):
            while True:
                try:
                    self.received.append(s.recvfrom(2048))
                except BlockingIOError:
                    break

    def offer(self) -> bytes:
        return sdp.build_offer(
            address=HOST,
            port=self.port,
            codecs=["PCMU", "PCMA"],
            dtmf=True,
            ptime=20,
            session_id=1,
            session_version=1,
        ).serialize()

    def close(self) -> None:
        self.rtp.close()
        self.rtcp.close()


class Recorder:
    def __init__(self) -> None:
        self.sip: dict[str, list[bytes]] = {}
        self.sdp: dict[str, bytes] = {}
        self.packets: dict[str, dict[str, list[bytes]]] = {"rtp": {}, "rtcp": {}, "dtmf": {}}
        self.socketio: list[str] = []

    def trace(self, name: str) -> list[bytes]:
        return self.sip.setdefault(name, [])

    def keep_media(self, source: str, tap: MediaTap, dtmf_pt: int = 101) -> None:
        tap.drain()
        for data, _ in tap.received:
            if is_rtcp(data):
                kind = "rtcp"
            elif len(data) > 12 and data[1] & 0x7F == dtmf_pt:
                kind = "dtmf"
            else:
                kind = "rtp"
            self.packets[kind].setdefault(source, []).append(data)


async def _endpoint(recorder: Recorder, name: str, **config) -> SipEndpoint:
    endpoint = await SipEndpoint.open(UserAgentConfig(address=(HOST, 0), trace=True, **config))
    trace = recorder.trace(name)
    endpoint.on_trace = lambda event: trace.append(event.data)
    return endpoint


async def _answered(call: SipCall) -> CallAnswered:
    return await call.wait_for(CallAnswered, timeout=10)


async def record_sipp(recorder: Recorder, workdir: Path) -> None:
    flows = [
        ("uas_answer_echo", {"rtp_echo": True}, None),
        ("uas_auth_401", {}, ("alice", "secret")),
        ("uas_auth_407", {}, ("alice", "secret")),
        ("uas_busy", {}, None),
        ("uas_early_media", {}, None),
        ("uas_reinvite_hold", {}, None),
        ("uas_cancel_race", {}, None),
        ("uas_far_bye", {}, None),
    ]
    for scenario, options, credentials in flows:
        sipp = Sipp(scenario, workdir / scenario, **options).start()
        tap = MediaTap()
        endpoint = await _endpoint(recorder, f"sipp-{scenario}")
        try:
            call = await endpoint.invite(sipp.uri, sdp=tap.offer(), credentials=credentials)
            await _follow_sipp_call(scenario, call, tap)
            await asyncio.wait_for(call.ended, 10)
            await asyncio.to_thread(sipp.wait, 10)
        finally:
            await endpoint.close()
            sipp.stop()
        recorder.keep_media(f"sipp-{scenario}", tap)
        tap.close()
    uac = Sipp("uac_options", workdir / "uac_options", remote=(HOST, 0))
    endpoint = await _endpoint(recorder, "sipp-uac_options")
    try:
        uac.remote = endpoint.local_address
        uac.start()
        await asyncio.to_thread(uac.wait, 10)
    finally:
        await endpoint.close()
        uac.stop()


async def _follow_sipp_call(scenario: str, call: SipCall, tap: MediaTap) -> None:
    if scenario == "uas_busy":
        return
    if scenario == "uas_cancel_race":
        await asyncio.sleep(0.3)
        call.hangup()
        return
    if scenario == "uas_early_media":
        await call.wait_for(EarlyMedia, timeout=10)
        await asyncio.sleep(1.0)
    answer = await _answered(call)
    remote = sdp.parse_sdp(answer.sdp)
    media_port = remote.media[0].port
    for index in range(10):  # something for -rtp_echo to echo
        packet = bytes([0x80, 0x00, 0, index, 0, 0, 0, index * 160 & 0xFF, 1, 2, 3, 4])
        tap.rtp.sendto(packet + bytes(160), (HOST, media_port))
        await asyncio.sleep(0.02)
    if scenario == "uas_far_bye":
        return
    if scenario == "uas_reinvite_hold":
        for _ in range(2):
            offer = await call.wait_for(OfferReceived, timeout=10)
            answer_sdp = sdp.build_answer(
                sdp.parse_sdp(offer.sdp),
                address=HOST,
                port=tap.port,
                codecs=["PCMU"],
                dtmf=True,
                ptime=20,
                session_id=1,
                session_version=2,
            )[0].serialize()
            call.answer_offer(answer_sdp)
        await asyncio.sleep(0.5)
    await asyncio.sleep(0.5)
    call.hangup()


async def record_baresip(recorder: Recorder, workdir: Path) -> None:
    # Our call to baresip: it answers, sends its tone (RTP) and RTCP reports.
    phone = BaresipPhone(workdir / "baresip-answer", tone_seconds=7).start()
    tap = MediaTap()
    endpoint = await _endpoint(recorder, "baresip-answers")
    try:
        call = await endpoint.invite(phone.uri, sdp=tap.offer())
        answer = await _answered(call)
        remote_port = sdp.parse_sdp(answer.sdp).media[0].port
        # Send audio so that baresip's RTCP carries a reception report about us.
        session = await RtpSession.open(HOST, (40000, 40999))
        session.start((HOST, remote_port), "PCMU", rtcp_interval=1.0)
        for frame in range(300):
            session.send_pcm(tone(700, 0.02, 8000))
            if frame == 100:
                asyncio.get_running_loop().create_task(session.send_dtmf("5#", duration_ms=100))
            await asyncio.sleep(0.02)
        await session.close()
        await asyncio.wait_for(call.ended, 10)  # baresip hangs up when its WAV ends
    finally:
        await endpoint.close()
        phone.stop()
    recorder.keep_media("baresip", tap)
    tap.close()
    # baresip calling us: its INVITE and SDP offer, our answer, its BYE.
    phone = BaresipPhone(workdir / "baresip-call", tone_seconds=3).start()
    tap = MediaTap()
    endpoint = await _endpoint(recorder, "baresip-calls", user="operator", accept_incoming=True)
    incoming: asyncio.Queue[SipCall] = asyncio.Queue()
    endpoint.on_incoming = incoming.put_nowait
    try:
        phone.dial(f"sip:operator@{HOST}:{endpoint.local_address[1]}")
        call = await asyncio.wait_for(incoming.get(), 10)
        answer_sdp = sdp.build_answer(
            sdp.parse_sdp(call.incoming.sdp),
            address=HOST,
            port=tap.port,
            codecs=["PCMU"],
            dtmf=True,
            ptime=20,
            session_id=2,
            session_version=1,
        )[0].serialize()
        call.ring()
        call.answer(answer_sdp)
        ended = await asyncio.wait_for(call.ended, 15)
        assert isinstance(ended, CallEnded)
    finally:
        await endpoint.close()
        phone.stop()
    recorder.keep_media("baresip-caller", tap)
    tap.close()


async def record_own_rtp(recorder: Recorder) -> None:
    """Our RtpSession's audio, telephone-events and RTCP (SR, SDES, BYE at close)."""
    tap = MediaTap()
    session = await RtpSession.open(HOST, (40000, 40999))
    session.start((HOST, tap.port), "PCMU", rtcp_interval=0.5)
    dtmf = asyncio.get_running_loop().create_task(session.send_dtmf("1*D", duration_ms=80))
    for _ in range(100):
        session.send_pcm(tone(1000, 0.02, 8000))
        await asyncio.sleep(0.02)
    await dtmf
    await session.close()
    await asyncio.sleep(0.1)
    recorder.keep_media("sip_bridge", tap)
    tap.close()


async def record_chromium(recorder: Recorder, workdir: Path) -> None:
    """socket.io frames and the SDP offer of Chromium's call page talking to the gateway."""
    from gateway.config import parse_config
    from gateway.process.gateway import Gateway
    from tests.e2e.conftest import gateway_toml
    from tests.support.audio import write_tone_wav
    from tests.support.browser import chromium

    sipp = Sipp("uas_answer_echo", workdir / "chromium-sipp", rtp_echo=True).start()
    gateway = await Gateway.start(parse_config(gateway_toml(destination=sipp.uri), {}))
    frames: list[str] = []
    try:
        mic = write_tone_wav(workdir / "mic.wav", 1000, 30.0, 48000)
        async with chromium(mic) as browser:
            page = await (await browser.new_context()).new_page()

            def on_frame(payload: str | bytes) -> None:
                frames.append(payload)

            page.on("websocket", lambda ws: ws.on("framesent", on_frame))
            await page.goto(f"{gateway.url}/embed/shop")
            await page.wait_for_function("() => !document.querySelector('#call').disabled")
            await page.click("#call")
            await page.wait_for_function(
                "() => !document.querySelector('#hangup').disabled", timeout=15000
            )
            await asyncio.sleep(2.0)
            for digit in ("1", "#"):
                await page.click(f"[data-digit='{digit}']")
                await asyncio.sleep(0.3)
            await page.click("#mute")
            await asyncio.sleep(0.3)
            await page.click("#mute")
            await asyncio.sleep(0.3)
            await page.click("#hangup")
            await asyncio.sleep(1.0)
    finally:
        await gateway.stop()
        sipp.stop()
    for frame in frames:
        # Engine.IO message "4" + socket.io EVENT "2" (+ optional ack id) + JSON array.
        if isinstance(frame, str) and frame.startswith("42"):
            body = frame[2:].lstrip("0123456789")
            recorder.socketio.append(body)
            event = json.loads(body)
            if event[0] == "call:start":
                recorder.sdp["chromium-offer"] = event[1]["sdp"].encode()


def write(recorder: Recorder) -> None:
    for kind in ("sip", "sdp", "rtp", "rtcp", "dtmf", "socketio"):
        shutil.rmtree(CORPUS / kind, ignore_errors=True)
        (CORPUS / kind).mkdir(parents=True)
    bodies: dict[bytes, str] = {}
    for name, messages in recorder.sip.items():
        for index, data in enumerate(messages):
            (CORPUS / "sip" / f"{name}-{index:02d}.sip").write_bytes(data)
            body = data.partition(b"\r\n\r\n")[2]
            if body.startswith(b"v=0") and body not in bodies:
                bodies[body] = f"{name}-{index:02d}"
    for body, name in bodies.items():
        (CORPUS / "sdp" / f"{name}.sdp").write_bytes(body)
    for name, body in recorder.sdp.items():
        (CORPUS / "sdp" / f"{name}.sdp").write_bytes(body)
    for kind, sources in recorder.packets.items():
        for source, packets in sources.items():
            chosen = _spread(packets, PACKETS_PER_SOURCE)
            text = "".join(packet.hex() + "\n" for packet in chosen)
            (CORPUS / kind / f"{source}.hex").write_text(text)
    (CORPUS / "socketio" / "chromium.jsonl").write_text(
        "".join(line + "\n" for line in recorder.socketio)
    )


def _spread(packets: list[bytes], count: int) -> list[bytes]:
    """The first few packets (markers, first reports) and an even spread of the rest."""
    if len(packets) <= count:
        return packets
    head = packets[:4]
    rest = packets[4:]
    step = len(rest) / (count - 4)
    return head + [rest[int(i * step)] for i in range(count - 4)]


async def main() -> None:
    recorder = Recorder()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        await record_sipp(recorder, workdir)
        await record_baresip(recorder, workdir)
        await record_own_rtp(recorder)
        with contextlib.suppress(ImportError):
            await record_chromium(recorder, workdir)
    write(recorder)
    counts = {kind: len(list((CORPUS / kind).iterdir())) for kind in recorder.packets}
    print(f"SIP messages: {sum(len(m) for m in recorder.sip.values())}; files per kind: {counts}")
    print(f"socket.io events: {len(recorder.socketio)}")


if __name__ == "__main__":
    asyncio.run(main())
