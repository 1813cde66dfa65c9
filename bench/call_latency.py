"""Call set-up and audio latency through the gateway, measured on loopback.

  python bench/call_latency.py [--calls 10]     (inside scripts/in-loopback-netns)

A. Chromium (fake mic playing a tone) calls through a real gateway to a SIP phone built from
   sip_bridge that answers at once. Per call: click -> INVITE received by the phone, and
   click -> first audible RTP frame at the phone. Median of N, for PCMU end to end and for
   Opus from the browser (transcoded).
B. The time each frame spends in the gateway, per direction: an aiortc peer and the phone
   exchange frames; k-th frame in, k-th frame out. Median and p95.
C. The codecs' own algorithmic delay when transcoding (resampler and Opus lookahead): an
   impulse through the gateway's Transcoder, located in the output.
D. A call whose ICE never completes (its offer's candidates lead nowhere): seconds from
   call:start until its slot in the limits is free again, and whether the phone was rung
   (the gateway rings nobody before the browser's media is up: `ice.connect_timeout`).
The added one-way delay is B (+ C when transcoding). The operator is dialled once the
browser's media path is up, so A's click -> INVITE includes ICE and DTLS.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.config import parse_config
from gateway.media.transcoder import OPUS, Transcoder, audio_codec
from gateway.process.gateway import Gateway
from sip_bridge.asyncio.call_media import CallMedia
from sip_bridge.asyncio.endpoint import SipCall, SipEndpoint
from sip_bridge.rtp.g711 import ulaw_decode
from sip_bridge.useragent import UserAgentConfig
from tests.e2e.conftest import call_token, gateway_toml
from tests.support.audio import write_tone_wav
from tests.support.browser import chromium
from tests.support.ports import free_port_block, free_udp_port

# A benchmark places many calls from one address: lift the per-visitor limits.
BENCH_LIMITS = (
    "calls_per_client_15min = 1000\ncalls_per_client_hour = 1000\ncalls_per_client_day = 1000"
)


class Phone:
    """Answers at once; notes when each INVITE and the first audible frame arrive."""

    def __init__(self) -> None:
        self.invite_at: list[float] = []
        self.first_audio_at: list[float] = []
        self.frames: list[float] = []
        self.media: list[CallMedia] = []

    async def start(self) -> str:
        port = free_udp_port()
        self.rtp = free_port_block(20)
        self.endpoint = await SipEndpoint.open(
            UserAgentConfig(address=("127.0.0.1", port), user="operator", accept_incoming=True)
        )
        self.endpoint.on_incoming = lambda call: asyncio.ensure_future(self._answer(call))
        return f"sip:operator@127.0.0.1:{port}"

    async def _answer(self, call: SipCall) -> None:
        self.invite_at.append(time.monotonic())
        media = await CallMedia.open("127.0.0.1", (self.rtp, self.rtp + 19), codecs=["PCMU"])
        self.media.append(media)
        call.answer(media.answer(call.incoming.sdp))
        heard = False

        def on_packet(payload, timestamp) -> None:
            nonlocal heard
            now = time.monotonic()
            self.frames.append(now)
            if not heard and np.abs(ulaw_decode(bytes(payload)).astype(np.int32)).mean() > 300:
                heard = True
                self.first_audio_at.append(now)

        media.rtp.on_audio_packet = on_packet

    async def close(self) -> None:
        for media in self.media:
            await media.close()
        await self.endpoint.close()


async def browser_calls(codec: str, calls: int) -> dict:
    phone = Phone()
    uri = await phone.start()
    gateway = await Gateway.start(
        parse_config(
            gateway_toml(destination=uri, browser_codecs=[codec], site_extra=BENCH_LIMITS), {}
        )
    )
    to_invite, to_audio = [], []
    wav = Path(tempfile.mkdtemp()) / "mic.wav"
    write_tone_wav(wav, 1000, 30, 48000)
    try:
        async with chromium(wav) as browser:
            for _ in range(calls):
                page = await browser.new_page()
                await page.goto(f"{gateway.url}/embed/shop")
                # The widget lives in a shadow root; Playwright's locators pierce it.
                await (
                    page.get_by_role("button", name="Call")
                    .and_(page.locator(":enabled"))
                    .wait_for()
                )
                seen = len(phone.first_audio_at)
                clicked = time.monotonic()
                await page.get_by_role("button", name="Call").click()
                while len(phone.first_audio_at) == seen:
                    await asyncio.sleep(0.005)
                to_invite.append(phone.invite_at[-1] - clicked)
                to_audio.append(phone.first_audio_at[-1] - clicked)
                await page.get_by_role("button", name="Hang up").click()
                await page.close()
                while gateway.calls.calls:
                    await asyncio.sleep(0.01)
    finally:
        await gateway.stop()
        await phone.close()
    return {
        "click_to_invite_ms": ms(statistics.median(to_invite)),
        "click_to_first_audio_ms": ms(statistics.median(to_audio)),
    }


async def unconnectable_call() -> dict:
    """D: an offer whose every candidate points at a socket that never answers."""
    import socketio
    from aiortc import RTCConfiguration, RTCPeerConnection
    from aiortc.mediastreams import AudioStreamTrack

    phone = Phone()
    uri = await phone.start()
    gateway = await Gateway.start(
        parse_config(gateway_toml(destination=uri, site_extra=BENCH_LIMITS), {})
    )
    hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    hole.bind(("127.0.0.1", 0))
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(AudioStreamTrack())
    client = socketio.AsyncClient(reconnection=False)
    try:
        await pc.setLocalDescription(await pc.createOffer())
        offer = re.sub(
            r"(a=candidate:\S+ \d+ udp \d+ )\S+ \d+",
            rf"\g<1>127.0.0.1 {hole.getsockname()[1]}",
            pc.localDescription.sdp,
        )
        await pc.close()
        await client.connect(
            gateway.url,
            transports=["websocket"],
            auth={"site": "shop", "token": await call_token(gateway)},
            headers={"Origin": gateway.config.http.public_origin},
        )
        started = time.monotonic()
        ack = await client.call("call:start", {"sdp": offer}, timeout=10)
        assert ack["ok"], ack
        while not gateway.calls.admission.live_calls:
            await asyncio.sleep(0.01)
        while gateway.calls.admission.live_calls:
            await asyncio.sleep(0.01)
        held = time.monotonic() - started
    finally:
        await client.disconnect()
        await gateway.stop()
        await phone.close()
        hole.close()
    return {"slot_held_s": round(held, 2), "phone_rung": len(phone.invite_at)}


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


async def frame_transit(codec: str, frames: int = 250) -> dict:
    """Per-frame time through the gateway, both ways, with an aiortc peer as the browser."""
    import fractions

    import av
    import socketio
    from aiortc import RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamTrack

    from gateway.media.transcoder import OpusEncoder

    opus = OpusEncoder() if codec == "opus" else None
    sent_by_browser: list[float] = []

    class Frames(MediaStreamTrack):
        kind = "audio"

        def __init__(self) -> None:
            super().__init__()
            self.index = 0
            self.start: float | None = None

        async def recv(self):
            loop = asyncio.get_running_loop()
            self.start = self.start or loop.time()
            await asyncio.sleep(max(0.0, self.start + self.index * 0.02 - loop.time()))
            if self.index >= frames:
                await asyncio.sleep(3600)
            t = np.arange(960) + self.index * 960
            pcm = (np.sin(2 * np.pi * 1000 * t / 48000) * 8000).astype(np.int16)
            payload = opus.encode(pcm) if opus else struct.pack("!I", self.index) + bytes(156)
            packet = av.Packet(payload)
            clock = 48000 if opus else 8000
            packet.pts = self.index * clock // 50
            packet.time_base = fractions.Fraction(1, clock)
            self.index += 1
            sent_by_browser.append(time.monotonic())
            return packet

    phone = Phone()
    uri = await phone.start()
    gateway = await Gateway.start(
        parse_config(
            gateway_toml(destination=uri, browser_codecs=[codec], site_extra=BENCH_LIMITS), {}
        )
    )
    pc = RTCPeerConnection()
    pc.addTrack(Frames())
    received_by_browser: list[float] = []
    sent_by_phone: list[float] = []
    client = socketio.AsyncClient(reconnection=False)
    try:
        await pc.setLocalDescription(await pc.createOffer())
        await client.connect(
            gateway.url,
            transports=["websocket"],
            auth={"site": "shop", "token": await call_token(gateway)},
            headers={"Origin": gateway.config.http.public_origin},
        )
        ack = await client.call("call:start", {"sdp": pc.localDescription.sdp}, timeout=10)
        (receiver,) = [t.receiver for t in pc.getTransceivers()]

        async def record(packet, arrival_time_ms) -> None:
            received_by_browser.append(time.monotonic())

        receiver._handle_rtp_packet = record
        await pc.setRemoteDescription(RTCSessionDescription(ack["sdp"], "answer"))
        while not phone.media or phone.media[0].negotiated is None:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        rtp = phone.media[0].rtp
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index in range(frames):
            await asyncio.sleep(max(0.0, start + index * 0.02 - loop.time()))
            sent_by_phone.append(time.monotonic())
            rtp.relay_payload(struct.pack("!I", index) + bytes(156), 160)
        await asyncio.sleep(1)
        await client.call("call:hangup", {}, timeout=5)
    finally:
        await client.disconnect()
        await pc.close()
        await gateway.stop()
        await phone.close()
    # Frames the phone heard before our own burst started are the browser's; pair k-th with
    # k-th from the end of each stream (no loss on loopback).
    to_sip = pair(sent_by_browser, phone.frames)
    to_browser = pair(sent_by_phone, received_by_browser)
    return {"to_sip": to_sip, "to_browser": to_browser}


def pair(sent: list[float], received: list[float]) -> dict:
    n = min(len(sent), len(received))
    transit = sorted(r - s for s, r in zip(sent[-n:], received[-n:], strict=True))
    return {
        "frames": n,
        "median_ms": ms(statistics.median(transit)),
        "p95_ms": ms(transit[int(n * 0.95) - 1]),
    }


def codec_delay(source_name: str, target_name: str) -> float:
    """Milliseconds by which an impulse comes out late of the gateway's Transcoder."""
    source = OPUS if source_name == "opus" else audio_codec(source_name)
    target = OPUS if target_name == "opus" else audio_codec(target_name)
    if source_name == "opus":
        from gateway.media.transcoder import OpusEncoder

        encoder = OpusEncoder().encode
    else:
        from gateway.media.transcoder import frame_encoder

        encoder = frame_encoder(source)
    transcoder = Transcoder(source, target)
    if target_name == "opus":
        from gateway.media.transcoder import OpusDecoder

        decoder = OpusDecoder()

        def decode(payload):
            return decoder.decode(payload)
    else:
        from sip_bridge.rtp.codecs import codec_by_name

        d = codec_by_name(target.name).create_decoder()
        decode = d.decode
    n_frames = 40
    pcm = np.zeros(source.frame_samples * n_frames, np.int16)
    click_at = source.frame_samples * 20 + 7
    t = np.arange(source.sample_rate // 200)  # a 5 ms 1 kHz burst
    pcm[click_at : click_at + len(t)] = (
        np.sin(2 * np.pi * 1000 * t / source.sample_rate) * 16000
    ).astype(np.int16)
    out = []
    for i in range(n_frames):
        encoded = encoder(pcm[i * source.frame_samples : (i + 1) * source.frame_samples])
        if encoded is None:
            out.append(np.zeros(target.frame_samples, np.int16))
            continue
        converted = transcoder.convert(encoded)  # one 20 ms frame in, one out
        decoded = decode(converted[0]) if converted else None
        if decoded is None:
            decoded = np.zeros(target.frame_samples, np.float32)
        out.append(np.asarray(decoded, dtype=np.float64).reshape(-1))
    signal = np.abs(np.concatenate(out))
    signal /= signal.max() or 1
    onset = int(np.argmax(signal > 0.3))
    expected = click_at * target.sample_rate / source.sample_rate
    return round((onset - expected) / target.sample_rate * 1000, 2)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--output", type=Path, default=Path("bench/results/call_latency.json"))
    args = parser.parse_args()
    results = {}
    for codec in ("PCMU", "opus"):
        results[codec] = await browser_calls(codec, args.calls)
        results[codec]["transit"] = await frame_transit(codec)
        print(codec, json.dumps(results[codec]), flush=True)
    results["opus"]["codec_delay_ms"] = {
        "to_sip (opus->PCMU)": codec_delay("opus", "PCMU"),
        "to_browser (PCMU->opus)": codec_delay("PCMU", "opus"),
    }
    print("codec delay when transcoding:", results["opus"]["codec_delay_ms"])
    results["ice_never_completes"] = await unconnectable_call()
    print("a call whose ICE never completes:", results["ice_never_completes"])
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
