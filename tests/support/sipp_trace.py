"""Reading SIPp's message trace (``-trace_msg``) back as messages, for assertions and checks.

The trace is a sequence of entries::

    ----------------------------------------------- 2026-11-25 18:53:29.282828
    UDP message received [552] bytes :
    <blank line>
    INVITE sip:operator@127.0.0.1:27260 SIP/2.0
    ...headers, blank line, body...

with ``UDP message sent (233 bytes):`` for what SIPp sent (``TCP`` likewise).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["TraceFormatError", "TracedMessage", "parse_trace"]

_ENTRY_SEPARATOR = re.compile(r"^-{20,} (\S+ \S+)\s*$", re.MULTILINE)
_DIRECTION = re.compile(r"^\w+ message (sent|received)\b")


class TraceFormatError(ValueError):
    """An entry of the trace does not look like a SIPp message entry."""


@dataclass(frozen=True)
class TracedMessage:
    """One SIP message as SIPp logged it."""

    sent: bool
    """True if SIPp sent it, False if SIPp received it (from the UA under test)."""
    timestamp: str
    start_line: str
    headers: tuple[tuple[str, str], ...]
    body: str

    @property
    def is_request(self) -> bool:
        return not self.start_line.startswith("SIP/2.0 ")

    @property
    def method(self) -> str | None:
        """The request method, None for a response."""
        return self.start_line.split(" ", 1)[0] if self.is_request else None

    @property
    def request_uri(self) -> str | None:
        parts = self.start_line.split(" ")
        return parts[1] if self.is_request and len(parts) == 3 else None

    @property
    def status(self) -> int | None:
        """The status code, None for a request."""
        if self.is_request:
            return None
        code = self.start_line.split(" ")[1]
        return int(code) if code.isdigit() else None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    @property
    def cseq_method(self) -> str | None:
        cseq = self.header("CSeq")
        return cseq.split()[-1] if cseq else None


def _parse_entry(timestamp: str, text: str) -> TracedMessage:
    lines = text.replace("\r\n", "\n").split("\n")
    direction = _DIRECTION.match(lines[0]) if lines else None
    if direction is None:
        raise TraceFormatError(f"entry at {timestamp} has no direction line: {lines[:1]!r}")
    rest = lines[1:]
    while rest and not rest[0].strip():
        rest = rest[1:]
    if not rest:
        raise TraceFormatError(f"entry at {timestamp} has no message")
    start_line, header_lines = rest[0].strip(), rest[1:]
    headers: list[tuple[str, str]] = []
    body_lines: list[str] = []
    for index, line in enumerate(header_lines):
        if not line.strip():
            body_lines = header_lines[index + 1 :]
            break
        if line[0] in " \t" and headers:  # folded continuation line (RFC 3261 7.3.1)
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise TraceFormatError(f"entry at {timestamp}: header line without colon {line!r}")
        headers.append((name.strip(), value.strip()))
    return TracedMessage(
        sent=direction.group(1) == "sent",
        timestamp=timestamp,
        start_line=start_line,
        headers=tuple(headers),
        body="\n".join(body_lines).strip("\n"),
    )


def parse_trace(text: str) -> list[TracedMessage]:
    """All messages of a SIPp ``-trace_msg`` file, in order."""
    separators = list(_ENTRY_SEPARATOR.finditer(text))
    messages = []
    for index, separator in enumerate(separators):
        end = separators[index + 1].start() if index + 1 < len(separators) else len(text)
        entry = text[separator.end() : end].strip("\r\n")
        messages.append(_parse_entry(separator.group(1), entry))
    return messages
