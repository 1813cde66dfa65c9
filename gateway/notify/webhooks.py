"""Webhook delivery: one signed POST per attempt, as the Standard Webhooks specification says.

Headers: `webhook-id` (the outbox row's id, the same on every retry), `webhook-timestamp`
(seconds, this attempt's: receivers refuse old ones) and `webhook-signature`
(`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, by the `standardwebhooks` library with
the endpoint's `whsec_` secret). The body is the event's JSON. A 2xx answer delivers it;
anything else (another status, a redirect, no answer within `timeout`) is a failed attempt.

The secret is looked up in the configuration at each attempt, never stored in the outbox:
an endpoint removed from the configuration ends its deliveries.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import aiohttp
from standardwebhooks import Webhook

from gateway.config import GatewayConfig
from gateway.notify.delivery import DeliveryError
from gateway.notify.outbox import OutboxEvent
from gateway.sites.notifications import WebhookEndpoint

USER_AGENT = "click-to-call-gateway-webhooks"
MAX_READ = 4096  # bytes of a receiver's answer read (and dropped), to reuse the connection


def shown_url(url: str) -> str:
    """A URL as logs and errors show it: scheme, host and path, never a query (receivers
    sometimes put a token there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def encode_body(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def signed_headers(
    endpoint_secret: str, message_id: str, sent_at: float, body: bytes
) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt."""
    stamp = dt.datetime.fromtimestamp(sent_at, dt.UTC)
    signature = Webhook(endpoint_secret).sign(message_id, stamp, body)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent_at)),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


class WebhookSender:
    channel = "webhook"

    def __init__(
        self,
        config: GatewayConfig,
        *,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.clock = clock
        self._session: aiohttp.ClientSession | None = None

    def _endpoint(self, event: OutboxEvent) -> WebhookEndpoint:
        site = self.config.site(event.site)
        url = event.payload.get("url")
        for endpoint in site.webhooks if site is not None else ():
            if endpoint.url == url:
                return endpoint
        raise DeliveryError("this webhook is no longer configured", permanent=True)

    async def deliver(self, event: OutboxEvent) -> None:
        endpoint = self._endpoint(event)
        body = encode_body(event.payload["event"])
        headers = signed_headers(endpoint.secret, event.id, self.clock(), body)
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
        try:
            async with self._session.post(
                endpoint.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                await response.content.read(MAX_READ)
                status = response.status
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            raise DeliveryError(f"POST {shown_url(endpoint.url)}: {reason}") from None
        if not 200 <= status < 300:
            raise DeliveryError(f"POST {shown_url(endpoint.url)}: HTTP {status}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
