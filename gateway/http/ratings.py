"""A visitor's rating of the call they had: `POST /api/calls/{call_id}/rating` with
`{"proof", "rating": 1-5, "comment"?}` (docs/signaling.md), and its CORS preflight. The
proof is what the page got with the end of the answered call; gateway.calls.ratings checks
and keeps it."""

from __future__ import annotations

from aiohttp import web

from gateway.calls.ratings import RATING_FIELDS, CallRatings
from gateway.http.json_api import api_response, preflight, read_json

MAX_BODY = 4096


def rating_routes(ratings: CallRatings) -> list[web.RouteDef]:
    async def rate(request: web.Request) -> web.Response:
        body = await read_json(request, max_bytes=MAX_BODY, fields=RATING_FIELDS)
        taken = await ratings.rate(request.match_info["call_id"][:64], body)
        return api_response(request, {"call_id": taken.call_id, "rating": taken.rating}, 201)

    return [
        web.post("/api/calls/{call_id}/rating", rate),
        web.route("OPTIONS", "/api/calls/{call_id}/rating", preflight("POST")),
    ]
