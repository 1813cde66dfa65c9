"""The admin API (docs/admin.md): JSON, `Authorization: Bearer <key>` with one of
`[admin] api_keys`. Present only when keys are configured.

    GET    /api/admin/calls?site=&outcome=&since=&until=&limit=   {"calls": [record...]}
    GET    /api/admin/calls/{id}                                   record
    DELETE /api/admin/calls/{id}                                   forget one visitor's call
    GET    /api/admin/callbacks?site=&outcome=&status=&since=&until=&limit= {"callbacks": []}
    GET    /api/admin/live                                         {"calls": [live call...]}
    GET    /api/admin/destinations                                 {"destinations": [...]}
    GET    /api/admin/deliveries?site=&limit=                      {"deliveries": [...]}
    GET    /api/admin/registrations?site=                          {"registrations": [...]}
    GET    /api/admin/stats?days=&site=                            {"days": [...]}
    GET    /api/admin/voicemails?site=&limit=                      {"voicemails": [...]}
    GET    /api/admin/voicemails/{id}/audio                        the Ogg/Opus file
    DELETE /api/admin/voicemails/{id}                              forget it (and its audio)
    GET    /api/admin/messages?site=&limit=                        {"messages": [...]}
    DELETE /api/admin/messages/{id}
    GET    /api/admin/conversations?site=&limit=                   {"conversations": [...]}
    GET    /api/admin/conversations/{id}                           with its messages
    DELETE /api/admin/conversations/{id}
"""

from __future__ import annotations

from aiohttp import web

from gateway.admin.auth import bearer_key_valid
from gateway.admin.service import (
    MAX_STATS_DAYS,
    STATS_DAYS,
    AdminService,
    parse_filters,
)
from gateway.api import BadRequest, Refusal
from gateway.http.json_api import api_response
from gateway.http.voicemails import audio_response
from gateway.monitoring.metrics import CONTENT_TYPE, Metrics


class AdminRefused(Refusal):
    """No or a wrong API key (401), or no such record (404)."""

    status = 401


def admin_api_routes(service: AdminService, keys: tuple[str, ...]) -> list[web.RouteDef]:
    def authorized(request: web.Request) -> None:
        if not bearer_key_valid(request, keys):
            raise AdminRefused("unauthorized", "an admin API key is required (Bearer)")

    async def calls(request: web.Request) -> web.Response:
        authorized(request)
        filters = parse_filters(request.query, service.sites)
        found = await service.calls(filters)
        return _json(request, {"calls": [record.public() for record in found]})

    async def call(request: web.Request) -> web.Response:
        authorized(request)
        record = await service.call(request.match_info["id"])
        if record is None:
            raise AdminRefused("unknown_call", "no such call", status=404)
        return _json(request, record.public())

    async def delete_call(request: web.Request) -> web.Response:
        authorized(request)
        if not await service.delete_call(request.match_info["id"]):
            raise AdminRefused("unknown_call", "no such call", status=404)
        return _json(request, {"deleted": request.match_info["id"]})

    async def callbacks(request: web.Request) -> web.Response:
        authorized(request)
        filters = parse_filters(request.query, service.sites, callbacks=True)
        return _json(request, {"callbacks": await service.callbacks_list(filters)})

    async def live(request: web.Request) -> web.Response:
        authorized(request)
        return _json(request, {"calls": await service.live()})

    async def destinations(request: web.Request) -> web.Response:
        authorized(request)
        return _json(request, {"destinations": await service.destinations()})

    async def registrations(request: web.Request) -> web.Response:
        authorized(request)
        unknown = set(request.query) - {"site"}
        if unknown:
            raise BadRequest(f"unknown filter(s): {sorted(unknown)[:5]} (site)")
        filters = parse_filters(request.query, service.sites)
        return _json(request, {"registrations": await service.registrations(filters.site)})

    async def deliveries(request: web.Request) -> web.Response:
        authorized(request)
        unknown = set(request.query) - {"site", "limit"}
        if unknown:
            raise BadRequest(f"unknown filter(s): {sorted(unknown)[:5]} (site, limit)")
        filters = parse_filters(request.query, service.sites)
        found = await service.deliveries(filters.site, filters.limit)
        return _json(request, {"deliveries": found})

    async def stats(request: web.Request) -> web.Response:
        authorized(request)
        days, site = stats_query(request, service)
        return _json(request, {"days": await service.stats(days, site)})

    def site_and_limit(request: web.Request) -> tuple[str | None, int]:
        unknown = set(request.query) - {"site", "limit"}
        if unknown:
            raise BadRequest(f"unknown filter(s): {sorted(unknown)[:5]} (site, limit)")
        filters = parse_filters(request.query, service.sites)
        return filters.site, filters.limit

    async def voicemails(request: web.Request) -> web.Response:
        authorized(request)
        found = await service.voicemails(*site_and_limit(request))
        return _json(request, {"voicemails": [v.public() for v in found]})

    async def voicemail_audio(request: web.Request) -> web.StreamResponse:
        authorized(request)
        found = await service.voicemail_file(request.match_info["id"])
        if found is None:
            raise AdminRefused("unknown_voicemail", "no such voicemail", status=404)
        voicemail, path = found
        return audio_response(path, voicemail.id)

    async def delete_voicemail(request: web.Request) -> web.Response:
        authorized(request)
        if not await service.delete_voicemail(request.match_info["id"]):
            raise AdminRefused("unknown_voicemail", "no such voicemail", status=404)
        return _json(request, {"deleted": request.match_info["id"]})

    async def messages(request: web.Request) -> web.Response:
        authorized(request)
        found = await service.messages(*site_and_limit(request))
        return _json(request, {"messages": [m.public() for m in found]})

    async def delete_message(request: web.Request) -> web.Response:
        authorized(request)
        if not await service.delete_message(request.match_info["id"]):
            raise AdminRefused("unknown_message", "no such message", status=404)
        return _json(request, {"deleted": request.match_info["id"]})

    async def conversations(request: web.Request) -> web.Response:
        authorized(request)
        found = await service.conversations(*site_and_limit(request))
        return _json(request, {"conversations": [c.public() for c in found]})

    async def conversation(request: web.Request) -> web.Response:
        authorized(request)
        found = await service.conversation(request.match_info["id"])
        if found is None:
            raise AdminRefused("unknown_conversation", "no such conversation", status=404)
        return _json(request, found.public())

    async def delete_conversation(request: web.Request) -> web.Response:
        authorized(request)
        if not await service.delete_conversation(request.match_info["id"]):
            raise AdminRefused("unknown_conversation", "no such conversation", status=404)
        return _json(request, {"deleted": request.match_info["id"]})

    return [
        web.get("/api/admin/voicemails", voicemails),
        web.get("/api/admin/voicemails/{id}/audio", voicemail_audio),
        web.delete("/api/admin/voicemails/{id}", delete_voicemail),
        web.get("/api/admin/messages", messages),
        web.delete("/api/admin/messages/{id}", delete_message),
        web.get("/api/admin/conversations", conversations),
        web.get("/api/admin/conversations/{id}", conversation),
        web.delete("/api/admin/conversations/{id}", delete_conversation),
        web.get("/api/admin/calls", calls),
        web.get("/api/admin/calls/{id}", call),
        web.delete("/api/admin/calls/{id}", delete_call),
        web.get("/api/admin/callbacks", callbacks),
        web.get("/api/admin/live", live),
        web.get("/api/admin/destinations", destinations),
        web.get("/api/admin/deliveries", deliveries),
        web.get("/api/admin/registrations", registrations),
        web.get("/api/admin/stats", stats),
    ]


def stats_query(request: web.Request, service: AdminService) -> tuple[int, str | None]:
    text = request.query.get("days") or str(STATS_DAYS)
    if not text.isdigit() or not 1 <= int(text) <= MAX_STATS_DAYS:
        raise BadRequest(f"days: a whole number from 1 to {MAX_STATS_DAYS}")
    site = request.query.get("site") or None
    if site is not None and site not in service.sites:
        raise BadRequest(f"site: no site {site[:40]!r}", code="unknown_site")
    return int(text), site


def _json(request: web.Request, payload: object) -> web.Response:
    response = api_response(request, payload)
    # Not for other origins' pages: an API key is not a thing a browser page should hold.
    response.headers.popall("Access-Control-Allow-Origin", None)
    return response


def metrics_routes(metrics: Metrics, keys: tuple[str, ...] | None) -> list[web.RouteDef]:
    """`GET /metrics`: with one of `keys` (Bearer), or open when `keys` is None (the
    separate `[admin] metrics_listen` address)."""

    async def exposition(request: web.Request) -> web.Response:
        if keys is not None and not bearer_key_valid(request, keys):
            raise AdminRefused("unauthorized", "an admin API key is required (Bearer)")
        response = web.Response(body=metrics.exposition())
        response.headers["Content-Type"] = CONTENT_TYPE
        response.headers["Cache-Control"] = "no-store"
        return response

    return [web.get("/metrics", exposition)]
