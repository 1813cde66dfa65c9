"""Build the socket.io server of the gateway and attach it to the aiohttp application."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import engineio.async_drivers.aiohttp  # noqa: F401  (see below)
import socketio
from aiohttp import web

from gateway.api import GatewayService
from signaling import json_codec
from signaling.namespace import CallNamespace, IceServersForPage

# The hard cap on one websocket message. Our own limits (SDP 64 KiB, candidate 1 KiB) answer
# with an `error` event and keep the connection; a message past this cap closes the
# connection instead (aiohttp's reader refuses it). 1 MiB leaves room for a 64 KiB
# SDP even if every character was JSON-escaped as \uXXXX (6 bytes).
MAX_MESSAGE_BYTES = 1024 * 1024
# engine.io imports its aiohttp driver when a server is made (async_mode="aiohttp"), in
# each worker: imported with this module, the supervisor has it before it forks them.


def create_signaling(
    service: GatewayService,
    *,
    ice_servers: IceServersForPage,
    page_origins: Iterable[str] = (),
) -> socketio.AsyncServer:
    """The socket.io server for browsers: websocket transport only.

    `ice_servers` (a list, or a function called for each connection) is sent to each
    client as its RTCPeerConnection `iceServers`.
    `page_origins` are origins accepted for every site besides the site's own: the
    gateway's own public origin, since the call page it serves at /embed/<site> (framed by
    the site) opens its socket from there. engine.io's CORS check is off
    (`cors_allowed_origins=[]`) because the per-site Origin check in the connect handler
    replaces it.
    """
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        transports=["websocket"],
        cors_allowed_origins=[],
        max_http_buffer_size=MAX_MESSAGE_BYTES,
        json=json_codec,  # an undecodable message is the client's error, not a traceback
        logger=False,
        engineio_logger=False,
    )
    sio.register_namespace(
        CallNamespace(service, ice_servers=ice_servers, page_origins=page_origins)
    )
    return sio


def attach(app: web.Application, sio: socketio.AsyncServer) -> None:
    """Serve `sio` at /socket.io/ on `app`, and close the pages' sockets when the app shuts
    down.

    A page's websocket handler ends only when its connection closes (engine.io's close
    packet does not make the browser's websocket transport close it): aiohttp's shutdown
    would wait for each open page up to its shutdown timeout, then cancel. Closed here, the
    page's socket.io client sees its transport close and connects again (to another worker
    or node), as when a worker dies.
    """
    connections: set[asyncio.BaseTransport] = set()  # of the pages' requests in progress

    async def handle(request: web.Request) -> web.StreamResponse:
        connection = request.transport
        if connection is not None:
            connections.add(connection)
        try:
            return await sio.handle_request(request)
        finally:
            connections.discard(connection)

    async def close_sockets(_: web.Application) -> None:
        # Not engine.io's `disconnect()`: it waits for each socket's queue to drain, which a
        # socket whose writer has already ended never does. Closed under it, each socket's
        # handler ends as when the page goes away (the namespace's disconnect handler runs).
        for connection in list(connections):
            connection.close()

    for method in ("GET", "POST", "OPTIONS"):  # as engine.io's own aiohttp route
        app.router.add_route(method, "/socket.io/", handle)
    app.on_shutdown.append(close_sockets)


def call_namespace(sio: socketio.AsyncServer) -> CallNamespace:
    """The namespace handler of a server made by `create_signaling` (for stats and tests)."""
    namespace = sio.namespace_handlers["/"]
    assert isinstance(namespace, CallNamespace)
    return namespace
