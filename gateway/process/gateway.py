"""The gateway process: wires configuration, SIP, calls, signaling and HTTP together.

This is the only module that imports `signaling` and serves `web/` (DESIGN.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import socketio
from aiohttp import web

from gateway.admin.api import admin_api_routes, metrics_routes
from gateway.admin.auth import Sessions
from gateway.admin.page import admin_page_routes
from gateway.admin.service import AdminService
from gateway.api import AccessRefused, MessageRefused
from gateway.callbacks.service import RequestACall
from gateway.calls.history import CallHistory
from gateway.calls.manager import CallManager
from gateway.calls.registrations import RegistrationReport
from gateway.calls.voicemail import voicemail_attachments, voicemail_folder
from gateway.chat.conversations import Conversations
from gateway.chat.left import LeftMessages
from gateway.config import GatewayConfig
from gateway.config.legs import sip_leg_settings
from gateway.demo_phone import DemoPhone
from gateway.health.monitor import HealthMonitor
from gateway.http.app import build_app
from gateway.http.callbacks import callback_routes
from gateway.http.forwarded import parse_networks
from gateway.http.json_api import refusals
from gateway.http.listener import ConnectionCap, listen
from gateway.http.messages import message_routes
from gateway.http.ratings import rating_routes
from gateway.http.voicemails import voicemail_routes
from gateway.media.ice_mux import IceMux
from gateway.media.ice_servers import IceServers
from gateway.media.webrtc_leg import use_host_addresses
from gateway.monitoring.metrics import Metrics
from gateway.notify.service import Notifications
from gateway.process.binding import bind, check_udp_range
from gateway.process.failover import Heartbeat, Lease, Reaper, SipFrom, Watcher
from gateway.process.heap import HeapTrimmer, freeze_startup_objects
from gateway.process.journal import snapshot
from gateway.process.shared import SharedState
from gateway.process.state import node_name, owner_name
from gateway.storage import Database
from signaling import attach, create_signaling
from sip_bridge import ConnectionLimits, DnsResolver, RateLimit, SipEndpoint, UserAgentConfig

logger = logging.getLogger("gateway")

ROOT = Path(__file__).resolve().parents[2]
WEB_DIR = ROOT / "web"
NODE_MODULES = ROOT / "node_modules"
# Seconds a stop waits for HTTP requests in progress (aiohttp: 60) once the pages' sockets
# are closed: a stop (systemd, a rolling restart) must not hang on a slow client.
SHUTDOWN_TIMEOUT = 5.0


def sip_tls_contexts(config: GatewayConfig) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    sip = config.sip
    if sip.transport != "tls":
        return None, None
    assert sip.tls_certificate is not None  # the loader requires it with TLS
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(sip.tls_certificate, sip.tls_private_key)
    client = ssl.create_default_context(
        cafile=str(sip.tls_ca_certificates) if sip.tls_ca_certificates else None
    )
    return server, client


async def _open_endpoint(config: GatewayConfig) -> SipEndpoint:
    server_ssl, client_ssl = sip_tls_contexts(config)
    sip = config.sip
    return await SipEndpoint.open(
        UserAgentConfig(
            address=sip.public_address,
            transport=sip.transport,
            user=sip.user,
            from_domain=sip.from_domain,
            outbound_proxy=str(sip.outbound_proxy) if sip.outbound_proxy else None,
            allowed_peers=sip.allowed_peers or None,
            # Operators' replies to chats (RFC 3428): only when some site chats.
            accept_messages=any(site.chat for site in config.sites),
            request_rate=(
                RateLimit(sip.requests_per_second, sip.request_burst)
                if sip.requests_per_second
                else None
            ),
            session_expires=sip.session_expires,
            min_se=sip.min_se,
            resolve_names=True,
        ),
        bind=sip.listen,
        resolver=DnsResolver(sip.dns_servers or None),
        server_ssl=server_ssl,
        client_ssl=client_ssl,
        connection_limits=ConnectionLimits(
            per_source=sip.connections_per_source, total=sip.max_connections
        ),
    )


@dataclass
class Gateway:
    """A running gateway; `await Gateway.start(config)`, then `await stop()`."""

    config: GatewayConfig
    endpoint: SipEndpoint
    calls: CallManager
    runner: web.AppRunner
    demo: DemoPhone | None
    url: str
    sio: socketio.AsyncServer
    callbacks: RequestACall | None = None
    heap: HeapTrimmer | None = None
    database: Database | None = None
    history: CallHistory | None = None
    admin: AdminService | None = None
    metrics: Metrics | None = None
    maintenance: asyncio.Task | None = None
    metrics_runner: web.AppRunner | None = None
    # The site owner's side: destinations' health (`snapshot()`), and webhooks and mails
    # (`notifications.notifier.deliveries()`).
    health: HealthMonitor | None = None
    notifications: Notifications | None = None
    # The browser legs' shared ICE port ([ice] port); None: a port per call.
    ice_mux: IceMux | None = None
    server: asyncio.Server | None = None  # the HTTP listening socket (gateway.http.listener)
    # What the workers and nodes share (ledger, live calls, heartbeats: gateway.process.
    # shared), closed at stop when this gateway opened it; and, with several nodes, this
    # worker's heartbeat and (worker 0) the watcher of the others'.
    shared: SharedState | None = None
    owns_shared: bool = False
    heartbeat: Heartbeat | None = None
    watcher: Watcher | None = None
    lease: Lease | None = None
    # This worker's registrations with the sites' trunks, as the admin sees them.
    registrations: RegistrationReport | None = None

    @classmethod
    async def start(
        cls,
        config: GatewayConfig,
        *,
        shared: SharedState | None = None,
        first_worker: bool = True,
        share_http_port: bool = False,
    ) -> Gateway:
        """`shared`: what this worker shares with the others of its node and the other
        nodes (gateway/process/shared.py), its name (`shared.owner`) included, made by the
        supervisor, which has ended whatever a former life of it left; None for a gateway
        on its own, which opens its own and ends its former life's leftovers itself.
        `first_worker`: worker 0 (or a gateway on its own) does the node's chores (health
        reports, retention, watching the other nodes). `share_http_port`: the workers of a
        supervisor share `http.listen` (SO_REUSEPORT); a gateway on its own holds it alone.
        Raises StartError (naming the key) when an address cannot be bound, StorageError
        when the database or Redis cannot be used; whatever was opened by then is closed
        again."""
        use_host_addresses(config.ice.host_addresses)
        async with contextlib.AsyncExitStack() as opened:
            owns_shared = shared is None
            if shared is None:
                node = node_name(config.storage.node, config.storage.state_directory)
                shared = await SharedState.open(
                    config, node=node, owner=owner_name(node, None), ledger_file=None
                )
                opened.push_async_callback(shared.close)
            # Each worker claims and publishes under its own name: `<node>/worker-<i>`.
            owner = shared.owner
            database = await Database.open(config.storage.database)
            opened.push_async_callback(database.close)
            live = shared.live_registry(database)
            await database.admin.set_users(config.admin.users)
            metrics = Metrics(node=shared.node)
            history = CallHistory(database, metrics, worker=owner, live=live)
            opened.push_async_callback(history.close)
            reaper = Reaper(config, database, live, shared.ledger, by=owner)
            if owns_shared:
                # What a former life of this gateway left (a supervisor does it for its
                # workers): its calls' records, its callbacks interrupted.
                await _end_former_life(reaper, shared, config)
            leg = sip_leg_settings(config)
            check_udp_range("media.rtp_ports", leg.rtp_host, config.media.rtp_ports)
            demo = None
            if config.demo.enabled:
                demo_host = config.demo.sip_listen[0]
                if demo_host != leg.rtp_host:
                    check_udp_range("media.rtp_ports", demo_host, config.media.rtp_ports)
                demo = await bind(
                    "demo.sip_listen",
                    config.demo.sip_listen,
                    DemoPhone.start(
                        config.demo.sip_listen,
                        config.media.rtp_ports,
                        latch_any_source=leg.latch_any_source,
                    ),
                )
                opened.push_async_callback(demo.close)
            # Stopped after the endpoint closed (its registrations ended): pushed before.
            registrations = RegistrationReport(database.registrations, owner, metrics)
            opened.push_async_callback(registrations.stop)
            endpoint = await bind("sip.listen", config.sip.listen, _open_endpoint(config))
            opened.push_async_callback(endpoint.close)
            await registrations.start(endpoint, config.sites)
            ice_mux = None
            if config.ice.port:
                ice_mux = IceMux()
                opened.callback(ice_mux.close)
                for address in config.ice.host_addresses:
                    await bind(
                        "ice.port",
                        (address, config.ice.port),
                        ice_mux.listen(address, config.ice.port),
                    )
            calls = CallManager(
                config, endpoint, ledger=shared.ledger, history=history, ice_mux=ice_mux
            )
            database.reachability.start()
            calls.storage_down = lambda: database.reachability.down
            heartbeat = watcher = None
            if shared.presence is not None:
                # Listed as alive before it claims a callback or takes a call.
                heartbeat = Heartbeat(
                    shared.presence,
                    owner,
                    lambda: snapshot(endpoint),
                    on_claimed=calls.hang_up_all,
                )
                await heartbeat.join()
                heartbeat.start()
                opened.push_async_callback(heartbeat.stop)
                if first_worker:
                    watcher = Watcher(
                        shared.presence,
                        reaper,
                        claimer=owner,
                        sip=SipFrom((config.sip.listen[0], 0), (config.sip.public_address[0], 0)),
                    )
                    watcher.start()
                    opened.push_async_callback(watcher.stop)
            notifications = await Notifications.start(
                config,
                outbox=database.outbox,
                on_outcome=_count_deliveries(metrics),
                attachments=voicemail_attachments(voicemail_folder(config)),
            )
            notifier = None
            if notifications is not None:
                opened.push_async_callback(notifications.stop)
                notifier = history.notifier = notifications.notifier
                calls.voicemails.notifier = notifier
            health = None
            if any(site.health_interval > 0 for site in config.sites):
                # Every worker checks, for its own calls; worker 0 alone tells (monitor.py).
                health = HealthMonitor(
                    config,
                    endpoint,
                    report=first_worker,
                    listener=notifier,
                    metrics=metrics,
                )
                health.start()
                opened.push_async_callback(health.stop)
                calls.health = health
            lease = None
            if shared.presence is not None and first_worker:
                # Several nodes: one worker 0 of them all tells the sites' owners.
                if health is not None:
                    health.report = False
                monitor = health

                def reporting(held: bool) -> None:
                    if monitor is not None:
                        monitor.report = held

                lease = Lease(shared.presence, "health-reports", owner, reporting)
                await lease.renew()
                lease.start()
                opened.push_async_callback(lease.stop)
            chats = None
            if any(site.chat for site in config.sites):
                chats = Conversations(config, endpoint, calls, history=history)
                calls.chats = chats
                opened.push_async_callback(chats.close_all)
            left = LeftMessages(
                config,
                database,
                lambda site, client: calls.admission.count_contact(site, client, time.time()),
                page_origins=[config.http.public_origin],
            )
            left.notifier = notifier
            # RSS would otherwise grow with the calls served (gateway/process/heap.py).
            heap = HeapTrimmer()
            opened.callback(heap.close)
            calls.on_call_ended = heap.call_ended
            ice_servers = IceServers(config.ice.servers, config.ice.turn_credential_lifetime)
            for url in ice_servers.withheld:
                logger.info(
                    "ice.servers: %s has static credentials: the gateway relays through it, "
                    "pages never get them (give `secret`, the TURN REST API shared secret, "
                    "for visitors to use it)",
                    url,
                )
            sio = create_signaling(
                calls, ice_servers=ice_servers.for_page, page_origins=[config.http.public_origin]
            )
            http = config.http
            app = build_app(
                service=calls,
                web_dir=WEB_DIR,
                node_modules=NODE_MODULES,
                trusted_proxies=http.trusted_proxies,
                sockets_per_client=http.sockets_per_client,
                tokens_per_client_minute=config.access.tokens_per_client_minute,
                request_timeout=http.request_timeout,
            )
            # Callbacks pass the calls' admission, counted in the same ledger.
            callbacks = await RequestACall.start(
                config,
                endpoint,
                calls,
                calls.admission,
                database,
                owner=owner,
                history=history,
                notifier=notifier,
            )
            if callbacks is not None:
                opened.push_async_callback(callbacks.stop)
                app.add_routes(callback_routes(callbacks.requests, authorize=callbacks.authorize))
            admin = AdminService(
                config, database, callbacks, health=health, notifier=notifier, live=live
            )
            _add_admin_routes(app, config, admin, database, metrics)
            app.add_routes(rating_routes(calls.ratings))
            app.add_routes(message_routes(left, authorize=_token_check(calls)))
            app.add_routes(
                voicemail_routes(calls.access.downloads, database, voicemail_folder(config))
            )
            attach(app, sio)
            # A client that has not sent a whole request head this long after connecting (or
            # after the previous response) is disconnected: aiohttp's keep-alive timeout.
            runner = web.AppRunner(
                app,
                access_log=None,
                keepalive_timeout=http.request_timeout,
                shutdown_timeout=SHUTDOWN_TIMEOUT,
            )
            await runner.setup()
            opened.push_async_callback(runner.cleanup)
            assert runner.server is not None  # made by setup()
            cap = ConnectionCap(http.connections_per_client, parse_networks(http.trusted_proxies))
            server = await bind(
                "http.listen",
                http.listen,
                listen(runner.server, *http.listen, cap, reuse_port=share_http_port),
            )
            opened.callback(server.close)
            metrics_runner = None
            if config.admin.metrics_listen is not None:
                metrics_app = web.Application(middlewares=[refusals])
                metrics_app.add_routes(metrics_routes(metrics, None))
                metrics_runner = web.AppRunner(metrics_app, access_log=None)
                await metrics_runner.setup()
                opened.push_async_callback(metrics_runner.cleanup)
                metrics_site = web.TCPSite(
                    metrics_runner, *config.admin.metrics_listen, reuse_port=share_http_port
                )
                await bind(
                    "admin.metrics_listen", config.admin.metrics_listen, metrics_site.start()
                )
            opened.pop_all()  # started: stop() closes them from now on
        # One worker forgets what the sites keep no longer (the others would repeat it).
        maintenance = asyncio.create_task(_forget_old_records(admin)) if first_worker else None
        return cls(
            config,
            endpoint,
            calls,
            runner,
            demo,
            http.public_url,
            sio,
            callbacks,
            heap,
            database,
            history,
            admin,
            metrics,
            maintenance,
            metrics_runner,
            health,
            notifications,
            server=server,
            shared=shared,
            owns_shared=owns_shared,
            heartbeat=heartbeat,
            watcher=watcher,
            lease=lease,
            ice_mux=ice_mux,
            registrations=registrations,
        )

    async def stop(self) -> None:
        if self.health is not None:
            await self.health.stop()
        if self.maintenance is not None:
            # Awaited: a query cut off by the database closing would never finish.
            self.maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.maintenance
        if self.callbacks is not None:
            await self.callbacks.stop()
        if self.calls.chats is not None:
            await self.calls.chats.close_all()
        await self.calls.close()
        if self.notifications is not None:
            await self.notifications.stop()  # what the last calls published is stored
        if self.server is not None:
            self.server.close()  # no new connections; runner.cleanup closes the open ones
        await self.runner.cleanup()  # the pages' sockets too (signaling.server.attach)
        if self.metrics_runner is not None:
            await self.metrics_runner.cleanup()
        await self.endpoint.close()
        if self.registrations is not None:
            await self.registrations.stop()
        if self.demo is not None:
            await self.demo.close()
        if self.heap is not None:
            self.heap.close()
        if self.ice_mux is not None:
            self.ice_mux.close()
        if self.history is not None:
            await self.history.close()
        await self.calls.admission.flush()
        if self.lease is not None:
            await self.lease.stop()
        if self.watcher is not None:
            await self.watcher.stop()
        if self.heartbeat is not None:
            await self.heartbeat.stop()  # every call ended and recorded: nothing left
        if self.database is not None:
            await self.database.close()
        if self.shared is not None and self.owns_shared:
            await self.shared.close()


def _token_check(calls: CallManager) -> Callable[[object, str, str], Awaitable[None]]:
    """A request of a page (a message left) needs a call token for the site it names, from
    an origin the site allows, as a call does; raises a Refusal."""

    async def authorize(site: object, token: str, origin: str) -> None:
        if not isinstance(site, str) or not 0 < len(site) <= 64:
            raise MessageRefused("bad_request", "site is required.")
        if not origin:
            raise AccessRefused("origin_required", "an Origin header is required")
        await calls.redeem_token(token, site_id=site, origin=origin)

    return authorize


def _count_deliveries(metrics: Metrics) -> Callable[[str, str], None]:
    """`gateway_webhook_deliveries_total{result}`: delivered, failed or given_up."""

    def count(channel: str, result: str) -> None:
        if channel == "webhook":
            metrics.webhook_deliveries.labels(result).inc()

    return count


RETENTION_PERIOD = 3600.0  # seconds between deletions of records past their retention


async def _forget_old_records(admin: AdminService) -> None:
    while True:
        try:
            removed = await admin.purge()
            if removed:
                logger.info("retention: %d old records deleted", removed)
        except Exception as exc:
            logger.warning("retention: cannot delete old records: %s", exc)
        await asyncio.sleep(RETENTION_PERIOD)


def _add_admin_routes(
    app: web.Application,
    config: GatewayConfig,
    admin: AdminService,
    database: Database,
    metrics: Metrics,
) -> None:
    """The site owner's side (docs/admin.md): the API and /metrics only with API keys,
    the page only with users; nothing at all without either."""
    keys = config.admin.api_keys
    if keys:
        app.add_routes(admin_api_routes(admin, keys))
        app.add_routes(metrics_routes(metrics, keys))
    if config.admin.users:
        sessions = Sessions(
            database.admin,
            lifetime=config.admin.session_lifetime,
            secure=config.http.public_url.startswith("https:"),
            clock=time.time,
        )
        app.add_routes(admin_page_routes(admin, sessions))


async def _end_former_life(reaper: Reaper, shared: SharedState, config: GatewayConfig) -> None:
    """A gateway on its own ends what a former life of it left (with Redis: unless another
    node is doing it, which `Heartbeat.join` then waits for); from its own SIP address,
    which is free still, so the answers come back."""
    dialogs: list[dict] = []
    if shared.presence is not None:
        if not await shared.presence.claim(shared.owner, shared.owner):
            return
        dialogs = await shared.presence.dialogs(shared.owner)
    try:
        outcome = await reaper.reap(
            shared.owner,
            dialogs,
            SipFrom(config.sip.listen, config.sip.public_address),
            "stopped",
        )
    finally:
        if shared.presence is not None:
            await shared.presence.done(shared.owner)
    if outcome:
        logger.warning("%s: what its former life left: %s", shared.owner, outcome)


# Below this many calls per visitor in 15 minutes, someone trying the gateway from this
# machine soon meets the limit: the start says how to raise it.
TRYING_CALLS = 20


def limits_hint(config: GatewayConfig) -> str | None:
    """When the gateway serves this machine only (a trial) and a site's visitors may start
    few calls, how to raise the limit; None otherwise."""
    host = config.http.listen[0]
    if not (host == "localhost" or host.startswith("127.") or host == "::1"):
        return None
    tight = [site for site in config.sites if site.calls_per_client_15min < TRYING_CALLS]
    if not tight:
        return None
    site = tight[0]
    return (
        f"Site {site.id!r} lets one visitor start {site.calls_per_client_15min} calls in 15 "
        f"minutes (calls_per_client_15min); to test more, raise it in [limits] or the site, "
        f"or start with GATEWAY_LIMITS_CALLS_PER_CLIENT_15MIN=100 "
        f"(and GATEWAY_LIMITS_CALLS_PER_CLIENT_HOUR, _DAY)."
    )


async def serve(
    config: GatewayConfig,
    *,
    shared: SharedState | None = None,
    on_started: Callable[[Gateway], None] | None = None,
    announce: bool = True,
    share_http_port: bool = False,
) -> None:
    """Run until SIGINT/SIGTERM; hang up every call on the way out. A worker passes what it
    shares (`shared`), `on_started` (its journal), `announce` (worker 0 prints the address
    and does the node's chores, the others do not) and `share_http_port`. Raises
    StartError, StorageError."""
    gateway = await Gateway.start(
        config, shared=shared, first_worker=announce, share_http_port=share_http_port
    )
    freeze_startup_objects()  # full collections walk only what calls allocate (heap.py)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if on_started is not None:
        on_started(gateway)
    if announce:
        print(f"Gateway ready on {gateway.url}", flush=True)
        if config.sites:
            print(f"Open {gateway.url}/embed/{config.sites[0].id} and click Call.", flush=True)
        if (hint := limits_hint(config)) is not None:
            print(hint, flush=True)
    try:
        await stop.wait()
    finally:
        if announce:
            print("Stopping: hanging up every call...", flush=True)
        with contextlib.suppress(Exception):
            await gateway.stop()
