"""Request-a-Call over HTTP (docs/callbacks.md): `POST /api/callbacks` (with a call token),
`GET` and `DELETE /api/callbacks/{id}`, and their CORS preflights. The requests themselves
are validated, limited and stored by gateway.callbacks.requests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from gateway.callbacks.requests import CALLBACK_FIELDS, CallbackRequests
from gateway.http.json_api import api_response, preflight, read_json

MAX_BODY = 4096

# authorize(site_id, token, origin): refuse a request (raise a Refusal) without a call
# token for the site from a page of an origin it allows.
Authorize = Callable[[object, str, str], Awaitable[None]]


def callback_routes(
    requests: CallbackRequests, *, authorize: Authorize | None = None
) -> list[web.RouteDef]:
    """The routes; answers carry CORS headers for the site's pages, refusals are JSON
    errors (gateway.http.json_api)."""

    async def create(request: web.Request) -> web.Response:
        payload = await read_json(request, max_bytes=MAX_BODY, fields=CALLBACK_FIELDS)
        if authorize is not None:
            token = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            site = payload.get("site") if isinstance(payload, dict) else None
            await authorize(site, token, request.headers.get("Origin", ""))
        result = await requests.request(payload, client=request.remote or "?")
        return api_response(request, result, 201)

    async def show(request: web.Request) -> web.Response:
        return api_response(request, await requests.status(request.match_info["id"]))

    async def cancel(request: web.Request) -> web.Response:
        return api_response(request, await requests.cancel(request.match_info["id"]))

    answer_preflight = preflight("GET, POST, DELETE", "Content-Type, Authorization")
    return [
        web.post("/api/callbacks", create),
        web.route("OPTIONS", "/api/callbacks", answer_preflight),
        web.get("/api/callbacks/{id}", show),
        web.delete("/api/callbacks/{id}", cancel),
        web.route("OPTIONS", "/api/callbacks/{id}", answer_preflight),
    ]
