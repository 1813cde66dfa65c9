"""`CallManager`: the gateway's calls, behind the interface the page's faces use
(`gateway.api.GatewayService`: call tokens, then calls and pre-call checks)."""

from __future__ import annotations

import asyncio
import datetime
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from functools import partial
from typing import Protocol

from gateway.access.admission import (
    AdmittedCall,
    CallAdmission,
    LimitRefused,
    StorageUnavailable,
)
from gateway.access.challenge import ChallengeVerifier
from gateway.access.ledger import Ledger, SqliteLedger
from gateway.access.pages import page_access_from_config
from gateway.api import (
    NO_DETAILS,
    AccessRefused,
    CallRefused,
    CallState,
    CallUpdate,
    ChatReceipt,
    ChatUpdate,
    CheckGrant,
    Clock,
    EndCause,
    Notify,
    SiteInfo,
    TokenGrant,
    VisitorDetails,
    VoicemailGrant,
    VoicemailUpdate,
    clipped,
)
from gateway.calls.call import Call, CallSettings, Destination
from gateway.calls.causes import record_detail
from gateway.calls.history import CallHistory
from gateway.calls.precheck import PreCallChecks
from gateway.calls.ratings import CallRatings, RatingStore
from gateway.calls.voicemail import Voicemails, voicemail_folder
from gateway.config import GatewayConfig, SiteConfig
from gateway.config.legs import browser_leg_settings, sip_leg_settings
from gateway.health.monitor import HealthMonitor
from gateway.media.ice_mux import IceMux
from gateway.monitoring.metrics import Metrics
from gateway.sites.routing import SiteDestination
from sip_bridge import SipEndpoint

logger = logging.getLogger(__name__)

RELEASE_WAIT = 10.0  # seconds a call's media may take to close before on_call_ended anyway


class Chats(Protocol):
    """The conversations of click-to-chat (gateway.chat.conversations.Conversations), which
    the composition root gives the manager so that one service answers every face."""

    async def send(
        self,
        site: SiteConfig,
        client: str,
        text: str,
        notify: Callable[[ChatUpdate], None],
        *,
        visitor: VisitorDetails = NO_DETAILS,
        conversation_id: str | None = None,
        call_id: str | None = None,
    ) -> ChatReceipt: ...

    async def close(self, conversation_id: str) -> None: ...

    async def close_all(self) -> None: ...


class CallManager:
    """Creates calls for sites within their limits, finds them by id, ends those that
    reach their maximum duration, and forgets them when they end.

    `clock` (wall-clock seconds) times tokens, rate windows and the spend guard; the
    maximum call duration runs on the event loop's timer. `verifiers` adds challenge kinds
    (say, a CAPTCHA) to the built-in proof of work ("pow").
    """

    def __init__(
        self,
        config: GatewayConfig,
        endpoint: SipEndpoint,
        *,
        clock: Clock = time.time,
        verifiers: Mapping[str, ChallengeVerifier] | None = None,
        ledger: Ledger | None = None,
        history: CallHistory | None = None,
        ratings: RatingStore | None = None,
        ice_mux: IceMux | None = None,
    ) -> None:
        """`ice_mux`: the worker's shared ICE port for browser legs (`[ice] port`)."""
        self.config = config
        self.ice_mux = ice_mux
        # Records, calls in progress and metrics (none in the database without one).
        self.history = history if history is not None else CallHistory(None, Metrics())
        self.endpoint = endpoint
        self.clock = clock
        self.calls: dict[str, Call] = {}
        # What the workers and nodes count together (one process: its own, in memory).
        ledger = ledger if ledger is not None else SqliteLedger.in_memory()
        self.access = page_access_from_config(
            config, clock=clock, verifiers=verifiers, ledger=ledger
        )
        self.admission = CallAdmission(
            max_calls=config.limits.max_calls,
            max_calls_per_client=config.limits.max_calls_per_client,
            ledger=ledger,
        )
        self._admitted: dict[str, AdmittedCall] = {}
        self._time_limits: dict[str, asyncio.TimerHandle] = {}
        self._next_first: dict[str, int] = {}  # round-robin: where each site's next call starts
        self.on_call_ended: Callable[[Call], None] | None = None
        # Which destinations answer their health checks (down ones are not rung), set by
        # the composition root when some site checks them.
        self.health: HealthMonitor | None = None
        # Click-to-chat's conversations, set by the composition root (None: no chat).
        self.chats: Chats | None = None
        # Why the database cannot take a call's record now (None: it can), set by the
        # composition root: while it says so, new calls are refused (`unavailable`).
        self.storage_down: Callable[[], str | None] = lambda: None
        self._sip_leg = sip_leg_settings(config)
        self._browser_leg = browser_leg_settings(config)
        # Visitors' ratings of their answered calls, kept with the call records (none
        # without a database).
        database = self.history.database
        if ratings is None and database is not None:
            ratings = database.ratings
        self.ratings = CallRatings(self.access.ratings, ratings, ledger, clock=clock)
        self.checks = PreCallChecks(
            config,
            ledger,
            clock=clock,
            busy=lambda: self.admission.live_calls,
            leg_settings=self._browser_leg,
            ice_mux=ice_mux,
        )
        # Voice messages when nobody can answer; they take a call's place in the limits.
        self.voicemails = Voicemails(
            config,
            self.admission,
            directory=voicemail_folder(config),
            links=self.access.downloads,
            database=self.history.database,
            clock=clock,
            leg_settings=self._browser_leg,
            ice_mux=ice_mux,
        )

    # -------------------------------------------------------------- TokenService
    async def issue_token(
        self, *, site_id: str, origin: str | None, client: str, proof: object
    ) -> TokenGrant:
        site = self._site(site_id)
        return await self.access.issue_token(
            site.public_info, challenge=site.challenge, origin=origin, client=client, proof=proof
        )

    async def redeem_token(self, token: object, *, site_id: str, origin: str) -> None:
        await self.access.redeem_token(self._site(site_id).public_info, token, origin=origin)

    def _site(self, site_id: str) -> SiteConfig:
        site = self.config.site(site_id)
        if site is None:
            raise AccessRefused("unknown_site", f"no site {site_id[:40]!r}", status=404)
        return site

    async def admit_callback_request(self, site_id: str, client: str) -> None:
        """Count a Request-a-Call request of `client` against the visitor's call windows and
        the site's spend guard; raises LimitRefused past them (gateway/access/admission.py),
        StorageUnavailable while the database is down (the request could not be stored)."""
        if (reason := self.storage_down()) is not None:
            raise StorageUnavailable(reason)
        await self.admission.count_request(self._site(site_id), client, self.clock())

    # -------------------------------------------------------------- CallService
    def site(self, site_id: str) -> SiteInfo | None:
        site = self.config.site(site_id)
        return site.public_info if site is not None else None

    async def start_call(
        self,
        *,
        site_id: str,
        client: str,
        offer_sdp: str,
        notify: Notify,
        visitor: VisitorDetails = NO_DETAILS,
    ) -> tuple[str, str]:
        try:
            return await self._start_call(site_id, client, offer_sdp, notify, visitor)
        except CallRefused as exc:
            # One line per refusal, naming the limit and its key when a limit refused it.
            warning = isinstance(exc, LimitRefused) and exc.warning
            detail = exc.detail if isinstance(exc, LimitRefused | StorageUnavailable) else None
            (logger.warning if warning else logger.info)(
                "call refused (%s): site %s, client %s: %s",
                exc.code,
                clipped(site_id, 40),
                clipped(client, 64),
                clipped(detail or exc.message),
            )
            raise

    async def _start_call(
        self,
        site_id: str,
        client: str,
        offer_sdp: str,
        notify: Notify,
        visitor: VisitorDetails,
    ) -> tuple[str, str]:
        site = self.config.site(site_id)
        if site is None:
            raise CallRefused("unknown_site", f"no site {site_id[:40]!r}")
        call_id = secrets.token_urlsafe(12)
        history = self.history
        try:
            admitted = await self._admit(site, client, visitor)
        except CallRefused as exc:
            history.refused(call_id, site.id, exc.code, exc.message, client=client, visitor=visitor)
            raise
        self._admitted[call_id] = admitted
        history.started(call_id, site.id, client=client, visitor=visitor)

        def on_update(update: CallUpdate) -> None:
            if update.state in (CallState.RINGING, CallState.EARLY_MEDIA):
                history.ringing(call_id)
            elif update.state == CallState.ANSWERED:
                if call_id in self._time_limits:
                    history.changed(call_id, "answered")  # back from hold
                else:
                    history.answered(call_id, call.answered_by)
                self._answered(call_id, site)
            elif update.state == CallState.ON_HOLD:
                history.changed(call_id, "on_hold")
            elif update.state == CallState.TRANSFERRING:
                history.changed(call_id, "transferring")
            elif update.state == CallState.ENDED:
                history.ended(
                    call_id,
                    None,  # from whether it was answered, and its cause
                    cause=update.cause,
                    detail=record_detail(update),
                    codecs=call.codecs(),
                    quality=call.quality(),
                )
                admitted = self._admitted.get(call_id)
                if admitted is not None and admitted.answered:
                    update = replace(update, rating_proof=self.ratings.proof(call_id, site.id))
                talked = self._forget(call_id)
                logger.info(
                    "call %s ended: site %s, client %s, %s%s, talked %.1f s",
                    call_id,
                    site.id,
                    clipped(client, 64),
                    update.cause,
                    f" ({clipped(update.detail)})" if update.detail else "",
                    talked,
                )
            notify(update)

        call = Call(
            call_id, self._settings(site, visitor, self._reachable(site)), self.endpoint, on_update
        )
        call.on_sip_response = history.sip_response
        call.on_relayed_frames = history.relayed_frames
        self.calls[call_id] = call
        try:
            answer = await call.start(offer_sdp)
        except ValueError as exc:
            self._forget(call_id)
            history.metrics.refusals.labels("bad_offer").inc()
            history.ended(call_id, "refused", cause="bad_offer", detail=str(exc)[:200])
            raise CallRefused("bad_offer", str(exc)) from None
        except OSError as exc:
            self._forget(call_id)
            logger.warning("call %s: cannot start: %s", call_id, clipped(exc))
            history.ended(call_id, "failed", cause="unavailable", detail=str(exc))
            raise CallRefused("unavailable", "the gateway cannot take a call now") from None
        except BaseException:
            # Whatever else stopped it (cancelled, a bug): its slot and its history end too.
            self._forget(call_id)
            history.ended(call_id, "failed", cause="failed", detail="the call could not start")
            raise
        logger.info("call %s started: site %s, client %s", call_id, site.id, clipped(client, 64))
        return call_id, answer

    async def _admit(self, site: SiteConfig, client: str, visitor: VisitorDetails) -> AdmittedCall:
        """The call's place in every limit, or CallRefused (LimitRefused) saying why."""
        if site.widget.visitor_details == "required" and not visitor.name:
            # The widget asks first; this holds for any page that skips it.
            raise CallRefused("name_required", "this site asks for your name before a call")
        now = self.clock()
        if site.hours is not None and not site.hours.is_open(
            datetime.datetime.fromtimestamp(now, datetime.UTC)
        ):
            raise CallRefused(
                "closed",
                "We are closed now."
                + (" Leave your number and we will call you back." if site.callback else ""),
            )
        if (reason := self.storage_down()) is not None:
            raise StorageUnavailable(reason)
        if not self._reachable(site):
            # Every destination failed its health checks: say so at once, not after the
            # ring timeout, and let the page offer the fallback (a callback).
            raise CallRefused(
                "nobody_available",
                "Nobody can answer right now."
                + (" Leave your number and we will call you back." if site.callback else ""),
            )
        return await self.admission.admit(site, client, now)

    async def add_candidate(
        self, call_id: str, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None
    ) -> None:
        await self._call(call_id).add_candidate(candidate, sdp_mid, sdp_mline_index)

    async def hangup(self, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is not None:
            call.hangup()

    async def send_dtmf(self, call_id: str, digits: str) -> None:
        await self._call(call_id).send_dtmf(digits)

    async def set_mute(self, call_id: str, muted: bool) -> None:
        self._call(call_id).set_mute(muted)

    # -------------------------------------------------------------- CheckService
    async def start_check(self, *, site_id: str, client: str, offer_sdp: str) -> CheckGrant:
        site = self.config.site(site_id)
        if site is None:
            raise CallRefused("unknown_site", f"no site {site_id[:40]!r}")
        try:
            return await self.checks.start(site, client, offer_sdp)
        except CallRefused as exc:
            _log_refusal("pre-call check", exc, site.id, client)
            raise

    async def stop_check(self, check_id: str) -> None:
        await self.checks.stop(check_id)

    # -------------------------------------------------------------- VoicemailService
    async def start_voicemail(
        self,
        *,
        site_id: str,
        client: str,
        offer_sdp: str,
        notify: Callable[[VoicemailUpdate], None],
        visitor: VisitorDetails = NO_DETAILS,
        after_call: str | None = None,
    ) -> VoicemailGrant:
        site = self.config.site(site_id)
        if site is None:
            raise CallRefused("unknown_site", f"no site {site_id[:40]!r}")
        try:
            return await self.voicemails.start(
                site, client, offer_sdp, notify, visitor=visitor, after_call=after_call
            )
        except CallRefused as exc:
            _log_refusal("voicemail", exc, site.id, client)
            raise

    async def send_voicemail(self, voicemail_id: str) -> None:
        await self.voicemails.send(voicemail_id)

    # -------------------------------------------------------------- ChatService
    async def chat_send(
        self,
        *,
        site_id: str,
        client: str,
        text: str,
        notify: Callable[[ChatUpdate], None],
        visitor: VisitorDetails = NO_DETAILS,
        conversation_id: str | None = None,
        call_id: str | None = None,
    ) -> ChatReceipt:
        site = self.config.site(site_id)
        if site is None:
            raise CallRefused("unknown_site", f"no site {site_id[:40]!r}")
        if self.chats is None or not site.chat:
            raise CallRefused("chat_off", "this site offers no chat")
        try:
            return await self.chats.send(
                site,
                client,
                text,
                notify,
                visitor=visitor,
                conversation_id=conversation_id,
                call_id=call_id,
            )
        except CallRefused as exc:
            _log_refusal("chat message", exc, site.id, client)
            raise

    async def chat_close(self, conversation_id: str) -> None:
        if self.chats is not None:
            await self.chats.close(conversation_id)

    # -------------------------------------------------------------- internals
    def _call(self, call_id: str) -> Call:
        call = self.calls.get(call_id)
        if call is None:
            raise ValueError(f"no call {call_id!r}")
        return call

    def _answered(self, call_id: str, site: SiteConfig) -> None:
        admitted = self._admitted.get(call_id)
        if admitted is None or call_id in self._time_limits:
            return  # over already, or answered again after a hold
        self.admission.answered(admitted, self.clock())
        self._time_limits[call_id] = asyncio.get_running_loop().call_later(
            site.max_call_duration, self._time_limit_reached, call_id, site.max_call_duration
        )

    def _time_limit_reached(self, call_id: str, seconds: float) -> None:
        self._time_limits.pop(call_id, None)
        call = self.calls.get(call_id)
        if call is None:
            return
        logger.info("call %s: maximum duration of %g s reached, hanging up", call_id, seconds)
        call.hangup(EndCause.TIME_LIMIT, f"maximum call duration of {seconds:g} s reached")

    def _forget(self, call_id: str) -> float:
        """Release the call's slot in every limit; returns the seconds it talked."""
        timer = self._time_limits.pop(call_id, None)
        if timer is not None:
            timer.cancel()
        admitted = self._admitted.pop(call_id, None)
        talked = self.admission.ended(admitted, self.clock()) if admitted is not None else 0.0
        call = self.calls.pop(call_id, None)
        if call is not None and self.on_call_ended is not None:
            if call.state == CallState.ENDED:
                # Told once the call has released its media (aiortc's close takes a
                # while): only then is what it held garbage (gateway/process/heap.py collects it).
                released = asyncio.ensure_future(
                    asyncio.wait_for(call.wait_finished(), RELEASE_WAIT)
                )
                released.add_done_callback(partial(self._released, call))
            else:  # refused at start: nothing more to release
                self.on_call_ended(call)
        return talked

    def _released(self, call: Call, done: asyncio.Future) -> None:
        if not done.cancelled():
            done.exception()  # a release that took too long: collect what there is anyway
        if self.on_call_ended is not None:
            self.on_call_ended(call)

    def reachable(self, site: SiteConfig) -> tuple[SiteDestination, ...]:
        return self._reachable(site)

    def _reachable(self, site: SiteConfig) -> tuple[SiteDestination, ...]:
        """The site's destinations that are not down (all of them without health checks)."""
        if self.health is None:
            return site.destinations
        return tuple(d for d in site.destinations if not self.health.is_down(site.id, str(d.uri)))

    def _settings(
        self,
        site: SiteConfig,
        visitor: VisitorDetails = NO_DETAILS,
        destinations: tuple[SiteDestination, ...] | None = None,
    ) -> CallSettings:
        config = self.config
        destinations = site.destinations if destinations is None else destinations
        headers = [("X-Site", site.id), *_visitor_headers(site, visitor)]
        # The visitor's name, when the site asks for it, is who calls; else the site's name.
        name = visitor.name if site.widget.asks_details else ""
        first = self._next_first.get(site.id, 0)
        self._next_first[site.id] = (first + 1) % max(len(destinations), 1)
        # A registered trunk takes the site's calls through its registrar, from its AOR.
        aor = site.address_of_record
        via_registrar = str(site.registrar) if aor is not None and site.registrar else None
        return CallSettings(
            destinations=tuple(
                Destination(str(d.uri), d.credentials, str(d.proxy) if d.proxy else via_registrar)
                for d in destinations
            ),
            transfer_to=site.transfer_to,
            from_domain=aor.host if aor is not None else None,
            ring=site.ring,
            ring_total=site.ring_total,
            first=first,
            caller_name=name or site.caller_name,
            from_user=site.from_user or (aor.user if aor is not None else None),
            ring_timeout=site.ring_timeout,
            connect_timeout=config.ice.connect_timeout,
            sip_leg=self._sip_leg,
            browser_leg=self._browser_leg,
            ice_mux=self.ice_mux,
            ringback=config.media.ringback,
            headers=tuple(headers),
        )

    def hang_up_all(self) -> None:
        """End every call now (another node took this worker for dead and ended their SIP
        side already)."""
        for call in list(self.calls.values()):
            call.hangup()

    async def close(self) -> None:
        """End every call (BYE/CANCEL), check and voicemail (kept), and wait for them."""
        await self.checks.close()
        await self.voicemails.close()
        calls = list(self.calls.values())
        for call in calls:
            call.hangup()
        if calls:
            await asyncio.wait([asyncio.create_task(c.wait_finished()) for c in calls], timeout=6)
        await self.admission.flush()


def _visitor_headers(site: SiteConfig, visitor: VisitorDetails) -> list[tuple[str, str]]:
    """The visitor's details for the operator (docs/embedding.md): name and reason only when
    the site's widget asks for them, the page and the call link's source always. Values are
    one line already (signaling.payloads); the user agent drops control characters in any
    case."""
    headers = []
    if site.widget.asks_details:
        if visitor.name:
            headers.append(("X-Visitor-Name", visitor.name))
        if visitor.reason:
            headers.append(("X-Visitor-Reason", visitor.reason))
    if visitor.page:
        headers.append(("X-Visitor-Page", visitor.page))
    if visitor.source:
        headers.append(("X-Visitor-Source", visitor.source))
    return headers


def _log_refusal(what: str, exc: CallRefused, site_id: str, client: str) -> None:
    """One line for a refused check, voicemail or chat message: the code, the site, the
    visitor's address and why (the limit's detail, which the page is not told)."""
    logger.info(
        "%s refused (%s): site %s, client %s: %s",
        what,
        exc.code,
        site_id,
        clipped(client, 64),
        clipped(exc.detail if isinstance(exc, LimitRefused) else exc.message),
    )
