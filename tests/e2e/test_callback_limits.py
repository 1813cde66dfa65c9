"""A callback passes the admission of a call (issue 11, item 1): what an attack run found,
against the real gateway with real phones (SIPp, baresip) and a real WebRTC visitor.

- With the site's daily minutes spent, callback requests were accepted and placed: now
  refused `budget_exhausted`, like calls.
- A callback's talk time never reached the spend guard: now it does, from the operator's
  answer, and calls and callbacks are refused once it is spent.
- With `max_site_calls = 2`, three callbacks were connected at once: now the third waits
  (`scheduled`, a `waiting` event) until a line is free.
- A callback leg without RTP stayed connected for good: now both legs end after
  `media.media_timeout`.
"""

from __future__ import annotations

import pytest

from .test_abuse_limits import Visitor
from .test_request_a_call import callback_site, request_callback, wait_for_status

NUMBERS = ("+442079460123", "+442079460124", "+442079460125")
MAX_DURATION = 1.5
BUDGET = "daily_call_minutes = 0.02"  # 1.2 s of talk


@pytest.fixture
async def visitor():  # type: ignore[no-untyped-def]
    opened: list[Visitor] = []

    async def open_visitor(gateway) -> Visitor:  # type: ignore[no-untyped-def]
        opened.append(Visitor(gateway))
        await opened[-1].connect()
        return opened[-1]

    yield open_visitor
    for one in opened:
        await one.close()


async def test_a_spent_budget_refuses_callback_requests(
    gateway_factory, sipp_factory, visitor, tmp_path
):
    uas = sipp_factory("uas_answer_echo", rtp_echo=True)
    site = callback_site(uas.uri, 9, tmp_path / "cb.db")
    site["site_extra"] += f"\n{BUDGET}\nmax_call_duration = {MAX_DURATION}"
    gateway = await gateway_factory(**site)
    # A browser call talks the site's minutes away (it ends at its maximum duration).
    caller = await visitor(gateway)
    ack = await caller.start_call()
    assert ack["ok"], ack
    await caller.state(ack["call_id"], "ended", timeout=MAX_DURATION + 10)
    await uas.assert_passed_async()
    assert (await caller.start_call())["error"]["code"] == "budget_exhausted"
    for number in NUMBERS:
        status, body = await request_callback(gateway, number=number)
        assert status == 429, body
        assert body["error"] == {
            "code": "budget_exhausted",
            "message": "calls to this site are paused for today; try again later",
        }
    assert await gateway.callbacks.store.due(10**10) == []  # nothing stored, nothing placed


async def test_a_callbacks_talk_time_reaches_the_spend_guard(
    gateway_factory, sipp_factory, visitor, tmp_path
):
    operator = sipp_factory("uas_answer_echo", rtp_echo=True)
    visitor_phone = sipp_factory("uas_answer_echo", rtp_echo=True)
    site = callback_site(operator.uri, visitor_phone.port, tmp_path / "cb.db")
    site["site_extra"] += f"\n{BUDGET}\nmax_call_duration = {MAX_DURATION}"
    gateway = await gateway_factory(**site)
    status, body = await request_callback(gateway, number=NUMBERS[0])
    assert status == 201, body
    shown = await wait_for_status(gateway, body["id"], "done")
    # It talked until the maximum duration ended both legs.
    assert shown["history"][-1]["detail"].endswith("; time limit"), shown
    await operator.assert_passed_async()  # each leg got its BYE
    await visitor_phone.assert_passed_async()
    # Its minutes count: calls and callbacks of the site are paused now.
    ack = await (await visitor(gateway)).start_call()
    assert ack["error"]["code"] == "budget_exhausted", ack
    status, body = await request_callback(gateway, number=NUMBERS[1])
    assert status == 429 and body["error"]["code"] == "budget_exhausted", body


async def test_a_site_at_its_limit_places_no_third_callback_until_a_line_frees(
    gateway_factory, sipp_factory, tmp_path
):
    operator = sipp_factory("uas_answer_echo", rtp_echo=True, calls=3)
    visitors = sipp_factory("uas_answer_echo", rtp_echo=True, calls=3)
    site = callback_site(operator.uri, visitors.port, tmp_path / "cb.db")
    # Each callback holds its line until the gateway ends it at the maximum duration.
    site["site_extra"] += "\nmax_site_calls = 2\nmax_call_duration = 3"
    gateway = await gateway_factory(**site)
    ids = []
    for number in NUMBERS:
        status, body = await request_callback(gateway, number=number)
        assert status == 201, body
        ids.append(body["id"])
        if len(ids) == 2:  # both lines taken before the third is asked for
            for taken in ids:
                await wait_for_status(gateway, taken, "dialing")
    shown = [await wait_for_status(gateway, i, "done", timeout=30) for i in ids]
    # Each placed callback held a line from its claim (`dialing`) to its end (`done`).
    spans = [
        (
            next(e["at"] for e in s["history"] if e["event"] == "dialing"),
            s["history"][-1]["at"],
        )
        for s in shown
    ]
    for start, _ in spans:
        assert sum(1 for a, b in spans if a <= start < b) <= 2, spans
    waited = [s for s in shown if any(e["event"] == "waiting" for e in s["history"])]
    assert [s["id"] for s in waited] == ids[2:], shown
    (wait,) = [e for e in waited[0]["history"] if e["event"] == "waiting"]
    assert wait["detail"] == "all lines are busy"
    assert waited[0]["attempts"] == 1  # waiting was not a try
    await operator.assert_passed_async()
    await visitors.assert_passed_async()


async def test_a_callback_leg_without_rtp_ends_after_the_media_timeout(
    gateway_factory, sipp_factory, baresip_factory, tmp_path
):
    operator = baresip_factory(codecs=("PCMU",), tone_hz=440, tone_seconds=30)
    silent = sipp_factory("uas_answer_echo")  # answers, then sends no RTP at all
    site = callback_site(operator.uri, silent.port, tmp_path / "cb.db")
    gateway = await gateway_factory(**site, media="media_timeout = 2")
    status, body = await request_callback(gateway, number=NUMBERS[0])
    assert status == 201, body
    shown = await wait_for_status(gateway, body["id"], "done", timeout=15)
    assert shown["history"][-1]["detail"].endswith("; no audio from the visitor for 2 s"), shown
    await silent.assert_passed_async()  # it got the gateway's BYE
    await operator.wait_for_calls_ended_async(1, timeout=10)  # and so did the operator
    assert operator.calls_ended() == 1
