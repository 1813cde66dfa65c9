"""Build the socket.io server of the gateway and attach it to the aiohttp application."""

from __future__ import annotations

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
    """Serve `sio` at /socket.io/ on `app`."""
    sio.attach(app, socketio_path="socket.io")


def call_namespace(sio: socketio.AsyncServer) -> CallNamespace:
    """The namespace handler of a server made by `create_signaling` (for stats and tests)."""
    namespace = sio.namespace_handlers["/"]
    assert isinstance(namespace, CallNamespace)
    return namespace
