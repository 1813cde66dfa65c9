"""One visitor: a real WebRTC peer (aiortc for signaling, ICE and DTLS-SRTP) made cheap.

After ICE and DTLS, its audio goes through the gateway's own `SrtpAudioChannel`: frames are
sent pre-encoded by the process's `FrameTicker` and the echo is read at the RTP level (after
SRTP), never through aiortc's jitter buffer and decoder thread. What it measures per call:
set-up time (call:start sent -> "answered" received), every echoed frame's arrival against
its media time (frames on time, gaps), the delay of each tone onset through the echo (round
trip), and the echo's frequency.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from array import array
from collections.abc import Sequence

import aiohttp
import numpy as np
import socketio
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from gateway.media.srtp_channel import SrtpAudioChannel

from .audio import ONSET, PERIOD_FRAMES, QUIET, TONE_HZ, EchoDecoder, dominant_frequency

CLOCK = {"pcmu": 8000, "opus": 48000}
FREQUENCY_FRAMES = 30  # 600 ms of tone taken for the frequency check
FREQUENCY_TOLERANCE_HZ = 10.0


class IdleAudioTrack(MediaStreamTrack):
    """A track that never yields a frame: aiortc's sender waits on it without polling,
    while the frames go out through the channel."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._stopped = asyncio.Event()

    async def recv(self):
        await self._stopped.wait()
        raise MediaStreamError

    def stop(self) -> None:
        super().stop()
        self._stopped.set()


class Visitor:
    """One call: connect, offer, send the pattern, read the echo, hang up, report."""

    def __init__(
        self,
        index: int,
        *,
        url: str,
        origin: str,
        site: str,
        codec: str,
        frames: Sequence[bytes],
        window: tuple[float, float],
    ) -> None:
        self.index = index
        self.url = url
        self.origin = origin
        self.site = site
        self.codec = codec
        self.frames = frames
        self.window = window
        self.clock = CLOCK[codec]
        self.ticks = self.clock // 50
        self.channel: SrtpAudioChannel | None = None
        self.sending = False
        self._k = 0  # frames sent
        self._sent_in_window = 0
        self._timestamp0 = 0
        self._last_onset_sent: float | None = None
        self._decoder = EchoDecoder(codec)
        self._previous_quiet = False
        self._first_ts: int | None = None
        self._arrivals = array("d")  # in the window: arrival - media time
        self._indexes = array("q")  # in the window: frame index of the echo
        self.rtt = array("d")  # seconds, onsets seen in the window
        self._frequency_pcm: list[np.ndarray] = []
        self._collect = 0
        self.states: dict[str, float] = {}
        self._state_event = asyncio.Event()
        self.error: str | None = None
        self.setup: float | None = None

    # ------------------------------------------------------------------ sending
    def tick(self, now: float) -> None:
        """Send the next frame (called by the process's FrameTicker every 20 ms)."""
        k = self._k
        self._k = k + 1
        position = k % PERIOD_FRAMES
        if position == 0:
            self._last_onset_sent = now
        if self.window[0] <= now <= self.window[1]:
            self._sent_in_window += 1
        self.channel.send(self.frames[position], self._timestamp0 + k * self.ticks, k == 0)

    # ------------------------------------------------------------------ receiving
    def on_packet(self, payload, timestamp: int) -> None:
        now = time.monotonic()
        first = self._first_ts
        if first is None:
            first = self._first_ts = timestamp
        index = ((timestamp - first) & 0xFFFFFFFF) // self.ticks
        in_window = self.window[0] <= now <= self.window[1]
        if in_window:
            self._arrivals.append(now - index * 0.02)
            self._indexes.append(index)
        pcm = self._decoder.decode(payload)
        if pcm is None:
            return
        magnitude = np.abs(pcm.astype(np.int32))
        peak = int(magnitude.max())
        if self._collect:
            self._frequency_pcm.append(pcm)
            self._collect -= 1
        if self._previous_quiet and peak > ONSET:
            offset = int(np.argmax(magnitude > ONSET)) / self._decoder.rate
            sent = self._last_onset_sent
            if in_window and sent is not None:
                self.rtt.append(now + offset - sent)
            if not self._frequency_pcm and in_window:
                # Skip the onset frame (codec start-up), then take 600 ms of steady tone.
                self._collect = FREQUENCY_FRAMES + 1
        self._previous_quiet = peak < QUIET

    # ------------------------------------------------------------------ the call
    async def run(self, ticker, start_at: float, hangup_at: float) -> dict:
        await _sleep_until(start_at)
        client = socketio.AsyncClient(reconnection=False)
        client.on("call:state", self._on_state)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        track = IdleAudioTrack()
        try:
            token = await self._call_token()
            await client.connect(
                self.url,
                transports=["websocket"],
                auth={"site": self.site, "token": token} if token else {"site": self.site},
                headers={"Origin": self.origin},
                wait_timeout=10,
            )
            transceiver = pc.addTransceiver(track, direction="sendrecv")
            await pc.setLocalDescription(await pc.createOffer())
            started = time.monotonic()
            ack = await client.call("call:start", {"sdp": pc.localDescription.sdp}, timeout=15)
            if not ack.get("ok"):
                raise CallFailed(f"call:start refused: {ack.get('error')}")
            await pc.setRemoteDescription(RTCSessionDescription(ack["sdp"], "answer"))
            await self._wait(lambda: pc.connectionState == "connected", pc, 10)
            self.channel = SrtpAudioChannel(transceiver, _payload_type(ack["sdp"]), self.on_packet)
            if not self.channel.attach():
                raise CallFailed("could not take over the peer connection's RTP")
            self._timestamp0 = (self.index * 7919) & 0xFFFFFFFF
            ticker.add(self)
            await self._wait_state("answered", 10)
            self.setup = self.states["answered"] - started
            await _sleep_until(hangup_at)
            ticker.remove(self)
            await client.call("call:hangup", {}, timeout=5)
            await self._wait_state("ended", 5)
        except (
            CallFailed,
            TimeoutError,
            socketio.exceptions.SocketIOError,
            aiohttp.ClientError,
            OSError,
        ) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            ticker.remove(self)
            if self.channel is not None:
                self.channel.detach()
            await pc.close()
            if client.connected:
                await client.disconnect()
        return self.result()

    async def _call_token(self) -> str | None:
        """A call token from POST /api/token, as the widget gets one (None from a gateway
        older than call tokens: lets the benchmark measure an old revision)."""
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{self.url}/api/token", json={"site": self.site}, headers={"Origin": self.origin}
            ) as response,
        ):
            if response.status == 404:
                return None
            answer = await response.json()
            if response.status != 200:
                raise CallFailed(f"no call token: {response.status} {answer}")
            return answer["token"]

    async def _on_state(self, payload: dict) -> None:
        state = payload.get("state")
        if isinstance(state, str) and state not in self.states:
            self.states[state] = time.monotonic()
            if state == "ended" and "answered" not in self.states:
                self.error = f"ended before answer: {payload.get('cause')}"
            self._state_event.set()

    async def _wait_state(self, state: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while state not in self.states:
            if "ended" in self.states:
                raise CallFailed(f"call ended ({self.error or 'no cause'}) waiting for {state}")
            self._state_event.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CallFailed(f"no {state!r} within {timeout} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._state_event.wait(), remaining)

    async def _wait(self, condition, pc, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if pc.connectionState in ("failed", "closed"):
                raise CallFailed(f"peer connection {pc.connectionState}")
            if time.monotonic() > deadline:
                raise CallFailed(f"peer connection not connected within {timeout} s")
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ results
    def result(self, allowance: float = 0.05) -> dict:
        """Per-call figures; frames count only when they arrived within the window."""
        indexes = np.frombuffer(self._indexes, np.int64) if self._indexes else np.zeros(0, np.int64)
        lateness = np.frombuffer(self._arrivals, np.float64) if self._arrivals else np.zeros(0)
        expected = received = on_time = gaps = 0
        if len(indexes):
            unique, first = np.unique(indexes, return_index=True)
            expected = int(unique[-1] - unique[0] + 1)
            received = len(unique)
            late = lateness[first]
            on_time = int(np.count_nonzero(late - late.min() <= allowance))
            gaps = int(np.count_nonzero(np.diff(unique) > 1))
        frequency = (
            dominant_frequency(np.concatenate(self._frequency_pcm[1:]), self._decoder.rate)
            if len(self._frequency_pcm) > 1
            else None
        )
        answered = "answered" in self.states
        ok = (
            self.error is None
            and answered
            and "ended" in self.states
            and frequency is not None
            and abs(frequency - TONE_HZ) <= FREQUENCY_TOLERANCE_HZ
            and received >= 0.9 * self._sent_in_window
        )
        return {
            "index": self.index,
            "ok": bool(ok),
            "error": self.error,
            "answered": answered,
            "setup_s": self.setup,
            "frames_expected": expected,
            "frames_received": received,
            "frames_on_time": on_time,
            "gaps": gaps,
            "rtt_s": list(self.rtt),
            "frequency_hz": frequency,
            "frames_sent": self._k,
            "frames_sent_in_window": self._sent_in_window,
        }


class CallFailed(Exception):
    """A call did not get through or was not carried through (the message says why)."""


def _payload_type(answer_sdp: str) -> int:
    match = re.search(r"^m=audio \d+ [A-Z/]+ (\d+)", answer_sdp, re.MULTILINE)
    if match is None:
        raise CallFailed("the answer has no audio payload type")
    return int(match.group(1))


async def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


__all__ = ["CallFailed", "IdleAudioTrack", "Visitor"]
