"""Click-to-text's gateway side (gateway.chat.left, gateway.chat.contact) with a real
database: a message is cleaned, stored and told; every field that is wrong is refused with
its own code and nothing is kept; a page of another origin and a conversation of another
visitor are left out; the visitor's call windows bound it."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.access.admission import LimitRefused
from gateway.api import MessageRefused
from gateway.chat.contact import ContactError, parse_contact
from gateway.chat.left import LeftMessages
from gateway.config import parse_config
from gateway.storage import Conversation, Database
from tests.gateway.clock import FakeClock

CONFIG = """
[[sites]]
id = "shop"
destination = "sip:desk@pbx.example.com"
origins = ["https://shop.example"]
fallback = ["text"]
[[sites]]
id = "plain"
destination = "sip:desk@pbx.example.com"
"""


class Told:
    def __init__(self) -> None:
        self.messages: list[dict] = []

    def message_received(self, message) -> None:
        self.messages.append(dict(message))


@pytest.fixture
async def database(tmp_path: Path):
    database = await Database.open(f"sqlite:///{tmp_path / 'gw.db'}")
    yield database
    await database.close()


@pytest.fixture
def left(database: Database) -> LeftMessages:
    admitted: list[str] = []

    async def admit(site, client: str) -> None:
        admitted.append(client)
        if admitted.count(client) > 3:
            raise LimitRefused("rate_limited", "too many calls", "three already")

    messages = LeftMessages(
        parse_config(CONFIG, {}), database, admit, clock=FakeClock(1_800_000_000.0)
    )
    messages.notifier = Told()  # type: ignore[assignment]
    return messages


@pytest.mark.parametrize(
    ("typed", "kept", "kind"),
    [
        (" Ana@Example.com ", "Ana@Example.com", "email"),
        ("+44 20 7946 0123", "+44 20 7946 0123", "phone"),
        ("(555) 010-0199", "(555) 010-0199", "phone"),
    ],
)
def test_a_way_back_is_a_number_or_an_address(typed: str, kept: str, kind: str) -> None:
    assert parse_contact(typed) == (kept, kind)


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        (None, "contact_missing"),
        ("  ", "contact_missing"),
        ("12345", "contact_invalid"),  # 5 digits: no number
        ("1" * 16, "contact_invalid"),  # longer than E.164
        ("call me maybe", "contact_invalid"),
        ("ana@", "contact_invalid"),
        ("ana@example", "contact_invalid"),
        ("+44 20 7946 0123\r\nBcc: x@y.z", "contact_invalid"),
        (7, "contact_invalid"),
    ],
)
def test_anything_else_is_refused_with_its_code(typed: object, code: str) -> None:
    with pytest.raises(ContactError) as refused:
        parse_contact(typed)
    assert refused.value.code == code


async def test_a_message_is_cleaned_kept_and_told(left: LeftMessages, database: Database) -> None:
    await database.conversations.started(Conversation("c1", "shop", 1.0, 1.0, client="192.0.2.7"))
    answer = await left.leave(
        {
            "site": "shop",
            "text": "Hello\u202e 👋\r\n\r\n\r\nsecond line ",
            "contact": "ana@example.com",
            "name": " Ana ",
            "page": "https://shop.example/cart?card=4111",
            "source": "newsletter",
            "conversation": "c1",
        },
        client="192.0.2.7",
    )
    assert answer["received_at"] == 1_800_000_000.0
    (stored,) = await database.messages.find(site="shop")
    assert stored.id == answer["id"]
    assert stored.text == "Hello 👋\n\nsecond line"
    assert (stored.name, stored.contact, stored.contact_kind) == ("Ana", "ana@example.com", "email")
    assert (stored.page, stored.visitor_source) == ("https://shop.example/cart", "newsletter")
    assert stored.conversation_id == "c1" and stored.client == "192.0.2.7"
    (told,) = left.notifier.messages  # type: ignore[attr-defined]
    assert told["id"] == stored.id and "client" not in told


async def test_other_pages_and_other_visitors_conversations_are_left_out(
    left: LeftMessages, database: Database
) -> None:
    await database.conversations.started(
        Conversation("theirs", "shop", 1.0, 1.0, client="198.51.100.1")
    )
    await left.leave(
        {
            "site": "shop",
            "text": "hi",
            "contact": "+33 1 23 45 67 89",
            "page": "https://evil.example/",
            "conversation": "theirs",
        },
        client="192.0.2.7",
    )
    (stored,) = await database.messages.find()
    assert stored.page == "" and stored.conversation_id is None


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"site": "plain"}, "messages_off"),
        ({"site": "nosuch"}, "messages_off"),
        ({"text": ""}, "text_missing"),
        ({"text": "a\x07b"}, "text_invalid"),
        ({"text": "x" * 1001}, "text_invalid"),
        ({"contact": ""}, "contact_missing"),
        ({"contact": "nobody"}, "contact_invalid"),
        ({"name": "0612345678"}, "name_invalid"),
        ({"page": "javascript:alert(1)"}, "bad_request"),
        ({"source": "a\x1b"}, "bad_request"),
        ({"to": "someone"}, "bad_request"),
    ],
)
async def test_a_wrong_field_refuses_the_message_and_keeps_nothing(
    left: LeftMessages, database: Database, fields: dict, code: str
) -> None:
    payload = {"site": "shop", "text": "hello", "contact": "ana@example.com", **fields}
    with pytest.raises(MessageRefused) as refused:
        await left.leave(payload, client="192.0.2.7")
    assert refused.value.code == code
    assert await database.messages.find() == []
    assert left.notifier.messages == []  # type: ignore[attr-defined]


async def test_the_visitors_call_windows_bound_messages(left: LeftMessages) -> None:
    payload = {"site": "shop", "text": "hello", "contact": "ana@example.com"}
    for _ in range(3):
        await left.leave(payload, client="192.0.2.7")
    with pytest.raises(LimitRefused):
        await left.leave(payload, client="192.0.2.7")
    await left.leave(payload, client="192.0.2.8")  # another visitor
