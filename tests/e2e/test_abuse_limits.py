"""Abuse limits of the real gateway: call tokens, per-visitor windows, the maximum call
duration, the spend guard, and secrets kept out of logs and away from the page.

The visitor is aiortc behind python-socketio (a real WebRTC peer and websocket client), the
operator is SIPp, and the TURN server of the secrets test is coturn; all on loopback.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack

from gateway.config import parse_config
from gateway.process.gateway import Gateway
from tests.support.coturn import start_coturn

from .conftest import call_token, gateway_toml
from .test_browser_call import assert_all_released

SHOP_ORIGIN = "https://shop.example"


class Visitor:
    """One page: a signaling connection, and one aiortc peer per call."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway
        self.sio = socketio.AsyncClient(reconnection=False)
        self.received: list[tuple[str, Any]] = []  # everything the gateway sent, in order
        self.states: list[tuple[float, str, dict[str, Any]]] = []  # (monotonic, call, state)
        self.pc: RTCPeerConnection | None = None
        for event in ("session", "call:state", "error"):
            self.sio.on(event, self._recorder(event))

    def _recorder(self, event: str):  # type: ignore[no-untyped-def]
        def record(payload: Any) -> None:
            self.received.append((event, payload))
            if event == "call:state":
                self.states.append((time.monotonic(), payload["call_id"], payload))

        return record

    async def connect(self, token: str | None = None) -> None:
        origin = self.gateway.config.http.public_origin
        token = token or await call_token(self.gateway)
        self.received.append(("token", token))
        await self.sio.connect(
            self.gateway.url,
            transports=["websocket"],
            auth={"site": "shop", "token": token},
            headers={"Origin": origin},
            wait_timeout=5,
        )

    async def start_call(self) -> dict[str, Any]:
        """call:start with a real offer; the ack (the answer is applied when there is one)."""
        if self.pc is not None:
            await self.pc.close()
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTrack(AudioStreamTrack())
        await self.pc.setLocalDescription(await self.pc.createOffer())
        ack = await self.sio.call("call:start", {"sdp": self.pc.localDescription.sdp}, timeout=10)
        self.received.append(("ack", ack))
        if ack["ok"]:
            await self.pc.setRemoteDescription(RTCSessionDescription(ack["sdp"], "answer"))
        return ack

    async def state(self, call_id: str, state: str, timeout: float = 10) -> tuple[float, dict]:
        """When `state` of the call arrived (monotonic), and its payload."""
        async with asyncio.timeout(timeout):
            while True:
                for at, call, payload in self.states:
                    if call == call_id and payload["state"] == state:
                        return at, payload
                await asyncio.sleep(0.02)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()
        if self.pc is not None:
            await self.pc.close()


@pytest.fixture
async def visitors():  # type: ignore[no-untyped-def]
    opened: list[Visitor] = []

    async def open_visitor(gateway: Any) -> Visitor:
        visitor = Visitor(gateway)
        opened.append(visitor)
        await visitor.connect()
        return visitor

    yield open_visitor
    for visitor in opened:
        await visitor.close()


async def talk_and_hang_up(visitor: Visitor) -> None:
    ack = await visitor.start_call()
    assert ack["ok"], ack
    await visitor.state(ack["call_id"], "answered")
    assert await visitor.sio.call("call:hangup", {}, timeout=5) == {"ok": True}
    await visitor.state(ack["call_id"], "ended")


# --- call tokens -------------------------------------------------------------------------------


async def refusal(gateway: Any, token: object, origin: str | None = None) -> str:
    client = socketio.AsyncClient(reconnection=False)
    reasons: list[str] = []
    client.on("connect_error", lambda data: reasons.append(data["message"]))
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(
            gateway.url,
            transports=["websocket"],
            auth={"site": "shop", "token": token},
            headers={"Origin": origin or gateway.config.http.public_origin},
            wait_timeout=5,
        )
    return reasons[0]


async def test_forged_expired_other_site_and_other_origin_tokens_are_refused(gateway_factory):
    gateway = await gateway_factory(
        destination="sip:nobody@127.0.0.1:9",
        extra="[access]\ntoken_lifetime = 0.5\n",
        site_extra=(
            f'origins = ["{SHOP_ORIGIN}"]\n'
            '[[sites]]\nid = "other"\ndestination = "sip:nobody@127.0.0.1:9"\n'
        ),
    )
    own = gateway.config.http.public_origin
    # Forged: claims rewritten (a later expiry) under the old signature.
    body, mac = (await call_token(gateway)).split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["exp"] += 3600
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert "forged" in await refusal(gateway, f"{forged}.{mac}")
    # Expired.
    token = await call_token(gateway)
    await asyncio.sleep(0.7)
    assert await refusal(gateway, token) == "the call token has expired; reload the page"
    # For another site of the same gateway.
    token = await call_token(gateway, site="other")
    assert await refusal(gateway, token) == "the call token is for another site"
    # Fetched by the shop's own page, presented by the gateway's (both may use the site).
    token = await call_token(gateway, origin=SHOP_ORIGIN)
    assert await refusal(gateway, token, own) == "the call token is for another origin"
    # And a page of a foreign origin gets no token at all.
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{gateway.url}/api/token",
            json={"site": "shop"},
            headers={"Origin": "https://evil.example"},
        ) as response,
    ):
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "origin_refused"


# --- per-visitor windows -----------------------------------------------------------------------


async def test_the_n_plus_first_call_in_the_window_is_refused_with_its_reason(
    gateway_factory, sipp_factory, visitors, caplog
):
    uas = sipp_factory("uas_answer_echo", rtp_echo=True, calls=2)
    gateway = await gateway_factory(destination=uas.uri, site_extra="calls_per_client_15min = 2")
    visitor = await visitors(gateway)
    for _ in range(2):
        await talk_and_hang_up(visitor)
    caplog.set_level(logging.INFO)
    ack = await visitor.start_call()
    assert ack["ok"] is False
    assert ack["error"]["code"] == "rate_limited"
    assert ack["error"]["message"].startswith(
        "too many calls from this address in the last 15 minutes; try again in 15 minutes"
    )
    assert ("error", {**ack["error"], "event": "call:start"}) in visitor.received
    # The operator's log says which limit, for whom.
    assert any(
        record.levelno == logging.INFO
        and "call refused (rate_limited): site shop, client 127.0.0.1: 127.0.0.1 started 2 "
        "calls of site shop in the last 15 minutes (calls_per_client_15min = 2)"
        in record.getMessage()
        for record in caplog.records
    ), caplog.text
    await uas.assert_passed_async()
    await assert_all_released(gateway)
    # Refusals leave nothing counted: a new connection of the visitor is refused the same.
    again = await visitors(gateway)
    assert (await again.start_call())["error"]["code"] == "rate_limited"


async def test_concurrent_calls_of_a_site_are_bounded(gateway_factory, sipp_factory, visitors):
    uas = sipp_factory("uas_answer_echo", rtp_echo=True)
    gateway = await gateway_factory(destination=uas.uri, site_extra="max_site_calls = 1")
    first, second = await visitors(gateway), await visitors(gateway)
    ack = await first.start_call()
    assert ack["ok"]
    await first.state(ack["call_id"], "answered")
    refused = await second.start_call()
    assert refused["error"] == {
        "code": "site_busy",
        "message": "all lines are busy; try again in a few minutes",
    }
    await first.sio.call("call:hangup", {}, timeout=5)
    await first.state(ack["call_id"], "ended")
    await uas.assert_passed_async()
    await assert_all_released(gateway)


# --- maximum call duration and the spend guard -------------------------------------------------

MAX_DURATION = 1.5


async def test_the_gateway_ends_a_call_at_its_maximum_duration(
    gateway_factory, sipp_factory, visitors, caplog
):
    caplog.set_level(logging.INFO)
    uas = sipp_factory("uas_answer_echo", rtp_echo=True)
    gateway = await gateway_factory(
        destination=uas.uri, site_extra=f"max_call_duration = {MAX_DURATION}"
    )
    visitor = await visitors(gateway)
    ack = await visitor.start_call()
    assert ack["ok"], ack
    await visitor.state(ack["call_id"], "answered")
    _, ended = await visitor.state(ack["call_id"], "ended", timeout=MAX_DURATION + 5)
    assert ended["cause"] == "time_limit"
    # How long it talked, on the gateway's clock (the page's events may be late on a busy
    # machine): its timer never fires early.
    (talked,) = re.findall(rf"call {ack['call_id']} ended: .* talked ([0-9.]+) s", caplog.text)
    assert float(talked) >= MAX_DURATION - 0.05
    # Both legs: SIPp got its BYE (the scenario passes only then), the browser leg is gone.
    await uas.assert_passed_async()
    await assert_all_released(gateway)
    assert f"maximum duration of {MAX_DURATION:g} s reached" in caplog.text


async def test_the_spend_guard_refuses_calls_past_the_sites_daily_minutes(
    gateway_factory, sipp_factory, visitors, caplog
):
    caplog.set_level(logging.INFO)
    uas = sipp_factory("uas_answer_echo", rtp_echo=True)
    # A budget of 1.2 s of talk; the first call talks 1.5 s (its maximum duration).
    gateway = await gateway_factory(
        destination=uas.uri,
        site_extra=f"daily_call_minutes = 0.02\nmax_call_duration = {MAX_DURATION}",
    )
    visitor = await visitors(gateway)
    ack = await visitor.start_call()
    assert ack["ok"], ack
    await visitor.state(ack["call_id"], "ended", timeout=MAX_DURATION + 10)
    await uas.assert_passed_async()
    refused = await visitor.start_call()
    assert refused["error"] == {
        "code": "budget_exhausted",
        "message": "calls to this site are paused for today; try again later",
    }
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "call refused (budget_exhausted): site shop" in message
        and "spend guard: 0.0 of 0.02 call minutes" not in message  # it counted the talk
        and "of 0.02 call minutes used in the last 24 hours (daily_call_minutes)" in message
        for message in warnings
    ), warnings
    await assert_all_released(gateway)


# --- secrets -----------------------------------------------------------------------------------

TRUNK_PASSWORD = "Trunk-Pw-8d1e5a-secret"
TOKEN_SECRET = "Token-Secret-0f9c2b7e41d6a8f3c5b0e7d2a9f4c1b8"
TURN_USER, TURN_CREDENTIAL = "webrtc", "Turn-Cred-4b7e2a91"


@pytest.fixture
def turn_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    """coturn on loopback with one long-term credential."""
    server = start_coturn(tmp_path / "coturn", user=(TURN_USER, TURN_CREDENTIAL))
    yield server.url
    server.stop()


async def test_a_full_call_logs_no_secret_and_the_page_gets_nothing_private(
    sipp_factory, turn_server, visitors, caplog
):
    caplog.set_level(logging.DEBUG)
    uas = sipp_factory("uas_auth_401", keys={"user": "alice", "pass": TRUNK_PASSWORD})
    # The secrets come from the environment, as a deployment gives them.
    env = {
        "GATEWAY_SITE_SHOP_PASSWORD": TRUNK_PASSWORD,
        "GATEWAY_ACCESS_TOKEN_SECRET": TOKEN_SECRET,
        "GATEWAY_ICE_SERVERS": json.dumps(
            [{"urls": [turn_server], "username": TURN_USER, "credential": TURN_CREDENTIAL}]
        ),
    }
    config = parse_config(gateway_toml(destination=uas.uri, site_extra='username = "alice"'), env)
    gateway = await Gateway.start(config)
    try:
        visitor = await visitors(gateway)
        ack = await visitor.start_call()
        assert ack["ok"], ack
        await visitor.state(ack["call_id"], "answered")
        # The gateway's leg gathered a relay candidate: the TURN credential was used.
        assert " typ relay " in ack["sdp"]
        assert await visitor.sio.call("call:dtmf", {"digits": "1"}, timeout=5) == {"ok": True}
        assert await visitor.sio.call("call:hangup", {}, timeout=5) == {"ok": True}
        await visitor.state(ack["call_id"], "ended")
        await uas.assert_passed_async()  # SIPp checked the digest made from the password
        await assert_all_released(gateway)
        await visitor.close()
    finally:
        await gateway.stop()

    logged = caplog.text
    assert len(caplog.records) > 50  # DEBUG really was on
    for secret in (TRUNK_PASSWORD, TOKEN_SECRET, TURN_CREDENTIAL):
        assert secret not in logged
    # The start says the static TURN credential stays with the gateway.
    assert f"{turn_server} has static credentials" in logged
    # What the page got: its token, the session, acks, states, errors: nothing private,
    # not even the static TURN credential (anyone could relay through it for ever).
    page = json.dumps(visitor.received)
    assert [p for event, p in visitor.received if event == "session"] == [{"ice_servers": []}]
    for private in (
        TRUNK_PASSWORD, TOKEN_SECRET, TURN_CREDENTIAL, TURN_USER, "alice", uas.uri,
        f":{uas.port}", "sip:", "turn:",
    ):  # fmt: skip
        assert private not in page, private
