"""Request-a-Call: ring the operator, then the visitor, and join the two phone calls.

One `CallbackJob` places one stored callback. The operator is called first (their phone
shows the visitor's number, name and page), hears a short whisper tone, then hears the
visitor's phone ring; when the visitor answers, the two legs are bridged (RTP relayed, DTMF
passed across) and either hang-up ends both. If the visitor does not answer, the operator
hears three low beeps and the callback is retried later, as the policy says.

A job runs with its place in the limits taken (a `Slot`, gateway.callbacks.service): its
talk time counts against the site's spend guard from the operator's answer, and the slot is
given back when the job ends. It ends both legs at the maximum call duration, and when a
leg that answered sends no RTP for `media.media_timeout` seconds (`SipLegSettings`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from gateway.api import VisitorDetails
from gateway.calls.history import CallHistory
from gateway.config.legs import SipLegSettings
from gateway.media.bridge import MediaBridge, RtpLeg
from gateway.media.quality import LegQuality, sip_leg_quality
from gateway.media.sip_leg import open_sip_media
from gateway.media.transcoder import audio_codec
from gateway.storage import Callback, CallbackEvent, CallbackStatus, CallbackStore
from gateway.storage.callback_lifecycle import STATUS_EVENTS
from gateway.text import MAX_REASON_CHARS, clean_visitor_name, clean_visitor_text, clipped
from sip_bridge import (
    CallAnswered,
    CallEnded,
    CallEndedError,
    CallMedia,
    EarlyMedia,
    EndReason,
    SipCall,
    SipEndpoint,
    play_pcm,
    sdp,
)

logger = logging.getLogger(__name__)


def operator_display(number: str, name: str) -> str:
    """What the operator's phone shows: the number to call back first, then the visitor's
    name in parentheses, visibly apart (a name can never pass for a number:
    gateway/text.py), e.g. `Callback +447400200009 (Ann Smith)`."""
    return f"Callback {number}" + (f" ({name})" if name else "")


def shown_name(stored: object) -> str:
    """A stored name, cleaned again as today's rules say (it may predate them); '' if it
    no longer passes."""
    try:
        return clean_visitor_name(stored) if isinstance(stored, str) else ""
    except ValueError:
        return ""


def shown_text(stored: object, max_chars: int) -> str:
    try:
        return clean_visitor_text(stored, max_chars) if isinstance(stored, str) else ""
    except ValueError:
        return ""


@dataclass(frozen=True)
class CallbackSettings:
    """What placing one site's callbacks needs (resolved from the configuration)."""

    operator: str  # SIP URI of the operator (or hunt group head)
    dial: str  # trunk URI template with {number}
    credentials: tuple[str, str] | None
    proxy: str | None
    caller_name: str | None
    leg: SipLegSettings  # how each of its two legs opens its media
    operator_ring_timeout: float = 30
    visitor_ring_timeout: float = 45
    attempts: int = 3  # tries to reach the visitor in all
    retry_after: float = 300  # seconds between tries
    max_seconds: float = 3600
    whisper: bool = True


Progress = Callable[[CallbackEvent, str], Awaitable[None] | None]


class Slot(Protocol):
    """A callback's place in the limits, taken before it is placed (gateway.access.admission:
    the same ledger as calls)."""

    def answered(self) -> None:
        """The operator answered: talk time counts from now."""

    def release(self) -> None:
        """The callback is over (called once)."""


def beeps(
    rate: int, hz: float, count: int, on: float = 0.15, off: float = 0.1, level: float = 0.3
) -> np.ndarray:
    t = np.arange(round(rate * on)) / rate
    tone = (np.sin(2 * np.pi * hz * t) * level * 32767).astype(np.int16)
    gap = np.zeros(round(rate * off), np.int16)
    return np.concatenate([np.concatenate([tone, gap]) for _ in range(count)])


class CallbackJob:
    def __init__(
        self,
        callback: Callback,
        settings: CallbackSettings,
        endpoint: SipEndpoint,
        store: CallbackStore,
        on_progress: Progress | None = None,
        clock: Callable[[], float] = time.time,
        slot: Slot | None = None,
        history: CallHistory | None = None,
    ) -> None:
        self.callback = callback
        self.history = history  # the record, the call in progress, the metrics
        self.settings = settings
        self.endpoint = endpoint
        self.store = store
        self.on_progress = on_progress
        self.clock = clock
        self.slot = slot
        self._media: list[CallMedia] = []
        self._calls: list[SipCall] = []
        # Who went silent ("operator", "visitor"): a leg that answered sent no RTP for
        # media_timeout seconds. Silence while ringing (early media) does not count.
        self._silent: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._answered: set[str] = set()
        self._legs: dict[str, CallMedia] = {}  # operator, visitor: for the record's quality

    async def run(self) -> CallbackStatus:
        """Place the callback; returns the status it leaves in the store."""
        try:
            self._started()
            return await self._run()
        except asyncio.CancelledError:
            # Shut down during the call: never redialled on its own (see gateway.storage.callbacks).
            await self._finish(CallbackStatus.INTERRUPTED, "the gateway stopped during the call")
            raise
        except Exception:
            # A bug or a refused INVITE must not leave the callback `dialing` for good.
            logger.exception("callback %s failed unexpectedly", self.callback.id)
            return await self._finish(CallbackStatus.FAILED, "the call back could not be placed")
        finally:
            await self._release()
            if self.slot is not None:
                self.slot.release()

    def _started(self) -> None:
        cb, history = self.callback, self.history
        if history is not None:
            details = cb.details
            history.started(
                cb.id,
                cb.site,
                kind="callback",
                number=cb.number,
                visitor=VisitorDetails(
                    details.get("name", ""), details.get("reason", ""), details.get("page", "")
                ),
                state=CallbackEvent.CALLING_OPERATOR.value,
            )

    async def _run(self) -> CallbackStatus:
        s = self.settings
        cb = self.callback
        name = shown_name(cb.details.get("name"))
        reason = shown_text(cb.details.get("reason"), MAX_REASON_CHARS)
        await self._progress(CallbackEvent.CALLING_OPERATOR, "")
        operator_media = await self._open_media(s.leg.codecs, "operator")
        self._legs["operator"] = operator_media
        headers = [("X-Site", cb.site), ("X-Callback-Number", cb.number), ("X-Callback-Id", cb.id)]
        if name:
            headers.append(("X-Visitor-Name", name))
        if cb.details.get("page"):
            headers.append(("X-Visitor-Page", cb.details["page"]))
        if reason:
            headers.append(("X-Visitor-Reason", reason))
        display = operator_display(cb.number, name)
        operator = await self._invite(
            s.operator, operator_media, display_name=display, headers=headers
        )
        answered = await self._wait_answer(operator, operator_media, s.operator_ring_timeout)
        if answered is not True:
            return await self._retry_or_fail(f"operator not reached: {answered}")
        self._answered.add("operator")
        if self.slot is not None:
            self.slot.answered()
        await self._progress(CallbackEvent.OPERATOR_ANSWERED, "")
        if s.whisper:
            await play_pcm(operator_media.rtp, beeps(operator_media.rtp.codec.sample_rate, 880, 2))

        await self._progress(CallbackEvent.CALLING_VISITOR, "")
        op_codec = _codec(operator_media)
        visitor_media = await self._open_media(
            [op_codec, *(c for c in s.leg.codecs if c != op_codec)], "visitor"
        )
        self._legs["visitor"] = visitor_media
        visitor = await self._invite(
            s.dial.format(number=cb.number), visitor_media, display_name=s.caller_name
        )
        visitor_answered = await self._wait_answer(
            visitor, visitor_media, s.visitor_ring_timeout, early_to=operator_media
        )
        if self._silent.done():  # the operator's leg went silent while the visitor rang
            return await self._retry_or_fail(f"operator not reached: {self._silence()}")
        if operator.ended.done():
            visitor.hangup()
            return await self._retry_or_fail("the operator hung up before the visitor answered")
        if visitor_answered is not True:
            # Tell the operator, then let them go.
            with contextlib.suppress(RuntimeError):
                await play_pcm(
                    operator_media.rtp,
                    beeps(operator_media.rtp.codec.sample_rate, 400, 3, on=0.3, off=0.2),
                )
            operator.hangup()
            return await self._retry_or_fail(f"visitor not reached: {visitor_answered}")

        self._answered.add("visitor")
        await self._progress(CallbackEvent.CONNECTED, "")
        if self.history is not None:
            self.history.answered(cb.id, s.operator)
        bridge = MediaBridge(
            RtpLeg(operator_media.rtp, audio_codec(op_codec)),
            RtpLeg(visitor_media.rtp, audio_codec(_codec(visitor_media))),
        )
        bridge.start()
        self._pass_dtmf(operator_media, visitor_media)
        self._pass_dtmf(visitor_media, operator_media)
        started = self.clock()
        ends: set[asyncio.Future[Any]] = {operator.ended, visitor.ended, self._silent}
        done, _ = await asyncio.wait(
            ends,
            timeout=s.max_seconds,
            return_when=asyncio.FIRST_COMPLETED,
        )
        bridge.stop()
        for call in (operator, visitor):
            if not call.ended.done():
                call.hangup()
        talked = self.clock() - started
        if not done:
            who = "time limit"
            logger.info("callback %s: maximum duration of %g s reached", cb.id, s.max_seconds)
        elif self._silent in done:
            who = self._silence()
            logger.info("callback %s: %s, hanging up", cb.id, who)
        else:
            who = "operator hung up" if operator.ended in done else "visitor hung up"
        return await self._finish(CallbackStatus.DONE, f"talked {talked:.0f} s; {who}")

    # ------------------------------------------------------------------ pieces
    async def _open_media(self, codecs: Iterable[str], who: str) -> CallMedia:
        media = await open_sip_media(self.settings.leg, codecs)
        self._media.append(media)

        def silent() -> None:  # no RTP from this leg for media_timeout seconds
            if who not in self._answered or self._silent.done():
                return  # ringing (its timer restarts at the answer), or ending already
            self._silent.set_result(who)
            for call in self._calls:  # every wait of the job ends now
                if not call.ended.done():
                    call.hangup()

        media.rtp.on_media_timeout = silent
        return media

    def _silence(self) -> str:
        timeout = self.settings.leg.media_timeout
        return f"no audio from the {self._silent.result()} for {timeout:g} s"

    async def _invite(self, uri: str, media: CallMedia, **options) -> SipCall:
        s = self.settings
        call = await self.endpoint.invite(
            uri, sdp=media.offer(), credentials=s.credentials, proxy=s.proxy, **options
        )
        self._calls.append(call)
        return call

    async def _wait_answer(
        self, call: SipCall, media: CallMedia, timeout: float, early_to: CallMedia | None = None
    ) -> bool | str:
        """True once answered and media is set; otherwise why not, in words."""
        bridge = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    event: EarlyMedia | CallAnswered = await call.wait_for(EarlyMedia, CallAnswered)
                    try:
                        negotiated = media.accept_answer(event.sdp)
                    except sdp.SdpError as exc:
                        call.hangup()
                        return f"unusable SDP: {exc}"
                    if isinstance(event, EarlyMedia) and early_to is not None and bridge is None:
                        # The operator hears the visitor's phone ring (or the trunk's tones).
                        bridge = MediaBridge(
                            RtpLeg(media.rtp, audio_codec(negotiated.codec)),
                            RtpLeg(early_to.rtp, audio_codec(_codec(early_to))),
                        )
                        bridge.b_to_a.muted = True  # the visitor does not hear us yet
                        bridge.start()
                    if isinstance(event, CallAnswered):
                        return True
        except TimeoutError:
            call.hangup()
            return "no answer"
        except CallEndedError as exc:
            return _words(exc.event)
        finally:
            if bridge is not None:
                bridge.stop()

    def _pass_dtmf(self, source: CallMedia, target: CallMedia) -> None:
        def forward(digit) -> None:
            if target.negotiated is not None and target.negotiated.dtmf_send_payload_type:
                task = asyncio.ensure_future(target.rtp.send_dtmf(digit.digit))
                task.add_done_callback(lambda t: t.exception())

        source.rtp.on_dtmf = forward

    async def _retry_or_fail(self, why: str) -> CallbackStatus:
        """Nobody reached (or someone hung up too soon): try again later, or give up."""
        cb = self.callback
        if cb.attempts < self.settings.attempts:
            await self.store.retry_at(
                cb.id, self.clock() + self.settings.retry_after, why, self.clock()
            )
            if self.history is not None:
                self.history.forget(cb.id)  # the record is written when it is over
                self.history.metrics.callbacks.labels("retry_scheduled").inc()
            await self._progress(CallbackEvent.SCHEDULED, why)
            return CallbackStatus.SCHEDULED
        return await self._finish(CallbackStatus.FAILED, why, outcome="missed")

    async def _finish(
        self, status: CallbackStatus, detail: str, outcome: str | None = None
    ) -> CallbackStatus:
        if self.history is not None:  # queued before the status shows: the record is first
            self.history.metrics.callbacks.labels(status.value).inc()
            self.history.ended(
                self.callback.id,
                outcome or ("answered" if status is CallbackStatus.DONE else "failed"),
                cause=status.value,
                detail=detail,
                codecs={
                    leg: media.negotiated.codec
                    for leg, media in self._legs.items()
                    if media.negotiated is not None
                },
                quality=self._quality(),
            )
        await self.store.finish(self.callback.id, status, detail, self.clock())
        await self._progress(CallbackEvent(status.value), detail)
        logger.info("callback %s: %s (%s)", self.callback.id, status, clipped(detail))
        return status

    def _quality(self) -> dict[str, LegQuality | None]:
        return {
            leg: sip_leg_quality(media.rtp, media.negotiated.codec)
            if media.negotiated is not None
            else None
            for leg, media in self._legs.items()
        }

    async def _progress(self, event: CallbackEvent, detail: str) -> None:
        """Tell `on_progress`; record the event unless a move of the store records it."""
        if event not in STATUS_EVENTS:
            await self.store.record(self.callback.id, event, detail, self.clock())
            if self.history is not None:
                self.history.changed(self.callback.id, event.value)
        if self.on_progress is not None:
            result = self.on_progress(event, detail)
            if asyncio.iscoroutine(result):
                await result

    async def _release(self) -> None:
        for call in self._calls:
            if not call.ended.done():
                call.hangup()
        if self._calls:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(
                        *(asyncio.shield(c.ended) for c in self._calls), return_exceptions=True
                    ),
                    5,
                )
        for media in self._media:
            await media.close()


def _codec(media: CallMedia) -> str:
    """The codec of a leg whose answer was accepted."""
    assert media.negotiated is not None
    return media.negotiated.codec


def _words(ended: CallEnded) -> str:
    reason = ended.reason
    if reason == EndReason.BUSY:
        return "busy"
    if reason in (EndReason.NO_ANSWER, EndReason.CANCELLED):
        return "no answer"
    if reason == EndReason.DECLINED:
        return "declined"
    return f"{reason.value.replace('_', ' ')} {ended.status or ''}".strip()
