"""POST/GET /api/callbacks over real HTTP: accepted, refused with words, limited per number."""

from __future__ import annotations

import datetime as dt
import sqlite3

import phonenumbers
import pytest
from aiohttp import web
from phonenumbers import PhoneNumberType

from gateway.callbacks.requests import CallbackRequests, SiteCallbacks
from gateway.http.callbacks import callback_routes
from gateway.http.json_api import refusals
from gateway.sites.hours import BusinessHours
from tests.support.database import claim_due, open_callback_store

# Monday 2026-11-23 10:00 in London (UTC in winter).
MONDAY_10AM = dt.datetime(2026, 11, 23, 10, 0, tzinfo=dt.UTC).timestamp()
HOURS = BusinessHours.build(
    timezone="Europe/London", week={"mon": "09:00-17:00", "tue": "09:00-17:00"}
)


def number(region: str, kind: PhoneNumberType) -> str:
    return phonenumbers.format_number(
        phonenumbers.example_number_for_type(region, kind),
        phonenumbers.PhoneNumberFormat.INTERNATIONAL,
    )


MOBILE = number("GB", PhoneNumberType.MOBILE)


@pytest.fixture
async def api(aiohttp_client, tmp_path):
    store = await open_callback_store(tmp_path / "cb.db")
    clock = {"now": MONDAY_10AM}
    policies = {
        "shop": SiteCallbacks(
            "shop",
            ("GB",),
            HOURS,
            per_number_daily=2,
            page_origins=frozenset({"https://shop.example", "https://gateway.example"}),
        ),
        "isles": SiteCallbacks("isles", ("GB", "IE"), HOURS),
    }
    requests = CallbackRequests(store, policies.get, clock=lambda: clock["now"])
    app = web.Application(middlewares=[refusals])
    app.add_routes(callback_routes(requests))
    client = await aiohttp_client(app)
    client.clock = clock
    client.store = store
    client.db_path = tmp_path / "cb.db"
    yield client
    await store.close()


async def post(api, **payload):
    response = await api.post("/api/callbacks", json=payload)
    return response.status, await response.json()


async def test_callback_now_and_its_status(api):
    status, body = await post(api, site="shop", number=MOBILE, name="Ann", page="https://x/y")
    assert status == 201 and body["status"] == "scheduled" and body["due_at"] == MONDAY_10AM
    shown = await (await api.get(f"/api/callbacks/{body['id']}")).json()
    assert shown["status"] == "scheduled" and shown["history"][0]["event"] == "requested"
    assert "number" not in shown  # the page learns no more than it sent


async def test_closed_now_but_a_slot_in_hours_is_taken(api):
    api.clock["now"] = dt.datetime(2026, 11, 23, 20, 0, tzinfo=dt.UTC).timestamp()
    status, body = await post(api, site="shop", number=MOBILE)
    assert status == 409 and body["error"]["code"] == "closed"
    assert "2026-11-24T09:00" in body["error"]["message"]
    status, body = await post(api, site="shop", number=MOBILE, at="2026-11-24T09:30:00+00:00")
    assert status == 201
    assert body["due_at"] == dt.datetime(2026, 11, 24, 9, 30, tzinfo=dt.UTC).timestamp()
    status, body = await post(api, site="shop", number=MOBILE, at="2026-11-25T09:30:00+00:00")
    assert status == 409  # a Wednesday: closed


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        (number("GB", PhoneNumberType.PREMIUM_RATE), "number_type_refused"),
        (number("FR", PhoneNumberType.MOBILE), "country_not_allowed"),
        ("12", "number_invalid"),
        ("", "number_missing"),
    ],
)
async def test_bad_numbers_are_refused_and_nothing_is_stored(api, typed, code):
    status, body = await post(api, site="shop", number=typed)
    assert status == 400 and body["error"]["code"] == code and body["error"]["message"]
    with sqlite3.connect(api.db_path) as db:
        assert db.execute("SELECT COUNT(*) FROM callbacks").fetchone()[0] == 0


async def test_a_number_cannot_be_bombed(api):
    for _ in range(2):
        assert (await post(api, site="shop", number=MOBILE))[0] == 201
    status, body = await post(api, site="shop", number=MOBILE)
    assert status == 429 and body["error"]["code"] == "number_limit"
    api.clock["now"] += 86401
    assert (await post(api, site="shop", number=MOBILE))[0] == 201


async def test_malformed_requests(api):
    assert (await post(api, site="nope", number=MOBILE))[0] == 404
    assert (await post(api, site="shop", number=MOBILE, evil=1))[0] == 400
    assert (await post(api, site="shop", number=MOBILE, at="tomorrow"))[0] == 400
    assert (await post(api, site="shop", number=MOBILE, name="x" * 500))[0] == 400
    json_type = {"Content-Type": "application/json"}
    response = await api.post("/api/callbacks", data=b"{not json", headers=json_type)
    assert response.status == 400
    response = await api.post("/api/callbacks", data=b"[" * 4000, headers=json_type)
    assert response.status == 400
    assert "nested deeper" in (await response.json())["error"]["message"]
    response = await api.post("/api/callbacks", data=b"x" * 10000, headers=json_type)
    assert response.status == 413
    response = await api.post("/api/callbacks", data=b'{"site": "shop"}')
    assert response.status == 415
    assert (await api.get("/api/callbacks/unknown")).status == 404


async def test_the_page_is_cleaned_and_kept_only_on_the_sites_origins(api):
    async def page_stored(page: str) -> str | None:
        status, body = await post(api, site="shop", number=MOBILE, page=page)
        assert status == 201, body
        return (await api.store.get(body["id"])).details.get("page")

    shop = "https://shop.example"
    assert await page_stored(f"{shop}/Cart?card=4111#pay") == f"{shop}/Cart"
    assert await page_stored("https://evil.example/x") is None
    status, body = await post(api, site="shop", number=MOBILE, page="javascript:alert(1)")
    assert status == 400
    assert body["error"]["message"].startswith("page must be an http(s) URL")


async def test_name_and_reason_are_one_line_of_real_text(api):
    status, body = await post(api, site="shop", number=MOBILE, name="Ann\ud800")
    assert status == 400 and body["error"]["message"] == "name is not valid Unicode."
    status, body = await post(api, site="shop", number=MOBILE, reason="a\x9bb")
    assert status == 400 and body["error"]["message"] == "reason contains control characters."
    status, body = await post(
        api, site="shop", number=MOBILE, name=" Ann\u202e  Lee ", reason="x" * 201
    )
    assert status == 400 and "longer than 200" in body["error"]["message"]
    status, body = await post(api, site="shop", number=MOBILE, name=" Ann\u202e  Lee ")
    assert status == 201
    assert (await api.store.get(body["id"])).details == {"name": "Ann Lee"}


async def test_a_scheduled_callback_can_be_cancelled_and_is_then_never_dialled(api):
    api.clock["now"] = dt.datetime(2026, 11, 23, 20, 0, tzinfo=dt.UTC).timestamp()
    _, body = await post(api, site="shop", number=MOBILE, at="2026-11-24T09:30:00+00:00")
    response = await api.delete(f"/api/callbacks/{body['id']}")
    assert response.status == 200
    shown = await response.json()
    assert shown["status"] == "cancelled" and shown["history"][-1]["event"] == "cancelled"
    tomorrow = dt.datetime(2026, 11, 24, 9, 31, tzinfo=dt.UTC).timestamp()
    assert await claim_due(api.store, tomorrow, owner="test") == []
    again = await api.delete(f"/api/callbacks/{body['id']}")  # DELETE is idempotent
    assert again.status == 200 and (await again.json())["status"] == "cancelled"
    unknown = await api.delete("/api/callbacks/nope")
    assert unknown.status == 404


async def test_a_callback_being_placed_cannot_be_cancelled(api):
    _, body = await post(api, site="shop", number=MOBILE)
    (claimed,) = await claim_due(api.store, MONDAY_10AM, owner="test")
    assert claimed.id == body["id"]
    response = await api.delete(f"/api/callbacks/{body['id']}")
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "callback_in_progress"
    shown = await (await api.get(f"/api/callbacks/{body['id']}")).json()
    assert shown["status"] == "dialing"
    await api.store.finish(claimed.id, "done", "", MONDAY_10AM + 60)
    over = await api.delete(f"/api/callbacks/{body['id']}")
    assert over.status == 409 and (await over.json())["error"]["code"] == "callback_over"


IRISH_NATIONAL = "087 123 4567"  # an Irish mobile as the visitor knows it; not a UK number


async def test_a_national_number_is_read_for_the_chosen_country(api):
    status, body = await post(api, site="isles", number=IRISH_NATIONAL, country="IE")
    assert status == 201, body
    assert (await api.store.get(body["id"])).number == "+353871234567"
    # Without a choice it is read as a number of the site's first country (GB): refused.
    status, body = await post(api, site="isles", number=IRISH_NATIONAL)
    assert status == 400 and body["error"]["code"] == "number_invalid"
    status, body = await post(api, site="isles", number=IRISH_NATIONAL, country="GB")
    assert status == 400 and body["error"]["code"] == "number_invalid"
    # A number written with its country code is read as it says, whatever was chosen.
    status, body = await post(api, site="isles", number="+353 87 123 4567", country="GB")
    assert status == 201, body
    with sqlite3.connect(api.db_path) as db:
        assert db.execute("SELECT number FROM callbacks").fetchall() == [("+353871234567",)] * 2


@pytest.mark.parametrize(
    ("country", "status", "code"),
    [("FR", 400, "country_not_allowed"), ("ie", 201, None), (44, 400, "bad_request")],
)
async def test_the_chosen_country_must_be_one_of_the_sites(api, country, status, code):
    answer_status, body = await post(api, site="isles", number=IRISH_NATIONAL, country=country)
    assert answer_status == status, body
    if code is not None:
        assert body["error"]["code"] == code
