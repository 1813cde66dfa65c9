"""Text from outside, cleaned and bounded before it reaches a phone, a page or a log.

What a visitor tells the operator (their name, the reason, the page they are on) reaches
the operator's phone in SIP headers and its display name, from two faces: call:start
(signaling/payloads.py) and `POST /api/callbacks` (gateway/callbacks/requests.py), which
both clean it here. Text is one line of visible Unicode: whitespace runs become one space;
format characters (Unicode category Cf: bidirectional controls, zero-width spaces and
joiners, U+061C, U+FEFF, tag characters...) and other invisible characters (fillers,
variation selectors, private-use and unassigned code points) are dropped, since they could
make the display read as something else or hide text in it; any other control character, or
a lone surrogate (JSON can carry one), is refused. A name may not look like a phone number
(at most `MAX_NAME_DIGITS` digits): the operator's phone shows it next to the number it
would call back.

A page's address is shown to the operator (an `X-Visitor-Page` header), so only a plain
http(s) URL passes, and without its query and fragment: they may hold a visitor's search
or a session token.

A call link's `?source=<tag>` (where the visitor came from: a newsletter, a post) reaches
the operator too (`X-Visitor-Source`): one short line, `clean_source_tag`.

A chat message or a message left for the site (`clean_message_text`) may hold several
lines and any script, emoji among them: line breaks are kept (at most `MAX_MESSAGE_LINES`),
the joiners and variation selectors emoji and some scripts are written with are kept, and
everything else invisible (bidirectional controls first) is dropped as in a name.

`loggable` makes any string from outside (a visitor's name or address, a candidate's host
name, a SIP header, a peer's error text) safe to log: control, format and invisible
characters written as escapes, the length bounded.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import urlsplit, urlunsplit

MAX_PAGE_CHARS = 1024
MAX_NAME_CHARS = 64
MAX_NAME_DIGITS = 3  # more, and a name could pass for a phone number on the phone's display
MAX_REASON_CHARS = 200
MAX_SOURCE_CHARS = 64
MAX_MESSAGE_CHARS = 1000
MAX_MESSAGE_LINES = 20
MAX_SHOWN_CHARS = 80
MAX_LOGGED_CHARS = 200  # a value from outside in a log line
_DEFAULT_PORTS = {"http": 80, "https": 443}

# Default_Ignorable_Code_Point (Unicode's DerivedCoreProperties) that are not format
# characters (Cf) already: they show nothing, or change how their neighbours show.
_INVISIBLE_RANGES = (
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x115F, 0x1160),  # Hangul fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian variation selectors, vowel separator
    (0x2800, 0x2800),  # braille pattern blank: looks like a space, is a letter
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),  # shorthand format controls
    (0x1D173, 0x1D17A),  # musical symbol beams and slurs
    (0xE0000, 0xE0FFF),  # tags, variation selectors supplement
)
_HIDDEN_CATEGORIES = frozenset({"Cf", "Co", "Cn"})  # format, private use, unassigned


def is_invisible(char: str) -> bool:
    """Whether `char` shows nothing (or changes how others show) but is no whitespace."""
    if unicodedata.category(char) in _HIDDEN_CATEGORIES:
        return True
    code = ord(char)
    return any(low <= code <= high for low, high in _INVISIBLE_RANGES)


def clean_visitor_text(value: str, max_chars: int) -> str:
    """One line of text a visitor typed, cleaned; ValueError finishes the sentence
    "name ..." (or "reason ...") with what is wrong."""
    if len(value) > 4 * max_chars:  # before any work on a huge string
        raise ValueError(f"is longer than {max_chars} characters")
    for char in value:
        if unicodedata.category(char) == "Cs":
            raise ValueError("is not valid Unicode")
    visible = "".join(char for char in value if not is_invisible(char))
    text = " ".join(visible.split())
    if len(text) > max_chars:
        raise ValueError(f"is longer than {max_chars} characters")
    if any(unicodedata.category(char) == "Cc" for char in text):
        raise ValueError("contains control characters")
    return text


def clean_source_tag(value: str) -> str:
    """Where a visitor came from, as a call link's `?source=` names it ("newsletter",
    "spring-sale"): one line as `clean_visitor_text`, at most `MAX_SOURCE_CHARS`;
    ValueError finishes the sentence "source ..." with what is wrong."""
    return clean_visitor_text(value, MAX_SOURCE_CHARS)


# Invisible, but part of how text is written: emoji sequences (ZWJ, variation selectors,
# the tags of subdivision flags) and Persian or Indic words (ZWNJ). None of them can
# reorder or hide the text around them, unlike the bidirectional controls.
_KEPT_IN_MESSAGES = frozenset({"\u200c", "\u200d", "\ufe0e", "\ufe0f"})
_EMOJI_TAGS = (0xE0020, 0xE007F)


def _kept_in_message(char: str) -> bool:
    return char in _KEPT_IN_MESSAGES or _EMOJI_TAGS[0] <= ord(char) <= _EMOJI_TAGS[1]


def clean_message_text(value: str, max_chars: int = MAX_MESSAGE_CHARS) -> str:
    """A message a visitor (or an operator) wrote: lines kept (CR LF and CR made LF, at
    most `MAX_MESSAGE_LINES`, runs of blank lines made one, spaces and tabs in a line made
    one space), invisible characters dropped as in `clean_visitor_text` except the joiners
    and selectors emoji and scripts need, the ends trimmed. ValueError finishes the
    sentence "text ..." with what is wrong: empty, too long, a control character or a lone
    surrogate."""
    if len(value) > 4 * max_chars:
        raise ValueError(f"is longer than {max_chars} characters")
    for char in value:
        if unicodedata.category(char) == "Cs":
            raise ValueError("is not valid Unicode")
    lines: list[str] = []
    for line in value.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        visible = "".join(c for c in line if _kept_in_message(c) or not is_invisible(c))
        text = " ".join(visible.split())
        if text or (lines and lines[-1]):
            lines.append(text)
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise ValueError("is empty")
    if len(lines) > MAX_MESSAGE_LINES:
        raise ValueError(f"has more than {MAX_MESSAGE_LINES} lines")
    text = "\n".join(lines)
    if len(text) > max_chars:
        raise ValueError(f"is longer than {max_chars} characters")
    if any(unicodedata.category(char) == "Cc" and char != "\n" for char in text):
        raise ValueError("contains control characters")
    return text


def clean_visitor_name(value: str) -> str:
    """A visitor's name, cleaned as `clean_visitor_text`, that cannot pass for a phone
    number; ValueError finishes the sentence "name ..." with what is wrong."""
    text = clean_visitor_text(value, MAX_NAME_CHARS)
    # Any script's digits, and the superscript, circled and fullwidth ones.
    if sum(char.isdigit() for char in text) > MAX_NAME_DIGITS:
        raise ValueError(f"must not look like a phone number (at most {MAX_NAME_DIGITS} digits)")
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


def one_line(value: object, max_chars: int) -> str:
    """Any text from outside as one printable line of at most `max_chars` characters, for a
    mail's subject or body: never an error, whatever it holds (control and invisible
    characters dropped, bidirectional controls among them, whitespace runs made one space,
    the end cut with '…')."""
    text = "" if value is None else str(value)[: 4 * max_chars]
    text = "".join(
        char
        for char in text
        if char in "\t\n"
        or (unicodedata.category(char) not in ("Cc", "Cs") and not is_invisible(char))
    )
    text = " ".join(text.split())
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def clipped(value: object, max_chars: int = MAX_LOGGED_CHARS) -> str:
    """`value` as text of at most `max_chars` characters, the rest counted: what one value
    from outside may take of a log line. It is not escaped here: the log's formatters
    (gateway.process.logs) pass every record's whole message through `loggable`, once (a
    value escaped here too would show its backslashes doubled)."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}... ({len(text) - max_chars} more characters)"


def loggable(value: object, max_chars: int = MAX_LOGGED_CHARS) -> str:
    """`value` as text that is safe in a log line: backslashes doubled, control, format and
    invisible characters (and line separators) written as escapes (`\\x1b`, `\\u200b`),
    and at most `max_chars` characters of it, the rest counted. A terminal showing the log
    runs no escape sequence, a line cannot be split or forged, and one value cannot flood."""
    text = value if isinstance(value, str) else str(value)
    if text.isascii() and text.isprintable() and "\\" not in text:  # the common case
        if len(text) <= max_chars:
            return text
        return f"{text[:max_chars]}... ({len(text) - max_chars} more characters)"
    parts: list[str] = []
    length = 0
    for index, char in enumerate(text):
        if length >= max_chars:
            return f"{''.join(parts)}... ({len(text) - index} more characters)"
        part = _escaped(char)
        parts.append(part)
        length += len(part)
    return "".join(parts)


def _escaped(char: str) -> str:
    if char == "\\":
        return "\\\\"
    if char.isprintable() and not is_invisible(char):
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
