"""Click-to-chat's gateway side (gateway.chat.conversations) against real SIP endpoints on
loopback standing in for desk phones: a visitor's message reaches every destination not
down, the one that replies gets the rest; replies from a host that is no destination, or
to no conversation, are refused; nobody taking a message or replying in time is told; a
closed site, a site without chat and a full conversation refuse. Timers run on looptime's
fake clock."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest

from gateway.access.admission import LimitRefused
from gateway.api import CallRefused, ChatDelivery, ChatReply, ChatState, ChatUpdate
from gateway.calls.manager import CallManager
from gateway.chat.conversations import Conversations
from gateway.config import parse_config
from sip_bridge import MessageReceived, SipEndpoint, UserAgentConfig, parse_name_address
from tests.support.ports import free_udp_port

pytestmark = pytest.mark.looptime


class Phone:
    """A desk phone that takes chat messages (or refuses them with `status`)."""

    def __init__(self, endpoint: SipEndpoint, status: int = 200) -> None:
        self.endpoint = endpoint
        self.status = status
        self.received: list[MessageReceived] = []
        endpoint.on_message = self._take

    def _take(self, message: MessageReceived) -> int:
        self.received.append(message)
        return self.status

    @property
    def uri(self) -> str:
        host, port = self.endpoint.local_address
        return f"sip:desk@{host}:{port}"

    async def reply(self, text: str, to: MessageReceived | None = None) -> int | None:
        sender = parse_name_address((to or self.received[-1]).sender).uri
        result = await self.endpoint.message(str(sender), text, timeout=2, from_user="desk")
        return result.status


@pytest.fixture
async def endpoints() -> AsyncIterator[list[SipEndpoint]]:
    opened: list[SipEndpoint] = []
    yield opened
    for endpoint in opened:
        await endpoint.close()


async def open_endpoint(endpoints: list[SipEndpoint], host: str = "127.0.0.1") -> SipEndpoint:
    port = free_udp_port()
    endpoint = await SipEndpoint.open(
        UserAgentConfig(address=(host, port), accept_messages=True), bind=(host, port)
    )
    endpoints.append(endpoint)
    return endpoint


async def chat_service(endpoints, destinations: list[str], site: str = "") -> Conversations:
    gateway = await open_endpoint(endpoints)
    listed = ", ".join(f'"{uri}"' for uri in destinations)
    config = parse_config(
        f'[[sites]]\nid = "shop"\ndestinations = [{listed}]\nring = "parallel"\nchat = true\n'
        f"chat_timeout = 30\nmax_conversation_messages = 4\n{site}"
        '[[sites]]\nid = "plain"\ndestination = "sip:desk@127.0.0.1:9"\n',
        {},
    )
    return Conversations(config, gateway, CallManager(config, gateway))


async def until(condition, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def test_a_message_reaches_every_destination_and_the_one_that_replies_keeps_it(
    endpoints,
) -> None:
    alice, bob = Phone(await open_endpoint(endpoints)), Phone(await open_endpoint(endpoints))
    chats = await chat_service(endpoints, [alice.uri, bob.uri])
    site = chats.config.site("shop")
    told: list[ChatUpdate] = []
    first = await chats.send(site, "192.0.2.7", "Where is order 42? 👋", told.append)
    await until(lambda: told)
    assert told == [ChatDelivery(first.conversation_id, first.message_id, ChatState.DELIVERED)]
    assert (
        [m.text for m in alice.received]
        == [m.text for m in bob.received]
        == ["Where is order 42? 👋"]
    )
    assert alice.received[0].request_uri == alice.uri

    assert await bob.reply("Shipped today\x07 🚚\r\nBob") == 200
    (reply,) = [u for u in told if isinstance(u, ChatReply)]
    assert reply.text == "Shipped today 🚚\nBob"  # a control character dropped, lines kept
    second = await chats.send(
        site, "192.0.2.7", "Thanks!", told.append, conversation_id=first.conversation_id
    )
    assert second.conversation_id == first.conversation_id
    await until(lambda: len(bob.received) == 2)
    assert len(alice.received) == 1  # Bob has the visitor now

    # A reply to a conversation that is over, or to none, is refused.
    await chats.close(first.conversation_id)
    assert await bob.reply("Anything else?") == 404


async def test_replies_from_elsewhere_are_refused(endpoints) -> None:
    desk = Phone(await open_endpoint(endpoints))
    chats = await chat_service(endpoints, [desk.uri])
    told: list[ChatUpdate] = []
    await chats.send(chats.config.site("shop"), "192.0.2.7", "hello", told.append)
    await until(lambda: desk.received)
    # Another host that learned the conversation's address (here: 127.0.0.2).
    intruder = Phone(await open_endpoint(endpoints, "127.0.0.2"))
    assert await intruder.reply("I am the operator", to=desk.received[0]) == 403
    assert not [u for u in told if isinstance(u, ChatReply)]


async def test_nobody_taking_or_answering_a_message_is_told(endpoints) -> None:
    refusing = Phone(await open_endpoint(endpoints), status=480)
    chats = await chat_service(endpoints, [refusing.uri])
    site = chats.config.site("shop")
    told: list[ChatUpdate] = []
    receipt = await chats.send(site, "192.0.2.7", "anyone?", told.append)
    await until(lambda: told)
    assert told == [
        ChatDelivery(
            receipt.conversation_id, receipt.message_id, ChatState.UNANSWERED, "unreachable"
        )
    ]

    desk = Phone(await open_endpoint(endpoints))
    chats = await chat_service(endpoints, [desk.uri])
    told.clear()
    receipt = await chats.send(chats.config.site("shop"), "192.0.2.8", "anyone?", told.append)
    await until(lambda: told)
    assert told[0].state == ChatState.DELIVERED
    await asyncio.sleep(29)
    assert len(told) == 1
    await asyncio.sleep(2)  # chat_timeout = 30 s without a reply
    assert told[1] == ChatDelivery(
        receipt.conversation_id, receipt.message_id, ChatState.UNANSWERED, "no_reply"
    )


async def test_sites_and_bounds_refuse_with_their_codes(endpoints) -> None:
    desk = Phone(await open_endpoint(endpoints))
    today = dt.datetime.now(dt.UTC).date().isoformat()
    week = ", ".join(
        f'{d} = "00:00-24:00"' for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    )
    closed = f'hours = {{timezone = "UTC", {week}, closed = ["{today}"]}}\n'
    chats = await chat_service(endpoints, [desk.uri], site=closed)
    with pytest.raises(CallRefused) as refused:
        await chats.send(chats.config.site("shop"), "192.0.2.7", "hi", lambda u: None)
    assert refused.value.code == "closed"
    with pytest.raises(CallRefused) as refused:
        await chats.send(chats.config.site("plain"), "192.0.2.7", "hi", lambda u: None)
    assert refused.value.code == "chat_off"

    chats = await chat_service(endpoints, [desk.uri])
    site = chats.config.site("shop")
    receipt = await chats.send(site, "192.0.2.9", "1", lambda u: None)
    for text in ("2", "3", "4"):
        await chats.send(
            site, "192.0.2.9", text, lambda u: None, conversation_id=receipt.conversation_id
        )
    with pytest.raises(CallRefused) as refused:  # max_conversation_messages = 4
        await chats.send(
            site, "192.0.2.9", "5", lambda u: None, conversation_id=receipt.conversation_id
        )
    assert refused.value.code == "conversation_full"
    # A conversation starts as a call does: within the visitor's call windows (5 in 15
    # minutes here); the messages in it have their own limit (tests/e2e: 50 in a second).
    for _ in range(5):
        await chats.send(site, "192.0.2.10", "hi", lambda u: None)
    with pytest.raises(LimitRefused) as limited:
        await chats.send(site, "192.0.2.10", "hi", lambda u: None)
    assert limited.value.code == "rate_limited"


async def test_during_a_call_messages_go_to_whoever_answered_it(endpoints) -> None:
    alice, bob = Phone(await open_endpoint(endpoints)), Phone(await open_endpoint(endpoints))
    chats = await chat_service(endpoints, [alice.uri, bob.uri])

    class AnsweredCall:  # what the manager knows of the visitor's call: who answered
        answered_by = bob.uri

    chats.calls.calls["call-1"] = AnsweredCall()  # type: ignore[assignment]
    told: list[ChatUpdate] = []
    await chats.send(
        chats.config.site("shop"), "192.0.2.7", "order 42", told.append, call_id="call-1"
    )
    await until(lambda: told)
    assert [m.text for m in bob.received] == ["order 42"] and alice.received == []
