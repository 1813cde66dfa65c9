"""The operator's phone rings only once the browser's media path is up (issue 11, item 3).

The attack: offers whose ICE can never complete (every candidate points at a socket that
never answers a STUN check). Before, the gateway rang the operator at once and held the
call, and its place in every limit, until ICE gave up (30 s): a few addresses kept a site
`busy`. Now such a call ends `failed` after `ice.connect_timeout` and no phone rings.

The attacker is python-socketio with offers made by aiortc (then made unreachable), the
honest visitor a real aiortc peer, the operator SIPp or a sip_bridge phone; all on loopback.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import socketio
from aiortc import RTCConfiguration, RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack

from sip_bridge.asyncio.call_media import CallMedia
from sip_bridge.asyncio.endpoint import SipCall, SipEndpoint
from sip_bridge.useragent import UserAgentConfig
from tests.support.ports import free_port_block, free_udp_port

from .conftest import call_token
from .test_abuse_limits import Visitor
from .test_browser_call import assert_all_released

CONNECT_TIMEOUT = 1.0


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A UDP port that takes every STUN check and answers none."""
    hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    hole.bind(("127.0.0.1", 0))
    yield hole.getsockname()[1]
    hole.close()


async def unreachable_offer(port: int) -> str:
    """A real browser-like offer whose every ICE candidate is the black hole."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(AudioStreamTrack())
    await pc.setLocalDescription(await pc.createOffer())
    offer = pc.localDescription.sdp
    await pc.close()
    offer, count = re.subn(
        r"(a=candidate:\S+ \d+ udp \d+ )\S+ \d+", rf"\g<1>127.0.0.1 {port}", offer
    )
    assert count >= 1, offer
    return offer


class Attacker:
    """One socket.io connection placing one call with an unreachable offer."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway
        self.sio = socketio.AsyncClient(reconnection=False)
        self.states: list[dict[str, Any]] = []
        self.sio.on("call:state", self.states.append)

    async def call(self, offer: str) -> dict[str, Any]:
        await self.sio.connect(
            self.gateway.url,
            transports=["websocket"],
            auth={"site": "shop", "token": await call_token(self.gateway)},
            headers={"Origin": self.gateway.config.http.public_origin},
            wait_timeout=5,
        )
        return await self.sio.call("call:start", {"sdp": offer}, timeout=10)

    async def ended(self, timeout: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while not any(s["state"] == "ended" for s in self.states):
                await asyncio.sleep(0.02)
        return next(s for s in self.states if s["state"] == "ended")


@pytest.fixture
async def attackers() -> AsyncIterator[Any]:
    opened: list[Attacker] = []

    def attacker(gateway: Any) -> Attacker:
        opened.append(Attacker(gateway))
        return opened[-1]

    yield attacker
    for one in opened:
        await one.sio.disconnect()


async def test_calls_whose_ice_never_completes_ring_nobody_and_free_their_slots(
    gateway_factory, sipp_factory, attackers, black_hole, caplog
):
    caplog.set_level(logging.INFO)
    uas = sipp_factory("uas_answer_echo", rtp_echo=True)
    gateway = await gateway_factory(
        destination=uas.uri,
        site_extra="max_site_calls = 2",
        ice_extra=f"connect_timeout = {CONNECT_TIMEOUT}",
    )
    # One address fills the site with two calls (its max_calls_per_client).
    offer = await unreachable_offer(black_hole)
    flood = [attackers(gateway), attackers(gateway)]
    for attacker in flood:
        ack = await attacker.call(offer)
        assert ack["ok"], ack
    for attacker in flood:
        ended = await attacker.ended()
        assert ended["cause"] == "failed", attacker.states
        # The page saw the call connect and end, never ring.
        assert [s["state"] for s in attacker.states] == ["connecting", "ended"]
    await assert_all_released(gateway)
    assert gateway.calls.admission.live_calls == 0
    assert uas.trace() == []  # not one INVITE reached the operator
    assert "the browser's media did not connect within 1 s" in caplog.text
    # The site's slots are free again: an honest visitor's call goes through.
    visitor = Visitor(gateway)
    try:
        await visitor.connect()
        ack = await visitor.start_call()
        assert ack["ok"], ack
        await visitor.state(ack["call_id"], "answered")
        await visitor.sio.call("call:hangup", {}, timeout=5)
        await visitor.state(ack["call_id"], "ended")
    finally:
        await visitor.close()
    await uas.assert_passed_async()
    await assert_all_released(gateway)


async def test_the_operator_is_dialled_only_once_the_browser_is_connected(gateway_factory):
    """When the INVITE reaches the operator's phone, the call's browser leg is connected
    already (ICE and DTLS done)."""
    seen: list[bool] = []
    rtp = free_port_block(10)
    port = free_udp_port()
    phone = await SipEndpoint.open(
        UserAgentConfig(address=("127.0.0.1", port), user="operator", accept_incoming=True)
    )
    medias: list[CallMedia] = []
    answering: set[asyncio.Task] = set()

    async def answer(call: SipCall) -> None:
        assert call.incoming is not None
        media = await CallMedia.open("127.0.0.1", (rtp, rtp + 9), codecs=["PCMU"])
        medias.append(media)
        call.answer(media.answer(call.incoming.sdp))

    def incoming(call: SipCall) -> None:
        seen.extend(c.webrtc.connected.is_set() for c in gateway.calls.calls.values())
        task = asyncio.ensure_future(answer(call))
        answering.add(task)
        task.add_done_callback(answering.discard)

    phone.on_incoming = incoming
    try:
        gateway = await gateway_factory(destination=f"sip:operator@127.0.0.1:{port}")
        visitor = Visitor(gateway)
        try:
            await visitor.connect()
            ack = await visitor.start_call()
            assert ack["ok"], ack
            await visitor.state(ack["call_id"], "answered")
            await visitor.sio.call("call:hangup", {}, timeout=5)
            await visitor.state(ack["call_id"], "ended")
        finally:
            await visitor.close()
        assert seen == [True]
        await assert_all_released(gateway)
    finally:
        for media in medias:
            await media.close()
        await phone.close()
