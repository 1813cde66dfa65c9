"""Visitor details in call:start: validated and cleaned by the payload parser, pages of
other origins dropped by the namespace, and handed to the service."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.api import VisitorDetails
from signaling.payloads import PayloadError, StartCall, parse_client_event
from tests.signaling.conftest import DEMO_ORIGIN, OFFER_SDP, Connect, SignalingServer

SDP = "v=0\r\n"


def start(visitor: object) -> StartCall:
    event = parse_client_event("call:start", ({"sdp": SDP, "visitor": visitor},))
    assert isinstance(event, StartCall)
    return event


def test_without_visitor_the_details_are_empty() -> None:
    assert parse_client_event("call:start", ({"sdp": SDP},)) == StartCall(SDP, VisitorDetails())


def test_details_are_read_and_cleaned() -> None:
    event = start(
        {
            "name": "  Ana \t María\n",
            "reason": "Order\u202e 42 ",
            "page": "HTTPS://Shop.Example.com:8443/Cart/Step?card=4111#pay",
        }
    )
    assert event.visitor == VisitorDetails(
        name="Ana María",  # whitespace runs are one space
        reason="Order 42",  # a bidi override is dropped
        page="https://shop.example.com:8443/Cart/Step",  # no query, no fragment
    )
    assert start({}).visitor == VisitorDetails()
    assert start({"page": "http://a.example"}).visitor.page == "http://a.example/"
    # A call link's ?source= tag: one line, invisible characters dropped.
    assert start({"source": " news\u200bletter\n"}).visitor.source == "newsletter"


@pytest.mark.parametrize(
    ("visitor", "message"),
    [
        ("Ana", "visitor must be an object, got string"),
        ({"email": "a@b"}, "unexpected key visitor.'email'"),
        ({"name": 5}, "visitor.name must be a string, got number"),
        ({"name": "x" * 65}, "visitor.name is longer than 64 characters"),
        ({"name": "x" * 1000}, "visitor.name is longer than 64 characters"),
        ({"reason": "y" * 201}, "visitor.reason is longer than 200 characters"),
        ({"name": "Ana\x00"}, "visitor.name contains control characters"),
        ({"name": "Ana\x9bx"}, "visitor.name contains control characters"),
        ({"reason": "\ud800"}, "visitor.reason is not valid Unicode"),
        ({"page": "javascript:alert(1)"}, "visitor.page must be an http(s) URL"),
        ({"page": "https://"}, "visitor.page must be an http(s) URL"),
        ({"page": "https://a.example/ö"}, "printable ASCII"),
        ({"page": "https://a.example/a b"}, "printable ASCII"),
        ({"page": "https://u:p@a.example/"}, "must not carry a user or password"),
        ({"page": "https://a.example:99999/"}, "visitor.page is not a URL"),
        ({"page": "https://[::1/"}, "visitor.page is not a URL"),
        ({"page": "https://a.example/" + "a" * 1024}, "longer than 1024 characters"),
        ({"page": None}, "visitor.page must be a string, got null"),
        ({"source": 7}, "visitor.source must be a string, got number"),
        ({"source": "s" * 65}, "visitor.source is longer than 64 characters"),
        ({"source": "a\x1bb"}, "visitor.source contains control characters"),
    ],
)
def test_bad_details_are_refused_in_words(visitor: object, message: str) -> None:
    with pytest.raises(PayloadError) as caught:
        start(visitor)
    assert message in caught.value.message
    assert caught.value.message.startswith("call:start: ")


@given(
    st.dictionaries(
        st.sampled_from(["name", "reason", "page", "source", "x"]), st.from_type(object)
    )
)
def test_any_visitor_value_parses_or_is_a_payload_error(visitor: dict) -> None:
    try:
        event = start(visitor)
    except PayloadError:
        return
    visitor = event.visitor
    for text in (visitor.name, visitor.reason, visitor.page, visitor.source):
        assert text == " ".join(text.split())  # one line, trimmed
        text.encode("utf-8")  # no lone surrogates


async def test_the_service_gets_the_details(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    client = await connect()
    ack = await client.call(
        "call:start",
        {
            "sdp": OFFER_SDP,
            "visitor": {"name": "Ana", "reason": "delivery", "page": f"{DEMO_ORIGIN}/cart?x=1"},
        },
    )
    assert ack["ok"] is True, ack
    assert signaling_server.service.visitors == [
        VisitorDetails("Ana", "delivery", f"{DEMO_ORIGIN}/cart")
    ]


async def test_a_page_of_another_origin_is_dropped(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    client = await connect()
    ack = await client.call(
        "call:start",
        {"sdp": OFFER_SDP, "visitor": {"name": "Ana", "page": "https://evil.example/x"}},
    )
    assert ack["ok"] is True, ack
    assert signaling_server.service.visitors == [VisitorDetails("Ana", "", "")]


async def test_bad_details_refuse_the_call_and_keep_the_connection(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    client = await connect()
    ack = await client.call("call:start", {"sdp": OFFER_SDP, "visitor": {"name": "a\x07"}})
    assert ack == {
        "ok": False,
        "error": {
            "code": "bad_payload",
            "message": "call:start: visitor.name contains control characters",
        },
    }
    assert signaling_server.service.visitors == []
    assert (await client.call("call:start", {"sdp": OFFER_SDP}))["ok"] is True
