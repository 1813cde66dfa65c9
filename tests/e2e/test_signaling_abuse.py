"""Bad signaling against the real gateway: clear errors, nothing kept, calls still work.

The client is python-socketio's (a real websocket client) and the offers come from aiortc,
a real WebRTC peer; the far end is SIPp.
"""

from __future__ import annotations

import asyncio

import pytest
import socketio
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack

from .conftest import call_token
from .test_browser_call import assert_all_released


async def real_offer() -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTrack(AudioStreamTrack())
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def start_call(client: socketio.AsyncClient, pc: RTCPeerConnection, offer: str) -> dict:
    """call:start, and the answer applied: the gateway rings once the media path is up."""
    ack = await client.call("call:start", {"sdp": offer}, timeout=10)
    if ack["ok"]:
        await pc.setRemoteDescription(RTCSessionDescription(ack["sdp"], "answer"))
    return ack


async def connect(gateway, site: str = "shop") -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)
    errors: list[dict] = []
    client.on("error", errors.append)
    client.errors = errors
    client.states = []
    client.on("call:state", lambda update: client.states.append(update["state"]))
    await client.connect(
        gateway.url,
        transports=["websocket"],
        auth={"site": site, "token": await call_token(gateway, site)},
        headers={"Origin": gateway.config.http.public_origin},
        wait_timeout=5,
    )
    return client


async def refusal(gateway, *, site: str, origin: str, token: str = "") -> str:
    client = socketio.AsyncClient(reconnection=False)
    reasons: list[str] = []
    client.on("connect_error", lambda data: reasons.append(data["message"]))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            gateway.url,
            transports=["websocket"],
            auth={"site": site, "token": token},
            headers={"Origin": origin},
            wait_timeout=5,
        )
    return reasons[0]


async def test_unknown_site_and_foreign_origin_are_refused(gateway_factory):
    gateway = await gateway_factory(destination="sip:nobody@127.0.0.1:9")
    own = gateway.config.http.public_origin
    token = await call_token(gateway)
    assert "unknown site" in await refusal(gateway, site="nope", origin=own, token=token)
    assert "may not use site" in await refusal(
        gateway, site="shop", origin="https://evil.example", token=token
    )


async def answered(client: socketio.AsyncClient) -> None:
    for _ in range(100):
        if "answered" in client.states:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never answered: {client.states}")


@pytest.mark.parametrize(
    "sdp",
    [
        "v=0\r\nthis is not sdp\r\n",
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
        "v=0\r\n" + "a=x\r\n" * 5000,
    ],
    ids=["garbage", "no-audio", "huge"],
)
async def test_malformed_offer_is_refused_and_leaves_nothing(gateway_factory, sipp_factory, sdp):
    uas = sipp_factory("uas_answer_echo", rtp_echo=True)
    gateway = await gateway_factory(destination=uas.uri)
    client = await connect(gateway)
    try:
        ack = await client.call("call:start", {"sdp": sdp}, timeout=10)
        assert ack["ok"] is False and ack["error"]["message"]
        await assert_all_released(gateway)
        # The same connection still places a normal call afterwards.
        pc, offer = await real_offer()
        ack = await start_call(client, pc, offer)
        assert ack["ok"] is True and ack["sdp"].startswith("v=0")
        await answered(client)
        await client.call("call:hangup", {}, timeout=5)
        await pc.close()
        await uas.assert_passed_async()
        await assert_all_released(gateway)
    finally:
        await client.disconnect()


async def test_events_out_of_order_and_unknown_events(gateway_factory):
    gateway = await gateway_factory(destination="sip:nobody@127.0.0.1:9")
    client = await connect(gateway)
    try:
        for event, payload in [
            ("call:candidate", {"candidate": "", "sdpMid": "0", "sdpMLineIndex": 0}),
            ("call:hangup", {}),
            ("call:dtmf", {"digits": "1"}),
            ("call:mute", {"muted": True}),
            ("call:fly", {}),
            ("call:dtmf", {"digits": "1; DROP"}),
        ]:
            ack = await client.call(event, payload, timeout=5)
            assert ack["ok"] is False, (event, ack)
        await asyncio.sleep(0.1)
        assert {e["code"] for e in client.errors} >= {"no_call", "unknown_event", "bad_payload"}
        assert not gateway.calls.calls
    finally:
        await client.disconnect()


async def test_candidate_flood_is_cut_off_and_the_call_still_ends_cleanly(
    gateway_factory, sipp_factory
):
    uas = sipp_factory("uas_answer_echo", rtp_echo=True)
    gateway = await gateway_factory(destination=uas.uri)
    client = await connect(gateway)
    pc, offer = await real_offer()
    try:
        ack = await start_call(client, pc, offer)
        assert ack["ok"]
        await answered(client)
        refused = 0
        for port in range(200):
            candidate = f"candidate:1 1 udp 2122260223 127.0.0.1 {40000 + port} typ host"
            ack = await client.call(
                "call:candidate",
                {"candidate": candidate, "sdpMid": "0", "sdpMLineIndex": 0},
                timeout=5,
            )
            refused += not ack["ok"]
        # The offer's own candidates count against the same 64.
        assert refused == 200 - (64 - offer.count("\na=candidate:"))
        assert client.errors[-1]["code"] == "too_many_candidates"
        await client.call("call:hangup", {}, timeout=5)
        await uas.assert_passed_async()
        await assert_all_released(gateway)
    finally:
        await pc.close()
        await client.disconnect()


async def test_disconnect_mid_call_hangs_up(gateway_factory, sipp_factory):
    uas = sipp_factory("uas_answer_echo", rtp_echo=True)
    gateway = await gateway_factory(destination=uas.uri)
    client = await connect(gateway)
    pc, offer = await real_offer()
    ack = await start_call(client, pc, offer)
    assert ack["ok"]
    await answered(client)
    await client.disconnect()
    await pc.close()
    await uas.assert_passed_async()
    await assert_all_released(gateway)
