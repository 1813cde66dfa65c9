"""Voicemail and chat over signaling, with real socket.io clients and the in-memory
service: the events' payloads checked and cleaned, what each is handed to the gateway
with (the connection's last call, its conversation, its call), the gateway's news passed
on, and a visitor who leaves sending their voicemail and ending their conversation."""

from __future__ import annotations

import pytest

from gateway.api import (
    CallRefused,
    ChatDelivery,
    ChatReply,
    ChatState,
    VisitorDetails,
    VoicemailState,
    VoicemailUpdate,
)
from signaling.payloads import PayloadError, SendChat, StartVoicemail, parse_client_event
from tests.signaling.conftest import DEMO_ORIGIN, OFFER_SDP, Connect, SignalingServer


def test_chat_text_is_cleaned_and_bad_text_refused_in_words() -> None:
    event = parse_client_event("chat:send", ({"text": "  pay\u202e 42 👋\r\nthanks\n\n"},))
    assert event == SendChat("pay 42 👋\nthanks")
    for payload, message in (
        ({"text": " \n "}, "chat:send: text is empty"),
        ({"text": "a\x07"}, "chat:send: text contains control characters"),
        ({"text": "x" * 1001}, "chat:send: text is longer than 1000 characters"),
        ({"text": 5}, "chat:send: text must be a string, got number"),
        ({"text": "hi", "to": "sip:x"}, "chat:send: unexpected key 'to'"),
    ):
        with pytest.raises(PayloadError) as caught:
            parse_client_event("chat:send", (payload,))
        assert caught.value.message == message
    event = parse_client_event(
        "voicemail:start", ({"sdp": OFFER_SDP, "visitor": {"source": "mail"}},)
    )
    assert event == StartVoicemail(OFFER_SDP, VisitorDetails(source="mail"))


async def test_a_voicemail_follows_the_connections_call_and_leaving_sends_it(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    service = signaling_server.service
    client = await connect()
    call_id = await client.start_call()
    assert (await client.call("call:hangup", {}))["ok"] is True
    ack = await client.call(
        "voicemail:start",
        {"sdp": OFFER_SDP, "visitor": {"page": "https://evil.example/", "name": "Ana"}},
    )
    assert ack == {
        "ok": True,
        "voicemail_id": ack["voicemail_id"],
        "sdp": ack["sdp"],
        "max_seconds": 120.0,
    }
    ((site, _, visitor, after),) = service.calls_to("start_voicemail")
    assert (site, after) == ("demo", call_id)
    assert visitor == VisitorDetails(name="Ana")  # a page of another origin is dropped
    # One thing at a time: no call while a voicemail is being left.
    refused = await client.call("call:start", {"sdp": OFFER_SDP})
    assert refused["error"]["code"] == "call_active"
    notify = service.voicemail_notifiers[ack["voicemail_id"]]
    notify(VoicemailUpdate(VoicemailState.RECORDING, seconds=120.0))
    assert await client.next("voicemail:state") == {
        "voicemail_id": ack["voicemail_id"],
        "state": "recording",
        "seconds": 120.0,
    }
    await client.sio.disconnect()
    await signaling_server.settle()
    assert service.calls_to("send_voicemail") == [(ack["voicemail_id"],)]


async def test_send_and_the_saved_state_end_the_voicemail(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    service = signaling_server.service
    client = await connect()
    ack = await client.call("voicemail:start", {"sdp": OFFER_SDP})
    assert service.calls_to("start_voicemail")[0][3] is None  # no call came first
    assert (await client.call("voicemail:send", {}))["ok"] is True
    service.voicemail_notifiers[ack["voicemail_id"]](
        VoicemailUpdate(VoicemailState.SAVED, seconds=4.0)
    )
    assert await client.next("voicemail:state") == {
        "voicemail_id": ack["voicemail_id"],
        "state": "saved",
        "seconds": 4.0,
    }
    again = await client.call("voicemail:send", {})
    assert again["error"]["code"] == "no_voicemail"
    assert (await client.call("call:start", {"sdp": OFFER_SDP}))["ok"] is True
    service.refusal = CallRefused("voicemail_off", "this site takes no voicemail")
    refused = await client.call("voicemail:start", {"sdp": OFFER_SDP})
    assert refused["error"]["code"] == "call_active"  # the call goes on


async def test_a_conversation_goes_on_across_messages_and_calls_and_ends_on_leaving(
    connect: Connect, signaling_server: SignalingServer
) -> None:
    service = signaling_server.service
    client = await connect()
    first = await client.call(
        "chat:send", {"text": "hello", "visitor": {"page": f"{DEMO_ORIGIN}/shop?x=1"}}
    )
    conversation = first["conversation_id"]
    call_id = await client.start_call()
    second = await client.call("chat:send", {"text": "my order is 42"})
    assert second["conversation_id"] == conversation
    (one, two) = service.calls_to("chat_send")
    assert one == ("demo", "hello", VisitorDetails(page=f"{DEMO_ORIGIN}/shop"), None, None)
    assert two == ("demo", "my order is 42", VisitorDetails(), conversation, call_id)
    notify = service.chat_notifiers[conversation]
    notify(ChatDelivery(conversation, second["message_id"], ChatState.DELIVERED))
    notify(ChatReply(conversation, "r1", "Got it 👍", 1_800_000_000.0))
    notify(ChatDelivery(conversation, "m9", ChatState.UNANSWERED, "no_reply"))
    assert await client.next("chat:state") == {
        "conversation_id": conversation,
        "message_id": second["message_id"],
        "state": "delivered",
    }
    assert await client.next("chat:message") == {
        "conversation_id": conversation,
        "message_id": "r1",
        "text": "Got it 👍",
        "at": 1_800_000_000.0,
    }
    assert (await client.next("chat:state"))["reason"] == "no_reply"
    service.refusal = CallRefused("too_many_messages", "too many messages", retry_after=30)
    refused = await client.call("chat:send", {"text": "again"})
    assert refused == {
        "ok": False,
        "error": {"code": "too_many_messages", "message": "too many messages", "retry_after": 30},
    }
    await client.sio.disconnect()
    await signaling_server.settle()
    assert service.calls_to("chat_close") == [(conversation,)]
