"""The JSON API's one reader and one writer: every route reads its body with `read_json` and
answers with `api_response`; a `Refusal` raised by a handler becomes its JSON error
(`refusals` middleware), so no route formats an error of its own.

The reader refuses, each with a clear 4xx and nothing else changed: a body that is not
`application/json` (415), larger than the route's cap or without a Content-Length (413),
not whole within the application's `BODY_TIMEOUT` (408: a client sending a byte now and
then must not hold the handler), not JSON or not UTF-8 (400), nested deeper than
`MAX_DEPTH` (400: a `[[[[...` body would otherwise reach Python's recursion limit), or,
with `fields`, an object with keys the route does not take (400).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Awaitable, Callable, Collection

from aiohttp import web

from gateway.api import BadRequest, Refusal

MAX_DEPTH = 8  # the deepest body a route takes is an object holding an object (a proof)
# What a CORS origin may look like to be echoed back; anything else gets no CORS header.
_ORIGIN = re.compile(r"https?://([A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# Seconds a request body may take to arrive (the application's `http.request_timeout`).
BODY_TIMEOUT = web.AppKey("body_timeout", float)
DEFAULT_BODY_TIMEOUT = 10.0


async def read_json(
    request: web.Request, *, max_bytes: int, fields: Collection[str] | None = None
) -> object:
    """The request's JSON body; raises `BadRequest`. With `fields`, the body must be an
    object whose keys are among them."""
    if request.content_type != "application/json":
        raise BadRequest(
            "the request body must be JSON (Content-Type: application/json)", status=415
        )
    length = request.content_length
    if length is None or length > max_bytes:
        raise BadRequest(
            f"the request body must have a Content-Length of at most {max_bytes} bytes",
            code="too_large",
            status=413,
        )
    try:
        async with asyncio.timeout(request.config_dict.get(BODY_TIMEOUT, DEFAULT_BODY_TIMEOUT)):
            data = await request.read()  # no more than the Content-Length checked above
    except TimeoutError:
        raise BadRequest(
            "the request body did not arrive in time", code="request_timeout", status=408
        ) from None
    if _depth(data) > MAX_DEPTH:
        raise BadRequest(f"the request body is nested deeper than {MAX_DEPTH} levels")
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):  # ValueError covers bad UTF-8 too
        raise BadRequest("the request body is not valid JSON") from None
    if fields is not None:
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        unknown = sorted(set(body) - set(fields))
        if unknown:
            shown = ", ".join(repr(key[:40]) for key in unknown[:5])
            raise BadRequest(f"unknown field(s): {shown}; this route takes {sorted(fields)}")
    return body


def _depth(data: bytes) -> int:
    """How deep brackets nest in `data`, outside strings (before parsing: a deep body is
    refused without building it)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def api_response(request: web.Request, payload: object, status: int = 200) -> web.Response:
    """A JSON answer (or an empty one for `None`), never cached, readable by the page that
    asked: the API serves pages of other origins, and carries no cookies."""
    if payload is None:
        response = web.Response(status=status)
    else:
        response = web.json_response(payload, status=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Vary"] = "Origin"
    origin = request.headers.get("Origin")
    if origin is not None and _ORIGIN.fullmatch(origin):
        response.headers["Access-Control-Allow-Origin"] = origin
    return response


def refusal_response(request: web.Request, refusal: Refusal) -> web.Response:
    response = api_response(request, refusal.payload(), refusal.status)
    if refusal.retry_after is not None:  # HTTP's is whole seconds
        response.headers["Retry-After"] = str(max(1, math.ceil(refusal.retry_after)))
    return response


def preflight(methods: str, headers: str = "Content-Type") -> Handler:
    """A CORS preflight answer: any origin may ask; the request itself decides."""

    async def answer(request: web.Request) -> web.Response:
        response = api_response(request, None, 204)
        response.headers["Access-Control-Allow-Methods"] = methods
        response.headers["Access-Control-Allow-Headers"] = headers
        response.headers["Access-Control-Max-Age"] = "600"
        return response

    return answer


@web.middleware
async def refusals(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Any `Refusal` a handler raises is answered as its JSON error."""
    try:
        return await handler(request)
    except Refusal as refusal:
        return refusal_response(request, refusal)


def is_origin(text: str) -> bool:
    """Whether `text` is a plain http(s) origin (safe to put in a header)."""
    return _ORIGIN.fullmatch(text) is not None
