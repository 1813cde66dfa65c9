"""Request-a-Call requests: validated, limited, stored, and served over HTTP.

`POST /api/callbacks` `{"site", "number", "name"?, "at"?, "page"?, "reason"?}` -> `201
{"id", "status", "due_at"}`; `GET /api/callbacks/{id}` -> its status and history;
`DELETE /api/callbacks/{id}` cancels it while it waits for its time. Errors are
JSON `{"error": {"code", "message"}}` with the reason in words. The number is what the
visitor typed; `at` is an ISO 8601 time (with its offset) within the site's business hours.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from .callback_store import CallbackStore
from .hours import ALWAYS_OPEN, BusinessHours
from .http_app import api_response
from .phone_numbers import NumberRefused, callback_number
from .service import CALLBACK_MAX_DAYS_AHEAD
from .visitor_page import (
    MAX_NAME_CHARS,
    MAX_REASON_CHARS,
    clean_page_url,
    clean_visitor_text,
    origin_of,
)

logger = logging.getLogger(__name__)

MAX_BODY = 4096


@dataclass(frozen=True)
class SiteCallbacks:
    """A site's Request-a-Call policy."""

    site: str
    countries: tuple[str, ...]
    hours: BusinessHours = ALWAYS_OPEN
    per_number_daily: int = 3  # requests per destination number per day
    max_days_ahead: int = CALLBACK_MAX_DAYS_AHEAD
    # Origins whose pages the operator may be told of: the site's and the gateway's own
    # (the iframe's page is the gateway's; it sends the site's page it is framed in).
    page_origins: frozenset[str] = frozenset()


class CallbackRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class CallbackRequests:
    """Takes callback requests for the sites that have Request-a-Call on."""

    def __init__(
        self,
        store: CallbackStore,
        policies: Callable[[str], SiteCallbacks | None],
        *,
        clock: Callable[[], float] = time.time,
        admit: Callable[[str, str], None] | None = None,
        on_added: Callable[[], None] | None = None,
    ) -> None:
        """`admit(site, client)` may refuse a valid request just before it is stored, by
        raising CallbackRefused (the visitor's call windows)."""
        self.store = store
        self.policies = policies
        self.clock = clock
        self.admit = admit
        self.on_added = on_added

    async def request(self, payload: object, *, client: str) -> dict:
        """Validate, limit and store a request. A `page` not on one of the policy's
        `page_origins` is dropped: the operator is only told of the site's own pages."""
        if not isinstance(payload, dict):
            raise CallbackRefused(400, "bad_request", "Send a JSON object.")
        allowed = {"site", "number", "name", "at", "page", "reason"}
        extra = set(payload) - allowed
        if extra:
            raise CallbackRefused(400, "bad_request", f"Unknown field(s): {sorted(extra)}.")
        site_id = payload.get("site")
        policy = self.policies(site_id) if isinstance(site_id, str) else None
        if policy is None:
            raise CallbackRefused(404, "unknown_site", "This site does not take callbacks.")
        try:
            number = callback_number(payload.get("number"), policy.countries)
        except NumberRefused as exc:
            raise CallbackRefused(400, exc.code, exc.message) from None
        details = {}
        page = payload.get("page")
        if page is not None and page != "":
            if not isinstance(page, str):
                raise CallbackRefused(400, "bad_request", "page must be a URL.")
            try:
                page = clean_page_url(page)
            except ValueError as exc:
                raise CallbackRefused(400, "bad_request", f"page {exc}.") from None
            if origin_of(page) in policy.page_origins:
                details["page"] = page
        for key, most in (("name", MAX_NAME_CHARS), ("reason", MAX_REASON_CHARS)):
            value = payload.get(key)
            if value is None or value == "":
                continue
            if not isinstance(value, str):
                raise CallbackRefused(400, "bad_request", f"{key} must be text.")
            try:
                details[key] = clean_visitor_text(value, most)
            except ValueError as exc:
                raise CallbackRefused(400, "bad_request", f"{key} {exc}.") from None
        now = self.clock()
        due = self._due_time(payload.get("at"), policy, now)
        since = now - 86400
        if await self.store.count_for_number(number, since) >= policy.per_number_daily:
            logger.warning(
                "callback refused: daily limit for a number reached (site %s, %s)",
                policy.site,
                client,
            )
            raise CallbackRefused(
                429, "number_limit", "This number has asked for enough callbacks today."
            )
        if self.admit is not None:
            self.admit(policy.site, client)
        callback = await self.store.add(
            site=policy.site, number=number, details=details, due_at=due, now=now
        )
        logger.info(
            "callback %s requested: site %s from %s, due in %.0f s",
            callback.id,
            policy.site,
            client,
            due - now,
        )
        if self.on_added is not None:
            self.on_added()
        return {"id": callback.id, "status": callback.status, "due_at": callback.due_at}

    def _due_time(self, at: object, policy: SiteCallbacks, now: float) -> float:
        current = dt.datetime.fromtimestamp(now, dt.UTC)
        if at is None or at == "":
            if not policy.hours.is_open(current):
                opening = policy.hours.next_opening(current)
                when = f" We open again {opening.isoformat(timespec='minutes')}." if opening else ""
                raise CallbackRefused(409, "closed", "We are closed now: choose a time." + when)
            return now
        if not isinstance(at, str):
            raise CallbackRefused(400, "bad_time", "at must be an ISO 8601 time.")
        try:
            when = dt.datetime.fromisoformat(at)
        except ValueError:
            raise CallbackRefused(400, "bad_time", "at must be an ISO 8601 time.") from None
        if when.tzinfo is None:
            raise CallbackRefused(400, "bad_time", "at needs a time zone offset.")
        if when.timestamp() < now - 60:
            raise CallbackRefused(400, "bad_time", "That time has passed.")
        if when.timestamp() > now + policy.max_days_ahead * 86400:
            raise CallbackRefused(
                400, "bad_time", f"Choose a time within {policy.max_days_ahead} days."
            )
        if not policy.hours.is_open(when):
            raise CallbackRefused(409, "closed", "We are closed at that time.")
        return max(when.timestamp(), now)

    async def cancel(self, callback_id: str) -> dict:
        """Cancel a scheduled callback (whoever knows its id: the page that asked)."""
        status = await self.store.cancel(callback_id, self.clock())
        if status is None:
            raise CallbackRefused(404, "unknown_callback", "No such callback.")
        if status == "dialing":
            raise CallbackRefused(
                409, "callback_in_progress", "The call back is being placed already."
            )
        if status != "cancelled":
            raise CallbackRefused(409, "callback_over", "The call back is over already.")
        logger.info("callback %s cancelled by the visitor", callback_id)
        return await self.status(callback_id)

    async def status(self, callback_id: str) -> dict:
        callback = await self.store.get(callback_id)
        if callback is None:
            raise CallbackRefused(404, "unknown_callback", "No such callback.")
        return callback.public()


async def read_payload(request: web.Request) -> object:
    """The JSON body of a callback request (read once, kept by aiohttp for re-reads)."""
    if (request.content_length or 0) > MAX_BODY:
        raise CallbackRefused(413, "too_large", "The request is too large.")
    body = await request.read()
    if len(body) > MAX_BODY:
        raise CallbackRefused(413, "too_large", "The request is too large.")
    try:
        return json.loads(body or b"null")
    except ValueError:
        raise CallbackRefused(400, "bad_request", "Send a JSON object.") from None


Authorize = Callable[[web.Request, object], Awaitable[None]]


def callback_routes(
    requests: CallbackRequests, *, authorize: Authorize | None = None
) -> list[web.RouteDef]:
    """The routes; `authorize(request, payload)` (e.g. a call-token check) may refuse a
    request by raising `CallbackRefused`. Answers carry CORS headers for the site's pages."""

    async def create(request: web.Request) -> web.Response:
        try:
            payload = await read_payload(request)
            if authorize is not None:
                await authorize(request, payload)
            result = await requests.request(payload, client=request.remote or "?")
        except CallbackRefused as exc:
            return _error(request, exc)
        return api_response(request, result, 201)

    async def show(request: web.Request) -> web.Response:
        try:
            return api_response(request, await requests.status(request.match_info["id"]))
        except CallbackRefused as exc:
            return _error(request, exc)

    async def cancel(request: web.Request) -> web.Response:
        try:
            return api_response(request, await requests.cancel(request.match_info["id"]))
        except CallbackRefused as exc:
            return _error(request, exc)

    async def preflight(request: web.Request) -> web.Response:
        response = api_response(request, None, 204)
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
        response.headers["Access-Control-Max-Age"] = "600"
        return response

    return [
        web.post("/api/callbacks", create),
        web.route("OPTIONS", "/api/callbacks", preflight),
        web.get("/api/callbacks/{id}", show),
        web.delete("/api/callbacks/{id}", cancel),
        web.route("OPTIONS", "/api/callbacks/{id}", preflight),
    ]


def _error(request: web.Request, exc: CallbackRefused) -> web.Response:
    return api_response(request, {"error": {"code": exc.code, "message": exc.message}}, exc.status)
