"""`Call`: one visitor's call, owning the browser leg, the SIP legs and the bridge between.

The asyncio driver of the ringing core (`gateway.calls.ringing`, sans-I/O): it answers the
browser's offer, feeds the core what happens (the browser's media path up, each
destination's SIP events, our own hang-ups) with the event loop's time, and does what the
core says: ring a destination (its own RTP session and INVITE), cancel one, bridge the one
that answered to the browser, end the call. Which destination, when, and why the call
ended are the core's decisions; the media and SIP plumbing is here.

Nobody is rung before the browser's media path is up (ICE connected, DTLS done): a call
whose media never comes up ends after `ice.connect_timeout` without ringing a phone.

Any end ends both legs: the visitor hangs up or their socket goes away (BYE, or CANCEL while
ringing), the operator hangs up or SIP fails (the page is told why), ICE fails, or RTP stops.
Every resource (peer connection, RTP ports, tasks) is released in `_finish`, which runs once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from gateway.api import CallState, CallUpdate, EndCause, Notify, loggable
from gateway.calls.ringing import (
    BrowserConnected,
    Cancel,
    Connect,
    DestinationAnswered,
    DestinationEarlyMedia,
    DestinationEnded,
    DestinationState,
    End,
    HangUp,
    Ring,
    Ringing,
    RingingEvent,
    RingPlan,
)
from gateway.config import RingbackTone
from gateway.config.legs import BrowserLegSettings, SipLegSettings
from gateway.media.bridge import MediaBridge, RtpLeg
from gateway.media.quality import LegQuality, sip_leg_quality
from gateway.media.sip_leg import open_sip_media
from gateway.media.tones import cadence_for, play_ringback
from gateway.media.transcoder import AudioCodec, audio_codec
from gateway.media.webrtc_leg import WebRtcLeg
from gateway.sites.routing import RingStrategy
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
    ring: RingStrategy = RingStrategy.SEQUENTIAL
    ring_total: float | None = None  # overall ring time; None: no overall limit
    first: int = 0  # round-robin: index to start from
    connect_timeout: float = 5.0  # seconds the browser's media path may take to come up

    def ring_plan(self) -> RingPlan:
        return RingPlan(
            destinations=len(self.destinations),
            strategy=self.ring,
            ring_timeout=self.ring_timeout,
            ring_total=self.ring_total,
            first=self.first,
            connect_timeout=self.connect_timeout,
        )


class _Attempt:
    """Ringing one destination: its SIP call and its RTP session."""

    def __init__(self, index: int, media: CallMedia, sip: SipCall) -> None:
        self.index = index
        self.media = media
        self.sip = sip
        self.remote_sdp: bytes | None = None  # of its latest 183/200


class Call:
    def __init__(
        self, call_id: str, settings: CallSettings, endpoint: SipEndpoint, notify: Notify
    ) -> None:
        self.id = call_id
        self.settings = settings
        self._endpoint = endpoint
        self._notify = notify
        self._loop = asyncio.get_running_loop()
        self.state = CallState.CONNECTING
        self.webrtc: WebRtcLeg | None = None
        self.ringing: Ringing | None = None  # the core, once the offer is answered
        self.attempts: dict[int, _Attempt] = {}  # by destination index
        self.bridge: MediaBridge | None = None
        self._bridged: _Attempt | None = None  # whose media the bridge carries
        self._sip_codecs: list[str] = []
        self._ringback: asyncio.Task | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()
        self._cause: EndCause | None = None
        self._detail = ""
        self._finished = asyncio.Event()
        self._ending = False
        self._muted = False
        # Told the status of every response to our INVITEs (the metrics count them).
        self.on_sip_response: Callable[[int], None] | None = None

    @property
    def winner(self) -> _Attempt | None:
        """The destination that answered."""
        index = self.ringing.winner if self.ringing is not None else None
        return self.attempts.get(index) if index is not None else None

    @property
    def _browser(self) -> WebRtcLeg:
        assert self.webrtc is not None, "the browser's offer is answered first"
        return self.webrtc

    @property
    def _browser_codec(self) -> AudioCodec:
        codec = self._browser.codec
        assert codec is not None, "the browser's offer is answered first"
        return codec

    @property
    def media(self) -> CallMedia | None:
        """The SIP leg's media: the answered destination's, else the only one ringing."""
        if self.winner is not None:
            return self.winner.media
        live = [a for a in self.attempts.values() if not a.sip.ended.done()]
        return live[0].media if len(live) == 1 else None

    # ------------------------------------------------------------------ start
    async def start(self, offer_sdp: str) -> str:
        """Answer the browser; return the SDP answer. Destinations are rung once the
        browser's media path is up.

        On failure everything allocated so far is released and ValueError (bad offer) or
        OSError propagates.
        """
        s = self.settings
        try:
            self.webrtc = WebRtcLeg(s.browser_leg)
            self.webrtc.on_failed = self._on_ice_failed
            answer = await self.webrtc.answer(offer_sdp)
        except BaseException:
            await self._release()
            raise
        if self._ending:
            return answer  # hung up while the offer was being answered
        # Offer the browser's codec first when SIP can take it: no transcoding.
        browser_codec = self._browser_codec.name.upper()
        self._sip_codecs = sorted(s.sip_leg.codecs, key=lambda c: c.upper() != browser_codec)
        self.ringing = Ringing(s.ring_plan(), self._loop.time())
        self._spawn(self._wait_for_browser(self.webrtc))
        self._service()
        self._push(CallState.CONNECTING)
        return answer

    async def _wait_for_browser(self, webrtc: WebRtcLeg) -> None:
        await webrtc.connected.wait()
        self._feed(BrowserConnected())

    # ------------------------------------------------------------------ commands
    async def add_candidate(
        self, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None
    ) -> None:
        if self.webrtc is not None and not self._ending:
            await self.webrtc.add_candidate(candidate, sdp_mid, sdp_mline_index)

    def hangup(self, cause: EndCause = EndCause.VISITOR_HUNG_UP, detail: str = "") -> None:
        """End the call from our side: BYE or CANCEL, then free everything."""
        if self.ringing is None:
            if not self._ending:  # never started: nothing rings
                self._end(cause, detail)
            return
        self._feed(HangUp(cause, detail))

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

    # ------------------------------------------------------------------ the core
    def _feed(self, event: RingingEvent) -> None:
        if self.ringing is not None:
            self.ringing.handle(event, self._loop.time())
            self._service()

    def _on_timer(self) -> None:
        self._timer = None
        if self.ringing is not None:
            self.ringing.handle_timer(self._loop.time())
            self._service()

    def _service(self) -> None:
        """Do what the core says, then wake it when it asks to be."""
        ringing = self.ringing
        if ringing is None:
            return
        while (action := ringing.next_action()) is not None:
            if isinstance(action, Ring):
                self._spawn(self._dial(action.destination))
            elif isinstance(action, Cancel):
                attempt = self.attempts.get(action.destination)
                if attempt is not None and not attempt.sip.ended.done():
                    attempt.sip.hangup()
            elif isinstance(action, Connect):
                self._connect(self.attempts[action.destination], action.answered)
            elif isinstance(action, End):
                self._end(action.cause, action.detail)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = ringing.get_timer()
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    # ------------------------------------------------------------------ SIP side
    async def _dial(self, index: int) -> None:
        s = self.settings
        destination = s.destinations[index]
        try:
            media = await open_sip_media(s.sip_leg, self._sip_codecs)
        except OSError as exc:
            logger.warning("call %s: cannot open RTP for a destination: %s", self.id, exc)
            self._feed(DestinationEnded(index, EndReason.FAILED, "no RTP ports"))
            return
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
        except Exception as exc:
            await media.close()
            logger.warning("call %s: cannot ring a destination: %s", self.id, loggable(exc))
            self._feed(DestinationEnded(index, EndReason.FAILED, "the INVITE could not be sent"))
            return
        except BaseException:
            await media.close()
            raise
        attempt = _Attempt(index, media, sip)
        media.rtp.on_media_timeout = lambda: self._on_media_timeout(attempt)
        self.attempts[index] = attempt
        if self._ending or not self._still_wanted(index):
            sip.hangup()  # given up on while its INVITE was being built
        self._spawn(self._follow(attempt))

    def _still_wanted(self, index: int) -> bool:
        return self.ringing is not None and self.ringing.destinations[index] in (
            DestinationState.RINGING,
            DestinationState.ANSWERED,
        )

    async def _follow(self, attempt: _Attempt) -> None:
        sip, index = attempt.sip, attempt.index
        while True:
            event = await sip.events.get()
            self._count_response(event)
            if isinstance(event, CallRinging):
                if self.state == CallState.CONNECTING and not self._ending:
                    self._push(CallState.RINGING)
                    self._start_ringback()
            elif isinstance(event, EarlyMedia):
                attempt.remote_sdp = event.sdp
                self._feed(DestinationEarlyMedia(index))
            elif isinstance(event, CallAnswered):
                attempt.remote_sdp = event.sdp
                self._feed(DestinationAnswered(index))
            elif isinstance(event, OfferReceived):
                self._answer_reoffer(attempt, event)
            elif isinstance(event, CallEnded):
                self._feed(DestinationEnded(index, event.reason, event.detail))
                if attempt is self._bridged and self.winner is not attempt:
                    self._unbridge(ringback=True)  # its early media is over; another may ring
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
        """The URI of the destination that answered (the ringing core's winner)."""
        winner = self.winner
        return self.settings.destinations[winner.index].uri if winner is not None else None

    def _connect(self, attempt: _Attempt, answered: bool) -> None:
        """Bridge the attempt's media (its answer, or its early media) to the browser."""
        media = attempt.media
        try:
            media.accept_answer(attempt.remote_sdp or b"")
        except sdp.SdpError as exc:
            logger.info(
                "call %s: unusable SDP answer from the operator side: %s", self.id, loggable(exc)
            )
            self._feed(HangUp(EndCause.FAILED, "no common codec with the operator's phone"))
            return
        negotiated = media.negotiated
        assert negotiated is not None  # the answer was just accepted
        if self._bridged is not attempt:
            self._unbridge(ringback=False)
            sip_leg = RtpLeg(media.rtp, audio_codec(negotiated.codec))
            self.bridge = MediaBridge(self._browser, sip_leg)
            self.bridge.a_to_b.muted = self._muted
            self.bridge.start()
            self._bridged = attempt
            logger.info(
                "call %s: media %s <-> %s%s",
                self.id,
                self._browser_codec.name,
                negotiated.codec,
                " (transcoding)" if self.bridge.transcoding else "",
            )
        self._stop_ringback()
        state = CallState.ANSWERED if answered else CallState.EARLY_MEDIA
        if self.state != state:
            self._push(state)

    def _unbridge(self, *, ringback: bool) -> None:
        if self.bridge is not None:
            self.bridge.stop()
        self.bridge = None
        self._bridged = None
        if ringback and self.state == CallState.EARLY_MEDIA and not self._ending:
            self._push(CallState.RINGING)  # back to our own ringback for the next one
            self._start_ringback()

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
        codec = self._browser_codec
        cadence = cadence_for(tone.frequencies, tone.on_ms, tone.off_ms, codec.sample_rate)
        self._ringback = asyncio.create_task(play_ringback(self._browser, codec, cadence))

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

    def _end(self, cause: EndCause, detail: str) -> None:
        """The core decided the call is over (its Cancels are sent): tell the page once SIP
        confirmed, or after SIP_END_GRACE, and free everything."""
        if self._ending:
            return
        self._ending = True
        self._cause, self._detail = cause, detail
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._stop_ringback()
        live = [a for a in self.attempts.values() if not a.sip.ended.done()]
        if live:
            self._spawn(self._finish_after_sip(live))
        else:
            self._spawn(self._finish())

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
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.bridge is not None:
            self.bridge.stop()
        current = asyncio.current_task()
        for task in list(self._tasks):
            if task is not current:
                task.cancel()
        for attempt in self.attempts.values():
            if not attempt.sip.ended.done():
                attempt.sip.hangup()
        if self.webrtc is not None:
            await self.webrtc.close()
        for attempt in self.attempts.values():
            await attempt.media.close()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
