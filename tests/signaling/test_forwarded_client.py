"""Behind a trusted reverse proxy, the visitor's address (from X-Forwarded-For) is what
limits and logs see, for the token request and the socket alike; from anywhere else, a
claimed address is ignored. Real server, real clients; the proxy is played by the client
sending the header from 127.0.0.1."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Mapping

import pytest
import socketio
from aiohttp import web

from gateway.http.app import build_app
from signaling import attach, create_signaling
from tests.signaling.conftest import DEMO_ORIGIN, OFFER_SDP, ROOT, SITES, request_token
from tests.signaling.memory_service import InMemoryCallService

VISITOR = "198.51.100.7"


class RecordingVerifier:
    """A challenge that passes any proof and notes who asked (as a CAPTCHA's remoteip)."""

    kind = "recording"

    def __init__(self) -> None:
        self.clients: list[str] = []

    def challenge(self, site_id: str, now: float) -> dict[str, object]:
        return {"kind": self.kind}

    async def verify(
        self, site_id: str, proof: Mapping[str, object], client: str, now: float
    ) -> None:
        self.clients.append(client)


async def serve(trusted: list[str]) -> tuple[str, InMemoryCallService, web.AppRunner]:
    service = InMemoryCallService(dict(SITES))
    verifier = RecordingVerifier()
    service.access.verifiers["recording"] = verifier
    service.challenges["demo"] = "recording"
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    app = build_app(
        service=service,
        web_dir=ROOT / "web",
        node_modules=ROOT / "node_modules",
        trusted_proxies=trusted,
    )
    attach(app, create_signaling(service, ice_servers=[]))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, listener).start()
    return url, service, runner


@pytest.fixture
async def servers() -> AsyncIterator:  # type: ignore[type-arg]
    runners: list[web.AppRunner] = []

    async def start(trusted: list[str]) -> tuple[str, InMemoryCallService]:
        url, service, runner = await serve(trusted)
        runners.append(runner)
        return url, service

    yield start
    for runner in runners:
        await runner.cleanup()


async def call_from(url: str, forwarded_for: str) -> None:
    headers = {"Origin": DEMO_ORIGIN, "X-Forwarded-For": forwarded_for}
    status, _, answer = await request_token(url, {"site": "demo", "proof": {}}, DEMO_ORIGIN)
    assert status == 200, answer
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(
        url,
        transports=["websocket"],
        headers=headers,
        auth={"site": "demo", "token": answer["token"]},
        wait_timeout=5,
    )
    try:
        ack = await sio.call("call:start", {"sdp": OFFER_SDP}, timeout=5)
        assert ack["ok"], ack
    finally:
        await sio.disconnect()


@pytest.mark.parametrize(
    ("trusted", "client"),
    [(["127.0.0.1"], VISITOR), ([], "127.0.0.1"), (["10.0.0.0/8"], "127.0.0.1")],
)
async def test_the_call_is_from_the_forwarded_visitor_only_behind_a_trusted_proxy(
    servers, trusted: list[str], client: str
) -> None:  # type: ignore[no-untyped-def]
    url, service = await servers(trusted)
    await call_from(url, f"203.0.113.1, {VISITOR}")
    [(site, address, _)] = service.calls_to("start_call")
    assert (site, address) == ("demo", client)


async def test_the_token_request_is_from_the_forwarded_visitor(servers) -> None:  # type: ignore[no-untyped-def]
    url, service = await servers(["127.0.0.1"])
    verifier = service.access.verifiers["recording"]
    for forwarded in (VISITOR, f"10.9.9.9, {VISITOR}"):
        status, _, _ = await request_token(
            url, {"site": "demo", "proof": {}}, DEMO_ORIGIN, headers={"X-Forwarded-For": forwarded}
        )
        assert status == 200
    assert verifier.clients == [VISITOR, VISITOR]
