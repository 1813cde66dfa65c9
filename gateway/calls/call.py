"""`Call`: one visitor's call, owning the browser leg, the SIP legs and the bridge between.

The site's destinations are rung as its strategy says: all at once (the first to answer
wins, the others get CANCEL), in order, or in order from a rotating start (round-robin),
each for its ring timeout and all within the overall one. Each ring attempt has its own SIP
call and RTP session; the one that answers is bridged to the browser.

Any end ends both legs: the visitor hangs up or their socket goes away (BYE, or CANCEL while
ringing), the operator hangs up or SIP fails (the page is told why), ICE fails, or RTP stops.
Every resource (peer connection, RTP ports, tasks) is released in `_finish`, which runs once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from gateway.api import CallState, CallUpdate, EndCause, Notify, loggable
from gateway.config import RingbackTone
from gateway.config.legs import BrowserLegSettings, SipLegSettings
from gateway.media.bridge import MediaBridge, RtpLeg
from gateway.media.quality import LegQuality, sip_leg_quality
from gateway.media.sip_leg import open_sip_media
from gateway.media.tones import cadence_for, play_ringback
from gateway.media.transcoder import audio_codec
from gateway.media.webrtc_leg import WebRtcLeg
from sip_bridge import (
    CallAnswered,
    CallEnded,
    CallMedia,
    CallProgress,
    CallRinging,
    EarlyMedia,
    EndReason,
    OfferReceived,
    SipCall,
    SipEndpoint,
    sdp,
)

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

RING_STRATEGIES = ("parallel", "sequential", "round-robin")


@dataclass(frozen=True)
class Destination:
    """One operator: where to ring, and how to get through to them."""

    uri: str
    credentials: tuple[str, str] | None = None
    proxy: str | None = None


@dataclass(frozen=True)
class CallSettings:
    """What one call needs from the configuration (resolved by the CallManager)."""

    destinations: tuple[Destination, ...]
    caller_name: str | None
    from_user: str | None
    ring_timeout: float  # per destination
    sip_leg: SipLegSettings
    browser_leg: BrowserLegSettings
    ringback: RingbackTone | None
    headers: tuple[tuple[str, str], ...] = ()
    ring: str = "sequential"  # parallel | sequential | round-robin
    ring_total: float | None = None  # overall ring time; None: no overall limit
    first: int = 0  # round-robin: index to start from


class _Attempt:
    """Ringing one destination: its SIP call and its RTP session."""

    def __init__(self, destination: Destination, media: CallMedia, sip: SipCall) -> None:
        self.destination = destination
        self.media = media
        self.sip = sip
        self.ended: CallEnded | None = None


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
        self.attempts: list[_Attempt] = []
        self.winner: _Attempt | None = None  # the destination that answered
        self.bridge: MediaBridge | None = None
        self._sip_codecs: list[str] = []
        self._ringback: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._cause: EndCause | None = None  # decided by us before SIP confirms the end
        self._detail = ""
        self._finished = asyncio.Event()
        self._ending = False
        self._muted = False
        # Told the status of every response to our INVITEs (the metrics count them).
        self.on_sip_response: Callable[[int], None] | None = None

    @property
    def media(self) -> CallMedia | None:
        """The SIP leg's media: the answered destination's, else the only one ringing."""
        if self.winner is not None:
            return self.winner.media
        return self.attempts[0].media if len(self.attempts) == 1 else None

    # ------------------------------------------------------------------ start
    async def start(self, offer_sdp: str) -> str:
        """Answer the browser and start ringing. Returns the SDP answer.

        On failure everything allocated so far is released and ValueError (bad offer) or
        OSError (no ports) propagates.
        """
        s = self.settings
        try:
            self.webrtc = WebRtcLeg(s.browser_leg)
            self.webrtc.on_failed = self._on_ice_failed
            answer = await self.webrtc.answer(offer_sdp)
            browser_codec = self.webrtc.codec.name
            # Offer the browser's codec first when SIP can take it: no transcoding.
            self._sip_codecs = sorted(
                s.sip_leg.codecs, key=lambda c: c.upper() != browser_codec.upper()
            )
            order = self._ring_order()
            first_wave = order if s.ring == "parallel" else order[:1]
            for destination in first_wave:
                await self._dial(destination)
        except BaseException:
            await self._release()
            raise
        self._spawn(self._ring(order[len(first_wave) :]))
        self._push(CallState.CONNECTING)
        return answer

    def _ring_order(self) -> list[Destination]:
        destinations = list(self.settings.destinations)
        if self.settings.ring == "round-robin" and destinations:
            start = self.settings.first % len(destinations)
            destinations = destinations[start:] + destinations[:start]
        return destinations

    async def _dial(self, destination: Destination) -> _Attempt:
        s = self.settings
        media = await open_sip_media(s.sip_leg, self._sip_codecs)
        try:
            sip = await self._endpoint.invite(
                destination.uri,
                sdp=media.offer(),
                credentials=destination.credentials,
                display_name=s.caller_name,
                from_user=s.from_user,
                proxy=destination.proxy,
                headers=list(s.headers),
            )
        except BaseException:
            await media.close()
            raise
        attempt = _Attempt(destination, media, sip)
        media.rtp.on_media_timeout = lambda: self._on_media_timeout(attempt)
        self.attempts.append(attempt)
        self._spawn(self._follow(attempt))
        return attempt

    async def _ring(self, rest: list[Destination]) -> None:
        """Ring timeouts, and the next destination when one gives up (in order)."""
        s = self.settings
        loop = asyncio.get_running_loop()
        overall = loop.time() + (s.ring_total or float("inf"))
        pending = list(rest)
        while self.winner is None and not self._ending:
            ringing = [a for a in self.attempts if not a.sip.ended.done()]
            if not ringing:
                if not pending:
                    return  # the last attempt's failure ends the call (_follow)
                await self._dial(pending.pop(0))
                continue
            timeout = min(s.ring_timeout, overall - loop.time())
            if timeout > 0:
                done, _ = await asyncio.wait([a.sip.ended for a in ringing], timeout=timeout)
                if done or self.winner is not None or self._ending:
                    continue
            # This round rang out: CANCEL it, then go on to the next destination.
            if not pending or overall <= loop.time():
                self.hangup(EndCause.NO_ANSWER, "ring timeout")
                return
            for attempt in ringing:
                attempt.sip.hangup()
            await asyncio.wait([a.sip.ended for a in ringing], timeout=SIP_END_GRACE)

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
        live = [a for a in self.attempts if not a.sip.ended.done()]
        for attempt in live:
            attempt.sip.hangup()
        if live:
            self._spawn(self._finish_after_sip(live))
        else:
            self._spawn(self._finish())

    async def send_dtmf(self, digits: str) -> None:
        media = self.media
        if media is None or media.negotiated is None:
            raise ValueError("the call is not connected yet")
        await media.rtp.send_dtmf(digits)

    def set_mute(self, muted: bool) -> None:
        if self.bridge is not None:
            self.bridge.a_to_b.muted = muted
        self._muted = muted

    async def wait_finished(self) -> None:
        await self._finished.wait()

    # ------------------------------------------------------------------ SIP side
    async def _follow(self, attempt: _Attempt) -> None:
        sip = attempt.sip
        while True:
            event = await sip.events.get()
            self._count_response(event)
            if isinstance(event, CallRinging):
                if self.state == CallState.CONNECTING:
                    self._push(CallState.RINGING)
                    self._start_ringback()
            elif isinstance(event, EarlyMedia):
                # Early media of one of several parallel destinations would be a guess:
                # only a lone attempt plays it; otherwise the local ringback goes on.
                if self._lone(attempt) and self._connect(attempt, event.sdp):
                    self._stop_ringback()
                    self._push(CallState.EARLY_MEDIA)
            elif isinstance(event, CallAnswered):
                self._answered(attempt, event.sdp)
            elif isinstance(event, OfferReceived):
                self._answer_reoffer(attempt, event)
            elif isinstance(event, CallEnded):
                attempt.ended = event
                self._attempt_ended(attempt, event)
                return

    def _count_response(self, event: object) -> None:
        if self.on_sip_response is None:
            return
        if isinstance(event, CallProgress):
            self.on_sip_response(event.status)
        elif isinstance(event, CallAnswered):
            self.on_sip_response(200)
        elif isinstance(event, CallEnded) and event.status is not None:
            self.on_sip_response(event.status)

    def quality(self) -> dict[str, LegQuality | None]:
        """Each leg's media so far: the browser's, and the answered destination's."""
        media = self.winner.media if self.winner is not None else None
        sip = None
        if media is not None and media.negotiated is not None:
            sip = sip_leg_quality(media.rtp, media.negotiated.codec)
        return {"browser": self.webrtc.quality() if self.webrtc else None, "sip": sip}

    def codecs(self) -> dict[str, str]:
        """The codec of each leg (the SIP one once a destination answered)."""
        codecs = {}
        if self.webrtc is not None and self.webrtc.codec is not None:
            codecs["browser"] = self.webrtc.codec.name
        media = self.winner.media if self.winner is not None else None
        if media is not None and media.negotiated is not None:
            codecs["sip"] = media.negotiated.codec
        return codecs

    @property
    def answered_by(self) -> str | None:
        """The URI of the destination that answered."""
        return self.winner.destination.uri if self.winner is not None else None

    def _lone(self, attempt: _Attempt) -> bool:
        return all(a is attempt or a.ended is not None for a in self.attempts)

    def _answered(self, attempt: _Attempt, answer: bytes) -> None:
        if self.winner is not None or self._ending:
            attempt.sip.hangup()  # answered too late: someone else has the call
            return
        self.winner = attempt
        for other in self.attempts:
            if other is not attempt and not other.sip.ended.done():
                other.sip.hangup()  # CANCEL the others
        if self._connect(attempt, answer):
            self._stop_ringback()
            self._push(CallState.ANSWERED)

    def _connect(self, attempt: _Attempt, answer: bytes) -> bool:
        media = attempt.media
        try:
            media.accept_answer(answer)
        except sdp.SdpError as exc:
            logger.info(
                "call %s: unusable SDP answer from the operator side: %s", self.id, loggable(exc)
            )
            self.hangup(EndCause.FAILED, "no common codec with the operator's phone")
            return False
        if self.bridge is None:
            sip_leg = RtpLeg(media.rtp, audio_codec(media.negotiated.codec))
            self.bridge = MediaBridge(self.webrtc, sip_leg)
            self.bridge.a_to_b.muted = self._muted
            self.bridge.start()
            logger.info(
                "call %s: media %s <-> %s%s",
                self.id,
                self.webrtc.codec.name,
                media.negotiated.codec,
                " (transcoding)" if self.bridge.transcoding else "",
            )
        return True

    def _answer_reoffer(self, attempt: _Attempt, event: OfferReceived) -> None:
        media, sip = attempt.media, attempt.sip
        if event.sdp is None:
            sip.answer_offer(media.offer())
            return
        try:
            answer = media.answer(event.sdp)
        except sdp.SdpError:
            sip.reject_offer(488)
            return
        sip.answer_offer(answer)
        if attempt is not self.winner:
            return
        held = media.on_hold
        if held and self.state == CallState.ANSWERED:
            self._push(CallState.ON_HOLD)
        elif not held and self.state == CallState.ON_HOLD:
            self._push(CallState.ANSWERED)

    def _attempt_ended(self, attempt: _Attempt, event: CallEnded) -> None:
        if self.winner is not None and attempt is not self.winner:
            return  # a cancelled loser
        if self.winner is None and not self._ending:
            waiting = any(a.ended is None for a in self.attempts)
            if waiting or self._more_to_ring(attempt):
                # Another destination may still answer; a busy one does not end the call.
                return
        if self._cause is None:
            self._cause = CAUSES.get(event.reason, EndCause.FAILED)
            self._detail = event.detail
        self._ending = True
        self._spawn(self._finish())

    def _more_to_ring(self, attempt: _Attempt) -> bool:
        """Sequential ringing goes on after this failure when destinations remain."""
        return self.settings.ring != "parallel" and len(self.attempts) < len(
            self.settings.destinations
        )

    # ------------------------------------------------------------------ failures
    def _on_ice_failed(self, state: str) -> None:
        self.hangup(EndCause.FAILED, f"browser connection {state}")

    def _on_media_timeout(self, attempt: _Attempt) -> None:
        if attempt is self.winner and self.state in (CallState.ANSWERED, CallState.EARLY_MEDIA):
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

    async def _finish_after_sip(self, live: list[_Attempt]) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(asyncio.shield(a.sip.ended) for a in live)), SIP_END_GRACE
            )
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
        for attempt in self.attempts:
            if not attempt.sip.ended.done():
                attempt.sip.hangup()
        if self.webrtc is not None:
            await self.webrtc.close()
        for attempt in self.attempts:
            await attempt.media.close()

    def _spawn(self, coroutine) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
