"""Runs a sans-I/O `UserAgent` on asyncio: sockets in, timers, and events out per call.

Like aioquic's `QuicConnectionProtocol`, this adapter is the only place where the SIP core
meets a socket or a clock: every input is followed by one `_service()` that sends what the
core queued, dispatches its events to the `SipCall` they belong to, and re-arms one timer.

Whatever arrives from the network, the socket stays open: asyncio closes a datagram
transport whose protocol raises, so a bug the core might have with some message is logged
here (the sender learns nothing) and counted in `internal_errors`, and service goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sip_bridge.asyncio.resolver import DnsResolver
from sip_bridge.asyncio.transport import (
    ConnectionLimits,
    SipTransport,
    StreamTransport,
    UdpTransport,
)
from sip_bridge.events import (
    CallEnded,
    Event,
    IncomingCall,
    LocateRequest,
    MessageReceived,
    MessageResult,
    MessageTrace,
    OptionsResult,
    RegistrationChanged,
)
from sip_bridge.registration import RegistrationSettings
from sip_bridge.useragent import UserAgent, UserAgentConfig

logger = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)


class SipCall:
    """One call as the application sees it: its events in order, and its commands."""

    def __init__(
        self, endpoint: SipEndpoint, call_id: str, incoming: IncomingCall | None = None
    ) -> None:
        self.endpoint = endpoint
        self.call_id = call_id
        self.incoming = incoming
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.ended: asyncio.Future[CallEnded] = asyncio.get_running_loop().create_future()
        self.history: list[Event] = []

    def _deliver(self, event: Event) -> None:
        self.history.append(event)
        self.events.put_nowait(event)
        if isinstance(event, CallEnded) and not self.ended.done():
            self.ended.set_result(event)

    async def next_event(self, timeout: float | None = None) -> Event:
        return await asyncio.wait_for(self.events.get(), timeout)

    async def wait_for(self, *kinds: type[E], timeout: float | None = None) -> E:
        """The next event of one of `kinds` (others are skipped but kept in `history`).
        Raises `CallEndedError` if the call ends first."""
        async with asyncio.timeout(timeout):
            while True:
                event = await self.events.get()
                if isinstance(event, kinds):
                    return event
                if isinstance(event, CallEnded):
                    raise CallEndedError(event)

    def hangup(self, *, status: int = 486) -> None:
        self.endpoint._command(lambda ua, now: ua.hangup(self.call_id, now, status=status))

    def ring(self, sdp: bytes | None = None) -> None:
        self.endpoint._command(lambda ua, now: ua.ring(self.call_id, now, sdp=sdp))

    def answer(self, sdp: bytes) -> None:
        self.endpoint._command(lambda ua, now: ua.answer(self.call_id, now, sdp=sdp))

    def answer_offer(self, sdp: bytes) -> None:
        self.endpoint._command(lambda ua, now: ua.answer_offer(self.call_id, now, sdp=sdp))

    def reject_offer(self, status: int = 488) -> None:
        self.endpoint._command(lambda ua, now: ua.reject_offer(self.call_id, now, status=status))

    def accept_transfer(self) -> None:
        """Take the far end's REFER (202, then NOTIFY "100 Trying")."""
        self.endpoint._command(lambda ua, now: ua.accept_transfer(self.call_id, now))

    def reject_transfer(self, status: int = 603) -> None:
        self.endpoint._command(lambda ua, now: ua.reject_transfer(self.call_id, now, status=status))

    def notify_transfer(self, status: int, reason: str = "") -> None:
        """Tell the transferor how the call to the transfer target goes (NOTIFY)."""
        self.endpoint._command(
            lambda ua, now: ua.notify_transfer(self.call_id, now, status, reason)
        )


class CallEndedError(Exception):
    def __init__(self, event: CallEnded) -> None:
        super().__init__(f"call ended: {event.reason.value} {event.status or ''} {event.detail}")
        self.event = event


class SipEndpoint:
    """A user agent on a socket. Create with `await SipEndpoint.open(config, ...)`."""

    def __init__(self) -> None:
        """Internal: use `await SipEndpoint.open(config)`, which binds the socket first."""
        self.ua: UserAgent
        self._loop = asyncio.get_running_loop()
        self._transport: SipTransport | None = None
        self._calls: dict[str, SipCall] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self.on_incoming: Callable[[SipCall], None] | None = None
        self.on_trace: Callable[[MessageTrace], None] | None = None
        # Answers a MESSAGE received outside dialogs at once: the status to reply with
        # (200: taken). Without it every MESSAGE is answered 404.
        self.on_message: Callable[[MessageReceived], int] | None = None
        # Registrations: the last change of each, and who wants to hear of them.
        self.on_registration: Callable[[RegistrationChanged], None] | None = None
        self.registrations: dict[str, RegistrationChanged] = {}
        self._unregistered = asyncio.Event()  # set when the last registration is gone
        self.resolver: DnsResolver | None = None
        self._tasks: set[asyncio.Task] = set()
        self.closed = False
        self.internal_errors = 0
        self._probes: dict[str, asyncio.Future[OptionsResult | MessageResult]] = {}
        self._probe_keys = itertools.count(1)

    @classmethod
    async def open(
        cls,
        config: UserAgentConfig,
        *,
        bind: tuple[str, int] | None = None,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        connection_limits: ConnectionLimits | None = None,
        resolver: DnsResolver | None = None,
    ) -> SipEndpoint:
        """Bind the transport of `config` on `bind` (default: the config's address).
        `connection_limits` bound what peers may open to a TCP/TLS listener. With
        `config.resolve_names`, host names are located (RFC 3263) by `resolver` (default:
        the system's DNS servers).

        Port 0 binds any free port, which then becomes the port announced in Via/Contact
        when the config's address has port 0 too.
        """
        self = cls()
        host, port = bind or config.address
        kind = config.transport.lower()
        if kind == "udp":
            transport: SipTransport = await UdpTransport.open(
                host, port, self._received, self._transport_error, self._resolved
            )
        elif kind in ("tcp", "tls"):
            if kind == "tls" and client_ssl is None:
                client_ssl = ssl.create_default_context()
            transport = await StreamTransport.open(
                host,
                port,
                self._received,
                self._transport_error,
                server_ssl=server_ssl if kind == "tls" else None,
                client_ssl=client_ssl if kind == "tls" else None,
                on_resolved=self._resolved,
                limits=connection_limits,
                # Read when a peer connects, by then the user agent exists.
                accepts=lambda host: self.ua.accepts_peer(host),
            )
        else:
            raise ValueError(f"unknown SIP transport {config.transport!r}")
        if config.address[1] == 0:
            config = dataclasses.replace(
                config, address=(config.address[0], transport.local_address[1])
            )
        self.ua = UserAgent(config)
        self._transport = transport
        if config.resolve_names:
            self.resolver = resolver or DnsResolver()
        return self

    @property
    def local_address(self) -> tuple[str, int]:
        assert self._transport is not None  # bound by open()
        return self._transport.local_address

    @property
    def inbound_connections(self) -> int:
        """TCP/TLS connections peers hold open to us (0 over UDP)."""
        return getattr(self._transport, "inbound_connections", 0)

    async def invite(self, target: str, *, sdp: bytes, **options) -> SipCall:
        """Send an INVITE; options as for `UserAgent.invite`. Returns at once."""
        call_id = self.ua.invite(target, self._loop.time(), sdp=sdp, **options)
        call = SipCall(self, call_id)
        self._calls[call_id] = call
        self._service()
        return call

    def register(self, key: str, settings: RegistrationSettings) -> None:
        """Keep `settings.aor` registered; changes go to `on_registration`."""
        self.registrations[key] = RegistrationChanged(key, "registering")
        self._unregistered.clear()
        self._command(lambda ua, now: ua.register(key, settings, now))

    def unregister(self, key: str) -> None:
        self._command(lambda ua, now: ua.unregister(key, now))

    async def options(
        self, target: str, *, timeout: float, proxy: str | None = None
    ) -> OptionsResult:
        """Send OPTIONS to `target` outside any dialog and wait for the outcome: the final
        response's status, or None when nothing came within `timeout` seconds (or the
        transport could not send). Raises ValueError for a target that is not sip:/sips:."""
        key = f"options-{next(self._probe_keys)}"
        future: asyncio.Future[OptionsResult | MessageResult] = self._loop.create_future()
        self._probes[key] = future
        try:
            self.ua.options(key, target, self._loop.time(), proxy=proxy, timeout=timeout)
            self._service()
            result = await future
            assert isinstance(result, OptionsResult)
            return result
        finally:
            self._probes.pop(key, None)

    async def message(self, target: str, text: str, *, timeout: float, **options) -> MessageResult:
        """Send `text` to `target` as a MESSAGE outside any dialog and wait for the outcome:
        the final response's status (2xx: taken), or None when nothing came within
        `timeout` seconds. Options as for `UserAgent.message` (from_user, display_name,
        proxy, credentials, headers). Raises ValueError for a target or text that cannot
        be sent."""
        key = f"message-{next(self._probe_keys)}"
        future: asyncio.Future[OptionsResult | MessageResult] = self._loop.create_future()
        self._probes[key] = future
        try:
            self.ua.message(key, target, self._loop.time(), text=text, timeout=timeout, **options)
            self._service()
            result = await future
            assert isinstance(result, MessageResult)
            return result
        finally:
            self._probes.pop(key, None)

    def call(self, call_id: str) -> SipCall | None:
        return self._calls.get(call_id)

    @property
    def calls(self) -> dict[str, SipCall]:
        return dict(self._calls)

    def _command(self, action: Callable[[UserAgent, float], None]) -> None:
        action(self.ua, self._loop.time())
        self._service()

    def _received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.closed:
            return
        try:
            self.ua.receive_datagram(data, addr, self._loop.time())
        except Exception:
            self.internal_errors += 1
            logger.exception("SIP message from %s:%s not processed", addr[0], addr[1])
        self._service()

    def _resolved(self, host: str, address: str) -> None:
        self.ua.address_resolved(host, address)

    def _transport_error(self, addr: tuple[str, int]) -> None:
        self.ua.transport_error(addr, self._loop.time())
        self._service()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.ua.handle_timer(self._loop.time())
        self._service()

    def _service(self) -> None:
        if self.closed:
            return
        now = self._loop.time()
        assert self._transport is not None  # bound by open()
        for data, address in self.ua.datagrams_to_send(now):
            self._transport.send(data, address)
        while (event := self.ua.next_event()) is not None:
            self._dispatch(event)
        deadline = self.ua.get_timer()
        if deadline != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._timer_at = deadline
            if deadline is not None:
                self._timer = self._loop.call_at(deadline, self._on_timer)

    def _dispatch(
        self,
        event: Event
        | MessageTrace
        | LocateRequest
        | RegistrationChanged
        | OptionsResult
        | MessageResult
        | MessageReceived,
    ) -> None:
        if isinstance(event, MessageTrace):
            if self.on_trace is not None:
                self.on_trace(event)
            return
        if isinstance(event, LocateRequest):
            self._spawn(self._locate(event))
            return
        if isinstance(event, RegistrationChanged):
            if event.state == "stopped":
                self.registrations.pop(event.key, None)
                if not self.registrations:
                    self._unregistered.set()
            else:
                self._unregistered.clear()
                self.registrations[event.key] = event
            if self.on_registration is not None:
                self.on_registration(event)
            return
        if isinstance(event, OptionsResult | MessageResult):
            future = self._probes.get(event.key)
            if future is not None and not future.done():
                future.set_result(event)
            return
        if isinstance(event, MessageReceived):
            status = 404
            if self.on_message is not None:
                try:
                    status = self.on_message(event)
                except Exception:
                    self.internal_errors += 1
                    logger.exception("MESSAGE from %s:%s not handled", *event.source)
                    status = 500
            key = event.key
            self._command(lambda ua, now: ua.reply_message(key, status, now))
            return
        if isinstance(event, IncomingCall):
            new = SipCall(self, event.call_id, incoming=event)
            self._calls[event.call_id] = new
            new._deliver(event)
            if self.on_incoming is not None:
                self.on_incoming(new)
            return
        call = self._calls.get(event.call_id)
        if call is None:
            return
        call._deliver(event)
        if isinstance(event, CallEnded):
            del self._calls[event.call_id]

    async def _locate(self, request: LocateRequest) -> None:
        """Resolve a next hop (RFC 3263) and hand the addresses back to the core."""
        targets: list[tuple[str, int]] = []
        if self.resolver is not None:
            try:
                targets = await self.resolver.locate(request.uri, request.transport)
            except Exception:
                self.internal_errors += 1
                logger.exception("locating %s failed", request.uri)
        if not self.closed:
            self._command(lambda ua, now: ua.targets_resolved(request.key, targets, now))

    def _spawn(self, coroutine) -> None:
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, *, hangup_timeout: float = 2.0) -> None:
        """Hang up every call (BYE/CANCEL) and remove every registration, wait briefly for
        them to end, then close."""
        if self.closed:
            return
        pending = list(self._calls.values())
        for call in pending:
            call.hangup()
        registered = list(self.registrations)
        for key in registered:
            self.unregister(key)
        waits: list[Awaitable[object]] = [
            asyncio.gather(*(c.ended for c in pending), return_exceptions=True)
        ]
        if registered and self.registrations:
            waits.append(self._unregistered.wait())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*waits), hangup_timeout)
        self.closed = True
        for task in list(self._tasks):
            task.cancel()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transport is not None:
            self._transport.close()
            # asyncio closes the socket on the loop's next turn: let it, so that the port
            # is free when close() returns (a restarted gateway binds it again).
            await asyncio.sleep(0)
        for call in self._calls.values():
            if not call.ended.done():
                call.ended.cancel()
        self._calls.clear()
        for future in self._probes.values():
            future.cancel()

    async def __aenter__(self) -> SipEndpoint:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
