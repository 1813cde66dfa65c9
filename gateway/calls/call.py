"""`Call`: one visitor's call, owning the browser leg, the SIP legs and the bridge between.

The asyncio driver of the ringing core (`gateway.calls.ringing`, sans-I/O): it answers the
browser's offer, feeds the core what happens (the browser's media path up, each
destination's SIP events, our own hang-ups) with the event loop's time, and does what the
core says: ring a destination (its own RTP session and INVITE), cancel one, bridge the one
that answered to the browser, end the call. Which destination, when, and why the call
ended are the core's decisions; the media and SIP plumbing is here.

Nobody is rung before the browser's media path is up (ICE connected, DTLS done): a call
whose media never comes up ends after `ice.connect_timeout` without ringing a phone.

A redirect (3xx) is the core's too: the Contacts go to it (`DestinationRedirected`), and it
says which to ring as added destinations. So is an operator's transfer (REFER, RFC 3515 and
RFC 5589): the core says whether to take it (`TransferAsked`: `RefuseTransfer` or
`TransferStarted`), rings the target as an added destination, and hands the call to it or
back to the operator; here the REFER is answered, the target's INVITE carries `Replaces`
and `Referred-By`, the operator's phone is told how it goes by NOTIFY (sipfrag), and the
visitor hears ringback meanwhile. Once answered, the operator's phone may also change the
codec (re-INVITE/UPDATE: the bridge follows, or 488).

Any end ends both legs: the visitor hangs up or their socket goes away (BYE, or CANCEL while
ringing), the operator hangs up or SIP fails (the page is told why), ICE fails, or RTP stops.
Every resource (peer connection, RTP ports, tasks) is released in `_finish`, which runs once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any

from gateway.api import CallState, CallUpdate, EndCause, Notify, clipped
from gateway.calls.ringing import (
    MAX_REDIRECTS,
    BrowserConnected,
    Cancel,
    Connect,
    DestinationAnswered,
    DestinationEarlyMedia,
    DestinationEnded,
    DestinationRedirected,
    DestinationState,
    End,
    HangUp,
    RefuseTransfer,
    Ring,
    Ringing,
    RingingEvent,
    RingPlan,
    TransferAsked,
    TransferStarted,
)
from gateway.config import RingbackTone
from gateway.config.legs import BrowserLegSettings, SipLegSettings
from gateway.media.bridge import MediaBridge, RtpLeg
from gateway.media.ice_mux import IceMux
from gateway.media.quality import LegQuality, sip_leg_quality
from gateway.media.sip_leg import open_sip_media
from gateway.media.tones import cadence_for, play_ringback
from gateway.media.transcoder import AudioCodec, audio_codec
from gateway.media.webrtc_leg import WebRtcLeg
from gateway.sites.routing import RingStrategy, TargetPatterns
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
    TransferRequested,
    parse_sip_uri,
    sdp,
)

logger = logging.getLogger(__name__)

# How long to wait for the far end to confirm our BYE/CANCEL before freeing everything.
SIP_END_GRACE = 5.0

NOWHERE = TargetPatterns()  # no transfer or redirect target allowed


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
    ice_mux: IceMux | None = None  # the worker's shared ICE port; None: a port per call
    connect_timeout: float = 5.0  # seconds the browser's media path may take to come up
    # Where the operator may send the call (REFER, 3xx); empty: nowhere.
    transfer_to: TargetPatterns = NOWHERE
    from_domain: str | None = None  # host of From (a registered trunk's domain)

    def ring_plan(self) -> RingPlan:
        return RingPlan(
            destinations=len(self.destinations),
            strategy=self.ring,
            ring_timeout=self.ring_timeout,
            ring_total=self.ring_total,
            first=self.first,
            connect_timeout=self.connect_timeout,
            may_send_to=self.may_call,
            max_redirects=MAX_REDIRECTS,
        )

    def may_call(self, uri: str) -> bool:
        """Whether the operator may send the call to `uri` (a 3xx's Contact, a REFER's
        Refer-To): the site's `transfer_to`."""
        try:
            return self.transfer_to.allows(parse_sip_uri(uri))
        except ValueError:
            return False


class _Attempt:
    """Ringing one destination (a site's, a redirect's or a transfer's target): its SIP call
    and its RTP session."""

    def __init__(
        self, index: int, destination: Destination, media: CallMedia, sip: SipCall
    ) -> None:
        self.index = index  # the ringing core's
        self.destination = destination
        self.media = media
        self.sip = sip
        self.remote_sdp: bytes | None = None  # of its latest 183/200
        self.answer_taken = False  # its 200's SDP accepted (later ones come by re-INVITE)


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
        # Transfer targets (by index): the REFER that asked for them, and who sent it.
        self._referred: dict[int, tuple[_Attempt, TransferRequested]] = {}
        self.bridge: MediaBridge | None = None
        self._bridged: _Attempt | None = None  # whose media the bridge carries
        self._sip_codecs: list[str] = []
        self._ringback: asyncio.Task | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task] = set()
        self._cause: EndCause | None = None
        self._detail = ""
        self._reason = ""  # the SIP status that ended it, in words, for the page
        self._pending_refer: tuple[_Attempt, TransferRequested] | None = None
        self._finished = asyncio.Event()
        self._ending = False
        self._muted = False
        # Told the status of every response to our INVITEs (the metrics count them).
        self.on_sip_response: Callable[[int], None] | None = None
        # Told, when a bridge ends, the frames it relayed in C and in Python (the metrics).
        self.on_relayed_frames: Callable[[int, int], None] | None = None

    @property
    def winner(self) -> _Attempt | None:
        """The leg the visitor talks to: the destination that answered, or the target it
        transferred the call to."""
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
            self.webrtc = WebRtcLeg(s.browser_leg, ice_mux=s.ice_mux)
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

    def hangup(
        self, cause: EndCause = EndCause.VISITOR_HUNG_UP, detail: str = "", reason: str = ""
    ) -> None:
        """End the call from our side: BYE or CANCEL, then free everything."""
        if self.ringing is None:
            if not self._ending:  # never started: nothing rings
                self._end(cause, detail, reason)
            return
        self._feed(HangUp(cause, detail, reason))

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
                self._end(action.cause, action.detail, action.reason)
            elif isinstance(action, RefuseTransfer):
                self._refuse_transfer(action)
            elif isinstance(action, TransferStarted):
                self._start_transfer(action)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = ringing.get_timer()
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    # ------------------------------------------------------------------ SIP side
    def _destination(self, index: int) -> Destination:
        """A site destination, or a redirect target with its origin's credentials and proxy."""
        redirected = self.ringing.redirect_target(index) if self.ringing is not None else None
        if redirected is None:
            return self.settings.destinations[index]
        origin, uri = redirected
        return replace(self.settings.destinations[origin], uri=uri)

    async def _dial(self, index: int) -> None:
        destination = self._destination(index)
        referred = self._referred.get(index)
        headers = None
        if referred is not None:
            headers = list(self.settings.headers)
            if referred[1].replaces:  # attended transfer (RFC 3891)
                headers.append(("Replaces", referred[1].replaces))
            if referred[1].referred_by:
                headers.append(("Referred-By", referred[1].referred_by))
        elif index >= len(self.settings.destinations):
            logger.info("call %s: redirected to %s", self.id, clipped(destination.uri))
        try:
            media = await open_sip_media(self.settings.sip_leg, self._sip_codecs)
        except OSError as exc:
            logger.warning("call %s: cannot open RTP for a destination: %s", self.id, exc)
            self._cannot_ring(index, "no RTP ports")
            return
        try:
            sip = await self._invite(destination, media, headers)
        except Exception as exc:
            await media.close()
            logger.warning("call %s: cannot ring a destination: %s", self.id, clipped(exc))
            self._cannot_ring(index, "the INVITE could not be sent")
            return
        except BaseException:
            await media.close()
            raise
        attempt = self._attempt(index, destination, media, sip)
        self.attempts[index] = attempt
        if self._ending or not self._still_wanted(index):
            sip.hangup()  # given up on while its INVITE was being built
        self._spawn(self._follow(attempt))

    async def _invite(
        self,
        destination: Destination,
        media: CallMedia,
        headers: list[tuple[str, str]] | None = None,
    ) -> SipCall:
        s = self.settings
        return await self._endpoint.invite(
            destination.uri,
            sdp=media.offer(),
            credentials=destination.credentials,
            display_name=s.caller_name,
            from_user=s.from_user,
            from_domain=s.from_domain,
            proxy=destination.proxy,
            headers=list(s.headers) if headers is None else headers,
            transfers=True,  # a REFER is offered to us (TransferRequested), never refused
        )  # no redirect_policy: a 3xx comes back to the ringing core with its Contacts

    def _attempt(
        self, index: int, destination: Destination, media: CallMedia, sip: SipCall
    ) -> _Attempt:
        attempt = _Attempt(index, destination, media, sip)
        media.rtp.on_media_timeout = lambda: self._on_media_timeout(attempt)
        media.on_codec_change = lambda _: self._sip_codec_changed(attempt)
        return attempt

    def _cannot_ring(self, index: int, detail: str) -> None:
        self._tell_transferor(index, 503, "Service Unavailable")
        self._feed(DestinationEnded(index, EndReason.FAILED, detail))

    def _still_wanted(self, index: int) -> bool:
        return self.ringing is not None and self.ringing.destinations[index] in (
            DestinationState.RINGING,
            DestinationState.ANSWERED,
        )

    async def _follow(self, attempt: _Attempt) -> None:
        sip, index = attempt.sip, attempt.index
        told_progress = False
        while True:
            event = await sip.events.get()
            self._count_response(event)
            if isinstance(event, CallProgress) and event.status > 100 and not told_progress:
                told_progress = True
                self._tell_transferor(index, event.status, event.reason)
            if isinstance(event, CallRinging):
                if self.state == CallState.CONNECTING and not self._ending:
                    self._push(CallState.RINGING)
                    self._start_ringback()
            elif isinstance(event, EarlyMedia):
                attempt.remote_sdp = event.sdp
                self._feed(DestinationEarlyMedia(index))
            elif isinstance(event, CallAnswered):
                attempt.remote_sdp = event.sdp
                self._tell_transferor(index, 200, "OK")
                self._feed(DestinationAnswered(index))
            elif isinstance(event, OfferReceived):
                self.answer_reoffer(attempt, event)
            elif isinstance(event, TransferRequested):
                self._transfer_requested(attempt, event)
            elif isinstance(event, CallEnded):
                if not attempt.answer_taken:
                    if event.status and event.status >= 300:
                        self._tell_transferor(index, event.status, "")
                    else:
                        self._tell_transferor(index, 487, "Request Terminated")
                self._leg_ended(attempt, event)
                return

    def _leg_ended(self, attempt: _Attempt, event: CallEnded) -> None:
        index = attempt.index
        if event.reason is EndReason.REDIRECTED and event.status is not None:
            self._feed(DestinationRedirected(index, event.status, event.targets))
        else:
            self._feed(DestinationEnded(index, event.reason, event.detail, event.status))
        if attempt is self._bridged and self.winner is not attempt:
            self._unbridge(ringback=True)  # its early media is over; another may ring

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
        return winner.destination.uri if winner is not None else None

    def _connect(self, attempt: _Attempt, answered: bool) -> None:
        """Bridge the attempt's media (its answer, or its early media) to the browser."""
        media = attempt.media
        if attempt.answer_taken:  # back to the operator after a failed transfer
            self._bridge_to(attempt)
            self._push(CallState.ON_HOLD if media.on_hold else CallState.ANSWERED)
            return
        try:
            media.accept_answer(attempt.remote_sdp or b"")
        except sdp.SdpError as exc:
            logger.info(
                "call %s: unusable SDP answer from the operator side: %s", self.id, clipped(exc)
            )
            self._feed(
                HangUp(EndCause.NO_COMMON_CODEC, "no common codec with the operator's phone")
            )
            return
        attempt.answer_taken = answered
        self._bridge_to(attempt)
        if self.state == CallState.TRANSFERRING and not answered:
            return  # the transfer target's early media: still transferring for the page
        state = CallState.ANSWERED if answered else CallState.EARLY_MEDIA
        if self.state != state:
            self._push(state)

    def _bridge_to(self, attempt: _Attempt) -> None:
        """The browser's media to and from `attempt` (whose answer is accepted)."""
        negotiated = attempt.media.negotiated
        assert negotiated is not None  # the answer was accepted
        if self._bridged is not attempt or self.bridge is None:
            self._unbridge(ringback=False)
            sip_leg = RtpLeg(attempt.media.rtp, audio_codec(negotiated.codec))
            self.bridge = MediaBridge(
                self._browser, sip_leg, native=self.settings.browser_leg.native_relay
            )
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

    def _unbridge(self, *, ringback: bool) -> None:
        self._stop_bridge()
        self.bridge = None
        self._bridged = None
        if ringback and self.state == CallState.EARLY_MEDIA and not self._ending:
            self._push(CallState.RINGING)  # back to our own ringback for the next one
            self._start_ringback()

    def answer_reoffer(self, attempt: _Attempt, event: OfferReceived) -> None:
        """A re-INVITE/UPDATE of a SIP leg: hold, resume, or another codec (which the
        RTP session and the bridge then follow); 488 when it offers no codec we have, and
        the call goes on as it was."""
        media, sip = attempt.media, attempt.sip
        if event.sdp is None:
            sip.answer_offer(media.offer())
            return
        try:
            answer = media.answer(event.sdp)
        except sdp.SdpError as exc:
            logger.info("call %s: re-offer refused (488): %s", self.id, clipped(exc))
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

    # ------------------------------------------------------------------ codec, transfer
    def _sip_codec_changed(self, attempt: _Attempt) -> None:
        """A re-INVITE moved a SIP leg to another codec: relay or transcode anew."""
        media = attempt.media
        if attempt is not self._bridged or self.bridge is None or media.negotiated is None:
            return  # not heard now (a transfer's ringback): bridged anew when it is
        self.bridge.replace_b(RtpLeg(media.rtp, audio_codec(media.negotiated.codec)))
        logger.info(
            "call %s: the phone side moved to %s%s",
            self.id,
            media.negotiated.codec,
            " (transcoding)" if self.bridge.transcoding else "",
        )

    def _transfer_requested(self, attempt: _Attempt, event: TransferRequested) -> None:
        try:
            target = str(parse_sip_uri(event.target))
        except ValueError:
            attempt.sip.reject_transfer(400)
            return
        self._pending_refer = (attempt, event)
        self._feed(TransferAsked(attempt.index, target))
        self._pending_refer = None

    def _refuse_transfer(self, action: RefuseTransfer) -> None:
        attempt = self.attempts[action.destination]
        logger.info(
            "call %s: transfer refused (%d)%s",
            self.id,
            action.status,
            ": not in the site's transfer_to" if action.status == 403 else "",
        )
        attempt.sip.reject_transfer(action.status)

    def _start_transfer(self, action: TransferStarted) -> None:
        """The operator's REFER is taken: the visitor hears ringback while the target
        rings (the core's `Ring` comes next)."""
        pending = self._pending_refer
        operator = self.attempts[action.transferor]
        assert pending is not None and pending[0] is operator, "a TransferStarted answers a REFER"
        self._referred[action.target] = pending
        operator.sip.accept_transfer()
        logger.info(
            "call %s: operator transfers the call to %s",
            self.id,
            clipped(self._destination(action.target).uri),
        )
        self._unbridge(ringback=False)
        self._play_ringback()
        self._push(CallState.TRANSFERRING)

    def _tell_transferor(self, index: int, status: int, reason: str) -> None:
        """NOTIFY the phone that asked for this transfer target how its call goes."""
        referred = self._referred.get(index)
        if referred is not None and not referred[0].sip.ended.done():
            referred[0].sip.notify_transfer(status, reason)

    # ------------------------------------------------------------------ failures
    def _on_ice_failed(self, state: str) -> None:
        self.hangup(EndCause.FAILED, f"browser connection {state}")

    def _on_media_timeout(self, attempt: _Attempt) -> None:
        if attempt is self.winner and self.state in (CallState.ANSWERED, CallState.EARLY_MEDIA):
            self.hangup(EndCause.FAILED, "no audio from the operator's side")

    # ------------------------------------------------------------------ ringback
    def _start_ringback(self) -> None:
        if not self.bridge:
            self._play_ringback()

    def _play_ringback(self) -> None:
        if self.settings.ringback is None or self._ringback is not None or self.webrtc is None:
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
    def _push(
        self, state: CallState, cause: EndCause | None = None, detail: str = "", reason: str = ""
    ) -> None:
        if self.state == CallState.ENDED:
            return
        self.state = state
        try:
            self._notify(CallUpdate(state, cause, detail, reason=reason))
        except Exception:  # a page gone away must not break the call's cleanup
            logger.exception("call %s: notify failed", self.id)

    def _end(self, cause: EndCause, detail: str, reason: str = "") -> None:
        """The core decided the call is over (its Cancels are sent): tell the page once SIP
        confirmed, or after SIP_END_GRACE, and free everything."""
        if self._ending:
            return
        self._ending = True
        self._cause, self._detail, self._reason = cause, detail, reason
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
        self._push(CallState.ENDED, self._cause or EndCause.FAILED, self._detail, self._reason)
        await self._release()
        self._finished.set()

    async def _release(self) -> None:
        self._stop_ringback()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._stop_bridge()
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

    def _stop_bridge(self) -> None:
        """Stop the bridge (once) and count the frames it relayed."""
        bridge = self.bridge
        if bridge is None or bridge.stopped:
            return
        bridge.stop()
        if self.on_relayed_frames is not None:
            self.on_relayed_frames(*bridge.relayed_frames())

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
