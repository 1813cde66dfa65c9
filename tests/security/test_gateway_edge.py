"""The gateway's SIP and RTP edge under attack, over real sockets on loopback.

A visitor (aiortc + python-socketio, as in tests/e2e) calls through a real gateway to a
phone: SIPp echoing media, or a sip_bridge phone whose socket the test can also use to
send with the phone's own address. An attacker socket forges BYE and re-INVITE with the
call's real identifiers, an unsolicited INVITE tries to get relayed, RTP is injected at the
gateway's SIP-leg media port. Audio is judged by frequency.
"""

from __future__ import annotations

import asyncio
import re
import socket

import numpy as np

from sip_bridge.asyncio.call_media import CallMedia
from sip_bridge.asyncio.endpoint import SipCall, SipEndpoint
from sip_bridge.asyncio.player import play_pcm
from sip_bridge.events import MessageTrace
from sip_bridge.message import Request, Response, parse_message
from sip_bridge.rtp.packet import RtpPacketizer
from sip_bridge.useragent import UserAgentConfig
from tests.support.audio import assert_tone, tone, ulaw_encode
from tests.support.ports import free_port_block, free_udp_port

from .visitor import Visitor

HOST = "127.0.0.1"
VISITOR_HZ = 1000
PHONE_HZ = 700
INJECTED_HZ = 2500


def band_fraction(samples: np.ndarray, rate: int, hz: float, width: float = 40.0) -> float:
    """Share of the signal's energy within `width` Hz of `hz`."""
    x = samples.astype(np.float64)
    x -= x.mean()
    power = np.abs(np.fft.rfft(x * np.hanning(x.size))) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / rate)
    total = power[freqs > 50].sum()
    band = power[(freqs > hz - width) & (freqs < hz + width)].sum()
    return float(band / total) if total > 0 else 0.0


class Attacker:
    """A UDP socket on loopback that sends forged datagrams and keeps what comes back."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.setblocking(False)
        self.address = self.sock.getsockname()

    def send(self, data: bytes, to: tuple[str, int]) -> None:
        self.sock.sendto(data, to)

    def received(self) -> list[bytes]:
        out = []
        while True:
            try:
                out.append(self.sock.recv(65536))
            except BlockingIOError:
                return out

    def close(self) -> None:
        self.sock.close()


class Phone:
    """A sip_bridge phone that answers, plays a tone, and traces its SIP."""

    def __init__(self, endpoint: SipEndpoint, rtp_ports: tuple[int, int]) -> None:
        self.endpoint = endpoint
        self.rtp_ports = rtp_ports
        self.trace: list[MessageTrace] = []
        self.calls: list[SipCall] = []
        self.medias: list[CallMedia] = []
        self.tasks: list[asyncio.Task] = []
        endpoint.on_trace = self.trace.append
        endpoint.on_incoming = lambda call: self.tasks.append(
            asyncio.create_task(self._answer(call))
        )

    @classmethod
    async def open(cls) -> Phone:
        endpoint = await SipEndpoint.open(
            UserAgentConfig(
                address=(HOST, free_udp_port()), user="operator", accept_incoming=True, trace=True
            )
        )
        rtp = free_port_block(10)
        return cls(endpoint, (rtp, rtp + 9))

    async def _answer(self, call: SipCall) -> None:
        media = await CallMedia.open(HOST, self.rtp_ports, codecs=["PCMU"])
        self.calls.append(call)
        self.medias.append(media)
        call.answer(media.answer(call.incoming.sdp))
        await play_pcm(media.rtp, tone(PHONE_HZ, 60.0, 8000, amplitude=0.3))

    def messages(self, direction: str) -> list[Request | Response]:
        return [parse_message(t.data) for t in self.trace if t.direction == direction]

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await self.endpoint.close()
        for media in self.medias:
            await media.close()


def forged(
    method: str, invite: Request, ok: Response, via: tuple[str, int], seq: int, sdp=b""
) -> bytes:
    """An in-dialog request as the phone would send it: the call's real Call-ID and tags."""
    lines = [
        f"{method} {invite.from_.uri} SIP/2.0",
        f"Via: SIP/2.0/UDP {via[0]}:{via[1]};branch=z9hG4bKforged{method}{seq};rport",
        "Max-Forwards: 70",
        f"From: {ok.headers.get('To')}",
        f"To: {invite.headers.get('From')}",
        f"Call-ID: {invite.call_id}",
        f"CSeq: {seq} {method}",
        f"Contact: <sip:operator@{via[0]}:{via[1]}>",
    ]
    if sdp:
        lines.append("Content-Type: application/sdp")
    lines.append(f"Content-Length: {len(sdp)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + sdp


async def test_forged_bye_and_reinvite_do_not_end_or_alter_a_live_call(gateway_factory):
    phone = await Phone.open()
    gateway = await gateway_factory(
        destination=f"sip:operator@{HOST}:{phone.endpoint.local_address[1]}"
    )
    sip_port = gateway.endpoint.local_address
    visitor = Visitor(VISITOR_HZ)
    attacker = Attacker()
    evil_rtp = Attacker()  # where a hijacked call would send its media
    try:
        await visitor.call(gateway)
        await visitor.wait_for_state("answered")
        await asyncio.sleep(1.5)
        invite = next(m for m in phone.messages("received") if isinstance(m, Request))
        ok = next(m for m in phone.messages("sent") if isinstance(m, Response) and m.status == 200)
        evil_sdp = (
            f"v=0\r\no=- 9 9 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
            f"m=audio {evil_rtp.address[1]} RTP/AVP 0\r\na=sendrecv\r\n"
        ).encode()
        ua = gateway.endpoint.ua
        # From another port of the same host, and claiming the phone's address in the Via.
        for seq, (method, sdp) in enumerate(
            (("BYE", b""), ("INVITE", evil_sdp), ("UPDATE", evil_sdp)), 100
        ):
            attacker.send(forged(method, invite, ok, attacker.address, seq, sdp), sip_port)
            attacker.send(
                forged(method, invite, ok, phone.endpoint.local_address, seq + 10, sdp), sip_port
            )
        # From the phone's own socket, but with tags that are not the dialog's.
        wrong_tags = forged("BYE", invite, ok, phone.endpoint.local_address, 200)
        wrong_tags = re.sub(rb"(From: [^\r]*;tag=)[^;\r]+", rb"\1guessed", wrong_tags)
        phone.endpoint._transport.send(wrong_tags, sip_port)
        await asyncio.sleep(1.0)

        assert attacker.received() == []  # no answer at all: nothing to reflect
        assert ua.counters["spoofed_requests"] == 6
        replies = [m for m in phone.messages("received") if isinstance(m, Response)]
        assert [(r.status, r.cseq.method) for r in replies] == [(481, "BYE")]
        assert "ended" not in visitor.states and visitor.states[-1] == "answered"
        assert evil_rtp.received() == []  # the media did not move
        # Audio still flows both ways, undisturbed.
        mark = visitor.mark()
        heard_by_phone_before = phone.medias[0].rtp.stats.packets_received
        await asyncio.sleep(1.5)
        assert_tone(visitor.heard_since(mark), visitor.rate, PHONE_HZ, what="visitor hears")
        assert phone.medias[0].rtp.stats.packets_received - heard_by_phone_before > 50
        # The genuine hangup still works.
        phone.calls[0].hangup()
        await visitor.wait_for_state("ended")
    finally:
        attacker.close()
        evil_rtp.close()
        await visitor.close()
        await phone.close()


async def test_unsolicited_invite_gets_403_no_call_and_no_relay(gateway_factory):
    gateway = await gateway_factory(destination=f"sip:operator@{HOST}:9")
    sip_port = gateway.endpoint.local_address
    attacker, victim = Attacker(), Attacker()
    try:
        invite = (
            f"INVITE sip:+4930123456@{HOST}:{victim.address[1]} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{attacker.address[1]};branch=z9hG4bKrelay1;rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:fraud@{HOST}>;tag=f1\r\n"
            f"To: <sip:+4930123456@{HOST}:{victim.address[1]}>\r\n"
            "Call-ID: relay-me\r\nCSeq: 1 INVITE\r\n"
            f"Contact: <sip:fraud@{HOST}:{attacker.address[1]}>\r\n"
            f"Route: <sip:{HOST}:{victim.address[1]};lr>\r\n"
            "Content-Type: application/sdp\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        attacker.send(invite, sip_port)
        # The same as if inside a dialog (a To tag): there is no such dialog.
        in_dialog = (
            invite.replace(b"relay1", b"relay2")
            .replace(b"Call-ID: relay-me", b"Call-ID: relay-2")
            .replace(b">\r\nCall-ID", b">;tag=x\r\nCall-ID")
        )
        attacker.send(in_dialog, sip_port)
        await asyncio.sleep(1.0)
        replies = [parse_message(d) for d in attacker.received()]
        finals = {(r.call_id, r.status) for r in replies if r.status >= 200}
        assert finals == {("relay-me", 403), ("relay-2", 481)}  # (retransmitted until ACKed)
        for reply in replies:
            assert "Server" not in reply.headers and "User-Agent" not in reply.headers
        assert victim.received() == []  # nothing relayed
        assert gateway.endpoint.ua.active_calls == 0 and not gateway.calls.calls
    finally:
        attacker.close()
        victim.close()


def rtp_tone_packets(hz: float, seconds: float, ssrc: int) -> list[bytes]:
    packetizer = RtpPacketizer(0, ssrc=ssrc)
    codes = ulaw_encode(tone(hz, seconds, 8000, amplitude=0.9)).tobytes()
    return [
        bytes(packetizer.build(codes[i : i + 160], i, i == 0))  # build() reuses its buffer
        for i in range(0, len(codes) - 159, 160)
    ]


async def test_injected_rtp_from_another_source_is_not_heard(gateway_factory, sipp_factory):
    uas = sipp_factory("uas_answer_echo", rtp_echo=True, timeout=30)
    gateway = await gateway_factory(destination=uas.uri)
    visitor = Visitor(VISITOR_HZ)
    injector = Attacker()
    try:
        await visitor.call(gateway)
        await visitor.wait_for_state("answered")
        await asyncio.sleep(1.5)  # the echo flows; the SIP leg has latched SIPp's address
        (call,) = gateway.calls.calls.values()
        rtp = call.media.rtp
        target = (HOST, rtp.local_port)
        dropped_before = rtp.stats.foreign_source_dropped
        mark = visitor.mark()
        injected = rtp_tone_packets(INJECTED_HZ, 6.0, ssrc=0x5EED)
        for packet in injected:
            injector.send(packet, target)
            await asyncio.sleep(0.01)  # twice the real rate: more chances to get in
        heard = visitor.heard_since(mark)
        assert_tone(heard, visitor.rate, VISITOR_HZ, what="visitor hears its own echo")
        assert band_fraction(heard, visitor.rate, INJECTED_HZ) < 0.001
        assert band_fraction(heard, visitor.rate, VISITOR_HZ) > 0.5
        # It did arrive (loopback loses nothing), and was dropped, every packet.
        assert rtp.stats.foreign_source_dropped - dropped_before == len(injected)
        # And RTP to a media port with no call behind it goes nowhere.
        await visitor.hangup()
        await visitor.wait_for_state("ended")
        await asyncio.sleep(0.5)
        for packet in rtp_tone_packets(INJECTED_HZ, 0.2, ssrc=1):
            injector.send(packet, target)
        await asyncio.sleep(0.2)
        assert injector.received() == [] and not gateway.calls.calls
    finally:
        injector.close()
        await visitor.close()
    await uas.assert_passed_async()
