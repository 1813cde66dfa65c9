"""A visitor for end-to-end tests: aiortc in place of the browser, python-socketio for
signaling. It sends a tone and keeps every sample it hears, so tests judge audio by
frequency (tests.support.audio), and it records the call states the gateway pushes."""

from __future__ import annotations

import asyncio
import contextlib
import fractions

import aiohttp
import av
import numpy as np
import socketio
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from gateway.process.gateway import Gateway

RATE = 48000
FRAME = 960  # 20 ms at 48 kHz


class ToneTrack(MediaStreamTrack):
    """A sine tone, paced in real time, 20 ms per frame."""

    kind = "audio"

    def __init__(self, hz: float, amplitude: float = 0.4) -> None:
        super().__init__()
        self._hz = hz
        self._amplitude = amplitude
        self._index = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        await asyncio.sleep(max(0.0, self._start + self._index * 0.02 - loop.time()))
        t = (np.arange(FRAME) + self._index * FRAME) / RATE
        samples = (self._amplitude * 32767 * np.sin(2 * np.pi * self._hz * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self._index * FRAME
        frame.time_base = fractions.Fraction(1, RATE)
        self._index += 1
        return frame


async def call_token(gateway: Gateway, site: str) -> str | None:
    """A call token when the gateway hands them out (`POST /api/token`), else None."""
    origin = gateway.config.http.public_origin
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{gateway.url}/api/token", json={"site": site}, headers={"Origin": origin}
        ) as response,
    ):
        if response.status == 404:
            return None
        answer = await response.json()
        assert response.status == 200, answer
        return answer["token"]


class Visitor:
    def __init__(self, tone_hz: float) -> None:
        self.pc = RTCPeerConnection()
        self.pc.addTrack(ToneTrack(tone_hz))
        self.client = socketio.AsyncClient(reconnection=False)
        self.states: list[str] = []
        self.call_id: str | None = None
        self._chunks: list[np.ndarray] = []
        self.rate: int | None = None
        self._reader: asyncio.Task | None = None
        self.client.on("call:state", self._on_state)
        self.pc.on("track", self._on_track)

    def _on_state(self, payload: dict) -> None:
        self.states.append(payload.get("state", "?"))

    def _on_track(self, track: MediaStreamTrack) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read(track))

    async def _read(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except Exception:  # the track ended with the call
                return
            self.rate = frame.sample_rate
            channels = len(frame.layout.channels)
            samples = frame.to_ndarray().reshape(-1, channels)[:, 0]
            self._chunks.append(samples.astype(np.int16))

    async def call(self, gateway: Gateway, site: str = "shop") -> None:
        """Connect, start a call and apply the answer; returns once the call is started."""
        await self.pc.setLocalDescription(await self.pc.createOffer())
        auth = {"site": site}
        token = await call_token(gateway, site)
        if token is not None:
            auth["token"] = token
        await self.client.connect(
            gateway.url,
            transports=["websocket"],
            auth=auth,
            headers={"Origin": gateway.config.http.public_origin},
        )
        ack = await self.client.call(
            "call:start", {"sdp": self.pc.localDescription.sdp}, timeout=15
        )
        assert ack["ok"], ack
        self.call_id = ack.get("call_id")
        await self.pc.setRemoteDescription(RTCSessionDescription(ack["sdp"], "answer"))

    async def wait_for_state(self, state: str, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while state not in self.states:
                await asyncio.sleep(0.05)

    def mark(self) -> int:
        """A position in what was heard, for `heard_since`."""
        return len(self._chunks)

    def heard_since(self, mark: int) -> np.ndarray:
        chunks = self._chunks[mark:]
        return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)

    async def hangup(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.call("call:hangup", {}, timeout=5)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.client.disconnect()
        await self.pc.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
