"""The admin page, `/admin` (docs/admin.md): server-rendered with Jinja2 (autoescaped),
behind a login (gateway.admin.auth). Every change is a POST form with the session's CSRF
token; pages carry a strict Content-Security-Policy and are never cached or framed."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from gateway.admin.api import stats_query
from gateway.admin.auth import LOGIN_COOKIE, LoginThrottled, Sessions, same_token
from gateway.admin.service import (
    CALLBACK_STATUSES,
    AdminService,
    parse_filters,
    records_csv,
)
from gateway.api import Refusal
from gateway.http.voicemails import audio_response
from gateway.storage import OUTCOMES, AdminSession
from gateway.storage.callback_lifecycle import PLACEABLE_AGAIN

HERE = Path(__file__).parent
MAX_FORM_BYTES = 4096
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self'; media-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)

if TYPE_CHECKING:
    import jinja2

Handler = Callable[[web.Request, AdminSession], Awaitable[web.StreamResponse]]
_FORM = web.RequestKey("form", dict)


def _when(moment: float | None) -> str:
    if moment is None:
        return ""
    return dt.datetime.fromtimestamp(moment, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    value = round(value)
    return f"{value // 60}:{value % 60:02d}" if value >= 60 else f"{value} s"


def _environment() -> jinja2.Environment:
    import jinja2  # only with admin users: a gateway without the page never loads it

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["when"] = _when
    environment.filters["duration"] = _seconds
    return environment


def admin_page_routes(service: AdminService, sessions: Sessions) -> list[web.RouteDef]:
    templates = _environment()
    stylesheet = (HERE / "static" / "admin.css").read_bytes()
    script = (HERE / "static" / "admin.js").read_bytes()

    def render(name: str, status: int = 200, **values: Any) -> web.Response:
        body = templates.get_template(name).render(sites=service.sites, outcomes=OUTCOMES, **values)
        response = web.Response(text=body, content_type="text/html", status=status)
        _page_headers(response)
        return response

    def page(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def guarded(request: web.Request) -> web.StreamResponse:
            session = await sessions.session(request)
            if session is None:
                if request.method == "GET":
                    raise web.HTTPSeeOther("/admin/login")
                raise web.HTTPForbidden(text="Log in first.")
            if request.method == "POST":
                form = await _form(request)
                if not same_token(form.get("csrf_token"), session.csrf_token):
                    raise web.HTTPForbidden(
                        text="This form has expired or did not come from the admin page: "
                        "reload the page and try again."
                    )
            return await handler(request, session)

        return guarded

    # ------------------------------------------------------------------ login
    def login_page(error: str = "", user: str = "", status: int = 200) -> web.Response:
        token = secrets.token_urlsafe(24)
        response = render("login.html", status, error=error, user=user, csrf_token=token)
        sessions.set_login_cookie(response, token)
        return response

    async def login_form(request: web.Request) -> web.Response:
        if await sessions.session(request) is not None:
            raise web.HTTPSeeOther("/admin")
        return login_page()

    async def login(request: web.Request) -> web.Response:
        form = await _form(request)
        name = str(form.get("user", ""))[:64]
        password = str(form.get("password", ""))

        def again(error: str, status: int) -> web.Response:
            return login_page(error, name, status)

        if not same_token(form.get("csrf_token"), request.cookies.get(LOGIN_COOKIE)):
            return again("The form had expired: try again.", 403)
        try:
            created = await sessions.login(request.remote or "?", name, password)
        except LoginThrottled as exc:
            response = again("Too many failed logins: wait 15 minutes, then try again.", 429)
            response.headers["Retry-After"] = str(exc.retry_after)
            return response
        if created is None:
            return again("Wrong user name or password.", 401)
        token, _ = created
        response = web.HTTPSeeOther("/admin")
        sessions.set_cookie(response, token)
        response.del_cookie(LOGIN_COOKIE, path="/admin")
        raise response

    async def logout(request: web.Request, session: AdminSession) -> web.Response:
        await sessions.logout(request)
        response = web.HTTPSeeOther("/admin/login")
        response.del_cookie("gateway_admin", path="/admin")
        raise response

    # ------------------------------------------------------------------ pages
    async def live(request: web.Request, session: AdminSession) -> web.Response:
        return render("live.html", session=session, calls=await service.live(), active="live")

    async def live_json(request: web.Request, session: AdminSession) -> web.Response:
        response = web.json_response({"calls": await service.live()})
        response.headers["Cache-Control"] = "no-store"
        return response

    async def calls(request: web.Request, session: AdminSession) -> web.Response:
        try:
            filters = parse_filters(request.query, service.sites)
        except Refusal as exc:
            return render(
                "calls.html",
                400,
                session=session,
                calls=[],
                filters=None,
                error=exc.message,
                query=dict(request.query),
                export="",
                active="calls",
            )
        records = await service.calls(filters)
        return render(
            "calls.html",
            session=session,
            calls=records,
            filters=filters,
            error="",
            query=dict(request.query),
            export="/admin/calls.csv?" + urlencode(filters.query()),
            active="calls",
        )

    async def calls_csv(request: web.Request, session: AdminSession) -> web.Response:
        filters = parse_filters(request.query, service.sites)
        body = records_csv(await service.calls(filters))
        response = web.Response(text=body, content_type="text/csv", charset="utf-8")
        response.headers["Content-Disposition"] = 'attachment; filename="calls.csv"'
        _page_headers(response)
        return response

    async def call(request: web.Request, session: AdminSession) -> web.Response:
        record = await service.call(request.match_info["id"])
        if record is None:
            raise web.HTTPNotFound(text="No such call: it may have been deleted.")
        return render("call.html", session=session, call=record, active="calls")

    async def delete_call(request: web.Request, session: AdminSession) -> web.Response:
        await service.delete_call(request.match_info["id"])
        raise web.HTTPSeeOther("/admin/calls")

    async def callbacks(request: web.Request, session: AdminSession) -> web.Response:
        filters = parse_filters(request.query, service.sites, callbacks=True)
        return render(
            "callbacks.html",
            session=session,
            callbacks=await service.callbacks_list(filters),
            statuses=CALLBACK_STATUSES,
            placeable_again=PLACEABLE_AGAIN,
            query=dict(request.query),
            can_change=service.callbacks is not None,
            active="callbacks",
        )

    async def change_callback(request: web.Request, session: AdminSession) -> web.Response:
        if service.callbacks is None:
            raise web.HTTPNotFound(text="No site takes callbacks.")
        callback_id, action = request.match_info["id"], request.match_info["action"]
        if action == "cancel":
            await service.callbacks.cancel(callback_id)
        else:
            await service.callbacks.place_again(callback_id)
        raise web.HTTPSeeOther("/admin/callbacks")

    async def destinations(request: web.Request, session: AdminSession) -> web.Response:
        return render(
            "destinations.html",
            session=session,
            destinations=await service.destinations(),
            deliveries=await service.deliveries(None, 50),
            registrations=await service.registrations(),
            active="destinations",
        )

    async def stats(request: web.Request, session: AdminSession) -> web.Response:
        days, site = stats_query(request, service)
        return render(
            "stats.html",
            session=session,
            rows=await service.stats(days, site),
            days=days,
            query=dict(request.query),
            active="stats",
        )

    async def messages(request: web.Request, session: AdminSession) -> web.Response:
        filters = parse_filters(
            {k: v for k, v in request.query.items() if k == "site"}, service.sites
        )
        return render(
            "messages.html",
            session=session,
            voicemails=await service.voicemails(filters.site, filters.limit),
            messages=await service.messages(filters.site, filters.limit),
            conversations=await service.conversations(filters.site, filters.limit),
            query=dict(request.query),
            active="messages",
        )

    async def voicemail_audio(request: web.Request, session: AdminSession) -> web.StreamResponse:
        found = await service.voicemail_file(request.match_info["id"])
        if found is None:
            raise web.HTTPNotFound(text="No such voicemail: it may have been deleted.")
        voicemail, path = found
        return audio_response(path, voicemail.id)

    async def delete_voicemail(request: web.Request, session: AdminSession) -> web.Response:
        await service.delete_voicemail(request.match_info["id"])
        raise web.HTTPSeeOther("/admin/messages")

    async def delete_message(request: web.Request, session: AdminSession) -> web.Response:
        await service.delete_message(request.match_info["id"])
        raise web.HTTPSeeOther("/admin/messages")

    async def conversation(request: web.Request, session: AdminSession) -> web.Response:
        found = await service.conversation(request.match_info["id"])
        if found is None:
            raise web.HTTPNotFound(text="No such conversation: it may have been deleted.")
        return render("conversation.html", session=session, conversation=found, active="messages")

    async def delete_conversation(request: web.Request, session: AdminSession) -> web.Response:
        await service.delete_conversation(request.match_info["id"])
        raise web.HTTPSeeOther("/admin/messages")

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["file"]
        if name == "admin.css":
            response = web.Response(body=stylesheet, content_type="text/css")
        elif name == "admin.js":
            response = web.Response(body=script, content_type="text/javascript")
        else:
            raise web.HTTPNotFound()
        response.headers["Cache-Control"] = "no-cache"
        return response

    return [
        web.get("/admin/login", login_form),
        web.post("/admin/login", login),
        web.post("/admin/logout", page(logout)),
        web.get("/admin", page(live)),
        web.get("/admin/live.json", page(live_json)),
        web.get("/admin/calls", page(calls)),
        web.get("/admin/calls.csv", page(calls_csv)),
        web.get("/admin/calls/{id}", page(call)),
        web.post("/admin/calls/{id}/delete", page(delete_call)),
        web.get("/admin/callbacks", page(callbacks)),
        web.post("/admin/callbacks/{id}/{action:cancel|retry}", page(change_callback)),
        web.get("/admin/destinations", page(destinations)),
        web.get("/admin/messages", page(messages)),
        web.get("/admin/voicemails/{id}/audio", page(voicemail_audio)),
        web.post("/admin/voicemails/{id}/delete", page(delete_voicemail)),
        web.post("/admin/messages/{id}/delete", page(delete_message)),
        web.get("/admin/conversations/{id}", page(conversation)),
        web.post("/admin/conversations/{id}/delete", page(delete_conversation)),
        web.get("/admin/stats", page(stats)),
        web.get("/admin/static/{file}", static),
    ]


async def _form(request: web.Request) -> dict[str, Any]:
    if request.content_length is not None and request.content_length > MAX_FORM_BYTES:
        raise web.HTTPRequestEntityTooLarge(MAX_FORM_BYTES, request.content_length)
    if _FORM not in request:  # read once, kept for the handler
        request[_FORM] = dict(await request.post()) if request.can_read_body else {}
    return request[_FORM]


def _page_headers(response: web.StreamResponse) -> None:
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
