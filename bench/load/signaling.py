"""How a visitor places its call with each server under test, as that server's own client
library does it.

- `GatewaySignaling`: this gateway's widget (web/widget/session.js): a call token from
  `POST /api/token`, one socket.io connection, `call:start` with the offer, candidates
  trickled right after it, `call:state` events, `call:hangup`.
- `JanusSignaling`: janus.js over Janus's HTTP API: a session with one long poll always
  open, a handle on the SIP plugin, `register` as a guest (no REGISTER is sent), `call`
  with the offer as JSEP, candidates trickled, the `accepted` event carrying the answer,
  `hangup`, the session destroyed.

Both report the call's progress as states: "answered" (the operator's 200 OK reached the
visitor) and "ended", with the time each was first seen.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Protocol

import aiohttp
import socketio


class CallFailed(Exception):
    """A call did not get through or was not carried through (the message says why)."""


class Signaling(Protocol):
    states: dict[str, float]
    error: str | None

    async def open(self) -> None: ...

    async def call(self, offer: str, candidates: list[str]) -> str:
        """Send the offer (and trickle the candidates); the answer's SDP."""
        ...

    async def hangup(self) -> None: ...

    async def close(self) -> None: ...

    async def wait_state(self, state: str, timeout: float) -> None: ...


class _States:
    def __init__(self) -> None:
        self.states: dict[str, float] = {}
        self.error: str | None = None
        self._changed = asyncio.Event()

    def note(self, state: str, cause: object = None) -> None:
        if state in self.states:
            return
        self.states[state] = time.monotonic()
        if state == "ended" and "answered" not in self.states and self.error is None:
            self.error = f"ended before answer: {cause}"
        self._changed.set()

    async def wait_state(self, state: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while state not in self.states:
            if "ended" in self.states:
                raise CallFailed(f"call ended ({self.error or 'no cause'}) waiting for {state}")
            self._changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CallFailed(f"no {state!r} within {timeout} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)


class GatewaySignaling(_States):
    def __init__(self, url: str, origin: str, site: str) -> None:
        super().__init__()
        self.url, self.origin, self.site = url, origin, site
        self._client = socketio.AsyncClient(reconnection=False)
        self._client.on("call:state", self._on_state)

    async def _on_state(self, payload: dict) -> None:
        state = payload.get("state")
        if state in ("answered", "ended"):
            self.note(state, payload.get("cause"))

    async def open(self) -> None:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{self.url}/api/token", json={"site": self.site}, headers={"Origin": self.origin}
            ) as response,
        ):
            answer = await response.json()
            if response.status != 200:
                raise CallFailed(f"no call token: {response.status} {answer}")
        await self._client.connect(
            self.url,
            transports=["websocket"],
            auth={"site": self.site, "token": answer["token"]},
            headers={"Origin": self.origin},
            wait_timeout=10,
        )

    async def call(self, offer: str, candidates: list[str]) -> str:
        acked: asyncio.Future = asyncio.get_running_loop().create_future()

        def on_ack(*reply) -> None:
            if not acked.done():
                acked.set_result(reply[0] if reply else None)

        await self._client.emit("call:start", {"sdp": offer}, callback=on_ack)
        for candidate in [*candidates, ""]:
            mid = (None, None) if not candidate else ("0", 0)
            await self._client.emit(
                "call:candidate",
                {"candidate": candidate, "sdpMid": mid[0], "sdpMLineIndex": mid[1]},
            )
        ack = await asyncio.wait_for(acked, 15)
        if not ack or not ack.get("ok"):
            raise CallFailed(f"call:start refused: {ack and ack.get('error')}")
        return ack["sdp"]

    async def hangup(self) -> None:
        await self._client.call("call:hangup", {}, timeout=5)

    async def close(self) -> None:
        if self._client.connected:
            await self._client.disconnect()


class JanusSignaling(_States):
    """The Janus SIP plugin over the HTTP API, one session per visitor (as janus.js)."""

    PLUGIN = "janus.plugin.sip"

    def __init__(self, url: str, operator_uri: str, index: int) -> None:
        super().__init__()
        self.url = url
        self.operator_uri = operator_uri
        self.index = index
        self._http: aiohttp.ClientSession | None = None
        self._session: int | None = None
        self._handle: int | None = None
        self._poll: asyncio.Task | None = None
        self._answer: asyncio.Future | None = None
        self._registered = asyncio.Event()

    def _transaction(self) -> str:
        return f"{random.getrandbits(48):012x}"

    async def _post(self, path: str, body: dict) -> dict:
        assert self._http is not None
        body = {**body, "transaction": self._transaction()}
        async with self._http.post(f"{self.url}{path}", json=body) as response:
            reply = await response.json(content_type=None)
            if not isinstance(reply, dict):
                raise CallFailed(f"janus: HTTP {response.status}, no JSON reply to {body['janus']}")
        if reply.get("janus") == "error":
            raise CallFailed(f"janus: {reply['error']}")
        return reply

    async def open(self) -> None:
        # One connection for requests and one for the long poll, as a browser keeps them.
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2))
        self._session = (await self._post("", {"janus": "create"}))["data"]["id"]
        self._poll = asyncio.create_task(self._long_poll())
        reply = await self._post(f"/{self._session}", {"janus": "attach", "plugin": self.PLUGIN})
        self._handle = reply["data"]["id"]
        user = f"sip:visitor{self.index}@127.0.0.1"
        await self._message({"request": "register", "type": "guest", "username": user})
        await asyncio.wait_for(self._registered.wait(), 10)

    async def _message(self, body: dict, jsep: dict | None = None) -> None:
        request = {"janus": "message", "body": body}
        if jsep is not None:
            request["jsep"] = jsep
        await self._post(f"/{self._session}/{self._handle}", request)

    async def _long_poll(self) -> None:
        assert self._http is not None
        while True:
            try:
                async with self._http.get(
                    f"{self.url}/{self._session}", params={"maxev": "10"}
                ) as response:
                    events = await response.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError) as exc:
                if "ended" not in self.states:
                    self.error = self.error or f"long poll: {exc}"
                    self.note("ended", "long poll failed")
                return
            for event in events if isinstance(events, list) else [events]:
                if isinstance(event, dict):
                    self._on_event(event)

    def _on_event(self, event: dict) -> None:
        kind = event.get("janus")
        if kind == "hangup":  # the PeerConnection closed
            return
        if kind != "event":
            return
        data = (event.get("plugindata") or {}).get("data") or {}
        if "error" in data:
            self.error = f"janus sip: {data.get('error')}"
            self.note("ended", data.get("error_code"))
            return
        result = data.get("result") or {}
        name = result.get("event")
        if name == "registered":
            self._registered.set()
        elif name == "accepted":
            jsep = event.get("jsep")
            if self._answer is not None and not self._answer.done() and jsep:
                self._answer.set_result(jsep["sdp"])
            self.note("answered")
        elif name == "hangup":
            self.note("ended", result.get("reason"))

    async def call(self, offer: str, candidates: list[str]) -> str:
        self._answer = asyncio.get_running_loop().create_future()
        await self._message(
            {"request": "call", "uri": self.operator_uri}, {"type": "offer", "sdp": offer}
        )
        trickled = [{"candidate": c, "sdpMid": "0", "sdpMLineIndex": 0} for c in candidates]
        await self._post(
            f"/{self._session}/{self._handle}",
            {"janus": "trickle", "candidates": [*trickled, {"completed": True}]},
        )
        try:
            return await asyncio.wait_for(self._answer, 15)
        except TimeoutError:
            raise CallFailed(f"no answer from janus ({self.error or 'no event'})") from None

    async def hangup(self) -> None:
        await self._message({"request": "hangup"})

    async def close(self) -> None:
        if self._http is None:
            return
        with contextlib.suppress(aiohttp.ClientError, CallFailed, TimeoutError):
            if self._session is not None:
                await self._post(f"/{self._session}", {"janus": "destroy"})
        if self._poll is not None:
            self._poll.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poll
        await self._http.close()


def signaling_for(spec: dict, index: int) -> Signaling:
    """The signaling a visitor of this server uses (from the generator's spec)."""
    if spec["kind"] == "gateway":
        return GatewaySignaling(spec["url"], spec["origin"], spec["site"])
    if spec["kind"] == "janus":
        return JanusSignaling(spec["url"], spec["operator_uri"], index)
    raise ValueError(f"unknown server kind {spec['kind']!r}")
