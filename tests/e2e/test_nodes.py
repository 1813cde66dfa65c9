"""Two gateway nodes behind HAProxy sharing PostgreSQL and Redis, set up as
docs/deployment.md says: node `a` on 127.0.0.2 and node `b` on 127.0.0.3 with the same
ports, HAProxy on 127.0.0.1, all real servers started here and stopped after.

The servers, the nodes and the phones are the module's (one set-up for all its tests); each
test uses its own site and phone. The last test kills a node: it runs last.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
import socketio
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from playwright.async_api import Browser, Page, expect

from gateway.media.webrtc_leg import use_host_addresses
from gateway.storage import Database
from tests.support import haproxy as haproxies
from tests.support import redis_server as redis_servers
from tests.support.audio import dominant_frequency, write_tone_wav
from tests.support.browser import capture_remote_audio, chromium
from tests.support.gateway_process import GatewayProcess
from tests.support.ports import free_port_block, free_udp_port
from tests.support.sipp import Sipp

pytestmark = pytest.mark.asyncio(loop_scope="module")

NODES = {"a": "127.0.0.2", "b": "127.0.0.3"}
BALANCER = "127.0.0.1"
ADMIN_KEY = "nodes-test-admin-key-0123456789abcdef"
TOKEN_SECRET = "nodes-test-token-secret-0123456789abcdef"
MIC_HZ = 1000
CALLBACKS = 20
FIRST_NUMBER = 442079460100  # +44 20 7946 0100...: valid London numbers, one per callback


def node_toml(
    name: str, *, ports: dict[str, int], state: Path, database: str, redis: str, phones: dict
) -> str:
    host = NODES[name]
    return f"""
[http]
listen = "{host}:{ports["http"]}"
public_url = "http://{BALANCER}:{ports["http"]}"
trusted_proxies = ["{BALANCER}"]
[sip]
listen = "{host}:{ports["sip"]}"
[media]
rtp_ports = "{ports["rtp"]}-{ports["rtp"] + 99}"
browser_codecs = ["PCMU"]
[ice]
host_addresses = ["{host}"]
[demo]
enabled = false
[access]
token_secret = "{TOKEN_SECRET}"
[limits]
max_calls_per_client = 10
calls_per_client_15min = 50
calls_per_client_hour = 100
calls_per_client_day = 200
[storage]
state_directory = "{state}"
database = "{database}"
redis = "{redis}"
node = "{name}"
[admin]
api_keys = ["{ADMIN_KEY}"]
[[sites]]
id = "shop"
destination = "{phones["shop"].uri}"
health_interval = 0
max_site_calls = 10
[[sites]]
id = "tight"
destination = "sip:nobody@127.0.0.1:{ports["nobody"]}"
health_interval = 0
calls_per_client_15min = 2
[[sites]]
id = "later"
destination = "{phones["operator"].uri}"
health_interval = 0
[sites.callback]
dial = "sip:{{number}}@127.0.0.1:{phones["trunk"].port}"
countries = ["GB"]
whisper = false
[[sites]]
id = "kill"
destination = "{phones["kill"].uri}"
health_interval = 0
"""


@dataclass
class Service:
    balancer: haproxies.Haproxy
    nodes: dict[str, GatewayProcess]
    database_url: str
    redis: redis_servers.RedisServer
    phones: dict[str, Sipp]
    http_port: int
    tomls: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.balancer.url

    def node_url(self, name: str) -> str:
        return f"http://{NODES[name]}:{self.http_port}"

    async def admin(self, path: str, node: str = "a") -> dict:
        """The admin API of one node, asked directly (not through the balancer, so that
        the test's own requests do not move the balancer's turn)."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{self.node_url(node)}{path}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
            ) as answer,
        ):
            assert answer.status == 200, await answer.text()
            return await answer.json()

    async def served_by(self) -> str:
        """Which node the balancer gives a request now (the next one goes to the other)."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/healthz") as answer,
        ):
            assert answer.status == 200
            return answer.headers["X-Served-By"]

    async def next_two_requests_end_on(self, node: str) -> None:
        """Make the balancer's second request from now go to `node` (a token request, then
        the websocket: the call lands there)."""
        for _ in range(3):
            if await self.served_by() == node:
                return
        raise AssertionError("the balancer does not take turns")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def service(tmp_path_factory, postgres_server) -> AsyncIterator[Service]:
    if not (haproxies.available() and redis_servers.available()):
        pytest.fail("haproxy or redis-server is not installed: run scripts/install-system-deps")
    root = tmp_path_factory.mktemp("nodes")
    phones = {
        "shop": Sipp("uas_answer_echo", root / "phone-shop", rtp_echo=True, calls=2, timeout=600),
        "operator": Sipp(
            "uas_answer_echo", root / "operator", rtp_echo=True, calls=CALLBACKS, timeout=600
        ),
        "trunk": Sipp("uas_far_bye", root / "trunk", calls=CALLBACKS, timeout=600),
        "kill": Sipp("uas_answer_echo", root / "phone-kill", rtp_echo=True, calls=1, timeout=600),
    }
    for phone in phones.values():
        phone.start()
    database = postgres_server.create_database(f"nodes_{os.getpid()}")
    ports = {
        "http": free_udp_port(),
        "sip": free_udp_port(),
        "rtp": free_port_block(100),
        "nobody": free_udp_port(),
    }
    nodes: dict[str, GatewayProcess] = {}
    try:
        with redis_servers.redis_server() as redis:
            service = Service(None, nodes, database, redis, phones, ports["http"])  # type: ignore[arg-type]
            for name in NODES:
                toml = node_toml(
                    name,
                    ports=ports,
                    state=root / name / "state",
                    database=database,
                    redis=redis.url,
                    phones=phones,
                )
                service.tomls[name] = toml
                nodes[name] = GatewayProcess(root / name, toml, workers=1, name=f"node-{name}")
                nodes[name].start()
            for node in nodes.values():
                await node.wait_ready(timeout=60)
            servers = [(name, host, ports["http"]) for name, host in NODES.items()]
            with haproxies.haproxy((BALANCER, ports["http"]), servers) as balancer:
                service.balancer = balancer
                yield service
    finally:
        for node in nodes.values():
            node.stop(grace=10)
        for phone in phones.values():
            phone.stop()


async def node_of_live_call(service: Service, site: str, seen: set[str]) -> str:
    """The node of the one call of `site` in progress not in `seen`, once it is answered."""
    for _ in range(200):
        calls = (await service.admin("/api/admin/live"))["calls"]
        for call in calls:
            if call["site"] == site and call["id"] not in seen and call["state"] == "answered":
                seen.add(call["id"])
                return call["worker"].split("/")[0]
        await asyncio.sleep(0.05)
    raise AssertionError(f"no new answered call of {site}: {calls}")


# ------------------------------------------------------------------------ browser calls
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser(tmp_path_factory) -> AsyncIterator[Browser]:
    mic = write_tone_wav(tmp_path_factory.mktemp("mic") / "mic.wav", MIC_HZ, 60.0, 48000)
    async with chromium(mic) as launched:
        yield launched


async def browser_call(browser: Browser, service: Service) -> Page:
    """A visitor in a fresh browser context (nothing cached) calls `shop` through the
    balancer; their page once it says they are in the call."""
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{service.url}/embed/shop")
    await expect(page.get_by_role("button", name="Call", exact=True)).to_be_enabled(timeout=15_000)
    await page.get_by_role("button", name="Call", exact=True).click()
    await expect(page.get_by_role("status")).to_contain_text("In call", timeout=20_000)
    return page


async def test_browser_calls_through_the_balancer_land_on_both_nodes_and_one_list_shows_them(
    service: Service, browser: Browser
) -> None:
    seen: set[str] = set()
    first = await browser_call(browser, service)
    nodes = {await node_of_live_call(service, "shop", seen): first}
    second = None
    for _ in range(4):  # a page load makes many requests: move the balancer's turn by one
        second = await browser_call(browser, service)
        node = await node_of_live_call(service, "shop", seen)
        if node not in nodes:
            nodes[node] = second
            break
        await second.get_by_role("button", name="Hang up").click()
        await second.context.close()
        await service.served_by()
    assert set(nodes) == {"a", "b"}, nodes
    # Whichever node is asked, the admin list holds both calls, each with its node.
    for node in NODES:
        live = (await service.admin("/api/admin/live", node))["calls"]
        answered = sorted(c["worker"] for c in live if c["site"] == "shop")
        assert answered == ["a/worker-0", "b/worker-0"], live
    # Each visitor hears their own voice back from the phone, through their node.
    for page in nodes.values():
        samples, rate = await capture_remote_audio(page, 1.0)
        assert abs(dominant_frequency(samples, rate, skip_seconds=0.2) - MIC_HZ) < 15
    for page in nodes.values():
        await page.get_by_role("button", name="Hang up").click()
        await expect(page.get_by_role("status")).to_contain_text("Call ended")
        await page.context.close()
    await service.phones["shop"].assert_passed_async(timeout=15)


# ------------------------------------------------------------------ tokens and limits
async def token(url: str, origin: str, site: str, visitor: str | None = None) -> str:
    headers = {"Origin": origin, **({"X-Forwarded-For": visitor} if visitor else {})}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{url}/api/token", json={"site": site}, headers=headers) as answer,
    ):
        body = await answer.json()
        assert answer.status == 200, body
        return body["token"]


class Refused(Exception):
    """The gateway refused the connection; the message is its reason."""


async def connect(
    url: str, origin: str, site: str, token_value: str, visitor: str | None = None
) -> socketio.AsyncClient:
    client = socketio.AsyncClient(reconnection=False)
    reasons: list[str] = []
    client.on("connect_error", lambda data: reasons.append(data["message"]))
    headers = {"Origin": origin, **({"X-Forwarded-For": visitor} if visitor else {})}
    try:
        await client.connect(
            url,
            transports=["websocket"],
            auth={"site": site, "token": token_value},
            headers=headers,
        )
    except socketio.exceptions.ConnectionError:
        raise Refused("; ".join(reasons)) from None
    return client


async def offer() -> tuple[RTCPeerConnection, str]:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


async def test_a_token_used_on_one_node_is_refused_on_the_other(service: Service) -> None:
    origin = service.url
    issued = await token(service.url, origin, "shop")  # from either node
    first = await connect(service.node_url("a"), origin, "shop", issued)
    await first.disconnect()
    with pytest.raises(Refused, match="the call token was already used"):
        await connect(service.node_url("b"), origin, "shop", issued)
    # Not a node's own quirk: a fresh token is good at b.
    fresh = await token(service.url, origin, "shop")
    await (await connect(service.node_url("b"), origin, "shop", fresh)).disconnect()


async def test_a_visitors_rate_window_counts_their_calls_on_both_nodes(service: Service) -> None:
    """`tight` lets a visitor start 2 calls in 15 minutes: one on each node, and the third
    is refused, whichever node it reaches."""
    use_host_addresses(["127.0.0.1"])
    visitor = "198.51.100.20"
    origin = service.url
    landed = []
    for node in ("a", "b", "a"):
        await service.next_two_requests_end_on(node)
        issued = await token(service.url, origin, "tight", visitor)
        client = await connect(service.url, origin, "tight", issued, visitor)
        pc, sdp = await offer()
        try:
            ack = await client.call("call:start", {"sdp": sdp}, timeout=10)
        finally:
            await client.disconnect()
            await pc.close()
        landed.append((node, ack))
    (_, first), (_, second), (_, third) = landed
    assert first["ok"] and second["ok"], landed
    assert third["ok"] is False and third["error"]["code"] == "rate_limited", third
    assert "15 minutes" in third["error"]["message"]
    # The two calls were carried one by each node (their records say), the third by none.
    for _ in range(200):
        records = (await service.admin("/api/admin/calls?site=tight"))["calls"]
        if len(records) == 3:
            break
        await asyncio.sleep(0.05)
    by_outcome = sorted((r["outcome"], r["worker"]) for r in records)
    assert [w for o, w in by_outcome if o != "refused"] in (
        ["a/worker-0", "b/worker-0"],
        ["b/worker-0", "a/worker-0"],
    ), records
    assert [o for o, _ in by_outcome].count("refused") == 1, records


# ------------------------------------------------------------------------ callbacks
async def test_twenty_callbacks_due_at_once_are_each_placed_once(service: Service) -> None:
    database = await Database.open(service.database_url)
    try:
        due = time.time() + 2
        ids = []
        for n in range(CALLBACKS):
            callback = await database.callbacks.add(
                site="later",
                number=f"+{FIRST_NUMBER + n}",
                details={"name": f"Visitor {n}"},
                due_at=due,
                now=time.time(),
            )
            ids.append(callback.id)
        # Both phones take the twenty calls and pass only if each was placed (and ended).
        await service.phones["trunk"].assert_passed_async(timeout=90)
        await service.phones["operator"].assert_passed_async(timeout=30)
        invites = [m for m in service.phones["trunk"].trace() if m.method == "INVITE"]
        called = sorted(
            {m.header("Call-ID"): m.request_uri.split("@")[0] for m in invites}.values()
        )
        assert called == sorted(f"sip:+{FIRST_NUMBER + n}" for n in range(CALLBACKS)), called
        placed = []
        for _ in range(200):
            placed = [await database.callbacks.get(i) for i in ids]
            if all(c.status == "done" for c in placed):
                break
            await asyncio.sleep(0.1)
        assert [(c.status, c.attempts) for c in placed] == [("done", 1)] * CALLBACKS, placed
    finally:
        await database.close()


# ------------------------------------------------------------------------ a node dies
async def test_a_killed_nodes_call_is_ended_by_the_other_node(service: Service) -> None:
    use_host_addresses(["127.0.0.1"])
    origin = service.url
    issued = await token(service.url, origin, "kill")
    answered, dropped = asyncio.Event(), asyncio.Event()
    client = socketio.AsyncClient(reconnection=False)

    @client.on("call:state")
    async def on_state(payload):
        if payload["state"] == "answered":
            answered.set()

    @client.on("disconnect")
    async def on_disconnect(*args):
        dropped.set()

    await client.connect(
        service.url,
        transports=["websocket"],
        auth={"site": "kill", "token": issued},
        headers={"Origin": origin},
    )
    pc, sdp = await offer()
    try:
        ack = await client.call("call:start", {"sdp": sdp}, timeout=10)
        assert ack["ok"], ack
        await pc.setRemoteDescription(RTCSessionDescription(ack["sdp"], "answer"))
        await asyncio.wait_for(answered.wait(), 15)
        victim = await node_of_live_call(service, "kill", set())
        survivor = next(n for n in NODES if n != victim)
        # Its heartbeat carries the call's dialog (published twice a second).
        (invite,) = [m for m in service.phones["kill"].trace() if m.method == "INVITE"]
        call_id = invite.header("Call-ID")
        for _ in range(100):
            published = [d for d in _dialogs(service, victim) if d.get("call_id") == call_id]
            if published:
                break
            await asyncio.sleep(0.05)
        assert [d["kind"] for d in published] == ["dialog"], published
        node = service.nodes[victim]
        os.killpg(node.pid, signal.SIGKILL)  # the whole node: supervisor and worker
        # The operator's phone gets a BYE within 10 s, from the other node.
        await service.phones["kill"].assert_passed_async(timeout=10)
        byes = [m for m in service.phones["kill"].trace() if m.method == "BYE"]
        assert len(byes) >= 1 and NODES[survivor] in byes[0].header("Via"), byes
        await asyncio.wait_for(dropped.wait(), 15)  # the visitor's socket went with it
        # The record says how it ended, whichever node is asked.
        for _ in range(100):
            records = (await service.admin("/api/admin/calls?site=kill", survivor))["calls"]
            if records:
                break
            await asyncio.sleep(0.1)
        (record,) = records
        assert (record["outcome"], record["end_cause"]) == ("answered", "lost"), record
        assert record["worker"] == f"{victim}/worker-0"
        assert record["end_detail"].startswith(f"{victim}/worker-0 stopped beating"), record
        assert f"ended by {survivor}/worker-0" in record["end_detail"], record
        live = (await service.admin("/api/admin/live", survivor))["calls"]
        assert [c for c in live if c["site"] == "kill"] == []
    finally:
        await pc.close()
        if client.connected:
            await client.disconnect()


def _dialogs(service: Service, node: str) -> list[dict]:
    import redis

    client = redis.Redis(host=service.redis.host, port=service.redis.port, decode_responses=True)
    try:
        return json.loads(client.get(f"gateway:dialogs:{node}/worker-0") or "[]")
    finally:
        client.close()
