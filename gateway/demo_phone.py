"""The built-in demo phone: the operator of the "demo" site when no configuration is given.

It is a real SIP phone on loopback, built from `sip_bridge`, so that a newcomer who runs the
gateway and clicks Call goes through every part a production call uses (SIP signalling,
SDP offer/answer, RTP, the media bridge) and hears the round trip. Per incoming INVITE it:

- sends 180 Ringing, "rings" for `ring_seconds`, then answers 200 with an SDP answer
  (PCMU, PCMA, G.722 and telephone-event);
- echoes what the caller says back to the caller, and mixes a short 880 Hz beep into it
  every `beep_every` seconds, so that the page has something to play during silence too;
- answers re-INVITEs (hold, resume) and logs received DTMF digits at INFO level;
- ends the call itself after `max_call_seconds`, or when the caller's RTP stops for
  `media_timeout` seconds while not on hold;
- takes chat messages (SIP MESSAGE, RFC 3428) as a desk phone does, and answers each with
  one of its own to its sender, quoting it, so that "Write to us" shows a reply too.

How the echo works, and why this way: once per packet time (on a drift-free clock) it pulls
one decoded frame from the call's `RtpSession` (`read_pcm`), adds the beep when one is due,
and sends the frame back (`send_pcm`). Relaying the received payloads untouched would save
the decode and encode, but:
- mixing the beep needs PCM anyway;
- G.722 is ADPCM: the far decoder tracks the state of the one encoder it hears, so frames
  coded by the caller (relayed) and frames coded here (beeps) must not alternate: each
  switch would desynchronise the predictors and click;
- `read_pcm` brings the session's jitter buffer and loss concealment: a lost packet comes
  back as a concealed frame, not as a hole, and a silent caller still gets a steady stream.
Measured here, pull plus send of one 20 ms frame costs ~9 us with PCMU (relay: ~5 us) and
~39 us with G.722 (relay: ~6 us): at most 0.2 % of a core per call, which a demo can pay.
The loop itself allocates nothing: the beep frames are computed once per (rate, frame size),
and mixing uses two scratch buffers of the call (saturating, in int32).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
from collections.abc import Callable, Sequence

import numpy as np

from gateway.text import clipped
from sip_bridge import (
    AckReceived,
    CallEnded,
    CallError,
    CallMedia,
    DtmfDigit,
    MessageReceived,
    OfferReceived,
    RtpPortsExhaustedError,
    RtpSession,
    SipCall,
    SipEndpoint,
    UserAgentConfig,
    paced_ticks,
    parse_name_address,
    sdp,
)

DEMO_REPLY_DELAY = 0.5  # seconds before the demo operator answers a chat message
DEMO_QUOTE_CHARS = 200

__all__ = [
    "BEEP_HZ",
    "BEEP_LEVEL",
    "BEEP_SECONDS",
    "DEFAULT_CODECS",
    "FIRST_BEEP_AFTER",
    "DemoPhone",
]

logger = logging.getLogger(__name__)

DEFAULT_CODECS = ("PCMU", "PCMA", "G722")
BEEP_HZ = 880.0
BEEP_SECONDS = 0.15
# A quarter of full scale: plainly audible over silence, and leaves headroom over a voice.
BEEP_LEVEL = 0.25
# Raised-cosine edges, so that the beep starts and stops without a click.
_BEEP_FADE_SECONDS = 0.005
# The first beep comes soon after the answer: the caller knows at once that audio flows.
FIRST_BEEP_AFTER = 0.5
_UNSPECIFIED_HOSTS = frozenset({"0.0.0.0", "::", ""})
_SIP_USER = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+")


class DemoPhone:
    """An auto-answering echo phone on one SIP socket. Create with `await DemoPhone.start(...)`.

    It answers any user at its address (see `uri_for`), over UDP.
    """

    def __init__(
        self,
        endpoint: SipEndpoint,
        rtp_ports: tuple[int, int],
        *,
        ring_seconds: float,
        beep_every: float | None,
        max_call_seconds: float,
        media_timeout: float | None,
        codecs: Sequence[str],
        max_calls: int,
        latch_any_source: bool,
    ) -> None:
        """Internal: use `await DemoPhone.start(...)`, which binds the SIP socket first."""
        self._endpoint = endpoint
        self._host = endpoint.local_address[0]
        self.rtp_ports = rtp_ports
        self.ring_seconds = ring_seconds
        self.beep_every = beep_every
        self.max_call_seconds = max_call_seconds
        self.media_timeout = media_timeout
        self.codecs = tuple(codecs)
        self.max_calls = max_calls
        self.latch_any_source = latch_any_source
        self._calls: dict[str, asyncio.Task[None]] = {}
        self._replies: set[asyncio.Task[None]] = set()
        self._closed = False
        endpoint.on_incoming = self._on_incoming
        endpoint.on_message = self._on_message

    @classmethod
    async def start(
        cls,
        sip_listen: tuple[str, int],
        rtp_ports: tuple[int, int],
        *,
        ring_seconds: float = 1.0,
        beep_every: float | None = 4.0,
        max_call_seconds: float = 600,
        media_timeout: float | None = 30.0,
        codecs: Sequence[str] = DEFAULT_CODECS,
        max_calls: int = 20,
        latch_any_source: bool = False,
    ) -> DemoPhone:
        """Bind the SIP socket on `sip_listen` (port 0: any free port) and take calls.

        `rtp_ports` is the inclusive range the RTP/RTCP port pairs of calls come from.
        `beep_every` None: no beeps. `media_timeout` None: never hang up for lack of RTP.
        `codecs` in order of preference (the first the caller offers is used). A call
        beyond `max_calls` at once gets 486 Busy Here; with no free RTP port pair, 503.
        `latch_any_source` as the gateway's own SIP legs (`media.rtp_latching`): False
        takes RTP only from the address the caller's SDP names, so that packets sprayed at
        the port range cannot take a call's stream.
        """
        host, _ = sip_listen
        if host in _UNSPECIFIED_HOSTS:
            # The host goes into Contact and SDP: it must be an address callers can reach.
            raise ValueError(f"the demo phone needs a concrete address to listen on, not {host!r}")
        low, high = rtp_ports
        if low + low % 2 + 1 > high:
            raise ValueError(f"RTP port range {low}-{high} holds no even/odd port pair")
        if ring_seconds < 0:
            raise ValueError(f"ring_seconds must not be negative, got {ring_seconds}")
        if beep_every is not None and beep_every <= BEEP_SECONDS:
            raise ValueError(f"beep_every must exceed the beep ({BEEP_SECONDS} s): {beep_every}")
        if max_call_seconds <= 0:
            raise ValueError(f"max_call_seconds must be positive, got {max_call_seconds}")
        if media_timeout is not None and media_timeout <= 0:
            raise ValueError(f"media_timeout must be positive or None, got {media_timeout}")
        if max_calls < 1:
            raise ValueError(f"max_calls must be at least 1, got {max_calls}")
        unknown = [codec for codec in codecs if codec.upper() not in DEFAULT_CODECS]
        if unknown or not codecs:
            raise ValueError(f"codecs must be some of {DEFAULT_CODECS}, got {codecs}")
        endpoint = await SipEndpoint.open(
            UserAgentConfig(
                address=sip_listen,
                user="demo",
                display_name="Demo phone",
                accept_incoming=True,
                accept_messages=True,
                user_agent="click-to-call demo phone",
            )
        )
        phone = cls(
            endpoint,
            rtp_ports,
            ring_seconds=ring_seconds,
            beep_every=beep_every,
            max_call_seconds=max_call_seconds,
            media_timeout=media_timeout,
            codecs=codecs,
            max_calls=max_calls,
            latch_any_source=latch_any_source,
        )
        logger.info("demo phone: listening at %s", phone.uri_for())
        return phone

    @property
    def address(self) -> tuple[str, int]:
        """Where its SIP socket listens (host, port)."""
        return self._endpoint.local_address

    def uri_for(self, user: str = "demo") -> str:
        """A SIP URI that reaches this phone (it answers every user)."""
        if not _SIP_USER.fullmatch(user):
            raise ValueError(f"not a SIP user part: {user!r}")
        host, port = self.address
        if ":" in host:
            host = f"[{host}]"
        return f"sip:{user}@{host}:{port}"

    @property
    def active_calls(self) -> int:
        """Calls ringing or in progress (each has its task, RTP session and sockets)."""
        return len(self._calls)

    def _on_incoming(self, call: SipCall) -> None:
        if self._closed:
            call.hangup(status=503)
            return
        if len(self._calls) >= self.max_calls:
            logger.warning("demo phone: busy (%d calls), refusing a call", len(self._calls))
            call.hangup(status=486)
            return
        task = asyncio.get_running_loop().create_task(
            _DemoCall(self, call).run(), name=f"demo phone call {call.call_id}"
        )
        self._calls[call.call_id] = task
        task.add_done_callback(lambda _: self._calls.pop(call.call_id, None))

    def _on_message(self, message: MessageReceived) -> int:
        """A chat message: take it, and answer its sender in a moment (as an operator
        typing on a desk phone does)."""
        if self._closed or len(self._replies) >= self.max_calls:
            return 486
        try:
            sender = str(parse_name_address(message.sender).uri)
        except ValueError:
            return 400
        logger.info("demo phone: message from %s", clipped(sender, 80))
        quoted = " ".join(message.text.split())[:DEMO_QUOTE_CHARS]
        task = asyncio.get_running_loop().create_task(
            self._reply(sender, f"Demo operator here: you wrote \u201c{quoted}\u201d."),
            name="demo phone message",
        )
        self._replies.add(task)
        task.add_done_callback(self._replies.discard)
        return 200

    async def _reply(self, to: str, text: str) -> None:
        await asyncio.sleep(DEMO_REPLY_DELAY)
        with contextlib.suppress(ValueError):
            await self._endpoint.message(to, text, timeout=5, from_user="demo")

    async def _open_media(self) -> CallMedia:
        return await CallMedia.open(
            self._host,
            self.rtp_ports,
            codecs=self.codecs,
            media_timeout=self.media_timeout,
            latch_any_source=self.latch_any_source,
        )

    async def close(self) -> None:
        """Hang up every call (BYE, or 503 if still ringing), free its media, close the socket."""
        if self._closed:
            return
        self._closed = True
        tasks = [*self._calls.values(), *self._replies]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._endpoint.close()
        logger.info("demo phone: closed")

    async def __aenter__(self) -> DemoPhone:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class _DemoCall:
    """One incoming call from INVITE to its end: ring, answer, echo, re-offers, clean-up."""

    def __init__(self, phone: DemoPhone, call: SipCall) -> None:
        self.phone = phone
        self.call = call
        self.label = clipped(call.call_id, 64)  # the caller chose the Call-ID
        self.media: CallMedia | None = None
        self._echo: asyncio.Task[None] | None = None
        self._limit: asyncio.TimerHandle | None = None
        # We sent an offer (INVITE or re-INVITE without one): its answer comes in the ACK.
        self._awaiting_answer = False

    async def run(self) -> None:
        # Cancelled when the phone closes: the finally clause hangs up and frees everything.
        try:
            await self._serve()
        except Exception:
            logger.exception("demo phone: call %s failed", self.label)
        finally:
            await self._release()

    async def _serve(self) -> None:
        call = self.call
        incoming = call.incoming
        assert incoming is not None
        try:
            self.media = media = await self.phone._open_media()
        except RtpPortsExhaustedError as exc:
            logger.warning("demo phone: refusing a call: %s", exc)
            call.hangup(status=503)
            return
        media.rtp.on_dtmf = _log_digit
        try:
            body = media.answer(incoming.sdp) if incoming.sdp else self._make_offer()
        except sdp.SdpError as exc:
            logger.info("demo phone: refusing a call with unusable SDP: %s", clipped(exc))
            call.hangup(status=488)
            return
        logger.info("demo phone: call from %s, ringing", clipped(incoming.caller))
        if not self._command(call.ring):
            return
        await asyncio.wait((call.ended,), timeout=self.phone.ring_seconds)
        if call.ended.done() or not self._command(call.answer, body):
            return
        logger.info(
            "demo phone: answered %s with %s",
            self.label,
            media.negotiated.codec if media.negotiated else "an offer",
        )
        media.rtp.on_media_timeout = functools.partial(
            self._hang_up, f"no RTP from the caller for {self.phone.media_timeout} s"
        )
        self._limit = asyncio.get_running_loop().call_later(
            self.phone.max_call_seconds,
            self._hang_up,
            f"the maximum call duration ({self.phone.max_call_seconds:g} s) is reached",
        )
        self._start_echo()
        await self._converse()

    async def _converse(self) -> None:
        """Answer what the caller sends until the call ends (BYE either way)."""
        while True:
            event = await self.call.next_event()
            if isinstance(event, CallEnded):
                logger.info(
                    "demo phone: call %s ended: %s %s",
                    self.label,
                    event.reason.value,
                    clipped(event.detail),
                )
                return
            if isinstance(event, OfferReceived):
                self._answer_reoffer(event)
            elif isinstance(event, AckReceived):
                self._accept_ack(event)

    def _make_offer(self) -> bytes:
        assert self.media is not None
        self._awaiting_answer = True
        return self.media.offer()

    def _answer_reoffer(self, event: OfferReceived) -> None:
        media = self.media
        assert media is not None
        if event.sdp is None:
            self._command(self.call.answer_offer, self._make_offer())
            return
        try:
            answer = media.answer(event.sdp)
        except sdp.SdpError as exc:
            logger.info("demo phone: refusing a re-offer: %s", clipped(exc))
            self._command(self.call.reject_offer, 488)
            return
        if self._command(self.call.answer_offer, answer):
            logger.info(
                "demo phone: call %s %s",
                self.label,
                "on hold" if media.on_hold else "resumed",
            )
            self._start_echo()

    def _accept_ack(self, event: AckReceived) -> None:
        if not self._awaiting_answer:
            return
        self._awaiting_answer = False
        assert self.media is not None
        if event.sdp is None:
            self._hang_up("the ACK carried no SDP answer to our offer")
            return
        try:
            self.media.accept_answer(event.sdp)
        except sdp.SdpError as exc:
            self._hang_up(f"unusable SDP answer in the ACK: {exc}")
            return
        self._start_echo()

    def _command(self, action: Callable[..., None], *args: object) -> bool:
        """Run a SIP command; False if the call ended under our feet (e.g. a CANCEL)."""
        try:
            action(*args)
        except CallError:
            return False
        return True

    def _hang_up(self, why: str) -> None:
        if not self.call.ended.done():
            logger.info("demo phone: hanging up %s: %s", self.label, why)
            self.call.hangup()

    def _start_echo(self) -> None:
        media = self.media
        if self._echo is not None or media is None or media.negotiated is None:
            return
        beeps = None
        if self.phone.beep_every is not None:
            beeps = _BeepSchedule.for_session(media.rtp, self.phone.beep_every)
        self._echo = asyncio.get_running_loop().create_task(
            self._run_echo(media.rtp, beeps), name=f"demo phone echo {self.call.call_id}"
        )

    async def _run_echo(self, rtp: RtpSession, beeps: _BeepSchedule | None) -> None:
        try:
            await _echo_loop(rtp, beeps)
        except Exception:
            logger.exception("demo phone: echo of %s failed", self.label)
            self._hang_up("the echo failed")

    async def _release(self) -> None:
        """Free everything of the call; hang up first if it is not over (the phone closes)."""
        if self._limit is not None:
            self._limit.cancel()
        if self._echo is not None:
            self._echo.cancel()
            await asyncio.gather(self._echo, return_exceptions=True)
        if not self.call.ended.done():
            with contextlib.suppress(CallError):
                self.call.hangup(status=503)
        if self.media is not None:
            await self.media.close()


def _log_digit(digit: DtmfDigit) -> None:
    logger.info("demo phone: DTMF %s", digit.digit)


async def _echo_loop(rtp: RtpSession, beeps: _BeepSchedule | None = None) -> None:
    """Send back what `rtp` receives, one frame per packet time, beeps mixed in; forever.

    Runs until cancelled. While the caller holds the call, frames are pulled but not sent
    (the session knows the direction), so resuming needs nothing special.
    """
    frame_samples = rtp.frame_samples
    silence = np.zeros(frame_samples, np.int16)
    mixed = np.empty(frame_samples, np.int16)
    wide = np.empty(frame_samples, np.int32)
    tick = 0
    async for due in paced_ticks(rtp.ptime / 1000):
        frame = rtp.read_pcm(due)
        if frame.shape[0] != frame_samples:
            # A caller sending another packet time than negotiated: nothing sane to echo.
            frame = silence
        beep = beeps.frame_at(tick) if beeps is not None else None
        if beep is not None:
            np.add(frame, beep, out=wide)
            np.clip(wide, -32768, 32767, out=wide)
            mixed[:] = wide
            frame = mixed
        rtp.send_pcm(frame)
        tick += 1


class _BeepSchedule:
    """Which frame of the beep, if any, goes into tick k of a call's echo."""

    __slots__ = ("_count", "_first", "_frames", "_period")

    def __init__(self, frames: tuple[np.ndarray, ...], first_tick: int, period_ticks: int) -> None:
        self._frames = frames
        self._count = len(frames)
        self._first = first_tick
        self._period = max(period_ticks, self._count + 1)

    @classmethod
    def for_session(cls, rtp: RtpSession, every: float) -> _BeepSchedule:
        ptime = rtp.ptime / 1000
        return cls(
            _beep_frames(rtp.codec.sample_rate, rtp.frame_samples),
            round(FIRST_BEEP_AFTER / ptime),
            round(every / ptime),
        )

    def frame_at(self, tick: int) -> np.ndarray | None:
        position = tick - self._first
        if position < 0:
            return None
        position %= self._period
        return self._frames[position] if position < self._count else None


@functools.lru_cache(maxsize=8)
def _beep_frames(sample_rate: int, frame_samples: int) -> tuple[np.ndarray, ...]:
    """The beep cut into frames of `frame_samples` (int32, read-only; the last one padded)."""
    length = round(BEEP_SECONDS * sample_rate)
    wave = np.sin(2 * np.pi * BEEP_HZ * np.arange(length) / sample_rate) * (BEEP_LEVEL * 32767)
    fade = min(length // 2, round(_BEEP_FADE_SECONDS * sample_rate))
    if fade:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
        wave[:fade] *= ramp
        wave[length - fade :] *= ramp[::-1]
    count = -(-length // frame_samples)
    padded = np.zeros(count * frame_samples, np.int32)
    padded[:length] = np.round(wave)
    frames = padded.reshape(count, frame_samples)
    frames.flags.writeable = False
    return tuple(frames)
