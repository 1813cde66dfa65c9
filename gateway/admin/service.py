"""What the admin API and page show, gathered in one place: call records, callbacks, calls
in progress on every worker, destinations, per-site daily figures, and what visitors left
when nobody was there or wrote in a chat: voicemails, messages, conversations."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gateway.api import BadRequest, Clock
from gateway.calls.voicemail import voicemail_folder
from gateway.config import GatewayConfig
from gateway.storage import (
    OUTCOMES,
    CallbackStatus,
    CallRecord,
    Conversation,
    Database,
    LeftMessage,
    LiveRegistry,
    Voicemail,
)

logger = logging.getLogger(__name__)

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
STATS_DAYS = 7
MAX_STATS_DAYS = 92
CALLBACK_STATUSES = tuple(status.value for status in CallbackStatus)
CSV_FIELDS = (
    "id",
    "kind",
    "site",
    "started_at",
    "answered_at",
    "ended_at",
    "ring_seconds",
    "talk_seconds",
    "outcome",
    "end_cause",
    "destination",
    "client",
    "number",
    "page",
    "visitor_name",
    "visitor_reason",
    "visitor_source",
    "source",
    "rating",
    "rating_comment",
    "rated_at",
)


class Callbacks(Protocol):
    """The running Request-a-Call (gateway.callbacks.service.RequestACall)."""

    async def cancel(self, callback_id: str) -> CallbackStatus | None: ...
    async def place_again(self, callback_id: str) -> CallbackStatus | None: ...


@dataclass(frozen=True)
class Filters:
    site: str | None = None
    outcome: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = DEFAULT_LIMIT
    status: str | None = None  # callbacks only

    def query(self) -> dict[str, str]:
        """The filters as query parameters (for links: CSV export, the next page)."""
        values = {
            "site": self.site,
            "outcome": self.outcome,
            "status": self.status,
            "limit": str(self.limit),
        }
        for key in ("since", "until"):
            moment = getattr(self, key)
            if moment is not None:
                values[key] = _iso(moment)
        return {k: v for k, v in values.items() if v}


def parse_filters(
    query: Mapping[str, str], sites: tuple[str, ...], *, callbacks: bool = False
) -> Filters:
    """`site`, `outcome`, `since`, `until` (ISO 8601, or seconds since the epoch), `limit`
    (1-1000), and for callbacks `status`; raises BadRequest naming the bad one."""
    known = {"site", "outcome", "since", "until", "limit", *(("status",) if callbacks else ())}
    unknown = set(query) - known
    if unknown:
        raise BadRequest(f"unknown filter(s): {sorted(unknown)[:5]}")
    site = query.get("site") or None
    if site is not None and site not in sites:
        raise BadRequest(f"site: no site {site[:40]!r}", code="unknown_site")
    outcome = query.get("outcome") or None
    if outcome is not None and outcome not in OUTCOMES:
        raise BadRequest(f"outcome: one of {', '.join(OUTCOMES)}")
    status = query.get("status") or None
    if status is not None and status not in CALLBACK_STATUSES:
        raise BadRequest(f"status: one of {', '.join(CALLBACK_STATUSES)}")
    limit_text = query.get("limit") or str(DEFAULT_LIMIT)
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_LIMIT:
        raise BadRequest(f"limit: a whole number from 1 to {MAX_LIMIT}")
    return Filters(
        site,
        outcome,
        _moment(query.get("since"), "since"),
        _moment(query.get("until"), "until"),
        int(limit_text),
        status,
    )


def _moment(text: str | None, name: str) -> float | None:
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadRequest(
            f"{name}: an ISO 8601 time (2026-01-31T09:00:00+00:00) or seconds since the epoch"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _iso(moment: float | None) -> str:
    if moment is None:
        return ""
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="seconds")


class DestinationChecks(Protocol):
    def snapshot(self, site: str | None = None) -> list[dict[str, object]]: ...


class Deliveries(Protocol):
    async def deliveries(self, *, site: str | None = None, limit: int = 100) -> list[dict]: ...


class AdminService:
    def __init__(
        self,
        config: GatewayConfig,
        database: Database,
        callbacks: Callbacks | None,
        *,
        clock: Clock = time.time,
        health: DestinationChecks | None = None,
        notifier: Deliveries | None = None,
        live: LiveRegistry | None = None,
    ) -> None:
        self.config = config
        self.database = database
        # Calls in progress on every worker and node: the database's table, or Redis.
        self.live_registry: LiveRegistry = live if live is not None else database.live
        self.callbacks = callbacks
        self.clock = clock
        self.health = health  # None: no site checks its destinations
        self.notifier = notifier  # None: no site has webhooks or mail
        self.sites = tuple(site.id for site in config.sites)
        self.voicemail_folder = voicemail_folder(config)

    async def calls(self, filters: Filters) -> list[CallRecord]:
        return await self.database.records.find(
            site=filters.site,
            outcome=filters.outcome,
            since=filters.since,
            until=filters.until,
            limit=filters.limit,
        )

    async def call(self, call_id: str) -> CallRecord | None:
        return await self.database.records.get(call_id)

    async def delete_call(self, call_id: str) -> bool:
        """Forget a visitor's record (and, for a callback, the request with its number)."""
        record = await self.database.records.delete(call_id)
        callback = await self.database.callbacks.delete(call_id)
        return record is not None or callback

    async def callbacks_list(self, filters: Filters) -> list[dict[str, Any]]:
        found = await self.database.callbacks.find(
            site=filters.site,
            status=filters.status,
            outcome=filters.outcome,
            since=filters.since,
            until=filters.until,
            limit=filters.limit,
        )
        return [callback.admin() for callback in found]

    async def live(self) -> list[dict[str, Any]]:
        return [call.public() for call in await self.live_registry.all()]

    async def destinations(self) -> list[dict[str, Any]]:
        """Each site's destinations, with their health (null when the site does not check
        them: `health_interval = 0`) and the last time each answered a call (from the
        records of the last `retention_days`)."""
        health = {
            (h["site"], h["destination"]): {
                k: v for k, v in h.items() if k not in ("site", "destination")
            }
            for h in (self.health.snapshot() if self.health is not None else [])
        }
        answered: dict[str, float] = {}
        for record in await self.database.records.find(outcome="answered", limit=MAX_LIMIT):
            if record.destination and record.destination not in answered:
                answered[record.destination] = record.answered_at or record.started_at
        return [
            {
                "site": site.id,
                "destination": str(destination.uri),
                "health": health.get((site.id, str(destination.uri))),
                "last_answered_at": answered.get(str(destination.uri)),
            }
            for site in self.config.sites
            for destination in site.destinations
        ]

    async def registrations(self, site: str | None = None) -> list[dict[str, Any]]:
        """Each worker's registration with each site's trunk (`register = true`): its
        state, registrar, when the binding runs out or why it failed, when it changed; by
        site, then worker (docs/admin.md)."""
        return [status.public() for status in await self.database.registrations.all(site)]

    async def deliveries(self, site: str | None, limit: int) -> list[dict[str, Any]]:
        """The newest webhook and mail deliveries with their attempts (docs/admin.md)."""
        if self.notifier is None:
            return []
        return await self.notifier.deliveries(site=site, limit=limit)

    async def stats(self, days: int = STATS_DAYS, site: str | None = None) -> list[dict[str, Any]]:
        """Per site and day (UTC), newest day first: calls, answered, answered_percent,
        missed (missed + abandoned), average_wait_seconds (before an answer), talk_minutes.
        Callbacks are not counted: they are the site calling out."""
        today = dt.datetime.fromtimestamp(self.clock(), dt.UTC).date()
        first = today - dt.timedelta(days=days - 1)
        since = dt.datetime.combine(first, dt.time(), dt.UTC).timestamp()
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        records = await self.database.records.find(
            site=site, since=since, limit=1_000_000, kind="call"
        )
        for record in records:
            day = dt.datetime.fromtimestamp(record.started_at, dt.UTC).date().isoformat()
            row = rows.setdefault(
                (record.site, day),
                {
                    "site": record.site,
                    "day": day,
                    "calls": 0,
                    "answered": 0,
                    "missed": 0,
                    "_waits": [],
                    "_talk": 0.0,
                },
            )
            row["calls"] += 1
            if record.outcome == "answered":
                row["answered"] += 1
                row["_waits"].append(record.ring_seconds or 0.0)
                row["_talk"] += record.talk_seconds or 0.0
            elif record.outcome in ("missed", "abandoned"):
                row["missed"] += 1
        result = []
        for (_, _), row in sorted(
            rows.items(), key=lambda item: (item[0][1], item[0][0]), reverse=True
        ):
            waits, talk = row.pop("_waits"), row.pop("_talk")
            row["answered_percent"] = round(100 * row["answered"] / row["calls"], 1)
            row["average_wait_seconds"] = round(sum(waits) / len(waits), 1) if waits else None
            row["talk_minutes"] = round(talk / 60, 1)
            result.append(row)
        return result

    # ------------------------------------------------------------------ left for the site
    async def voicemails(self, site: str | None, limit: int) -> list[Voicemail]:
        return await self.database.voicemails.find(site=site, limit=limit)

    async def voicemail_file(self, voicemail_id: str) -> tuple[Voicemail, Path] | None:
        """A voicemail and where its audio is, or None."""
        voicemail = await self.database.voicemails.get(voicemail_id)
        if voicemail is None:
            return None
        return voicemail, self.voicemail_folder / Path(voicemail.file).name

    async def delete_voicemail(self, voicemail_id: str) -> bool:
        """Forget a voicemail: its row and its audio."""
        voicemail = await self.database.voicemails.delete(voicemail_id)
        if voicemail is None:
            return False
        self._remove_audio(voicemail.file)
        return True

    async def messages(self, site: str | None, limit: int) -> list[LeftMessage]:
        return await self.database.messages.find(site=site, limit=limit)

    async def delete_message(self, message_id: str) -> bool:
        return await self.database.messages.delete(message_id)

    async def conversations(self, site: str | None, limit: int) -> list[Conversation]:
        return await self.database.conversations.find(site=site, limit=limit)

    async def conversation(self, conversation_id: str) -> Conversation | None:
        return await self.database.conversations.get(conversation_id)

    async def delete_conversation(self, conversation_id: str) -> bool:
        return await self.database.conversations.delete(conversation_id)

    def _remove_audio(self, name: str) -> None:
        try:
            (self.voicemail_folder / Path(name).name).unlink(missing_ok=True)
        except OSError as exc:
            logger.warning("cannot delete the voicemail file %s: %s", name, exc)

    async def purge(self) -> int:
        """Forget what each site keeps no longer (`retention_days`); how many rows went."""
        now = self.clock()
        removed = 0
        for site in self.config.sites:
            before = now - site.retention_days * 86400
            removed += await self.database.records.purge(site.id, before)
            removed += await self.database.callbacks.purge(site.id, before)
            removed += await self.database.outbox.purge(site.id, before)
            files = await self.database.voicemails.purge(site.id, before)
            for name in files:
                self._remove_audio(name)
            removed += len(files)
            removed += await self.database.messages.purge(site.id, before)
            removed += await self.database.conversations.purge(site.id, before)
        return removed


def records_csv(records: list[CallRecord]) -> str:
    """The records as CSV (times in ISO 8601 UTC); cells that a spreadsheet would run as
    a formula are quoted with a leading apostrophe."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for record in records:
        values = record.public()
        row = []
        for name in CSV_FIELDS:
            value = values[name]
            if name.endswith("_at"):
                value = _iso(value)
            text = "" if value is None else str(value)
            if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
                text = "'" + text
            row.append(text)
        writer.writerow(row)
    return out.getvalue()
