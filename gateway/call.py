"""`Call`: one visitor's call, owning the browser leg, the SIP leg and the bridge between.

Any end ends both legs: the visitor hangs up or their socket goes away (BYE, or CANCEL while
ringing), the operator hangs up or SIP fails (the page is told why), ICE fails, or RTP stops.
Every resource (peer connection, RTP ports, tasks) is released in `_finish`, which runs once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from sip_bridge import sdp
from sip_bridge.call_media import CallMedia
from sip_bridge.endpoint import SipCall, SipEndpoint
from sip_bridge.events import (
    CallAnswered,
    CallEnded,
    CallRinging,
    EarlyMedia,
    EndReason,
    OfferReceived,
)

from .config import RingbackTone
from .media_bridge import MediaBridge, RtpLeg
from .ringback import cadence_for, play_ringback
from .service import CallState, CallUpdate, EndCause, Notify
from .transcoder import audio_codec
from .webrtc_leg import WebRtcLeg

logger = logging.getLogger(__name__)

# How long to wait for the far end to confirm our BYE/CANCEL before freeing everything.
SIP_END_GRACE = 5.0

CAUSES = {
    EndReason.BUSY: EndCause.BUSY,
    EndReason.NO_ANSWER: EndCause.NO_ANSWER,
    EndReason.DECLINED: EndCause.DECLINED,
    EndReason.UNREACHABLE: EndCause.UNREACHABLE,
    EndReason.NOT_FOUND: EndCause.UNREACHABLE,
    EndReason.REMOTE_HANGUP: EndCause.OPERATOR_HUNG_UP,
    EndReason.LOCAL_HANGUP: EndCause.VISITOR_HUNG_UP,
    EndReason.CANCELLED: EndCause.VISITOR_HUNG_UP,
}


@dataclass(frozen=True)
class CallSettings:
    """What one call needs from the configuration (resolved by the CallManager)."""

    destination: str
    credentials: tuple[str, str] | None
    proxy: str | None
    caller_name: str | None
    from_user: str | None
    ring_timeout: float
    rtp_host: str
    rtp_announce: str
    rtp_ports: tuple[int, int]
    sip_codecs: tuple[str, ...]
    browser_codecs: tuple[str, ...]
    ice_servers: tuple[dict, ...]
    ringback: RingbackTone | None
    media_timeout: float | None
    headers: tuple[tuple[str, str], ...] = ()


class Call:
    def __init__(
        self, call_id: str, settings: CallSettings, endpoint: SipEndpoint, notify: Notify
    ) -> None:
        self.id = call_id
        self.settings = settings
        self._endpoint = endpoint
        self._notify = notify
        self.state = CallState.CONNECTING
        self.webrtc: WebRtcLeg | None = None
        self.media: CallMedia | None = None
        self.sip: SipCall | None = None
        self.bridge: MediaBridge | None = None
        self._ringback: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._cause: EndCause | None = None  # decided by us before SIP confirms the end
        self._detail = ""
        self._finished = asyncio.Event()
        self._ending = False
        self._muted = False

    # ------------------------------------------------------------------ start
    async def start(self, offer_sdp: str) -> str:
        """Answer the browser, then ring the destination. Returns the SDP answer.

        On failure everything allocated so far is released and ValueError (bad offer) or
        OSError (no ports) propagates.
        """
        s = self.settings
        try:
            self.webrtc = WebRtcLeg(s.ice_servers, s.browser_codecs)
            self.webrtc.on_failed = self._on_ice_failed
            answer = await self.webrtc.answer(offer_sdp)
            browser_codec = self.webrtc.codec.name
            # Offer the browser's codec first when SIP can take it: no transcoding.
            sip_codecs = sorted(s.sip_codecs, key=lambda c: c.upper() != browser_codec.upper())
            self.media = await CallMedia.open(
                s.rtp_host,
                s.rtp_ports,
                announce=s.rtp_announce,
                codecs=sip_codecs,
                media_timeout=s.media_timeout,
            )
            self.media.rtp.on_media_timeout = self._on_media_timeout
            self.sip = await self._endpoint.invite(
                s.destination,
                sdp=self.media.offer(),
                credentials=s.credentials,
                display_name=s.caller_name,
                from_user=s.from_user,
                proxy=s.proxy,
                headers=list(s.headers),
            )
        except BaseException:
            await self._release()
            raise
        self._spawn(self._follow_sip())
        self._spawn(self._ring_timeout())
        self._push(CallState.CONNECTING)
        return answer

    # ------------------------------------------------------------------ commands
    async def add_candidate(
        self, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None
    ) -> None:
        if self.webrtc is not None and not self._ending:
            await self.webrtc.add_candidate(candidate, sdp_mid, sdp_mline_index)

    def hangup(self, cause: EndCause = EndCause.VISITOR_HUNG_UP, detail: str = "") -> None:
        """End the call from our side: BYE or CANCEL, then free everything."""
        if self._ending:
            return
        self._ending = True
        self._cause = self._cause or cause
        self._detail = self._detail or detail
        if self.sip is not None and not self.sip.ended.done():
            self.sip.hangup()
            self._spawn(self._finish_after_sip())
        else:
            self._spawn(self._finish())

    async def send_dtmf(self, digits: str) -> None:
        if self.media is None or self.media.negotiated is None:
            raise ValueError("the call is not connected yet")
        await self.media.rtp.send_dtmf(digits)

    def set_mute(self, muted: bool) -> None:
        if self.bridge is not None:
            self.bridge.a_to_b.muted = muted
        self._muted = muted

    async def wait_finished(self) -> None:
        await self._finished.wait()

    # ------------------------------------------------------------------ SIP side
    async def _follow_sip(self) -> None:
        while True:
            event = await self.sip.events.get()
            if isinstance(event, CallRinging):
                if self.state == CallState.CONNECTING:
                    self._push(CallState.RINGING)
                    self._start_ringback()
            elif isinstance(event, EarlyMedia):
                if self._use_answer(event.sdp):
                    self._stop_ringback()
                    self._push(CallState.EARLY_MEDIA)
            elif isinstance(event, CallAnswered):
                if self._use_answer(event.sdp):
                    self._stop_ringback()
                    self._push(CallState.ANSWERED)
            elif isinstance(event, OfferReceived):
                self._answer_reoffer(event)
            elif isinstance(event, CallEnded):
                self._sip_ended(event)
                return

    def _use_answer(self, answer: bytes) -> bool:
        try:
            self.media.accept_answer(answer)
        except sdp.SdpError as exc:
            logger.info("call %s: unusable SDP answer from the operator side: %s", self.id, exc)
            self.hangup(EndCause.FAILED, "no common codec with the operator's phone")
            return False
        if self.bridge is None:
            sip_leg = RtpLeg(self.media.rtp, audio_codec(self.media.negotiated.codec))
            self.bridge = MediaBridge(self.webrtc, sip_leg)
            self.bridge.a_to_b.muted = self._muted
            self.bridge.start()
            logger.info(
                "call %s: media %s <-> %s%s",
                self.id,
                self.webrtc.codec.name,
                self.media.negotiated.codec,
                " (transcoding)" if self.bridge.transcoding else "",
            )
        return True

    def _answer_reoffer(self, event: OfferReceived) -> None:
        if event.sdp is None:
            self.sip.answer_offer(self.media.offer())
            return
        try:
            answer = self.media.answer(event.sdp)
        except sdp.SdpError:
            self.sip.reject_offer(488)
            return
        self.sip.answer_offer(answer)
        held = self.media.on_hold
        if held and self.state == CallState.ANSWERED:
            self._push(CallState.ON_HOLD)
        elif not held and self.state == CallState.ON_HOLD:
            self._push(CallState.ANSWERED)

    def _sip_ended(self, event: CallEnded) -> None:
        if self._cause is None:
            self._cause = CAUSES.get(event.reason, EndCause.FAILED)
            self._detail = event.detail
        self._ending = True
        self._spawn(self._finish())

    async def _ring_timeout(self) -> None:
        await asyncio.sleep(self.settings.ring_timeout)
        if self.state in (CallState.CONNECTING, CallState.RINGING, CallState.EARLY_MEDIA):
            self.hangup(EndCause.NO_ANSWER, "ring timeout")

    # ------------------------------------------------------------------ failures
    def _on_ice_failed(self, state: str) -> None:
        self.hangup(EndCause.FAILED, f"browser connection {state}")

    def _on_media_timeout(self) -> None:
        if self.state in (CallState.ANSWERED, CallState.EARLY_MEDIA):
            self.hangup(EndCause.FAILED, "no audio from the operator's side")

    # ------------------------------------------------------------------ ringback
    def _start_ringback(self) -> None:
        if self.settings.ringback is None or self._ringback is not None or self.bridge:
            return
        tone = self.settings.ringback
        cadence = cadence_for(
            tone.frequencies, tone.on_ms, tone.off_ms, self.webrtc.codec.sample_rate
        )
        self._ringback = asyncio.create_task(play_ringback(self.webrtc, self.webrtc.codec, cadence))

    def _stop_ringback(self) -> None:
        if self._ringback is not None:
            self._ringback.cancel()
            self._ringback = None

    # ------------------------------------------------------------------ ending
    def _push(self, state: CallState, cause: EndCause | None = None, detail: str = "") -> None:
        if self.state == CallState.ENDED:
            return
        self.state = state
        try:
            self._notify(CallUpdate(state, cause, detail))
        except Exception:  # a page gone away must not break the call's cleanup
            logger.exception("call %s: notify failed", self.id)

    async def _finish_after_sip(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.sip.ended), SIP_END_GRACE)
        await self._finish()

    async def _finish(self) -> None:
        if self._finished.is_set() or self.state == CallState.ENDED:
            return
        self._push(CallState.ENDED, self._cause or EndCause.FAILED, self._detail)
        await self._release()
        self._finished.set()

    async def _release(self) -> None:
        self._stop_ringback()
        if self.bridge is not None:
            self.bridge.stop()
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        if self.webrtc is not None:
            await self.webrtc.close()
        if self.media is not None:
            await self.media.close()

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
