"""The HTTP face of a real gateway under greedy and slow clients, deep JSON, and what it
tells about itself (issue 11, items 4, 5 and 10). Raw sockets and aiohttp clients on
loopback; "visitors" behind a trusted proxy are told apart by X-Forwarded-For."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time

import aiohttp
import pytest

from tests.e2e.conftest import call_token
from tests.e2e.test_signaling_abuse import connect

SLOW_HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"  # never finished


class SlowClient:
    """A connection that sends a request head (or body) a little at a time."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.received = b""
        self.closed = asyncio.Event()  # the gateway closed it
        self._watch = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, gateway, first: bytes = SLOW_HEAD) -> SlowClient:
        host, port = gateway.config.http.listen
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(first)
        return cls(reader, writer)

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await self.reader.read(4096):
                self.received += chunk
        self.closed.set()

    def dribble(self, data: bytes) -> None:
        if not self.closed.is_set():
            with contextlib.suppress(ConnectionError):
                self.writer.write(data)

    def close(self) -> None:
        self._watch.cancel()
        self.writer.close()


async def until(condition, what: str, timeout: float = 30.0, step: float = 0.05) -> None:
    for _ in range(int(timeout / step)):
        if condition():
            return
        await asyncio.sleep(step)
    raise AssertionError(f"never: {what}")


async def get(gateway, path: str, **headers: str) -> tuple[int, dict[str, str], str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gateway.url}{path}", headers=headers) as response,
    ):
        return response.status, dict(response.headers), await response.text()


# --------------------------------------------------------------- item 4: greedy clients


async def test_connections_one_address_holds_are_capped(gateway_factory):
    # Slowloris from one address: the request timeout is long here, the cap (default 32) bites.
    gateway = await gateway_factory(destination=NOWHERE, http_extra=LONG)
    clients = [await SlowClient.open(gateway) for _ in range(40)]
    try:
        await until(lambda: sum(c.closed.is_set() for c in clients) >= 8, "8 refused")
        refused = [c for c in clients if c.closed.is_set()]
        assert len(refused) == 8 and all(c.received == b"" for c in refused)
        assert gateway.config.http.connections_per_client == 32
    finally:
        for client in clients:
            client.close()
    # Once they are gone, the address is served again.
    await until_served(gateway)


async def until_served(gateway) -> None:
    for _ in range(100):
        with contextlib.suppress(aiohttp.ClientError):
            if (await get(gateway, "/healthz"))[0] == 200:
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the gateway never served the address again")


async def test_slow_request_heads_and_bodies_are_cut_off(gateway_factory):
    gateway = await gateway_factory(destination=NOWHERE, http_extra="request_timeout = 1")
    heads = [await SlowClient.open(gateway) for _ in range(5)]
    body_head = (
        b"POST /api/token HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    body = await SlowClient.open(gateway, body_head)
    try:
        for n in range(600):  # a header line, and a body byte, every 50 ms: never done
            if all(c.closed.is_set() for c in [*heads, body]):
                break
            for client in heads:
                client.dribble(f"X-Slow-{n}: 1\r\n".encode())
            body.dribble(b" ")
            await asyncio.sleep(0.05)
        assert all(c.closed.is_set() for c in heads), "slow request heads were kept open"
        assert all(c.received == b"" for c in heads)
        assert body.received.startswith(b"HTTP/1.1 408 "), body.received[:40]
        assert b'"code": "request_timeout"' in body.received
    finally:
        for client in [*heads, body]:
            client.close()
    await until_served(gateway)


async def ws_open(gateway, forwarded_for: str | None = None) -> aiohttp.ClientWebSocketResponse:
    """An engine.io websocket (what socket.io opens first), on a session of its own."""
    headers = {"Origin": gateway.config.http.public_origin}
    if forwarded_for:
        headers["X-Forwarded-For"] = forwarded_for
    session = aiohttp.ClientSession()
    try:
        ws = await session.ws_connect(
            f"{gateway.url}/socket.io/?EIO=4&transport=websocket", headers=headers
        )
    except BaseException:
        await session.close()
        raise
    ws.session = session  # closed with it
    return ws


async def ws_close(ws) -> None:
    await ws.close()
    await ws.session.close()


async def test_socketio_connections_of_one_address_are_capped(gateway_factory):
    gateway = await gateway_factory(destination=NOWHERE)
    sockets = [await ws_open(gateway) for _ in range(10)]  # sockets_per_client = 10
    try:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await ws_open(gateway)
        assert refused.value.status == 429
        await ws_close(sockets.pop())
        for _ in range(100):  # its slot is freed once the gateway has seen it close
            try:
                sockets.append(await ws_open(gateway))
                break
            except aiohttp.WSServerHandshakeError:
                await asyncio.sleep(0.05)
        assert len(sockets) == 10
    finally:
        for ws in sockets:
            await ws_close(ws)


async def test_behind_a_trusted_proxy_each_visitor_has_its_own_caps(gateway_factory):
    gateway = await gateway_factory(
        destination=NOWHERE, http_extra='trusted_proxies = ["127.0.0.1"]'
    )
    visitors = [f"203.0.113.{n}" for n in range(1, 5)]
    sockets = []
    try:
        # 40 sockets through the proxy: more connections from it than one address may
        # hold, but the proxy is not counted; each visitor is, by X-Forwarded-For.
        for visitor in visitors:
            sockets += [await ws_open(gateway, visitor) for _ in range(10)]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await ws_open(gateway, visitors[0])
        assert refused.value.status == 429
    finally:
        for ws in sockets:
            await ws_close(ws)


async def token_request(gateway, forwarded_for: str) -> aiohttp.ClientResponse:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{gateway.url}/api/token",
            json={"site": "shop"},
            headers={
                "Origin": gateway.config.http.public_origin,
                "X-Forwarded-For": forwarded_for,
            },
        ) as response,
    ):
        await response.read()
        return response


async def test_call_tokens_of_one_visitor_are_throttled(gateway_factory):
    gateway = await gateway_factory(
        destination=NOWHERE, http_extra='trusted_proxies = ["127.0.0.1"]'
    )
    started = time.monotonic()
    answers = [await token_request(gateway, "203.0.113.7") for _ in range(40)]
    elapsed = time.monotonic() - started
    granted = sum(a.status == 200 for a in answers)
    limit = 20  # access.tokens_per_client_minute's default: 20 at once, then 20 a minute
    assert limit <= granted <= limit + 1 + elapsed * limit / 60
    refused = [a for a in answers if a.status != 200]
    assert refused and all(a.status == 429 for a in refused)
    assert int(refused[0].headers["Retry-After"]) >= 1
    # Another visitor is not held back by the first.
    assert (await token_request(gateway, "203.0.113.8")).status == 200


# ------------------------------------------------------------------ item 5: deep JSON

DEEP = "[" * 4000


async def test_every_json_route_answers_400_to_deeply_nested_json(
    gateway_factory, caplog, tmp_path
):
    caplog.set_level(logging.INFO)
    gateway = await gateway_factory(
        destination=NOWHERE,
        site_extra=CALLBACKS,
        extra=f'[storage]\nstate_directory = "{tmp_path}"\n'
        f'database = "sqlite:///{tmp_path / "gateway.db"}"',
    )
    routes = sorted(
        {
            (route.method, route.resource.canonical)
            for route in gateway.runner.app.router.routes()
            if route.method in ("POST", "PUT", "PATCH") and route.resource is not None
        }
    )
    assert ("POST", "/api/token") in routes and ("POST", "/api/callbacks") in routes
    async with aiohttp.ClientSession() as session:
        for method, path in routes:
            async with session.request(
                method,
                gateway.url + re.sub(r"\{[^}]*\}", "x", path),  # any id
                data=DEEP,
                headers={
                    "Content-Type": "application/json",
                    "Origin": gateway.config.http.public_origin,
                    "Authorization": f"Bearer {await call_token(gateway)}",
                },
            ) as response:
                assert response.status == 400, (method, path)
                if path.startswith("/socket.io/"):
                    continue  # engine.io's route, not JSON: websocket only
                body = await response.json()
                assert body["error"]["code"] == "bad_request", (method, path, body)
    # Over socket.io too: the client is told, the log gets no traceback.
    client = await connect(gateway)
    try:
        await client.eio.send('2["call:dtmf",' + DEEP)  # a socket.io event packet
        await until(lambda: client.errors, "an error event")
        assert client.errors[0]["code"] == "bad_payload"
        assert await client.call("call:hangup", {}, timeout=5) == {
            "ok": False,
            "error": {"code": "no_call", "message": "no call is active"},
        }
    finally:
        await client.disconnect()
    assert not [r for r in caplog.records if r.exc_info]  # no traceback


# --------------------------------------------------- item 10: banners, listings, static

NOWHERE = "sip:nobody@127.0.0.1:9"  # no call is placed in these tests
LONG = "request_timeout = 60"
CALLBACKS = 'callback = {dial = "sip:{number}@127.0.0.1:9", countries = ["GB"]}'


async def test_no_version_banner_no_site_listing_and_static_files_as_guarded_as_pages(
    gateway_factory,
):
    gateway = await gateway_factory(destination=NOWHERE)
    servers = set()
    for path in ("/", "/embed/shop", "/static/style.css", "/static/embed.html", "/widget.js",
                 "/api/widget/shop", "/nope", "/healthz"):  # fmt: skip
        status, headers, body = await get(gateway, path)
        servers.add(headers.get("Server"))
        if path == "/":
            assert status == 200 and "shop" not in body and "/embed/" not in body
        if path.startswith("/static/"):
            assert status == 200
            assert "Access-Control-Allow-Origin" not in headers, path
            assert headers["Content-Security-Policy"].endswith("frame-ancestors 'none'"), path
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert "microphone=()" in headers["Permissions-Policy"]
        if path == "/widget.js":  # the widget is imported by other origins' pages
            assert headers["Access-Control-Allow-Origin"] == "*"
    # aiohttp's own answer to a malformed request, and the websocket upgrade.
    host, port = gateway.config.http.listen
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n")
    answer = await reader.read()
    writer.close()
    assert answer.startswith((b"HTTP/1.0 400 ", b"HTTP/1.1 400 "))
    servers.add(next(line for line in answer.split(b"\r\n") if line.startswith(b"Server:"))[8:])
    ws = await ws_open(gateway)
    servers.add(ws._response.headers.get("Server"))  # the 101 of the upgrade
    await ws_close(ws)
    servers.discard(None)
    assert servers and all("aiohttp" not in str(s) and "Python" not in str(s) for s in servers)
