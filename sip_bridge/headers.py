"""Header fields of a SIP message: names, the ordered multimap, and typed values.

Header names compare case-insensitively and compact forms (RFC 3261 §7.3.3, §20) map to
their full names, so `headers.get("v")` and `headers.get("VIA")` find the same field.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from sip_bridge.errors import SipParseError
from sip_bridge.uri import param_value, parse_params, split_header_list

COMPACT_FORMS = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}

_KNOWN_NAMES = [
    "Accept",
    "Accept-Encoding",
    "Accept-Language",
    "Alert-Info",
    "Allow",
    "Authentication-Info",
    "Authorization",
    "Call-ID",
    "Call-Info",
    "Contact",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Length",
    "Content-Type",
    "CSeq",
    "Date",
    "Error-Info",
    "Expires",
    "From",
    "In-Reply-To",
    "Max-Forwards",
    "Min-Expires",
    "MIME-Version",
    "Organization",
    "Priority",
    "Proxy-Authenticate",
    "Proxy-Authorization",
    "Proxy-Require",
    "Record-Route",
    "Reply-To",
    "Require",
    "Retry-After",
    "Route",
    "Server",
    "Subject",
    "Supported",
    "Timestamp",
    "To",
    "Unsupported",
    "User-Agent",
    "Via",
    "Warning",
    "WWW-Authenticate",
    "RAck",
    "RSeq",
    "Event",
    "Allow-Events",
    "Refer-To",
    "Referred-By",
    "Session-Expires",
    "Min-SE",
    "P-Asserted-Identity",
    "Privacy",
    "Reason",
    "Path",
]
_CANONICAL = {name.lower(): name for name in _KNOWN_NAMES}
_CANONICAL.update(COMPACT_FORMS)

# Headers whose value is a comma-separated list (RFC 3261 §7.3.1) and may be split.
LIST_HEADERS = frozenset(
    name.lower()
    for name in (
        "Via",
        "Route",
        "Record-Route",
        "Contact",
        "Allow",
        "Supported",
        "Require",
        "Proxy-Require",
        "Unsupported",
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Content-Encoding",
        "Allow-Events",
        "Path",
        "P-Asserted-Identity",
    )
)

# Headers that may appear at most once (RFC 3261 §7.3, table 2 and 3).
SINGLE_HEADERS = frozenset(
    name.lower()
    for name in (
        "Call-ID",
        "CSeq",
        "From",
        "To",
        "Max-Forwards",
        "Content-Length",
        "Content-Type",
        "Expires",
    )
)

_TOKEN_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")


def canonical_name(name: str) -> str:
    """The full, conventionally capitalised name of a header field."""
    return _CANONICAL.get(name.lower()) or name


def is_token(text: str) -> bool:
    return bool(_TOKEN_RE.match(text))


class Headers:
    """An ordered multimap of header fields, looked up case-insensitively by full name."""

    __slots__ = ("_fields",)

    def __init__(self, fields: list[tuple[str, str]] | None = None) -> None:
        self._fields: list[tuple[str, str]] = []
        for name, value in fields or ():
            self.add(name, value)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __contains__(self, name: str) -> bool:
        key = canonical_name(name).lower()
        return any(n.lower() == key for n, _ in self._fields)

    def copy(self) -> Headers:
        h = Headers()
        h._fields = list(self._fields)
        return h

    def get(self, name: str, default: str | None = None) -> str | None:
        key = canonical_name(name).lower()
        for n, v in self._fields:
            if n.lower() == key:
                return v
        return default

    def get_all(self, name: str) -> list[str]:
        """Every field of that name, one entry per header line as received."""
        key = canonical_name(name).lower()
        return [v for n, v in self._fields if n.lower() == key]

    def get_list(self, name: str) -> list[str]:
        """The elements of a list header, across repeated lines and comma-joined values."""
        out: list[str] = []
        for value in self.get_all(name):
            out.extend(split_header_list(value))
        return out

    def tokens(self, name: str) -> list[str]:
        """The tokens of an option-tag or method list (Supported, Require, Allow, ...),
        leniently: empty elements and anything that is not a token are skipped, so a
        malformed list never stops a message from being handled."""
        out: list[str] = []
        for value in self.get_all(name):
            for item in value.split(","):
                item = item.strip(" \t")
                if item and _TOKEN_RE.match(item):
                    out.append(item)
        return out

    def add(self, name: str, value: str) -> None:
        self._fields.append((canonical_name(name), value))

    def prepend(self, name: str, value: str) -> None:
        self._fields.insert(0, (canonical_name(name), value))

    def set(self, name: str, value: str) -> None:
        """Replace every field of that name with one (kept where the first one was)."""
        name = canonical_name(name)
        key = name.lower()
        for i, (n, _) in enumerate(self._fields):
            if n.lower() == key:
                self._fields[i] = (name, value)
                self._fields[i + 1 :] = [f for f in self._fields[i + 1 :] if f[0].lower() != key]
                return
        self._fields.append((name, value))

    def remove(self, name: str) -> None:
        key = canonical_name(name).lower()
        self._fields = [f for f in self._fields if f[0].lower() != key]

    def replace_first(self, name: str, value: str) -> None:
        key = canonical_name(name).lower()
        for i, (n, _) in enumerate(self._fields):
            if n.lower() == key:
                self._fields[i] = (n, value)
                return
        raise KeyError(name)


@dataclass(frozen=True, slots=True)
class CSeq:
    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


MAX_CSEQ = 2**31 - 1


def parse_cseq(value: str) -> CSeq:
    parts = value.split()
    if len(parts) != 2:
        raise SipParseError(f"CSeq must be 'number method': {value!r}")
    number, method = parts
    if not (number.isascii() and number.isdigit()) or len(number) > 10 or int(number) > MAX_CSEQ:
        raise SipParseError(f"CSeq number out of range: {number!r}")
    if not is_token(method):
        raise SipParseError(f"CSeq method is not a token: {method!r}")
    return CSeq(int(number), method)


@dataclass(frozen=True, slots=True)
class Via:
    """One Via element: `SIP/2.0/UDP host:port;branch=...;rport`."""

    transport: str
    host: str
    port: int | None
    params: tuple[tuple[str, str | None], ...] = ()

    def param(self, name: str) -> str | None:
        return param_value(self.params, name)

    def has_param(self, name: str) -> bool:
        return param_value(self.params, name) is not None

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host.strip("[]").lower(), self.port

    def with_params(self, **params: str | None) -> Via:
        kept = tuple((k, v) for k, v in self.params if k.lower() not in params)
        return Via(self.transport, self.host, self.port, kept + tuple(params.items()))

    def __str__(self) -> str:
        out = [f"SIP/2.0/{self.transport} {self.host}"]
        if self.port is not None:
            out.append(f":{self.port}")
        for key, value in self.params:
            out.append(f";{key}" if value is None else f";{key}={value}")
        return "".join(out)


_VIA_RE = re.compile(
    r"^\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9\-.!%*_+`'~]+)\s+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)(?:\s*:\s*(\d{1,5}))?\s*(;.*)?$",
    re.DOTALL,
)


def parse_via(value: str) -> Via:
    m = _VIA_RE.match(value)
    if not m:
        raise SipParseError(f"malformed Via: {value!r}")
    transport, host, port_text, param_text = m.groups()
    port = None
    if port_text is not None:
        port = int(port_text)
        if not 0 < port < 65536:
            raise SipParseError(f"Via port out of range: {value!r}")
    params = parse_params(param_text or "", value)
    return Via(transport.upper(), host, port, params)
