"""What the operator's phone shows (gateway/text.py), checked in the INVITE a real SIP
phone (SIPp) receives: a visitor's name without its format and invisible characters (bidi
marks, zero-width spaces, BOMs, tag characters), a callback's number and name visibly
apart, and never a name that passes for a number, whichever face it came through."""

from __future__ import annotations

import asyncio
import unicodedata

from gateway.text import is_invisible
from tests.support.signaling_client import aiortc_offer, live_call, start_call, visitor_socket

from .test_request_a_call import VISITOR, callback_site, request_callback

# "Ann Smith" as a visitor could type it: an Arabic letter mark, a zero-width space, a BOM,
# a right-to-left override and tag characters (invisible text: "PAY").
DIRTY_NAME = "A\u061cnn\u200b \ufeffSmith\u202e\U000e0050\U000e0041\U000e0059"
NUMBER_AS_NAME = "+449098765432"  # a premium-rate number, typed as a name


async def received_invite(sipp, count: int = 1):
    """The `count`-th INVITE SIPp received (waits for it)."""
    for _ in range(100):
        invites = [m for m in sipp.trace() if not m.sent and m.method == "INVITE"]
        if len(invites) >= count:
            return invites[count - 1]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no INVITE reached the phone:\n{sipp.messages()}")


def display_name(from_header: str) -> str:
    assert from_header.startswith('"'), from_header
    return from_header[1 : from_header.index('" <')]


def assert_visible(invite) -> None:
    for name, value in invite.headers:
        hidden = [f"U+{ord(c):04X}" for c in value if is_invisible(c)]
        assert not hidden, f"{name}: {value!r} carries {hidden}"
        assert all(unicodedata.category(c) != "Cc" for c in value), (name, value)


async def test_a_callbacks_number_and_name_are_apart_and_clean_on_the_phone(
    gateway_factory, sipp_factory, tmp_path
):
    operator = sipp_factory("uas_busy")
    gateway = await gateway_factory(**callback_site(operator.uri, 9, tmp_path / "cb.db"))
    status, body = await request_callback(gateway, number=VISITOR, name=NUMBER_AS_NAME)
    assert status == 400, body
    assert body["error"]["message"] == "name must not look like a phone number (at most 3 digits)."
    status, body = await request_callback(gateway, number=VISITOR, name=DIRTY_NAME)
    assert status == 201, body
    invite = await received_invite(operator)
    assert display_name(invite.header("From")) == f"Callback {VISITOR} (Ann Smith)"
    assert invite.header("X-Visitor-Name") == "Ann Smith"
    assert_visible(invite)
    await operator.assert_passed_async()


async def test_a_callers_name_reaches_the_phone_clean_and_never_as_a_number(
    gateway_factory, sipp_factory
):
    operator = sipp_factory("uas_no_answer")  # rings until the visitor leaves: CANCEL
    gateway = await gateway_factory(
        destination=operator.uri, site_extra='widget = {visitor_details = "optional"}'
    )
    url, origin = gateway.url, gateway.config.http.public_origin
    offer = await aiortc_offer()
    async with visitor_socket(url, origin) as client:
        refused = await start_call(client, offer, {"name": "+44 909 876 5432"})
    assert refused["error"]["code"] == "bad_payload", refused
    assert "visitor.name must not look like a phone number" in refused["error"]["message"]
    async with (
        visitor_socket(url, origin) as client,
        live_call(client, {"name": DIRTY_NAME, "reason": "Order\u200b 42"}) as ack,
    ):
        assert ack["ok"], ack
        invite = await received_invite(operator)  # once the visitor's media is up
    assert display_name(invite.header("From")) == "Ann Smith"
    assert invite.header("X-Visitor-Name") == "Ann Smith"
    assert invite.header("X-Visitor-Reason") == "Order 42"
    assert_visible(invite)
    await operator.assert_passed_async()
