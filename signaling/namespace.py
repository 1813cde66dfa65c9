"""The socket.io namespace that turns a browser's events into `CallService` calls.

Connection: `auth={"site": id, "token": call token}` (from `POST /api/token`) and an Origin
the site allows, else refused. Then one call at a time per connection; see
docs/signaling.md for the events, acks and errors.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import socketio
from socketio.exceptions import ConnectionRefusedError as SocketIORefused

from gateway.api import (
    AccessRefused,
    CallRefused,
    CallState,
    CallUpdate,
    ChatDelivery,
    ChatReply,
    ChatUpdate,
    GatewayService,
    VisitorDetails,
    VoicemailState,
    VoicemailUpdate,
    origin_of,
)
from signaling.errors import ErrorCode, SignalingError
from signaling.payloads import (
    MAX_CANDIDATES_PER_CALL,
    Candidate,
    ClientEvent,
    Dtmf,
    Hangup,
    Mute,
    PayloadError,
    SendChat,
    SendVoicemail,
    StartCall,
    StartCheck,
    StartVoicemail,
    StopCheck,
    parse_client_event,
    show,
)
from signaling.session import CallSlot, ClientSession

logger = logging.getLogger(__name__)

# More than a browser ever has in flight (one offer and a burst of candidates); past it the
# client is flooding us and its events are refused instead of queued.
MAX_QUEUED_EVENTS = 100
MAX_SITE_ID_CHARS = 64
MAX_REASON_CHARS = 200  # of a ValueError's text passed back to the page
MAX_EVENT_NAME_CHARS = 40

Ack = dict[str, Any]
# The page's RTCPeerConnection `iceServers`: one list for every page, or made per connection
# (the gateway's: short-lived TURN credentials each, gateway.media.ice_servers).
IceServersForPage = Sequence[Mapping[str, Any]] | Callable[[], Sequence[Mapping[str, Any]]]


class CallNamespace(socketio.AsyncNamespace):
    """Event handlers for the default namespace; one `ClientSession` per connection."""

    def __init__(
        self,
        service: GatewayService,
        *,
        ice_servers: IceServersForPage,
        page_origins: Iterable[str] = (),
    ) -> None:
        super().__init__("/")
        self._service = service
        if callable(ice_servers):
            self._ice_servers = ice_servers
        else:
            fixed = [dict(server) for server in ice_servers]
            self._ice_servers = lambda: fixed
        self._page_origins = frozenset(origin.lower() for origin in page_origins)
        self._sessions: dict[str, ClientSession] = {}
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def client_count(self) -> int:
        """Connected clients that signaling holds state for."""
        return len(self._sessions)

    @property
    def active_call_count(self) -> int:
        return sum(1 for session in self._sessions.values() if session.call is not None)

    async def wait_closed(self) -> None:
        """Wait until the hangups of clients that went away have been made."""
        while self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    # python-socketio calls this for every event, including `connect` and `disconnect`,
    # and it delivers a *client's* event named "connect" or "disconnect" here too (it does
    # not reserve them). The checks below tell the real ones apart: a real connect is for a
    # sid we have no session for yet; a real disconnect comes after the manager has marked
    # the sid as leaving.
    async def trigger_event(self, event: Any, *args: Any) -> Any:
        if not args:
            return None
        sid = args[0]
        if event == "connect" and sid not in self._sessions:
            environ = args[1] if len(args) > 1 else {}
            auth = args[2] if len(args) > 2 else None
            try:
                await self._connect(sid, environ, auth)
            except SocketIORefused:
                raise
            except Exception:
                # python-socketio only turns ConnectionRefusedError into a refusal.
                logger.exception("client %s: connect failed", sid)
                raise SocketIORefused("internal error") from None
            return None
        if event == "disconnect" and not self.server.manager.is_connected(sid, self.namespace):
            self._disconnect(sid)
            return None
        session = self._sessions.get(sid)
        if session is None:
            return None
        return await self._handle(session, event, args[1:])

    async def _connect(self, sid: str, environ: Mapping[str, Any], auth: object) -> None:
        if not isinstance(auth, dict) or auth.keys() != {"site", "token"}:
            raise SocketIORefused('auth must be {"site": "<site id>", "token": "<call token>"}')
        site_id = auth["site"]
        if not isinstance(site_id, str) or not 0 < len(site_id) <= MAX_SITE_ID_CHARS:
            raise SocketIORefused("auth.site must be a site id")
        site = self._service.site(site_id)
        if site is None:
            raise SocketIORefused(f"unknown site {show(site_id)}")
        origin = environ.get("HTTP_ORIGIN")
        if origin is None:
            raise SocketIORefused("an Origin header is required")
        origin = origin.lower()
        if not site.allows_origin(origin, self._page_origins):
            raise SocketIORefused(f"origin {show(origin)} may not use site {site.id!r}")
        client = _client_address(environ)
        try:
            await self._service.redeem_token(auth["token"], site_id=site.id, origin=origin)
        except AccessRefused as exc:
            logger.debug("client %s refused: site=%s client=%s: %s", sid, site.id, client, exc)
            raise SocketIORefused(exc.message) from None
        session = ClientSession(sid, site.id, client)
        self._sessions[sid] = session
        session.writer = asyncio.create_task(self._write(session), name=f"signaling-out-{sid}")
        ice_servers = [dict(server) for server in self._ice_servers()]
        session.send("session", {"ice_servers": ice_servers})
        logger.debug("client %s connected: site=%s client=%s", sid, site.id, session.client)

    def _disconnect(self, sid: str) -> None:
        session = self._sessions.pop(sid, None)
        if session is None:
            return
        session.closed = True
        if session.writer is not None:
            session.writer.cancel()
        # Not awaited here: an offer in progress must finish before its call can be hung up,
        # and python-socketio waits for this handler before it frees the connection.
        task = asyncio.create_task(self._end_session(session), name=f"signaling-end-{sid}")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _end_session(self, session: ClientSession) -> None:
        # Events still queued see `closed` and return at once; only one already running
        # (typically a call:start waiting for the answer) is waited for.
        async with session.lock:
            check, session.check = session.check, None
            if check is not None:
                await self._service.stop_check(check)
            conversation, session.conversation = session.conversation, None
            if conversation is not None:
                try:
                    await self._service.chat_close(conversation)
                except Exception:
                    logger.exception("conversation %s: closing failed", conversation)
            voicemail, session.voicemail = session.voicemail, None
            if voicemail is not None:  # leaving sends it, as hanging up does
                try:
                    await self._service.send_voicemail(voicemail)
                except Exception:
                    logger.exception("voicemail %s: sending after disconnect failed", voicemail)
            slot, session.call = session.call, None
            if slot is None or slot.call_id is None:
                return
            logger.debug(
                "call %s: client gone, hanging up: site=%s client=%s",
                slot.call_id,
                session.site_id,
                session.client,
            )
            try:
                await self._service.hangup(slot.call_id)
            except ValueError as exc:  # typically: the call ended on its own meanwhile
                logger.info("call %s: hangup after disconnect refused: %s", slot.call_id, exc)
            except Exception:
                logger.exception("call %s: hangup after disconnect failed", slot.call_id)

    async def _write(self, session: ClientSession) -> None:
        while True:
            event, payload = await session.outbox.get()
            try:
                await self.emit(event, payload, to=session.sid)
            except Exception:
                logger.exception("client %s: cannot send %s", session.sid, event)

    async def _handle(self, session: ClientSession, event: object, args: tuple[Any, ...]) -> Ack:
        try:
            request = parse_client_event(event, args)
        except PayloadError as exc:
            return await self._fail(session, event, exc)
        if session.waiting >= MAX_QUEUED_EVENTS:
            return await self._fail(
                session,
                event,
                SignalingError(
                    ErrorCode.TOO_MANY_EVENTS,
                    f"more than {MAX_QUEUED_EVENTS} events waiting; slow down",
                ),
            )
        session.waiting += 1
        try:
            async with session.lock:
                if session.closed:
                    return {"ok": False}
                return await self._dispatch(session, request)
        except SignalingError as exc:
            return await self._fail(session, event, exc)
        except Exception:
            logger.exception("client %s: %s failed", session.sid, event)
            return await self._fail(
                session, event, SignalingError(ErrorCode.INTERNAL, "internal error")
            )
        finally:
            session.waiting -= 1

    async def _fail(self, session: ClientSession, event: object, error: SignalingError) -> Ack:
        """Tell the client with an `error` event, sent before the failed ack (directly, not
        through the outbox: it is an answer, not news that must stay behind call states)."""
        payload: dict[str, Any] = error.to_payload()
        if isinstance(event, str) and len(event) <= MAX_EVENT_NAME_CHARS:
            payload["event"] = event
        if not session.closed:
            await self.emit("error", payload, to=session.sid)
        logger.debug("client %s: %s refused: %s", session.sid, show(event), error.message)
        return {"ok": False, "error": error.to_payload()}

    async def _dispatch(self, session: ClientSession, request: ClientEvent) -> Ack:
        match request:
            case StartCall(sdp=sdp, visitor=visitor, candidates=candidates):
                return await self._start(session, sdp, visitor, candidates)
            case Candidate():
                return await self._candidate(session, request)
            case Hangup():
                call_id, _ = _active_call(session)
                session.call = None  # a new call may start now; this one's ENDED still comes
                await _ask(self._service.hangup(call_id))
            case Dtmf(digits=digits):
                call_id, _ = _active_call(session)
                await _ask(self._service.send_dtmf(call_id, digits))
            case Mute(muted=muted):
                call_id, _ = _active_call(session)
                await _ask(self._service.set_mute(call_id, muted))
            case StartCheck(sdp=sdp):
                return await self._start_check(session, sdp)
            case StopCheck():
                check, session.check = session.check, None
                if check is not None:
                    await self._service.stop_check(check)
            case StartVoicemail(sdp=sdp, visitor=visitor):
                return await self._start_voicemail(session, sdp, visitor)
            case SendChat(text=text, visitor=visitor):
                return await self._send_chat(session, text, visitor)
            case SendVoicemail():
                voicemail, session.voicemail = session.voicemail, None
                if voicemail is None:
                    raise SignalingError(ErrorCode.NO_VOICEMAIL, "no voicemail is being left")
                await self._service.send_voicemail(voicemail)
        return {"ok": True}

    async def _send_chat(self, session: ClientSession, text: str, visitor: VisitorDetails) -> Ack:
        if visitor.page and not self._page_of_site(session.site_id, visitor.page):
            visitor = replace(visitor, page="")
        slot = session.call
        try:
            receipt = await self._service.chat_send(
                site_id=session.site_id,
                client=session.client,
                text=text,
                notify=partial(self._on_chat, session),
                visitor=visitor,
                conversation_id=session.conversation,
                call_id=slot.call_id if slot is not None else None,
            )
        except CallRefused as exc:
            raise SignalingError(exc.code, exc.message, retry_after=exc.retry_after) from None
        session.conversation = receipt.conversation_id
        return {
            "ok": True,
            "conversation_id": receipt.conversation_id,
            "message_id": receipt.message_id,
        }

    def _on_chat(self, session: ClientSession, update: ChatUpdate) -> None:
        """The gateway's `notify` for the connection's conversation: never awaits."""
        if isinstance(update, ChatReply):
            session.send(
                "chat:message",
                {
                    "conversation_id": update.conversation_id,
                    "message_id": update.message_id,
                    "text": update.text,
                    "at": update.at,
                },
            )
        elif isinstance(update, ChatDelivery):
            payload: dict[str, Any] = {
                "conversation_id": update.conversation_id,
                "message_id": update.message_id,
                "state": str(update.state),
            }
            if update.reason:
                payload["reason"] = update.reason
            session.send("chat:state", payload)

    async def _start_voicemail(
        self, session: ClientSession, sdp: str, visitor: VisitorDetails
    ) -> Ack:
        if session.call is not None:
            raise SignalingError(ErrorCode.CALL_ACTIVE, "a call is going on; hang up first")
        if session.voicemail is not None:
            raise SignalingError(ErrorCode.CALL_ACTIVE, "a voicemail is being left already")
        if session.check is not None:
            check, session.check = session.check, None
            await self._service.stop_check(check)
        if visitor.page and not self._page_of_site(session.site_id, visitor.page):
            visitor = replace(visitor, page="")
        holder: dict[str, str] = {}
        held: list[VoicemailUpdate] = []  # states before the id is known (none in practice)

        def notify(update: VoicemailUpdate) -> None:
            voicemail_id = holder.get("id")
            if voicemail_id is None:
                held.append(update)
                return
            final = update.state in (VoicemailState.SAVED, VoicemailState.FAILED)
            if final and session.voicemail == voicemail_id:
                session.voicemail = None
            payload: dict[str, Any] = {"voicemail_id": voicemail_id, "state": str(update.state)}
            if update.state in (VoicemailState.RECORDING, VoicemailState.SAVED):
                payload["seconds"] = update.seconds
            if update.state is VoicemailState.FAILED:
                payload["reason"] = update.reason
            session.send("voicemail:state", payload)

        try:
            grant = await self._service.start_voicemail(
                site_id=session.site_id,
                client=session.client,
                offer_sdp=sdp,
                notify=notify,
                visitor=visitor,
                after_call=session.last_call,
            )
        except CallRefused as exc:
            raise SignalingError(exc.code, exc.message, retry_after=exc.retry_after) from None
        holder["id"] = grant.voicemail_id
        session.voicemail = grant.voicemail_id
        for update in held:
            notify(update)
        return {
            "ok": True,
            "voicemail_id": grant.voicemail_id,
            "sdp": grant.answer_sdp,
            "max_seconds": grant.max_seconds,
        }

    async def _start_check(self, session: ClientSession, sdp: str) -> Ack:
        if session.call is not None:
            raise SignalingError(ErrorCode.CALL_ACTIVE, "a call is going on; no test now")
        if session.check is not None:  # a new test replaces the one going on
            check, session.check = session.check, None
            await self._service.stop_check(check)
        try:
            grant = await self._service.start_check(
                site_id=session.site_id, client=session.client, offer_sdp=sdp
            )
        except CallRefused as exc:
            raise SignalingError(exc.code, exc.message, retry_after=exc.retry_after) from None
        session.check = grant.check_id
        return {
            "ok": True,
            "check_id": grant.check_id,
            "sdp": grant.answer_sdp,
            "seconds": grant.seconds,
        }

    async def _start(
        self, session: ClientSession, sdp: str, visitor: VisitorDetails, candidates: int
    ) -> Ack:
        if session.call is not None:
            raise SignalingError(ErrorCode.CALL_ACTIVE, "a call is already active; hang up first")
        if session.voicemail is not None:
            raise SignalingError(ErrorCode.CALL_ACTIVE, "a voicemail is being left; send it first")
        if session.check is not None:  # the visitor calls: the test is over
            check, session.check = session.check, None
            await self._service.stop_check(check)
        slot = CallSlot(candidates=candidates)
        session.call = slot
        if visitor.page and not self._page_of_site(session.site_id, visitor.page):
            # Told to the operator as where the call comes from: only the site's own pages.
            logger.debug("client %s: visitor page of another origin dropped", session.sid)
            visitor = replace(visitor, page="")
        try:
            call_id, answer = await self._service.start_call(
                site_id=session.site_id,
                client=session.client,
                offer_sdp=sdp,
                notify=partial(self._on_update, session, slot),
                visitor=visitor,
            )
        except CallRefused as exc:
            self._forget(session, slot, exc.code)
            raise SignalingError(exc.code, exc.message, retry_after=exc.retry_after) from None
        except ValueError as exc:
            self._forget(session, slot, ErrorCode.REJECTED)
            raise SignalingError(ErrorCode.REJECTED, _reason(exc)) from None
        except BaseException:
            self._forget(session, slot, ErrorCode.INTERNAL)
            raise
        slot.call_id = call_id
        session.last_call = call_id
        # The gateway logs the call's start, end and refusals (one line each); these are
        # the socket's side of them.
        logger.debug("call %s started on client %s", call_id, session.sid)
        held, slot.held = slot.held, []
        for update in held:
            self._deliver(session, slot, update)
        return {"ok": True, "call_id": call_id, "sdp": answer}

    def _page_of_site(self, site_id: str, page: str) -> bool:
        """Whether `page` (an http(s) URL, checked by the payload parser) is on one of the
        site's origins or the gateway's own."""
        site = self._service.site(site_id)
        return site is not None and site.allows_origin(origin_of(page), self._page_origins)

    def _forget(self, session: ClientSession, slot: CallSlot, code: str) -> None:
        if session.call is slot:
            session.call = None
        logger.debug("client %s: call refused (%s)", session.sid, code)

    async def _candidate(self, session: ClientSession, candidate: Candidate) -> Ack:
        call_id, slot = _active_call(session)
        if slot.candidates >= MAX_CANDIDATES_PER_CALL:
            raise SignalingError(
                ErrorCode.TOO_MANY_CANDIDATES,
                f"more than {MAX_CANDIDATES_PER_CALL} candidates for one call",
            )
        slot.candidates += 1
        if candidate.is_mdns:
            return {"ok": True, "dropped": "mdns"}
        await _ask(
            self._service.add_candidate(
                call_id, candidate.candidate, candidate.sdp_mid, candidate.sdp_mline_index
            )
        )
        return {"ok": True}

    def _on_update(self, session: ClientSession, slot: CallSlot, update: CallUpdate) -> None:
        """The gateway's `notify` for one call: may run in any task, never awaits."""
        if update.state is CallState.ENDED and session.call is slot:
            session.call = None  # the client may start a new call
        if slot.call_id is None:
            slot.held.append(update)
        else:
            self._deliver(session, slot, update)

    def _deliver(self, session: ClientSession, slot: CallSlot, update: CallUpdate) -> None:
        payload: dict[str, Any] = {"call_id": slot.call_id, "state": str(update.state)}
        if update.state is CallState.ENDED:
            cause = update.cause
            payload["cause"] = str(cause) if cause is not None else "failed"
            if update.rating_proof:  # an answered call: the page may rate it
                payload["rating_proof"] = update.rating_proof
            if update.reason:
                payload["reason"] = update.reason  # the SIP status in standard words
            logger.debug(
                "call %s ended (%s) on client %s", slot.call_id, payload["cause"], session.sid
            )
        session.send("call:state", payload)


def _active_call(session: ClientSession) -> tuple[str, CallSlot]:
    """The client's call, once its call:start has returned; else the client's error."""
    slot = session.call
    if slot is None or slot.call_id is None:
        raise SignalingError(ErrorCode.NO_CALL, "no call is active")
    return slot.call_id, slot


async def _ask(request: Any) -> None:
    """Await a service request; its ValueError becomes the client's `rejected` error."""
    try:
        await request
    except CallRefused as exc:
        raise SignalingError(exc.code, exc.message) from None
    except ValueError as exc:
        raise SignalingError(ErrorCode.REJECTED, _reason(exc)) from None


def _reason(exc: ValueError) -> str:
    text = str(exc) or type(exc).__name__
    return text[:MAX_REASON_CHARS]


def _client_address(environ: Mapping[str, Any]) -> str:
    # engine.io's aiohttp driver puts a fixed 127.0.0.1 in REMOTE_ADDR; the request knows.
    request = environ.get("aiohttp.request")
    remote = getattr(request, "remote", None)
    return remote or environ.get("REMOTE_ADDR") or "unknown"
