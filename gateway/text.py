"""What a visitor tells the operator: their name, the reason, the page they are on.

These reach the operator's phone in SIP headers and its display name, from two faces:
call:start (signaling/payloads.py) and `POST /api/callbacks` (gateway/callbacks/requests.py), which
both clean them here. Text is one line of real Unicode: whitespace runs become one space,
bidirectional controls (which could make the display lie) are dropped, and any other
control character, or a lone surrogate (JSON can carry one), is refused.

A page's address is shown to the operator (an `X-Visitor-Page` header), so only a plain
http(s) URL passes, and without its query and fragment: they may hold a visitor's search
or a session token. Both faces that take one, call:start (signaling/payloads.py) and
`POST /api/callbacks` (gateway/callbacks/requests.py), clean it here.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit, urlunsplit

MAX_PAGE_CHARS = 1024
MAX_NAME_CHARS = 64
MAX_REASON_CHARS = 200
_BIDI_CONTROLS = dict.fromkeys(
    map(ord, "\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
)
MAX_SHOWN_CHARS = 80
_DEFAULT_PORTS = {"http": 80, "https": 443}


def clean_visitor_text(value: str, max_chars: int) -> str:
    """One line of text a visitor typed, cleaned; ValueError finishes the sentence
    "name ..." (or "reason ...") with what is wrong."""
    if len(value) > 4 * max_chars:  # before any work on a huge string
        raise ValueError(f"is longer than {max_chars} characters")
    text = " ".join(value.translate(_BIDI_CONTROLS).split())
    if len(text) > max_chars:
        raise ValueError(f"is longer than {max_chars} characters")
    for char in text:
        category = unicodedata.category(char)
        if category == "Cc":
            raise ValueError("contains control characters")
        if category == "Cs":
            raise ValueError("is not valid Unicode")
    return text


def clean_page_url(value: str) -> str:
    """`value` as `scheme://host[:port]/path`, lower-case scheme and host; ValueError
    finishes the sentence "page ..." with what is wrong."""
    if len(value) > MAX_PAGE_CHARS:
        raise ValueError(f"is longer than {MAX_PAGE_CHARS} characters")
    # A browser's location.href is ASCII (anything else percent-encoded).
    if not value.isascii() or any(char <= " " or char == "\x7f" for char in value):
        raise ValueError("must be a URL of printable ASCII characters, no spaces")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise ValueError(f"is not a URL: {_shown(value)}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http(s) URL, got {_shown(value)}")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry a user or password")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", "", ""))


def origin_of(page: str) -> str:
    """The origin of an http(s) URL as browsers write it: lower case, no default port."""
    parts = urlsplit(page)
    scheme, host, port = parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    if ":" in host:
        host = f"[{host}]"
    shown_port = f":{port}" if port is not None and port != _DEFAULT_PORTS.get(scheme) else ""
    return f"{scheme}://{host}{shown_port}"


def _shown(value: str) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."
