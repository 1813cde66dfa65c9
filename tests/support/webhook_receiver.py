"""A real HTTP endpoint for the gateway's webhooks: it verifies each request with the
Standard Webhooks library, as a site owner's receiver would, and keeps what came."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiohttp import web
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from .ports import free_port_block

__all__ = ["Delivery", "WebhookReceiver"]


@dataclass(frozen=True)
class Delivery:
    """One request: its id and timestamp headers, whether its signature verified, the
    status it was answered with, the parsed body (None when it did not verify)."""

    webhook_id: str
    timestamp: str
    verified: bool
    status: int
    body: dict | None
    received_at: float = field(default_factory=time.monotonic)


class WebhookReceiver:
    """POST endpoint at `url`. `fail_first` = N answers the first N attempts of each
    webhook-id with 500 (then 204)."""

    def __init__(self, secret: str, *, fail_first: int = 0, path: str = "/hooks/calls") -> None:
        self.secret = secret
        self.fail_first = fail_first
        self.path = path
        self.port = free_port_block(1)
        self.deliveries: list[Delivery] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}?token=visible-only-here"

    async def start(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post(self.path, self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        data = await request.read()
        headers = dict(request.headers)
        try:
            body = Webhook(self.secret).verify(data, headers)
            verified = True
        except WebhookVerificationError:
            body, verified = None, False
        webhook_id = request.headers.get("webhook-id", "")
        earlier = sum(1 for d in self.deliveries if d.webhook_id == webhook_id)
        status = 500 if not verified or earlier < self.fail_first else 204
        self.deliveries.append(
            Delivery(
                webhook_id, request.headers.get("webhook-timestamp", ""), verified, status, body
            )
        )
        return web.Response(status=status)

    def of_type(self, event_type: str) -> list[Delivery]:
        return [d for d in self.deliveries if d.body and d.body.get("type") == event_type]

    async def wait_for(self, check, timeout: float = 15.0) -> None:
        """Until `check(self.deliveries)` is true."""
        deadline = time.monotonic() + timeout
        while not check(self.deliveries):
            assert time.monotonic() < deadline, self.deliveries
            await asyncio.sleep(0.05)
