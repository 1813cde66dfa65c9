"""The call page in a real Chromium, against the real signaling, answered by aiortc.

The CallService here answers the page's offer with a plain aiortc peer connection that
sends a 700 Hz tone, and plays the call states a gateway would. What is checked is the
page: its buttons, its status words, its trickled candidates, DTMF, mute, hang-up, and the
remote audio it plays (by frequency, through WebAudio).
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import aioice.ice
import av
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack
from aiortc.sdp import candidate_from_sdp
from playwright.async_api import Page, async_playwright, expect

from gateway.access.challenge import ChallengeError, ProofOfWork
from gateway.access.pages import PageAccess
from gateway.api import (
    NO_DETAILS,
    CallRefused,
    CallState,
    CallUpdate,
    EndCause,
    Notify,
    SiteInfo,
    VisitorDetails,
)
from tests.gateway.clock import FakeClock
from tests.signaling.conftest import SITES, SignalingServer
from tests.signaling.memory_service import TOKEN_SECRET, RealTokens, page_access
from tests.support.audio import assert_tone
from tests.support.browser import (
    CHROMIUM,
    capture_remote_audio,
    chromium,
    chromium_args,
    record_states,
)
from tests.support.browser import states as shown_states

TONE_HZ = 700.0
STATE_TIMEOUT_MS = 10_000


class ToneTrack(AudioStreamTrack):
    """aiortc's paced 20 ms frames at 8 kHz, filled with a sine instead of silence."""

    def __init__(self, frequency: float) -> None:
        super().__init__()
        n = np.arange(8000)  # one second: a whole number of periods for integer Hz
        self._wave = (np.sin(2 * np.pi * frequency * n / 8000) * 12000).astype(np.int16)

    async def recv(self) -> av.AudioFrame:
        silence = await super().recv()
        start = silence.pts % 8000
        frame = av.AudioFrame.from_ndarray(
            self._wave[start : start + silence.samples].reshape(1, -1), format="s16", layout="mono"
        )
        frame.pts = silence.pts
        frame.sample_rate = 8000
        frame.time_base = fractions.Fraction(1, 8000)
        return frame


@dataclass
class ToneCallService(RealTokens):
    """A CallService whose calls are an aiortc peer sending a tone; the SIP side is played
    by `script`: the states to notify after the answer, 0.2 s apart."""

    sites: dict[str, SiteInfo]
    challenges: dict[str, str] = field(default_factory=dict)
    access: PageAccess = field(default_factory=lambda: page_access(FakeClock()))
    script: list[CallUpdate] = field(
        default_factory=lambda: [CallUpdate(CallState.RINGING), CallUpdate(CallState.ANSWERED)]
    )
    refusal: Exception | None = None  # raised by the next start_call
    requests: list[tuple] = field(default_factory=list)
    peers: dict[str, RTCPeerConnection] = field(default_factory=dict)
    notifiers: dict[str, Notify] = field(default_factory=dict)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def site(self, site_id: str) -> SiteInfo | None:
        return self.sites.get(site_id)

    async def start_call(
        self,
        *,
        site_id: str,
        client: str,
        offer_sdp: str,
        notify: Notify,
        visitor: VisitorDetails = NO_DETAILS,
    ) -> tuple[str, str]:
        self.requests.append(("start_call", site_id))
        if self.refusal is not None:
            refusal, self.refusal = self.refusal, None
            raise refusal
        call_id = f"tone-{len(self.peers) + 1}"
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.peers[call_id] = pc
        pc.addTrack(ToneTrack(TONE_HZ))
        await pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        notify(CallUpdate(CallState.CONNECTING))
        self.notifiers[call_id] = notify
        task = asyncio.create_task(self._play(call_id, notify))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return call_id, pc.localDescription.sdp

    async def _play(self, call_id: str, notify: Notify) -> None:
        for update in self.script:
            await asyncio.sleep(0.2)
            if call_id not in self.peers:
                return
            if update.state is CallState.ENDED:
                await self.peers.pop(call_id).close()
                del self.notifiers[call_id]
            notify(update)

    async def add_candidate(
        self, call_id: str, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None
    ) -> None:
        self.requests.append(("add_candidate", candidate))
        if not candidate:
            return
        parsed = candidate_from_sdp(candidate.split(":", 1)[1])
        parsed.sdpMid = sdp_mid
        parsed.sdpMLineIndex = sdp_mline_index
        await self.peers[call_id].addIceCandidate(parsed)

    async def hangup(self, call_id: str) -> None:
        self.requests.append(("hangup", call_id))
        pc = self.peers.pop(call_id, None)
        if pc is None:
            raise ValueError(f"no call {call_id}")
        await pc.close()
        self.notifiers.pop(call_id)(CallUpdate(CallState.ENDED, EndCause.VISITOR_HUNG_UP))

    async def send_dtmf(self, call_id: str, digits: str) -> None:
        self.requests.append(("send_dtmf", digits))

    async def set_mute(self, call_id: str, muted: bool) -> None:
        self.requests.append(("set_mute", muted))

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for pc in self.peers.values():
            await pc.close()


@pytest.fixture
async def call_service(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[ToneCallService]:
    # aioice skips 127.0.0.1 when gathering; loopback is the only address here.
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
    service = ToneCallService(dict(SITES))
    yield service
    await service.close()


@pytest.fixture
async def page(signaling_server: SignalingServer) -> AsyncIterator[Page]:
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{signaling_server.url}/embed/demo")
        await expect(page.get_by_role("status")).to_have_text("Ready", timeout=STATE_TIMEOUT_MS)
        yield page


async def wait_for(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


async def test_a_call_from_the_page(page: Page, signaling_server: SignalingServer) -> None:
    service = signaling_server.service
    status = page.get_by_role("status")
    await record_states(page)
    await page.get_by_role("button", name="Call", exact=True).click()
    await expect(status).to_have_text("In call", timeout=STATE_TIMEOUT_MS)
    assert await shown_states(page) == [
        "Ready",
        "Asking for your microphone…",
        "Connecting…",
        "Ringing…",
        "In call",
    ]

    # The tone the gateway side sends is what the page plays.
    samples, rate = await capture_remote_audio(page, 1.0)
    assert_tone(samples, rate, TONE_HZ, what="remote audio on the page")

    # Candidates were trickled after the offer, with an end-of-candidates.
    candidates = [request[1] for request in service.requests if request[0] == "add_candidate"]
    assert any(" 127.0.0.1 " in line for line in candidates)
    assert candidates[-1] == ""
    assert not any(".local" in line for line in candidates)

    await page.get_by_role("button", name="Keypad").click()  # the keypad is behind it
    await page.get_by_role("button", name="5", exact=True).click()
    await page.get_by_role("button", name="pound").click()
    mute = page.get_by_role("button", name="Mute", exact=True)
    await mute.click()
    # Mute became Unmute, pressed, and the visitor is told the far end hears nothing.
    unmute = page.get_by_role("button", name="Unmute", exact=True)
    await expect(unmute).to_have_attribute("aria-pressed", "true")
    await expect(page.get_by_text("Your microphone is off: we cannot hear you.")).to_be_visible()
    await wait_for(lambda: ("set_mute", True) in service.requests)
    assert [r for r in service.requests if r[0] == "send_dtmf"] == [
        ("send_dtmf", "5"),
        ("send_dtmf", "#"),
    ]

    await page.get_by_role("button", name="Hang up").click()
    await expect(status).to_have_text("Call ended")
    await wait_for(lambda: ("hangup", "tone-1") in service.requests)
    audio = page.locator("click-to-call audio")  # Playwright's CSS pierces shadow roots
    assert await audio.evaluate("(element) => element.srcObject") is None
    # Ready for another call.
    await expect(page.get_by_role("button", name="Call", exact=True)).to_be_enabled()
    await expect(page.get_by_role("button", name="Hang up")).to_be_hidden()


async def test_the_page_says_why_a_call_ended(
    page: Page, signaling_server: SignalingServer
) -> None:
    signaling_server.service.script = [
        CallUpdate(CallState.RINGING),
        CallUpdate(CallState.ENDED, EndCause.NO_ANSWER),
    ]
    await page.get_by_role("button", name="Call", exact=True).click()
    status = page.get_by_role("status")
    await expect(status).to_have_text("Call ended: no answer", timeout=STATE_TIMEOUT_MS)
    await expect(page.get_by_role("button", name="Call", exact=True)).to_be_enabled()


async def test_closing_the_tab_hangs_up(page: Page, signaling_server: SignalingServer) -> None:
    await page.get_by_role("button", name="Call", exact=True).click()
    await expect(page.get_by_role("status")).to_have_text("In call", timeout=STATE_TIMEOUT_MS)
    await page.close()
    await wait_for(lambda: ("hangup", "tone-1") in signaling_server.service.requests)
    await signaling_server.settle()


async def test_a_denied_microphone_is_said_in_words(signaling_server: SignalingServer) -> None:
    args = [arg for arg in chromium_args(None) if arg != "--use-fake-ui-for-media-stream"]
    async with contextlib.AsyncExitStack() as stack:
        playwright = await stack.enter_async_context(async_playwright())
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[*args, "--deny-permission-prompts"],
        )
        stack.push_async_callback(browser.close)
        page = await browser.new_page()
        await page.goto(f"{signaling_server.url}/embed/demo")
        status = page.get_by_role("status")
        await expect(status).to_have_text("Ready", timeout=STATE_TIMEOUT_MS)
        await page.get_by_role("button", name="Call", exact=True).click()
        await expect(status).to_have_text(
            "Microphone access was denied. Allow it to call.", timeout=STATE_TIMEOUT_MS
        )
    assert signaling_server.service.requests == []


async def test_an_unknown_site_page_is_not_served(signaling_server: SignalingServer) -> None:
    async with chromium() as browser:
        page = await browser.new_page()
        response = await page.goto(f"{signaling_server.url}/embed/nope")
        assert response is not None and response.status == 404
        assert "No such site" in await page.content()


async def test_a_refused_call_is_said_in_words(
    page: Page, signaling_server: SignalingServer
) -> None:
    service = signaling_server.service
    service.refusal = CallRefused("budget_exhausted", "calls to this site are paused for today")
    await page.get_by_role("button", name="Call", exact=True).click()
    status = page.get_by_role("status")
    await expect(status).to_have_text(
        "Call failed: Calls are paused for today. Please try again later.",
        timeout=STATE_TIMEOUT_MS,
    )
    # A code the page has no words for (a newer gateway's): the gateway's own message.
    service.refusal = CallRefused("code_of_tomorrow", "not today; try again tomorrow")
    await page.get_by_role("button", name="Call", exact=True).click()
    await expect(status).to_have_text(
        "Call failed: not today; try again tomorrow", timeout=STATE_TIMEOUT_MS
    )
    await expect(page.get_by_role("button", name="Call", exact=True)).to_be_enabled()


PAGE_POW_DIFFICULTY = 16  # the default of access.pow_difficulty


async def test_the_page_solves_a_proof_of_work_before_it_connects(
    signaling_server: SignalingServer,
) -> None:
    service = signaling_server.service
    service.challenges["demo"] = "pow"
    service.access.verifiers["pow"] = CountingProofOfWork(TOKEN_SECRET, PAGE_POW_DIFFICULTY)
    async with chromium() as browser:
        page = await browser.new_page()
        started = time.monotonic()
        await page.goto(f"{signaling_server.url}/embed/demo")
        status = page.get_by_role("status")
        await expect(status).to_have_text("Ready", timeout=30_000)
        solved_in = time.monotonic() - started
        assert service.access.verifiers["pow"].accepted == 1
        print(f"page: proof of work of {PAGE_POW_DIFFICULTY} bits, ready in {solved_in:.2f} s")
        await page.get_by_role("button", name="Call", exact=True).click()
        await expect(status).to_have_text("In call", timeout=STATE_TIMEOUT_MS)
        await page.get_by_role("button", name="Hang up").click()
        await expect(status).to_have_text("Call ended")


class CountingProofOfWork(ProofOfWork):
    accepted = 0

    def check(self, site_id: str, proof: Mapping[str, object], now: float) -> tuple[str, float]:
        checked = super().check(site_id, proof, now)
        self.accepted += 1
        return checked


class ExternalCaptcha:
    """A verifier of a kind the page cannot solve (a CAPTCHA needs its provider's widget)."""

    kind = "captcha"

    def challenge(self, site_id: str, now: float) -> dict[str, object]:
        return {"kind": self.kind, "site_key": "public-key"}

    async def verify(
        self, site_id: str, proof: Mapping[str, object], client: str, now: float
    ) -> None:
        raise ChallengeError("no CAPTCHA service here")


async def test_a_challenge_the_page_cannot_solve_is_said_in_words(
    signaling_server: SignalingServer,
) -> None:
    service = signaling_server.service
    service.challenges["demo"] = "captcha"
    service.access.verifiers["captcha"] = ExternalCaptcha()
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{signaling_server.url}/embed/demo")
        await expect(page.get_by_role("status")).to_have_text(
            "Cannot call: This page cannot pass the site's browser check.",
            timeout=STATE_TIMEOUT_MS,
        )
        await expect(page.get_by_role("button", name="Call", exact=True)).to_be_hidden()
    assert signaling_server.namespace.client_count == 0
