"""A real aiohttp server with the signaling attached, and real socket.io clients for it.

`call_service` is the ONE place that decides what stands behind signaling: today the
in-memory service of memory_service.py; the gateway's CallManager can replace it here.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web

from gateway.api import SiteInfo
from gateway.http.app import build_app
from signaling import CallNamespace, attach, call_namespace, create_signaling
from tests.signaling.memory_service import InMemoryCallService

ROOT = Path(__file__).resolve().parents[2]
DEMO_ORIGIN = "http://127.0.0.1:8080"
OTHER_SITE_ORIGIN = "https://shop.example"
PAGE_ORIGIN = "http://gateway.test:8080"  # where the gateway serves its own call page
ICE_SERVERS = [{"urls": ["stun:127.0.0.1:3478"]}]
OFFER_SDP = (
    "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\n"
)
HOST_CANDIDATE = "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0"
SITES = {
    "demo": SiteInfo("demo", (DEMO_ORIGIN,)),
    "shop": SiteInfo("shop", (OTHER_SITE_ORIGIN, "https://www.shop.example")),
}


@pytest.fixture
def call_service() -> InMemoryCallService:
    return InMemoryCallService(dict(SITES))


@dataclass
class SignalingServer:
    url: str
    sio: socketio.AsyncServer
    service: InMemoryCallService

    @property
    def namespace(self) -> CallNamespace:
        return call_namespace(self.sio)

    async def settle(self) -> None:
        """Wait until every client that went away has been cleaned up after."""
        async with asyncio.timeout(5):
            while self.namespace.client_count:
                await asyncio.sleep(0.01)
            await self.namespace.wait_closed()


@pytest.fixture
async def signaling_server(call_service: InMemoryCallService) -> AsyncIterator[SignalingServer]:
    # Bound first, so that the server knows its own origin: the call page it serves opens
    # its socket from there (a browser test loads it).
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    sio = create_signaling(call_service, ice_servers=ICE_SERVERS, page_origins=[PAGE_ORIGIN, url])
    call_service.access.page_origins = frozenset({PAGE_ORIGIN, url})
    app = build_app(
        service=call_service,
        web_dir=ROOT / "web",
        node_modules=ROOT / "node_modules",
    )
    attach(app, sio)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, listener).start()
    try:
        yield SignalingServer(url, sio, call_service)
    finally:
        await runner.cleanup()


@dataclass
class SignalingClient:
    """A python-socketio client speaking to the server as the call page does."""

    sio: socketio.AsyncClient
    received: dict[str, asyncio.Queue[Any]] = field(default_factory=dict)

    def queue(self, event: str) -> asyncio.Queue[Any]:
        return self.received.setdefault(event, asyncio.Queue())

    async def next(self, event: str, timeout: float = 5.0) -> Any:
        async with asyncio.timeout(timeout):
            return await self.queue(event).get()

    def pending(self, event: str) -> list[Any]:
        queue = self.queue(event)
        items = []
        while not queue.empty():
            items.append(queue.get_nowait())
        return items

    async def call(self, event: str, *args: Any, timeout: float = 5.0) -> Any:
        data = _socketio_data(args)
        return await self.sio.call(event, data, timeout=timeout)

    async def emit(self, event: str, *args: Any) -> None:
        data = _socketio_data(args)
        await self.sio.emit(event, data)

    async def next_state(self, call_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next call:state of this call, skipping late ones of earlier calls."""
        async with asyncio.timeout(timeout):
            while True:
                state = await self.queue("call:state").get()
                if state["call_id"] == call_id:
                    return state

    async def start_call(self) -> str:
        ack = await self.call("call:start", {"sdp": OFFER_SDP})
        assert ack["ok"] is True, ack
        return ack["call_id"]


Connect = Callable[..., Awaitable[SignalingClient]]


async def request_token(
    url: str,
    body: Any,
    origin: str | None = DEMO_ORIGIN,
    *,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], Any]:
    """POST /api/token as a page does: (status, headers, JSON answer or None)."""
    headers = {"Content-Type": content_type, **(headers or {})}
    if origin is not None:
        headers["Origin"] = origin
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/api/token", data=data, headers=headers) as response,
    ):
        text = await response.text()
        return response.status, dict(response.headers), json.loads(text) if text else None


async def call_token(url: str, site: str, origin: str = DEMO_ORIGIN) -> str:
    status, _, answer = await request_token(url, {"site": site}, origin)
    assert status == 200, answer
    return answer["token"]


@pytest.fixture
async def connect(signaling_server: SignalingServer) -> AsyncIterator[Connect]:
    clients: list[socketio.AsyncClient] = []

    async def connect_client(
        site: str | None = "demo", origin: str | None = DEMO_ORIGIN, auth: Any = None
    ) -> SignalingClient:
        sio = socketio.AsyncClient(reconnection=False)
        client = SignalingClient(sio)
        for event in (
            "session",
            "call:state",
            "voicemail:state",
            "chat:message",
            "chat:state",
            "error",
            "connect_error",
            "disconnect",
        ):
            queue = client.queue(event)
            sio.on(event, _put(queue))
        headers = {"Origin": origin} if origin is not None else {}
        if auth is None and site is not None:
            # Without an Origin the token still comes from a page of the site: the
            # websocket is what lacks it.
            token = await call_token(signaling_server.url, site, origin or DEMO_ORIGIN)
            auth = {"site": site, "token": token}
        clients.append(sio)
        await sio.connect(
            signaling_server.url,
            transports=["websocket"],
            headers=headers,
            auth=auth,
            wait_timeout=5,
        )
        return client

    yield connect_client
    for sio in clients:
        if sio.connected:
            await sio.disconnect()


async def refused_connection(server: SignalingServer, auth: Any, origin: str | None) -> str:
    """Connect with `auth` from a page of `origin`; the refusal's message (it must be one)."""
    sio = socketio.AsyncClient(reconnection=False)
    refusals: asyncio.Queue[object] = asyncio.Queue()
    sio.on("connect_error", refusals.put_nowait)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await sio.connect(
            server.url,
            transports=["websocket"],
            headers={"Origin": origin} if origin else {},
            auth=auth,
            wait_timeout=5,
        )
    async with asyncio.timeout(5):
        refusal = await refusals.get()
    assert isinstance(refusal, dict)
    return refusal["message"]


def _socketio_data(args: tuple[Any, ...]) -> Any:
    # python-socketio sends a tuple as that many arguments, anything else as one.
    return args[0] if len(args) == 1 and args[0] is not None else tuple(args)


def _put(queue: asyncio.Queue[Any]) -> Callable[..., None]:
    def handler(*args: Any) -> None:
        queue.put_nowait(args[0] if len(args) == 1 else args)

    return handler
