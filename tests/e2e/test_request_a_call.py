"""Request-a-Call through a running gateway: token, request, callback to two real phones."""

from __future__ import annotations

import asyncio
import datetime as dt

import aiohttp

from gateway.config import parse_config
from gateway.process.gateway import Gateway
from tests.support.audio import assert_wav_has_tone

from .conftest import call_token, gateway_toml

VISITOR = "+442079460123"  # a valid London number (Ofcom's drama range fails validation)


def callback_site(operator: str, visitor_port: int, database) -> dict:
    return {
        "destination": operator,
        "site_extra": (
            f'callback = {{dial = "sip:{{number}}@127.0.0.1:{visitor_port}", '
            f'countries = ["GB"], whisper = false}}'
        ),
        "extra": f'[storage]\ndatabase = "sqlite:///{database}"',
    }


async def request_callback(gateway: Gateway, **fields) -> tuple[int, dict]:
    token = await call_token(gateway)
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{gateway.url}/api/callbacks",
            json={"site": "shop", **fields},
            headers={
                "Origin": gateway.config.http.public_origin,
                "Authorization": f"Bearer {token}",
            },
        ) as response,
    ):
        return response.status, await response.json()


async def callback_status(gateway: Gateway, callback_id: str) -> dict:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gateway.url}/api/callbacks/{callback_id}") as response,
    ):
        return await response.json()


async def wait_for_status(
    gateway: Gateway, callback_id: str, wanted: str, timeout: float = 20
) -> dict:
    for _ in range(int(timeout * 10)):
        shown = await callback_status(gateway, callback_id)
        if shown["status"] == wanted:
            return shown
        await asyncio.sleep(0.1)
    raise AssertionError(f"callback never {wanted}: {shown}")


async def test_request_a_call_joins_operator_and_visitor(
    gateway_factory, baresip_factory, tmp_path
):
    operator = baresip_factory(codecs=("PCMU",), tone_hz=440, tone_seconds=5)
    visitor = baresip_factory(user=VISITOR, codecs=("PCMU",), tone_hz=700, tone_seconds=30)
    gateway = await gateway_factory(**callback_site(operator.uri, visitor.port, tmp_path / "cb.db"))
    status, body = await request_callback(gateway, number="020 7946 0123", name="Ann")
    assert status == 201, body
    shown = await wait_for_status(gateway, body["id"], "done")
    events = [e["event"] for e in shown["history"]]
    assert events[:5] == [
        "requested",
        "dialing",
        "calling_operator",
        "operator_answered",
        "calling_visitor",
    ]
    assert "connected" in events
    await operator.wait_for_calls_ended_async(1, timeout=10)
    await visitor.wait_for_calls_ended_async(1, timeout=10)
    assert_wav_has_tone(operator.last_recording().decoded, 700, skip_seconds=0.5)
    assert_wav_has_tone(visitor.last_recording().decoded, 440, skip_seconds=0.5)
    # The callback leaves its record: the operator answered, the visitor talked.
    await gateway.history.flush()
    record = await gateway.database.records.get(body["id"])
    assert record.kind == "callback" and record.outcome == "answered"
    assert record.number == VISITOR and record.visitor_name == "Ann"
    assert record.destination == operator.uri and record.talk_seconds > 0
    assert record.started_at < record.answered_at < record.ended_at
    assert set(record.quality) == {"operator", "visitor"}
    assert record.quality["visitor"]["packets_received"] > 20
    assert record.codecs == {"operator": "PCMU", "visitor": "PCMU"}
    assert await gateway.database.live.all() == []


async def test_refused_numbers_make_no_sip_traffic(gateway_factory, baresip_factory, tmp_path):
    operator = baresip_factory(codecs=("PCMU",))
    gateway = await gateway_factory(**callback_site(operator.uri, 9, tmp_path / "cb.db"))
    for typed, code in [
        ("+44 909 879 0000", "number_type_refused"),  # premium rate
        ("+33 6 12 34 56 78", "country_not_allowed"),
        ("12", "number_invalid"),
    ]:
        status, body = await request_callback(gateway, number=typed)
        assert status == 400 and body["error"]["code"] == code, (typed, body)
    await asyncio.sleep(1.5)
    assert "INVITE" not in operator.output()


async def test_callback_without_a_token_is_refused(gateway_factory, tmp_path):
    gateway = await gateway_factory(**callback_site("sip:op@127.0.0.1:9", 9, tmp_path / "c.db"))
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{gateway.url}/api/callbacks",
            json={"site": "shop", "number": VISITOR},
            headers={"Origin": gateway.config.http.public_origin},
        ) as response,
    ):
        assert response.status == 403
        assert (await response.json())["error"]["code"] == "token_refused"


async def test_callback_requests_count_against_the_visitors_call_windows(gateway_factory, tmp_path):
    site = callback_site("sip:op@127.0.0.1:9", 9, tmp_path / "cb.db")
    site["site_extra"] += "\ncalls_per_client_15min = 2"
    gateway = await gateway_factory(**site)
    # A mistyped number is not counted: only requests that would be stored are.
    status, _ = await request_callback(gateway, number="12")
    assert status == 400
    at = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    for number in ("+442079460123", "+442079460124"):
        status, body = await request_callback(gateway, number=number, at=at)
        assert status == 201, body
    status, body = await request_callback(gateway, number="+442079460125", at=at)
    assert status == 429 and body["error"]["code"] == "rate_limited"
    assert "15 minutes" in body["error"]["message"]


async def test_scheduled_callback_fires_on_time_after_a_restart_once(baresip_factory, tmp_path):
    operator = baresip_factory(codecs=("PCMU",), tone_hz=440, tone_seconds=3)
    visitor = baresip_factory(user=VISITOR, codecs=("PCMU",), tone_hz=700, tone_seconds=30)
    toml = gateway_toml(**callback_site(operator.uri, visitor.port, tmp_path / "cb.db"))
    first = await Gateway.start(parse_config(toml, {}))
    at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=4)
    status, body = await request_callback(first, number=VISITOR, at=at.isoformat())
    assert status == 201, body
    await first.stop()  # restart before it is due
    await asyncio.sleep(0.1)  # the UDP socket closes on the next tick
    second = await Gateway.start(parse_config(toml, {}))
    try:
        await asyncio.sleep(max(0.0, at.timestamp() - dt.datetime.now(dt.UTC).timestamp() - 1.0))
        assert "INVITE" not in operator.output()  # not early
        shown = await wait_for_status(second, body["id"], "done", timeout=25)
        dialing = [e["at"] for e in shown["history"] if e["event"] == "dialing"]
        assert len(dialing) == 1 and dialing[0] >= at.timestamp() - 0.01
    finally:
        await second.stop()
    assert operator.output().count("INVITE sip:") == 1


async def test_a_call_outside_business_hours_is_refused_with_the_callback_offer(
    gateway_factory, tmp_path
):
    import socketio
    from aiortc import RTCPeerConnection
    from aiortc.mediastreams import AudioStreamTrack

    today = dt.datetime.now(dt.UTC).date().isoformat()
    gateway = await gateway_factory(
        destination="sip:op@127.0.0.1:9",
        site_extra=(
            f'hours = {{timezone = "UTC", mon = "00:00-24:00", tue = "00:00-24:00", '
            f'wed = "00:00-24:00", thu = "00:00-24:00", fri = "00:00-24:00", '
            f'sat = "00:00-24:00", sun = "00:00-24:00", closed = ["{today}"]}}\n'
            f'callback = {{dial = "sip:{{number}}@127.0.0.1:9", countries = ["GB"]}}'
        ),
        extra=f'[storage]\ndatabase = "sqlite:///{tmp_path / "cb.db"}"',
    )
    client = socketio.AsyncClient(reconnection=False)
    pc = RTCPeerConnection()
    pc.addTrack(AudioStreamTrack())
    try:
        await pc.setLocalDescription(await pc.createOffer())
        await client.connect(
            gateway.url,
            transports=["websocket"],
            auth={"site": "shop", "token": await call_token(gateway)},
            headers={"Origin": gateway.config.http.public_origin},
        )
        ack = await client.call("call:start", {"sdp": pc.localDescription.sdp}, timeout=10)
        assert ack["ok"] is False and ack["error"]["code"] == "closed"
        assert "call you back" in ack["error"]["message"]
        assert not gateway.calls.calls
    finally:
        await client.disconnect()
        await pc.close()


async def test_the_site_owner_hears_of_requests_cancels_and_failures(
    gateway_factory, sipp_factory, tmp_path
):
    from tests.support.mailbox import Mailbox
    from tests.support.webhook_receiver import WebhookReceiver

    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    busy = sipp_factory("uas_busy")
    receiver = await WebhookReceiver(secret).start()
    mailbox = Mailbox().start()
    try:
        site = callback_site(busy.uri, 9, tmp_path / "cb.db")
        gateway = await gateway_factory(
            destination=site["destination"],
            site_extra=site["site_extra"].replace(
                "whisper = false", "whisper = false, attempts = 1"
            )
            + '\nnotify_email = ["owner@shop.example"]\n'
            f'[[sites.webhooks]]\nurl = "{receiver.url}"\nsecret = "{secret}"\n',
            extra=f'{site["extra"]}\n[email]\nsmtp_url = "{mailbox.url}"\nfrom = "gw@shop.example"',
        )
        later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat(timespec="seconds")
        status, waiting = await request_callback(gateway, number="020 7946 0123", at=later)
        assert status == 201, waiting
        async with (
            aiohttp.ClientSession() as session,
            session.delete(f"{gateway.url}/api/callbacks/{waiting['id']}") as response,
        ):
            assert response.status == 200, await response.text()
        status, now = await request_callback(gateway, number="020 7946 0123", name="Ann")
        assert status == 201, now
        await wait_for_status(gateway, now["id"], "failed")  # the operator is busy
        await busy.assert_passed_async()
        await receiver.wait_for(lambda d: len(d) >= 4)
        (mail,) = await mailbox.wait_for(1)
    finally:
        await receiver.stop()
        mailbox.stop()
    assert all(d.verified for d in receiver.deliveries)
    requested = [d.body["data"]["id"] for d in receiver.of_type("callback.requested")]
    assert sorted(requested) == sorted([waiting["id"], now["id"]])  # delivered concurrently
    ended = {d.body["data"]["id"]: d.body["data"] for d in receiver.of_type("callback.ended")}
    assert ended[waiting["id"]]["status"] == "cancelled"
    assert ended[now["id"]]["status"] == "failed"
    assert ended[now["id"]]["detail"] == "operator not reached"  # no more than the words
    assert ended[now["id"]]["number"] == VISITOR and ended[now["id"]]["visitor_name"] == "Ann"
    # Mail only for the failure (notify_events' default callback.failed), not the cancel.
    assert mail.subject == f"Callback to {VISITOR} on shop: failed"
    assert "Visitor: Ann" in mail.part("plain")
