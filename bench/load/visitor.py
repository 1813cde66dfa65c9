"""One visitor: a WebRTC peer that looks like Chromium on the wire, made cheap.

aiortc does the handshakes (ICE, DTLS-SRTP); the offer is Chromium's (bench/load/offer.py)
and, once connected, the audio goes as Chromium sends it (bench/load/browser_media.py):
pre-encoded frames on the call's own clock, Chromium's header extensions, RTCP and consent
checks at a browser's rate. The echo is read at the RTP level, never through aiortc's jitter
buffer and decoder thread. What it measures per call: set-up time (offer sent -> answered),
every echoed frame's arrival against its media time (frames on time, gaps), the delay of
each tone onset through the echo (round trip), and the echo's frequency.
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import time
from array import array
from collections.abc import Sequence

import aiohttp
import numpy as np
import socketio
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from . import offer as offers
from .audio import (
    ONSET,
    PERIOD_FRAMES,
    QUIET,
    TONE_HZ,
    EchoDecoder,
    dominant_frequency,
    plays_narrowband,
)
from .browser_media import FRAME, BrowserAudio, Lateness
from .native import Engine, NativeAudio
from .signaling import CallFailed, Signaling
from .window import Window

CODECS = {"pcmu": ("PCMU", 8000), "opus": ("opus", 48000)}
FREQUENCY_FRAMES = 30  # 600 ms of tone taken for the frequency check
FREQUENCY_TOLERANCE_HZ = 10.0
HANGUP_AFTER = 0.3  # seconds after the window closes


class IdleAudioTrack(MediaStreamTrack):
    """A track that never yields a frame: aiortc's sender waits on it without polling,
    while the frames go out through BrowserAudio."""

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
        signaling: Signaling,
        codec: str,
        frames: Sequence[bytes],
        levels: Sequence[int],
        window: Window,
        narrowband_frames: Sequence[bytes] | None = None,
        lateness: Lateness,
        jitter: float,
        seed: int,
        anchor: float,
        engine: Engine | None = None,
    ) -> None:
        self.index = index
        # G.711 calls' media in C when the process has the engine (bench/load/native.py).
        self.engine = engine if codec == "pcmu" else None
        self.signaling = signaling
        self.codec = codec
        self.frames = frames
        # What it sends instead when the answer asks for narrowband (maxplaybackrate).
        self.narrowband_frames = narrowband_frames
        self.levels = levels
        self.window = window
        self.lateness = lateness
        self.jitter = jitter
        self.random = random.Random(seed)
        # The call's clock: frames due at anchor + phase + k * 20 ms (anchor: a time all
        # generator processes share), the phase drawn from the call's own seed.
        self.anchor = anchor
        self.phase = phase_offset(seed)
        self.encoding, self.clock = CODECS[codec]
        self.ticks = self.clock // 50
        self.media: BrowserAudio | None = None
        self._sent_in_window = 0
        self._frames_sent = 0
        self._last_onset_sent: float | None = None
        self._decoder = EchoDecoder(codec)
        self._previous_quiet = False
        self._first_ts: int | None = None
        self._arrivals = array("d")  # in the window: arrival - media time
        self._indexes = array("q")  # in the window: frame index of the echo
        self.rtt = array("d")  # seconds, onsets seen in the window
        self._frequency_pcm: list[np.ndarray] = []
        self._collect = 0
        self.error: str | None = None
        self.setup: float | None = None
        self.stage = "not started"  # where the call is (said when it gets stuck)
        self.settled = asyncio.Event()  # set once answered, or failed

    # ------------------------------------------------------------------ sending
    def on_sent(self, k: int, now: float) -> None:
        """Frame k went out (BrowserAudio calls this on the call's own clock)."""
        self._frames_sent = k + 1
        if k % PERIOD_FRAMES == 0:
            self._last_onset_sent = now
        if now in self.window:
            self._sent_in_window += 1

    # ------------------------------------------------------------------ receiving
    def on_packet(self, payload, timestamp: int) -> None:
        self.on_echo(timestamp, self._decoder.decode(payload))

    def on_echo(self, timestamp: int, pcm: np.ndarray | None) -> None:
        """An echoed frame (its RTP timestamp, its PCM or None when it did not decode)
        arrived now."""
        now = time.monotonic()
        first = self._first_ts
        if first is None:
            first = self._first_ts = timestamp
        index = ((timestamp - first) & 0xFFFFFFFF) // self.ticks
        in_window = now in self.window
        if in_window:
            self._arrivals.append(now - index * 0.02)
            self._indexes.append(index)
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
    async def run(self, start_at: float, hold: float | None = None) -> dict:
        """The call, from `start_at`; it hangs up after `hold` seconds, or else once the
        measurement window is over."""
        await _sleep_until(start_at)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        signaling = self.signaling
        try:
            self.stage = "connecting to the server"
            await signaling.open()
            self.stage = "offering"
            started, answer = await self._negotiate(pc)
            self.stage = "connecting ICE and DTLS"
            await self._wait_connected(pc, 10)
            self._start_media(pc, answer)
            self.stage = "waiting for the operator to answer"
            await signaling.wait_state("answered", 10)
            self.stage = "in call"
            self.setup = signaling.states["answered"] - started
            self.settled.set()
            if hold is not None:
                await _sleep_until(start_at + hold)
            else:
                await self.window.known.wait()
                await _sleep_until(self.window.end + HANGUP_AFTER)
            self.media.stop()
            self.stage = "hanging up"
            await signaling.hangup()
            await signaling.wait_state("ended", 5)
        except (
            CallFailed,
            TimeoutError,
            socketio.exceptions.SocketIOError,
            aiohttp.ClientError,
            OSError,
        ) as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.settled.set()
            if self.media is not None:
                self.media.stop()
            self.stage = "closing"
            for closing in (pc.close(), signaling.close()):
                try:
                    await asyncio.wait_for(closing, 5)
                except TimeoutError:
                    self.error = self.error or f"{self.stage}: no end after 5 s"
            self.stage = "done"
        return self.result()

    async def _negotiate(self, pc: RTCPeerConnection) -> tuple[float, str]:
        """Offer (Chromium's, with aiortc's credentials), take the answer; when the offer
        went, and the answer's SDP."""
        self._transceiver = pc.addTransceiver(IdleAudioTrack(), direction="sendrecv")
        await pc.setLocalDescription(await pc.createOffer())
        local = pc.localDescription.sdp
        self._cname = offers.cname(self.random)
        offer = offers.chromium_offer(
            local, self._transceiver.sender._ssrc, self._cname, self.random
        )
        started = time.monotonic()
        self.stage = "waiting for the answer"
        answer = await self.signaling.call(offer, offers.candidates(local))
        self._payload_type = _payload_type(answer, *CODECS[self.codec])
        if self.narrowband_frames is not None and plays_narrowband(answer):
            self.frames = self.narrowband_frames  # as Chromium's encoder would code them
        await pc.setRemoteDescription(RTCSessionDescription(answer, "answer"))
        return started, answer

    def _start_media(self, pc: RTCPeerConnection, answer: str) -> None:
        """Once connected: the audio as Chromium sends it, aiortc's RTP taken over."""
        native = {} if self.engine is None else {
            "engine": self.engine, "index": self.index,
            "frequency_frames": FREQUENCY_FRAMES + 1,
        }  # fmt: skip
        self.media = (BrowserAudio if self.engine is None else NativeAudio)(
            self._transceiver,
            answer,
            self._payload_type,
            self.clock,
            self.frames,
            self.levels,
            cname=self._cname,
            on_packet=self.on_packet,
            on_sent=self.on_sent,
            lateness=self.lateness,
            jitter=self.jitter,
            rng=self.random,
            **native,
        )
        if not self.media.attach():
            raise CallFailed("could not take over the peer connection's RTP")
        self.media.start(self.first_due(time.monotonic()))

    def first_due(self, now: float) -> float:
        """The first time on the call's clock that is not in the past."""
        periods = math.ceil((now - self.anchor - self.phase) / FRAME)
        return self.anchor + self.phase + max(periods, 0) * FRAME

    async def _wait_connected(self, pc, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while pc.connectionState != "connected":
            if pc.connectionState in ("failed", "closed"):
                raise CallFailed(f"peer connection {pc.connectionState}")
            if time.monotonic() > deadline:
                raise CallFailed(f"peer connection not connected within {timeout} s")
            await asyncio.sleep(0.01)

    # ------------------------------------------------------------------ results
    def result(self, allowance: float = 0.05) -> dict:
        """Per-call figures; frames count only when they arrived within the window."""
        if isinstance(self.media, NativeAudio):
            self._take_measurements(self.media)
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
        states = self.signaling.states
        error = self.error or self.signaling.error
        answered = "answered" in states
        ok = (
            error is None
            and answered
            and "ended" in states
            and frequency is not None
            and abs(frequency - TONE_HZ) <= FREQUENCY_TOLERANCE_HZ
            and received >= 0.9 * self._sent_in_window
        )
        return {
            "index": self.index,
            "ok": bool(ok),
            "error": error,
            "answered": answered,
            "setup_s": self.setup,
            "frames_expected": expected,
            "frames_received": received,
            "frames_on_time": on_time,
            "gaps": gaps,
            "rtt_s": list(self.rtt),
            "frequency_hz": frequency,
            "frames_sent": self._frames_sent,
            "frames_sent_in_window": self._sent_in_window,
        }

    def _take_measurements(self, media: NativeAudio) -> None:
        """What on_sent and on_packet gathered, when the engine did it in C."""
        taken = media.measurements()
        self._frames_sent = taken["frames_sent"]
        self._sent_in_window = taken["sent_in_window"]
        if taken["arrivals"] is not None:
            self._arrivals = array("d", taken["arrivals"].tobytes())
            self._indexes = array("q", taken["indexes"].tobytes())
        self.rtt = array("d", taken["rtt"])
        self._frequency_pcm = taken["frequency_pcm"]


def phase_offset(seed: int) -> float:
    """Where in the 20 ms a call's frames go out (seconds), from its seed."""
    return random.Random(seed ^ 0x5EED).random() * FRAME


def _payload_type(answer_sdp: str, encoding: str, clock: int) -> int:
    """The payload type the answer gave `encoding` (the one the visitor sends)."""
    match = re.search(
        rf"^a=rtpmap:(\d+) {re.escape(encoding)}/{clock}\b", answer_sdp, re.MULTILINE | re.I
    )
    if match is None:
        raise CallFailed(f"the answer has no {encoding}/{clock}")
    return int(match.group(1))


async def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


__all__ = ["CallFailed", "IdleAudioTrack", "Visitor", "phase_offset"]
