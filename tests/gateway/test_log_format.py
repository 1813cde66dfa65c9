"""A library's log record is escaped and bounded like the gateway's own
(gateway.process.logs), in both formats: what aioice would say of an evil candidate."""

from __future__ import annotations

import json
import logging

import pytest

from gateway.process.logs import MAX_MESSAGE_CHARS, JsonLineFormatter, TextFormatter
from gateway.text import clipped

ESCAPES = "\x1b]0;owned\x07\x1b[31;1m"


def aioice_record(host: str) -> logging.LogRecord:
    return logging.LogRecord(
        "aioice.ice", logging.INFO, "ice.py", 1, 'Remote candidate "%s" is not valid', (host,), None
    )


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonLineFormatter()], ids=["text", "json"])
def test_a_library_line_is_escaped_and_bounded(formatter: logging.Formatter) -> None:
    escaped = formatter.format(aioice_record(f"{ESCAPES}evil.example"))
    assert "\x1b" not in escaped and "\x07" not in escaped
    message = escaped if isinstance(formatter, TextFormatter) else json.loads(escaped)["message"]
    assert "\\x1b]0;owned\\x07\\x1b[31;1mevil" in message  # shown, not run
    long = formatter.format(aioice_record("x" * 6150))
    assert len(long) < MAX_MESSAGE_CHARS + 200 and "more characters)" in long


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonLineFormatter()], ids=["text", "json"])
def test_the_gateway_s_own_line_is_escaped_once(formatter: logging.Formatter) -> None:
    """A value the gateway bounds at its log call (`clipped`) is escaped by the formatter
    alone: a visitor's escape shows as `\\x1b`, not with its backslash doubled."""
    record = logging.LogRecord(
        "gateway.calls.manager",
        logging.INFO,
        "manager.py",
        1,
        "call from %s",
        (clipped(f"{ESCAPES}ann\\x", 40),),
        None,
    )
    shown = formatter.format(record)
    message = shown if isinstance(formatter, TextFormatter) else json.loads(shown)["message"]
    assert "call from \\x1b]0;owned\\x07\\x1b[31;1mann\\\\x" in message, message
