"""The RFC 4475 torture messages through the parser and a user agent in phone mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sip_bridge.errors import SipParseError
from sip_bridge.message import Request, parse_message
from sip_bridge.useragent import UserAgent, UserAgentConfig

CORPUS = Path(__file__).parent.parent / "data" / "rfc4475"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())
SOURCE = ("127.0.0.1", 5999)


def ids(entry):
    return f"{entry['section']}-{entry['name']}"


def responses_to(data: bytes) -> list[int]:
    """Feed the message to a UA that accepts calls; return the statuses it answered with."""
    ua = UserAgent(UserAgentConfig(address=("127.0.0.1", 5060), accept_incoming=True))
    ua.receive_datagram(data, SOURCE, 0.0)
    statuses = []
    for datagram, _ in ua.datagrams_to_send(0.0):
        # A reply to a request missing its From or CSeq cannot be complete SIP itself, so
        # read the status line only.
        status_line = datagram.split(b"\r\n", 1)[0].decode()
        assert status_line.startswith("SIP/2.0 ")
        statuses.append(int(status_line.split()[1]))
    return statuses


def test_corpus_is_complete():
    assert len(MANIFEST) == 49
    assert all((CORPUS / e["file"]).exists() for e in MANIFEST)


@pytest.mark.parametrize("entry", MANIFEST, ids=ids)
def test_torture_message(entry):
    data = (CORPUS / entry["file"]).read_bytes()
    expected = entry["expected"]
    if expected == "parse-error":
        with pytest.raises(SipParseError) as err:
            parse_message(data)
        assert err.value.reason  # says what was wrong
        answers = responses_to(data)
        if entry["status"] is None:
            assert answers == []
        else:
            assert answers == [entry["status"]], err.value.reason
        return
    answers = responses_to(data)
    if expected.startswith("parse, then respond"):
        # Refusing it in the parser or later in the UA is the same to the sender.
        status = int(expected.rsplit(" ", 1)[1])
        final = [s for s in answers if s >= 200]
        assert final == [status], f"{entry['rfc_says']} -> {answers}"
        return
    message = parse_message(data)
    if isinstance(message, Request):
        # Valid requests are processed normally: never a 400 for a message that parsed.
        assert 400 not in answers
