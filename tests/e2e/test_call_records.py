"""Every call leaves one record: a call answered by a real phone (baresip), one missed (SIPp
answers 486 Busy), one abandoned (the visitor hangs up while SIPp rings) and one refused (a
limit), each placed from Chromium; the admin API lists them with the right outcomes and
times, and /metrics counts them by outcome."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.support.audio import assert_wav_has_tone
from tests.support.ports import free_udp_port

from .conftest import MIC_HZ, open_call_page, wait_for_status
from .site_owner import API_KEY, admin_get, metric, start_owner_gateway, wait_for_records


async def test_four_calls_four_records_and_metrics_by_outcome(baresip_factory, sipp_factory, page):
    phone = baresip_factory(codecs=("PCMU",), tone_seconds=30)
    busy = sipp_factory("uas_busy")
    ringing = sipp_factory("uas_no_answer")
    gateway = await start_owner_gateway(
        {"shop": phone.uri, "busy": busy.uri, "ringing": ringing.uri},
        # A visitor may start one call in 15 minutes here: the second is refused.
        site_extra={"shop": "calls_per_client_15min = 1"},
    )
    try:
        # Answered: the visitor talks to the desk phone, the call is live meanwhile.
        await open_call_page(page, gateway, "shop")
        await page.get_by_role("button", name="Call").click()
        await wait_for_status(page, "In call")
        status, live, _ = await admin_get(gateway, "/api/admin/live")
        (call,) = live["calls"]
        assert status == 200 and call["site"] == "shop" and call["kind"] == "call"
        # Some talk, so that media flows both ways, the steady part of it in C.
        (ours,) = gateway.calls.calls.values()
        for _ in range(100):
            if ours.bridge is not None and ours.bridge.native and ours.bridge.native.engaged:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        assert call["state"] in ("answered", "ringing", "connecting")
        await page.get_by_role("button", name="Hang up").click()
        await wait_for_status(page, "Call ended")
        await phone.wait_for_calls_ended_async(1, timeout=10)
        assert_wav_has_tone(phone.last_recording().decoded, MIC_HZ, skip_seconds=0.5)

        # Missed: the operator's phone is busy.
        await open_call_page(page, gateway, "busy")
        await page.get_by_role("button", name="Call").click()
        await wait_for_status(page, "Call ended: busy")
        await busy.assert_passed_async()

        # Abandoned: the visitor gives up while it rings.
        await open_call_page(page, gateway, "ringing")
        await page.get_by_role("button", name="Call").click()
        await wait_for_status(page, "Ringing")
        await page.get_by_role("button", name="Hang up").click()
        await ringing.assert_passed_async()

        # Refused: the visitor's second call to the shop within 15 minutes.
        await open_call_page(page, gateway, "shop")
        await page.get_by_role("button", name="Call").click()
        await wait_for_status(page, "Call failed")

        records = await wait_for_records(gateway, 4)
        assert len(records) == 4
        by_site = {}
        for record in records:
            by_site.setdefault(record["site"], []).append(record)
        refused, answered = by_site["shop"]  # newest first
        (missed,) = by_site["busy"]
        (abandoned,) = by_site["ringing"]
        assert [r["outcome"] for r in (answered, missed, abandoned, refused)] == [
            "answered",
            "missed",
            "abandoned",
            "refused",
        ]
        starts = [r["started_at"] for r in (answered, missed, abandoned, refused)]
        assert starts == sorted(starts) and [r["started_at"] for r in records] == sorted(
            starts, reverse=True
        )
        # The answered call: times in order, who answered, what it talked, media quality.
        assert answered["started_at"] < answered["answered_at"] < answered["ended_at"]
        assert answered["talk_seconds"] > 1.0
        assert answered["talk_seconds"] == round(answered["ended_at"] - answered["answered_at"], 3)
        assert answered["ring_seconds"] == round(
            answered["answered_at"] - answered["started_at"], 3
        )
        assert answered["destination"] == phone.uri
        assert answered["end_cause"] == "visitor_hung_up"
        assert answered["codecs"] == {"browser": "PCMU", "sip": "PCMU"}
        for leg in ("browser", "sip"):
            quality = answered["quality"][leg]
            assert quality["packets_sent"] > 20 and quality["packets_received"] > 20, quality
            assert 1.0 <= quality["mos"] <= 4.5 and quality["loss_percent"] < 5
        # The others: never answered, each with its cause.
        for record in (missed, abandoned, refused):
            assert record["answered_at"] is None and record["talk_seconds"] is None
            assert record["ended_at"] >= record["started_at"]
        assert missed["end_cause"] == "busy" and missed["destination"] is None
        assert abandoned["end_cause"] == "visitor_hung_up" and abandoned["ring_seconds"] > 0
        assert refused["end_cause"] == "rate_limited"
        assert refused["client"] == "127.0.0.1" and refused["source"] == "widget"

        # Filters, one record, and forgetting a visitor.
        _, found, _ = await admin_get(gateway, "/api/admin/calls?outcome=missed")
        assert [r["id"] for r in found["calls"]] == [missed["id"]]
        _, found, _ = await admin_get(gateway, "/api/admin/calls?site=shop&limit=1")
        assert [r["id"] for r in found["calls"]] == [refused["id"]]
        since = answered["started_at"] + 0.0001
        _, found, _ = await admin_get(gateway, f"/api/admin/calls?since={since}")
        assert answered["id"] not in [r["id"] for r in found["calls"]]
        status, bad, _ = await admin_get(gateway, "/api/admin/calls?outcome=lost")
        assert status == 400 and bad["error"]["code"] == "bad_request"
        status, one, _ = await admin_get(gateway, f"/api/admin/calls/{missed['id']}")
        assert status == 200 and one == missed

        # The metrics count them by outcome; without the key there are none.
        status, text, headers = await admin_get(gateway, "/metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        for site, outcome in (
            ("shop", "answered"),
            ("busy", "missed"),
            ("ringing", "abandoned"),
            ("shop", "refused"),
        ):
            assert metric(text, "gateway_calls_total", site=site, outcome=outcome) == 1
        assert metric(text, "gateway_calls_total", site="shop", outcome="missed") == 0
        assert metric(text, "gateway_refusals_total", reason="rate_limited") == 1
        assert metric(text, "gateway_sip_responses_total", code="486") == 1
        assert metric(text, "gateway_sip_responses_total", code="200") == 1
        assert metric(text, "gateway_talk_seconds_count") == 1
        # The answered call's G.711 went through the C relay once steady, Python before.
        assert metric(text, "gateway_media_relayed_frames_total", path="native") >= 40
        assert metric(text, "gateway_media_relayed_frames_total", path="python") >= 40
        assert metric(text, "gateway_call_setup_seconds_count") >= 2
        assert metric(text, "gateway_media_loss_ratio_count", leg="sip") == 1
        assert metric(text, "gateway_calls_active", site="shop") == 0
        assert (await admin_get(gateway, "/metrics", key=None))[0] == 401
        assert (await admin_get(gateway, "/api/admin/calls", key="x" * 30))[0] == 401
        _, live, _ = await admin_get(gateway, "/api/admin/live")
        assert live == {"calls": []}

        # The visitor of the abandoned call asks to be forgotten.
        async with (
            aiohttp.ClientSession() as session,
            session.delete(
                f"{gateway.url}/api/admin/calls/{abandoned['id']}",
                headers={"Authorization": f"Bearer {API_KEY}"},
            ) as response,
        ):
            assert response.status == 200
        assert (await admin_get(gateway, f"/api/admin/calls/{abandoned['id']}"))[0] == 404
        assert len(await wait_for_records(gateway, 3)) == 3
    finally:
        await gateway.stop()


async def test_without_keys_there_are_no_admin_routes(gateway_factory):
    gateway = await gateway_factory(destination="sip:nobody@127.0.0.1:9")
    for path in ("/api/admin/calls", "/api/admin/live", "/metrics", "/admin", "/admin/login"):
        status, _, _ = await admin_get(gateway, path)
        assert status == 404, path


async def test_metrics_listen_serves_metrics_without_a_key(gateway_factory):
    port = free_udp_port()
    gateway = await gateway_factory(
        destination="sip:nobody@127.0.0.1:9", extra=f'[admin]\nmetrics_listen = "127.0.0.1:{port}"'
    )
    assert (await admin_get(gateway, "/metrics", key=None))[0] == 404  # not on the main one
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        assert "# TYPE gateway_calls_total counter" in await response.text()
