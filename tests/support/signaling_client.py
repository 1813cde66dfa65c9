"""A page's side of signaling for tests that drive a gateway by its URL (a gateway
started as a process has no Python object to ask): a call token, a socket.io connection
with the page's Origin, and a browser-shaped SDP offer made by aiortc."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import socketio
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

__all__ = ["aiortc_offer", "call_token", "live_call", "start_call", "visitor_socket"]


async def call_token(url: str, origin: str, site: str = "shop") -> str:
    """A call token from `POST /api/token`, as the page gets one."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/api/token", json={"site": site}, headers={"Origin": origin}) as got,
    ):
        answer = await got.json()
        assert got.status == 200, answer
        return answer["token"]


@contextlib.asynccontextmanager
async def visitor_socket(
    url: str, origin: str, site: str = "shop"
) -> AsyncIterator[socketio.AsyncClient]:
    """A connected socket.io client of a page of `origin`, disconnected on exit."""
    token = await call_token(url, origin, site)
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(
        url,
        transports=["websocket"],
        auth={"site": site, "token": token},
        headers={"Origin": origin},
    )
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()


async def aiortc_offer() -> str:
    """An audio offer as a browser makes one (ICE credentials, DTLS fingerprint, a host
    candidate); the peer connection is closed again, so nobody answers its checks."""
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        await pc.close()


async def start_call(
    client: socketio.AsyncClient, sdp: str, visitor: dict[str, str] | None = None
) -> dict[str, Any]:
    """`call:start` with `sdp` (and visitor details); the gateway's acknowledgement."""
    payload: dict[str, Any] = {"sdp": sdp}
    if visitor is not None:
        payload["visitor"] = visitor
    return await client.call("call:start", payload, timeout=15)


@contextlib.asynccontextmanager
async def live_call(
    client: socketio.AsyncClient, visitor: dict[str, str] | None = None
) -> AsyncIterator[dict[str, Any]]:
    """`call:start` from a live aiortc peer that applies the gateway's answer, so that its
    media path comes up and the gateway rings the phone (it rings nobody before); yields
    the acknowledgement, and closes the peer connection on exit."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        pc.addTransceiver("audio", direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        ack = await start_call(client, pc.localDescription.sdp, visitor)
        if ack.get("ok"):
            await pc.setRemoteDescription(RTCSessionDescription(ack["sdp"], "answer"))
        yield ack
    finally:
        await pc.close()
