"""Request-a-Call requests: validated, limited and stored (served over HTTP by
gateway.http.callbacks).

`POST /api/callbacks` `{"site", "number", "country"?, "name"?, "at"?, "page"?, "reason"?}`
-> `201 {"id", "status", "final", "due_at"}`; `GET /api/callbacks/{id}` -> its status and
history;
`DELETE /api/callbacks/{id}` cancels it while it waits for its time. Errors are
JSON `{"error": {"code", "message"}}` with the reason in words. The number is what the
visitor typed, read as a national number of `country` (an ISO 3166 code among the site's
countries: the widget's country choice) unless it starts with its `+`; `at` is an ISO 8601
time (with its offset) within the site's business hours.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from gateway.api import CALLBACK_MAX_DAYS_AHEAD, CallbackRefused
from gateway.callbacks.numbers import NumberRefused, callback_number
from gateway.sites.hours import ALWAYS_OPEN, BusinessHours
from gateway.storage import Callback, CallbackStatus, CallbackStore
from gateway.text import (
    MAX_NAME_CHARS,
    MAX_REASON_CHARS,
    clean_page_url,
    clean_visitor_name,
    clean_visitor_text,
    clipped,
    origin_of,
)

logger = logging.getLogger(__name__)

CALLBACK_FIELDS = frozenset({"site", "number", "country", "name", "at", "page", "reason"})


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


class CallbackRequests:
    """Takes callback requests for the sites that have Request-a-Call on."""

    def __init__(
        self,
        store: CallbackStore,
        policies: Callable[[str], SiteCallbacks | None],
        *,
        clock: Callable[[], float] = time.time,
        admit: Callable[[str, str], Awaitable[None]] | None = None,
        on_added: Callable[[Callback], None] | None = None,
        on_cancelled: Callable[[Callback], None] | None = None,
    ) -> None:
        """`admit(site, client)` may refuse a valid request just before it is stored, by
        raising CallbackRefused (the visitor's call windows)."""
        self.store = store
        self.policies = policies
        self.clock = clock
        self.admit = admit
        self.on_added = on_added
        self.on_cancelled = on_cancelled

    async def request(self, payload: object, *, client: str) -> dict:
        """Validate, limit and store a request. A `page` not on one of the policy's
        `page_origins` is dropped: the operator is only told of the site's own pages."""
        if not isinstance(payload, dict):
            raise CallbackRefused("bad_request", "Send a JSON object.", status=400)
        extra = set(payload) - CALLBACK_FIELDS
        if extra:
            raise CallbackRefused("bad_request", f"Unknown field(s): {sorted(extra)}.", status=400)
        site_id = payload.get("site")
        policy = self.policies(site_id) if isinstance(site_id, str) else None
        if policy is None:
            raise CallbackRefused("unknown_site", "This site does not take callbacks.", status=404)
        country = payload.get("country")
        if country is not None and (not isinstance(country, str) or len(country) > 8):
            raise CallbackRefused("bad_request", "country must be a country code.", status=400)
        try:
            number = callback_number(payload.get("number"), policy.countries, country)
        except NumberRefused as exc:
            raise CallbackRefused(exc.code, exc.message, status=400) from None
        details = {}
        page = payload.get("page")
        if page is not None and page != "":
            if not isinstance(page, str):
                raise CallbackRefused("bad_request", "page must be a URL.", status=400)
            try:
                page = clean_page_url(page)
            except ValueError as exc:
                raise CallbackRefused("bad_request", f"page {exc}.", status=400) from None
            if origin_of(page) in policy.page_origins:
                details["page"] = page
        for key, most in (("name", MAX_NAME_CHARS), ("reason", MAX_REASON_CHARS)):
            value = payload.get(key)
            if value is None or value == "":
                continue
            if not isinstance(value, str):
                raise CallbackRefused("bad_request", f"{key} must be text.", status=400)
            try:
                details[key] = (
                    clean_visitor_name(value) if key == "name" else clean_visitor_text(value, most)
                )
            except ValueError as exc:
                raise CallbackRefused("bad_request", f"{key} {exc}.", status=400) from None
        now = self.clock()
        due = self._due_time(payload.get("at"), policy, now)
        since = now - 86400
        if await self.store.count_for_number(number, since) >= policy.per_number_daily:
            logger.warning(
                "callback refused: daily limit for a number reached (site %s, %s)",
                policy.site,
                clipped(client, 64),
            )
            raise CallbackRefused(
                "number_limit", "This number has asked for enough callbacks today.", status=429
            )
        if self.admit is not None:
            await self.admit(policy.site, client)
        callback = await self.store.add(
            site=policy.site, number=number, details=details, due_at=due, now=now
        )
        logger.info(
            "callback %s requested: site %s from %s, due in %.0f s",
            callback.id,
            policy.site,
            clipped(client, 64),
            due - now,
        )
        if self.on_added is not None:
            self.on_added(callback)
        return {
            "id": callback.id,
            "status": callback.status.value,
            "final": callback.status.final,
            "due_at": callback.due_at,
        }

    def _due_time(self, at: object, policy: SiteCallbacks, now: float) -> float:
        current = dt.datetime.fromtimestamp(now, dt.UTC)
        if at is None or at == "":
            if not policy.hours.is_open(current):
                opening = policy.hours.next_opening(current)
                note = f" We open again {opening.isoformat(timespec='minutes')}." if opening else ""
                raise CallbackRefused(
                    "closed", "We are closed now: choose a time." + note, status=409
                )
            return now
        if not isinstance(at, str):
            raise CallbackRefused("bad_time", "at must be an ISO 8601 time.", status=400)
        try:
            when = dt.datetime.fromisoformat(at)
        except ValueError:
            raise CallbackRefused("bad_time", "at must be an ISO 8601 time.", status=400) from None
        if when.tzinfo is None:
            raise CallbackRefused("bad_time", "at needs a time zone offset.", status=400)
        if when.timestamp() < now - 60:
            raise CallbackRefused("bad_time", "That time has passed.", status=400)
        if when.timestamp() > now + policy.max_days_ahead * 86400:
            raise CallbackRefused(
                "bad_time", f"Choose a time within {policy.max_days_ahead} days.", status=400
            )
        if not policy.hours.is_open(when):
            raise CallbackRefused("closed", "We are closed at that time.", status=409)
        return max(when.timestamp(), now)

    async def cancel(self, callback_id: str) -> dict:
        """Cancel a scheduled callback (whoever knows its id: the page that asked)."""
        status = await self.store.cancel(callback_id, self.clock())
        if status is None:
            raise CallbackRefused("unknown_callback", "No such callback.", status=404)
        if status is CallbackStatus.DIALING:
            raise CallbackRefused(
                "callback_in_progress", "The call back is being placed already.", status=409
            )
        if status is not CallbackStatus.CANCELLED:
            raise CallbackRefused("callback_over", "The call back is over already.", status=409)
        logger.info("callback %s cancelled by the visitor", callback_id)
        callback = await self.store.get(callback_id)
        if callback is not None and self.on_cancelled is not None:
            self.on_cancelled(callback)
        if callback is None:
            raise CallbackRefused("unknown_callback", "No such callback.", status=404)
        return callback.public()

    async def status(self, callback_id: str) -> dict:
        callback = await self.store.get(callback_id)
        if callback is None:
            raise CallbackRefused("unknown_callback", "No such callback.", status=404)
        return callback.public()
