"""The admin API over real HTTP on both databases: keys, filters, one record, deletion,
callbacks, live calls, destinations, daily figures, CSV, and /metrics with and without a
key."""

from __future__ import annotations

import csv
import datetime as dt
import io
from urllib.parse import quote

import pytest
from aiohttp import web

from gateway.admin.api import admin_api_routes, metrics_routes
from gateway.admin.service import AdminService, records_csv
from gateway.config import parse_config
from gateway.http.json_api import refusals
from gateway.monitoring.metrics import Metrics
from gateway.storage import CallRecord, Database, LiveCall

KEY = "test-admin-key-0123456789abcdef"
NOON = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC).timestamp()
CONFIG = parse_config(
    """
[[sites]]
id = "shop"
destinations = ["sip:alice@pbx.example", "sip:bob@pbx.example"]
retention_days = 30
[[sites]]
id = "other"
destination = "sip:desk@pbx.example"
"""
)


@pytest.fixture
async def api(aiohttp_client, database_url):
    database = await Database.open(database_url)
    service = AdminService(CONFIG, database, None, clock=lambda: NOON)
    metrics = Metrics()
    app = web.Application(middlewares=[refusals])
    app.add_routes(admin_api_routes(service, (KEY,)))
    app.add_routes(metrics_routes(metrics, (KEY,)))
    client = await aiohttp_client(app)
    client.database, client.metrics, client.service = database, metrics, service
    yield client
    await database.close()


async def get(api, path, key=KEY):
    response = await api.get(path, headers={"Authorization": f"Bearer {key}"} if key else {})
    body = await response.json() if response.content_type == "application/json" else None
    return response.status, body


def record(record_id, site, started, outcome, **more) -> CallRecord:
    return CallRecord(
        id=record_id, kind="call", site=site, started_at=started, outcome=outcome, **more
    )


async def test_keys_filters_records_and_deletion(api):
    await api.database.records.add(
        record(
            "a",
            "shop",
            NOON - 300,
            "answered",
            answered_at=NOON - 290,
            ring_seconds=10.0,
            talk_seconds=60.0,
            ended_at=NOON - 230,
            destination="sip:alice@pbx.example",
        )
    )
    await api.database.records.add(record("b", "shop", NOON - 200, "missed", ring_seconds=20.0))
    await api.database.records.add(record("c", "other", NOON - 100, "abandoned"))
    assert (await get(api, "/api/admin/calls", key=None))[0] == 401
    assert (await get(api, "/api/admin/calls", key=KEY[:-1] + "x"))[0] == 401
    status, body = await get(api, "/api/admin/calls")
    assert status == 200 and [c["id"] for c in body["calls"]] == ["c", "b", "a"]
    _, body = await get(api, "/api/admin/calls?site=shop&outcome=answered")
    assert [c["id"] for c in body["calls"]] == ["a"]
    since = dt.datetime.fromtimestamp(NOON - 250, dt.UTC).isoformat()  # "...+00:00"
    _, body = await get(api, f"/api/admin/calls?since={quote(since)}&until={NOON - 100}")
    assert [c["id"] for c in body["calls"]] == ["b"]
    for bad in (
        "site=nowhere",
        "outcome=won",
        "limit=0",
        "limit=1001",
        "since=yesterday",
        "colour=red",
    ):
        status, body = await get(api, f"/api/admin/calls?{bad}")
        assert status == 400 and body["error"]["message"], bad
    status, body = await get(api, "/api/admin/calls/a")
    assert status == 200 and body["talk_seconds"] == 60.0 and body["quality"] == {}
    response = await api.delete("/api/admin/calls/b", headers={"Authorization": f"Bearer {KEY}"})
    assert response.status == 200
    assert (await get(api, "/api/admin/calls/b"))[0] == 404
    response = await api.delete("/api/admin/calls/b", headers={"Authorization": f"Bearer {KEY}"})
    assert response.status == 404
    assert (await api.delete("/api/admin/calls/a")).status == 401


async def test_daily_figures_destinations_live_and_callbacks(api):
    db = api.database
    yesterday = NOON - 86400
    await db.records.add(
        record(
            "y",
            "shop",
            yesterday,
            "answered",
            answered_at=yesterday + 4,
            ring_seconds=4.0,
            talk_seconds=120.0,
            destination="sip:bob@pbx.example",
        )
    )
    await db.records.add(
        record(
            "t1",
            "shop",
            NOON - 60,
            "answered",
            answered_at=NOON - 54,
            ring_seconds=6.0,
            talk_seconds=30.0,
            destination="sip:alice@pbx.example",
        )
    )
    await db.records.add(
        record(
            "t2",
            "shop",
            NOON - 50,
            "answered",
            answered_at=NOON - 48,
            ring_seconds=2.0,
            talk_seconds=30.0,
            destination="sip:alice@pbx.example",
        )
    )
    await db.records.add(record("t3", "shop", NOON - 40, "missed", ring_seconds=30.0))
    await db.records.add(record("t4", "shop", NOON - 30, "refused"))
    _, body = await get(api, "/api/admin/stats?site=shop&days=2")
    today, before = body["days"]
    assert today == {
        "site": "shop",
        "day": "2026-11-23",
        "calls": 4,
        "answered": 2,
        "missed": 1,
        "answered_percent": 50.0,
        "average_wait_seconds": 4.0,
        "talk_minutes": 1.0,
    }
    assert before["day"] == "2026-11-22" and before["talk_minutes"] == 2.0
    assert (await get(api, "/api/admin/stats?days=93"))[0] == 400

    _, body = await get(api, "/api/admin/destinations")
    by_uri = {d["destination"]: d for d in body["destinations"]}
    assert by_uri["sip:alice@pbx.example"]["last_answered_at"] == NOON - 48
    assert by_uri["sip:bob@pbx.example"]["last_answered_at"] == yesterday + 4
    assert by_uri["sip:desk@pbx.example"] == {
        "site": "other",
        "destination": "sip:desk@pbx.example",
        "health": None,
        "last_answered_at": None,
    }

    await db.live.started(LiveCall("L", "call", "worker-1", "shop", "ringing", NOON, NOON))
    _, body = await get(api, "/api/admin/live")
    assert [(c["id"], c["worker"], c["state"]) for c in body["calls"]] == [
        ("L", "worker-1", "ringing")
    ]

    cb = await db.callbacks.add(
        site="shop", number="+441632960123", details={"name": "Ann"}, due_at=NOON, now=NOON - 5
    )
    _, body = await get(api, "/api/admin/callbacks?status=scheduled")
    (shown,) = body["callbacks"]
    assert shown["id"] == cb.id and shown["number"] == "+441632960123" and shown["name"] == "Ann"
    _, body = await get(api, "/api/admin/callbacks?status=done")
    assert body["callbacks"] == []
    # `outcome` picks callbacks by their call record: this one was placed and answered.
    _, body = await get(api, "/api/admin/callbacks?outcome=answered")
    assert body["callbacks"] == []
    await db.records.add(
        CallRecord(id=cb.id, kind="callback", site="shop", started_at=NOON, outcome="answered")
    )
    _, body = await get(api, "/api/admin/callbacks?outcome=answered&site=shop")
    assert [c["id"] for c in body["callbacks"]] == [cb.id]
    assert (await get(api, "/api/admin/callbacks?status=won"))[0] == 400
    assert (await get(api, "/api/admin/calls?status=done"))[0] == 400  # callbacks only

    # Retention: the shop keeps 30 days, "other" the default 90.
    await db.records.add(record("old", "shop", NOON - 31 * 86400, "answered"))
    await db.records.add(record("kept", "other", NOON - 31 * 86400, "answered"))
    assert await api.service.purge() == 1
    assert await db.records.get("old") is None and await db.records.get("kept") is not None


async def test_metrics_need_the_key(api):
    api.metrics.calls.labels("shop", "missed").inc()
    response = await api.get("/metrics")
    assert response.status == 401
    response = await api.get("/metrics", headers={"Authorization": f"Bearer {KEY}"})
    text = await response.text()
    assert response.status == 200 and response.content_type == "text/plain"
    assert 'gateway_calls_total{outcome="missed",site="shop"} 1.0' in text
    for name in (
        "gateway_calls_active",
        "gateway_call_setup_seconds",
        "gateway_ring_seconds",
        "gateway_talk_seconds",
        "gateway_sip_responses_total",
        "gateway_media_loss_ratio",
        "gateway_media_jitter_seconds",
        "gateway_refusals_total",
        "gateway_callbacks_total",
        "gateway_webhook_deliveries_total",
        "gateway_destination_up",
    ):
        assert f"# TYPE {name} " in text, name


def test_csv_export_quotes_what_a_spreadsheet_would_run():
    text = records_csv(
        [
            record(
                "a",
                "shop",
                NOON,
                "answered",
                visitor_name='=HYPERLINK("x")',
                number="+441632960123",
                page="https://shop.example/a,b",
            )
        ]
    )
    header, row = list(csv.reader(io.StringIO(text)))
    values = dict(zip(header, row, strict=True))
    assert values["visitor_name"] == '\'=HYPERLINK("x")'
    assert values["number"] == "'+441632960123"
    assert values["page"] == "https://shop.example/a,b"
    assert values["started_at"] == "2026-11-23T12:00:00+00:00" and values["answered_at"] == ""


async def test_voicemails_messages_and_conversations_listed_heard_deleted_and_purged(
    api, tmp_path, monkeypatch
):
    from gateway.storage import ChatMessage, Conversation, LeftMessage, Voicemail

    folder = tmp_path / "voicemail"
    folder.mkdir()
    monkeypatch.setattr(api.service, "voicemail_folder", folder)
    (folder / "v1.ogg").write_bytes(b"OggS" + b"\0" * 60)
    (folder / "old.ogg").write_bytes(b"OggS")
    database = api.database
    await database.voicemails.add(
        Voicemail("v1", "shop", NOON - 60, NOON - 50, 10.0, 64, "v1.ogg", call_id="c1")
    )
    old = NOON - 31 * 86400  # past the site's retention_days = 30
    await database.voicemails.add(Voicemail("old", "shop", old, old, 1.0, 4, "old.ogg"))
    await database.messages.add(
        LeftMessage("m1", "shop", NOON - 40, "Call me\nplease", "+44 20 7946 0123", "phone")
    )
    await database.conversations.started(Conversation("k1", "shop", NOON - 30, NOON - 30))
    await database.conversations.add_message(
        "k1", ChatMessage(NOON - 29, "visitor", "hello", "sip:alice@pbx.example", "delivered")
    )
    await database.conversations.add_message(
        "k1",
        ChatMessage(NOON - 20, "operator", "hi!", "sip:alice@pbx.example"),
        operator="sip:alice@pbx.example",
    )

    status, body = await get(api, "/api/admin/voicemails?site=shop")
    assert status == 200 and [v["id"] for v in body["voicemails"]] == ["v1", "old"]
    assert "file" not in body["voicemails"][0] and body["voicemails"][0]["call_id"] == "c1"
    response = await api.get(
        "/api/admin/voicemails/v1/audio", headers={"Authorization": f"Bearer {KEY}"}
    )
    assert response.status == 200 and response.content_type == "audio/ogg"
    assert await response.read() == (folder / "v1.ogg").read_bytes()
    assert (await get(api, "/api/admin/voicemails/v1/audio", key=None))[0] == 401
    _, body = await get(api, "/api/admin/messages")
    assert body["messages"][0]["text"] == "Call me\nplease"
    _, body = await get(api, "/api/admin/conversations")
    assert body["conversations"][0]["message_count"] == 2
    status, body = await get(api, "/api/admin/conversations/k1")
    assert status == 200 and body["operator"] == "sip:alice@pbx.example"
    assert [(m["sender"], m["text"]) for m in body["messages"]] == [
        ("visitor", "hello"),
        ("operator", "hi!"),
    ]
    assert (await get(api, "/api/admin/conversations/nope"))[0] == 404

    # The retention: an hourly purge takes the old voicemail and its file.
    assert await api.service.purge() >= 1
    assert not (folder / "old.ogg").exists() and (folder / "v1.ogg").exists()
    # Forgetting a visitor: each goes, the voicemail's audio with it.
    for kind, item in (("voicemails", "v1"), ("messages", "m1"), ("conversations", "k1")):
        response = await api.delete(
            f"/api/admin/{kind}/{item}", headers={"Authorization": f"Bearer {KEY}"}
        )
        assert response.status == 200 and (await response.json()) == {"deleted": item}
        assert (await get(api, f"/api/admin/{kind}"))[1][kind] == []
    assert not (folder / "v1.ogg").exists()
