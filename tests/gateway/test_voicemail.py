"""Voicemail against a stock aiortc peer standing in for the browser, over loopback ICE and
DTLS-SRTP: the peer hears the greeting's tone, the gateway records the peer's 660 Hz tone
to Ogg/Opus for exactly the site's `voicemail_max_seconds`, keeps a row and tells the site
(with a signed link); Send during the greeting keeps nothing; the site's choice and the
visitor's limits refuse with their codes. The rate windows run on a fake clock."""

from __future__ import annotations

import asyncio
import fractions
from pathlib import Path

import av
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from gateway.access.admission import CallAdmission, LimitRefused
from gateway.access.downloads import DownloadLinks
from gateway.access.ledger import SqliteLedger
from gateway.api import CallRefused, VisitorDetails, VoicemailState, VoicemailUpdate
from gateway.calls.voicemail import Voicemails
from gateway.config import parse_config
from gateway.media.webrtc_leg import use_host_addresses
from gateway.storage import Database
from sip_bridge import codec_by_name
from tests.gateway.clock import FakeClock
from tests.support.audio import dominant_frequency

CONFIG = """
[limits]
max_calls_per_client = 1
calls_per_client_15min = 3
[media]
browser_codecs = ["PCMU"]
[[sites]]
id = "shop"
destination = "sip:desk@pbx.example.com"
fallback = ["voicemail", "callback"]
voicemail_max_seconds = 3
[[sites]]
id = "plain"
destination = "sip:desk@pbx.example.com"
"""
VISITOR = "192.0.2.7"
TONE_HZ = 660


class ToneTrack(MediaStreamTrack):
    """A 660 Hz tone as PCMU frames every 20 ms: the visitor speaking."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.index = 0
        self.encode = codec_by_name("PCMU").create_encoder(20).encode

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError
        await asyncio.sleep(0.02)
        t = (np.arange(160) + self.index * 160) / 8000
        pcm = (np.sin(2 * np.pi * TONE_HZ * t) * 12000).astype(np.int16)
        packet = av.Packet(self.encode(pcm))
        packet.pts = self.index * 160
        packet.time_base = fractions.Fraction(1, 8000)
        self.index += 1
        return packet


class Told:
    """What the site's owner is told (the Notifier's voicemail_received)."""

    def __init__(self) -> None:
        self.voicemails: list[tuple[dict, str, float]] = []

    def voicemail_received(self, voicemail, *, download_url, download_expires_at) -> None:
        self.voicemails.append((dict(voicemail), download_url, download_expires_at))


@pytest.fixture
async def database(tmp_path: Path):
    database = await Database.open(f"sqlite:///{tmp_path / 'gw.db'}")
    yield database
    await database.close()


@pytest.fixture
def voicemails(tmp_path: Path, database: Database) -> Voicemails:
    use_host_addresses(["127.0.0.1"])
    config = parse_config(CONFIG)
    admission = CallAdmission(max_calls=5, max_calls_per_client=1, ledger=SqliteLedger.in_memory())
    service = Voicemails(
        config,
        admission,
        directory=tmp_path / "var" / "voicemail",
        links=DownloadLinks(b"k" * 32),
        database=database,
        clock=FakeClock(1_800_000_000.0),
    )
    service.notifier = Told()  # type: ignore[assignment]
    return service


async def offer(pc: RTCPeerConnection) -> str:
    await pc.setLocalDescription(await pc.createOffer())
    return pc.localDescription.sdp


def heard_by(pc: RTCPeerConnection) -> list[bytes]:
    """The PCMU payloads the peer receives, as they come."""
    heard: list[bytes] = []
    (transceiver,) = pc.getTransceivers()

    async def record(packet, arrival_time_ms) -> None:
        heard.append(packet.payload)

    transceiver.receiver._handle_rtp_packet = record
    return heard


async def until(condition, seconds: float = 15.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def test_the_visitor_hears_the_tone_and_their_message_is_kept(
    voicemails: Voicemails, database: Database
) -> None:
    site = voicemails.config.site("shop")
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(ToneTrack())
    updates: list[VoicemailUpdate] = []
    try:
        visitor = VisitorDetails(name="Ana", page="https://shop.example/x", source="newsletter")
        grant = await voicemails.start(
            site, VISITOR, await offer(pc), updates.append, visitor=visitor, after_call="c1"
        )
        assert grant.max_seconds == 3.0
        heard = heard_by(pc)
        await pc.setRemoteDescription(RTCSessionDescription(grant.answer_sdp, "answer"))
        await until(lambda: any(u.state == VoicemailState.SAVED for u in updates))
    finally:
        await pc.close()
    states = [u.state for u in updates]
    assert states == [VoicemailState.GREETING, VoicemailState.RECORDING, VoicemailState.SAVED]
    assert updates[1].seconds == 3.0 and updates[2].seconds == 3.0  # stopped at its length
    # The greeting without a file: the tone that says "speak now".
    pcm = codec_by_name("PCMU").create_decoder().decode(b"".join(heard))
    assert abs(dominant_frequency(pcm, 8000) - 1000) < 10

    (kept,) = await database.voicemails.find(site="shop")
    assert (kept.seconds, kept.call_id, kept.visitor_source) == (3.0, "c1", "newsletter")
    path = voicemails.directory / kept.file
    with av.open(str(path)) as container:
        assert container.format.name == "ogg"
        assert container.streams.audio[0].codec_context.name == "opus"
        samples = np.concatenate(
            [frame.to_ndarray().reshape(-1) for frame in container.decode(audio=0)]
        )
    assert abs(len(samples) / 48000 - 3.0) < 0.05
    assert abs(dominant_frequency(samples, 48000) - TONE_HZ) < 5
    ((told, url, expires),) = voicemails.notifier.voicemails  # type: ignore[attr-defined]
    assert told["id"] == kept.id and "file" not in told
    assert url.startswith(f"http://127.0.0.1:8080/api/voicemails/{kept.id}/audio?expires=")
    assert expires == 1_800_000_000 + voicemails.links.lifetime
    assert voicemails.recordings == {}
    assert voicemails.admission.live_calls == 0


async def test_send_during_the_greeting_keeps_nothing(
    voicemails: Voicemails, database: Database
) -> None:
    site = voicemails.config.site("shop")
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(ToneTrack())
    updates: list[VoicemailUpdate] = []
    try:
        grant = await voicemails.start(site, VISITOR, await offer(pc), updates.append)
        await pc.setRemoteDescription(RTCSessionDescription(grant.answer_sdp, "answer"))
        await until(lambda: updates and updates[0].state == VoicemailState.GREETING)
        await voicemails.send(grant.voicemail_id)
    finally:
        await pc.close()
    assert updates[-1] == VoicemailUpdate(VoicemailState.FAILED, reason="empty")
    assert await database.voicemails.find() == []
    assert not any(voicemails.directory.glob("*.ogg")) if voicemails.directory.exists() else True
    assert voicemails.admission.live_calls == 0


async def test_sites_and_limits_refuse_with_their_codes(voicemails: Voicemails) -> None:
    config = voicemails.config
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="sendrecv")
    sdp = await offer(pc)
    await pc.close()
    with pytest.raises(CallRefused) as refused:
        await voicemails.start(config.site("plain"), VISITOR, sdp, lambda u: None)
    assert refused.value.code == "voicemail_off"
    with pytest.raises(CallRefused) as refused:
        await voicemails.start(config.site("shop"), VISITOR, "v=0\r\n", lambda u: None)
    assert refused.value.code == "bad_offer"
    assert voicemails.admission.live_calls == 0
    # One at a time per visitor, and as many as calls in the windows (counted apart; the
    # bad offer above was one).
    first = await voicemails.start(config.site("shop"), VISITOR, sdp, lambda u: None)
    with pytest.raises(LimitRefused) as limited:
        await voicemails.start(config.site("shop"), VISITOR, sdp, lambda u: None)
    assert limited.value.code == "too_many_calls"
    await voicemails.send(first.voicemail_id)
    await voicemails.start(config.site("shop"), VISITOR, sdp, lambda u: None)
    await voicemails.close()
    with pytest.raises(LimitRefused) as limited:
        await voicemails.start(config.site("shop"), VISITOR, sdp, lambda u: None)
    assert limited.value.code == "rate_limited" and "voicemails" in limited.value.message
    assert voicemails.admission.live_calls == 0
