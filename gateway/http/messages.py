"""Click-to-text over HTTP: `POST /api/messages` (with a call token), a written message left
for the site with a way back (gateway.chat.left), and its CORS preflight."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.chat.left import LeftMessages
from gateway.http.json_api import api_response, preflight, read_json

# The longest message (1000 characters of up to 4 UTF-8 bytes) and every other field.
MAX_BODY = 8 * 1024

# authorize(site_id, token, origin): refuse (raise a Refusal) without a call token for the
# site from a page of an origin it allows.
Authorize = Callable[[object, str, str], Awaitable[None]]


def message_routes(messages: LeftMessages, *, authorize: Authorize) -> list[web.RouteDef]:
    async def create(request: web.Request) -> web.Response:
        payload = await read_json(request, max_bytes=MAX_BODY)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        site = payload.get("site") if isinstance(payload, dict) else None
        await authorize(site, token, request.headers.get("Origin", ""))
        result = await messages.leave(payload, client=request.remote or "?")
        return api_response(request, result, 201)

    return [
        web.post("/api/messages", create),
        web.route("OPTIONS", "/api/messages", preflight("POST", "Content-Type, Authorization")),
    ]
