"""SIP requests and responses: parsing, validation and serialization (RFC 3261 §7, §20, §25).

`parse_message` turns bytes from the network into a `Request` or `Response`, or raises one
`SipParseError` that says what was wrong. It checks everything the rest of the core relies on
(start line, Via, From, To, Call-ID, CSeq, Max-Forwards, Content-Length, Contact, routes), so
code above it never meets a malformed value. When the broken message is a request, the error
carries what is needed to answer it with a 400 (see `bad_request_response`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sip_bridge.errors import SipParseError
from sip_bridge.headers import (
    SINGLE_HEADERS,
    CSeq,
    Headers,
    Via,
    canonical_name,
    is_token,
    parse_cseq,
    parse_via,
)
from sip_bridge.uri import (
    NameAddress,
    SipUri,
    Uri,
    parse_name_address,
    parse_uri,
    split_header_list,
)

MAX_MESSAGE_SIZE = 65535
MAX_HEADER_FIELDS = 120
MAX_LINE_LENGTH = 8192
SIP_VERSION = "SIP/2.0"
KNOWN_METHODS = frozenset(
    {
        "INVITE",
        "ACK",
        "CANCEL",
        "BYE",
        "OPTIONS",
        "REGISTER",
        "UPDATE",
        "INFO",
        "PRACK",
        "SUBSCRIBE",
        "NOTIFY",
        "REFER",
        "MESSAGE",
        "PUBLISH",
    }
)

_STATUS_LINE = re.compile(r"^SIP/(\d+)\.(\d+) (\d{3})(?: (.*))?$", re.DOTALL)
_VERSION = re.compile(r"^SIP/(\d+)\.(\d+)$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")

REASON_PHRASES = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}


def status_words(status: int) -> str:
    """A status in standard words, "421 Extension Required" (never a peer's own text)."""
    phrase = REASON_PHRASES.get(status)
    if phrase is None:
        classes = {3: "Redirection", 4: "Request Failure", 5: "Server Failure", 6: "Global Failure"}
        phrase = classes.get(status // 100, "")
    return f"{status} {phrase}".strip()


class _MessageBase:
    headers: Headers
    body: bytes

    # Typed views of the headers every SIP message carries. They parse on access: the
    # values were validated when the message was parsed or built.
    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> CSeq:
        return parse_cseq(self.headers.get("CSeq") or "")

    @property
    def from_(self) -> NameAddress:
        return parse_name_address(self.headers.get("From") or "")

    @property
    def to(self) -> NameAddress:
        return parse_name_address(self.headers.get("To") or "")

    @property
    def vias(self) -> list[Via]:
        return [parse_via(v) for v in self.headers.get_list("Via")]

    @property
    def top_via(self) -> Via:
        return parse_via(self.headers.get_list("Via")[0])

    @property
    def contacts(self) -> list[NameAddress]:
        return [parse_name_address(v) for v in self.headers.get_list("Contact") if v != "*"]

    @property
    def record_routes(self) -> list[NameAddress]:
        return [parse_name_address(v) for v in self.headers.get_list("Record-Route")]

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        return value.split(";", 1)[0].strip().lower() if value else None

    def _serialize(self, start_line: str) -> bytes:
        lines = [start_line]
        for name, value in self.headers:
            if name != "Content-Length":
                lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(self.body)}")
        head = "\r\n".join(lines) + "\r\n\r\n"
        return head.encode("utf-8", "surrogateescape") + self.body


@dataclass(eq=False)
class Request(_MessageBase):
    method: str
    uri: Uri
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def serialize(self) -> bytes:
        return self._serialize(f"{self.method} {self.uri} {SIP_VERSION}")

    def __bytes__(self) -> bytes:
        return self.serialize()

    @property
    def max_forwards(self) -> int | None:
        value = self.headers.get("Max-Forwards")
        return int(value) if value is not None else None


@dataclass(eq=False)
class Response(_MessageBase):
    status: int
    reason: str = ""
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def serialize(self) -> bytes:
        return self._serialize(f"{SIP_VERSION} {self.status} {self.reason}")

    def __bytes__(self) -> bytes:
        return self.serialize()

    @property
    def is_provisional(self) -> bool:
        return self.status < 200

    @property
    def is_success(self) -> bool:
        return 200 <= self.status < 300


Message = Request | Response


class RequestParseError(SipParseError):
    """A request was malformed but enough of it was read to answer it (see
    `bad_request_response`)."""

    def __init__(self, reason: str, *, status: int, method: str, headers: Headers) -> None:
        super().__init__(reason, status=status)
        self.method = method
        self.headers = headers


def parse_message(data: bytes, *, stream: bool = False) -> Message:
    """Parse one whole SIP message.

    `stream` is True for messages framed from TCP/TLS, where Content-Length is mandatory.
    On UDP (RFC 3261 §18.3) bytes past Content-Length are discarded and a missing
    Content-Length means the body runs to the end of the datagram.
    """
    if len(data) > MAX_MESSAGE_SIZE:
        raise SipParseError(f"message larger than {MAX_MESSAGE_SIZE} bytes", status=513)
    head, body = _split_head(data)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError(f"header section is not UTF-8 (byte {exc.start})") from None
    lines = _unfold(text)
    if not lines or not lines[0]:
        raise SipParseError("empty start line")
    start = lines[0]
    headers = _parse_header_lines(lines[1:])
    if start.startswith("SIP/"):
        return _parse_response(start, headers, body, stream)
    method = start.split(" ", 1)[0]
    try:
        method, uri_text, version = _split_request_line(start)
        return _parse_request(method, uri_text, version, headers, body, stream)
    except RequestParseError:
        raise
    except SipParseError as exc:
        raise RequestParseError(
            exc.reason, status=exc.status, method=method, headers=headers
        ) from None


def _split_head(data: bytes) -> tuple[bytes, bytes]:
    # Tolerate leading CRLFs (RFC 3261 §7.5: keep-alives before a message).
    data = data.lstrip(b"\r\n")
    end = data.find(b"\r\n\r\n")
    if end >= 0:
        return data[:end], data[end + 4 :]
    end = data.find(b"\n\n")
    if end >= 0:
        return data[:end], data[end + 2 :]
    # A datagram with headers only and no empty line ends at the end of the datagram.
    return data.rstrip(b"\r\n"), b""


def _unfold(text: str) -> list[str]:
    """Split header lines, joining continuation lines (leading SP/HT) with one space."""
    lines: list[str] = []
    for raw in text.split("\n"):
        line = raw[:-1] if raw.endswith("\r") else raw
        if len(line) > MAX_LINE_LENGTH:
            raise SipParseError(f"header line longer than {MAX_LINE_LENGTH} characters")
        if line[:1] in (" ", "\t") and lines:
            if len(lines) == 1:
                raise SipParseError("continuation line after the start line")
            lines[-1] = lines[-1].rstrip(" \t") + " " + line.strip(" \t")
        else:
            lines.append(line)
    return lines


def _parse_header_lines(lines: list[str]) -> Headers:
    if len(lines) > MAX_HEADER_FIELDS:
        raise SipParseError(f"more than {MAX_HEADER_FIELDS} header fields")
    headers = Headers()
    for line in lines:
        name, colon, value = line.partition(":")
        name = name.rstrip(" \t")
        if not colon:
            raise SipParseError(f"header line without a colon: {line[:80]!r}")
        if not _HEADER_NAME.match(name):
            raise SipParseError(f"bad header name {name[:80]!r}")
        headers.add(name, value.strip(" \t"))
    return headers


def _split_request_line(start: str) -> tuple[str, str, str]:
    parts = start.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SipParseError(
            "request line must be 'METHOD SP Request-URI SP SIP/2.0' with single spaces"
        )
    method, uri_text, version = parts
    if not is_token(method):
        raise SipParseError(f"method is not a token: {method[:40]!r}")
    return method, uri_text, version


def _check_version(version: str) -> None:
    m = _VERSION.match(version)
    if not m:
        raise SipParseError(f"bad SIP version {version[:20]!r}")
    if (int(m.group(1)), int(m.group(2))) != (2, 0):
        raise SipParseError(f"SIP version {version} not supported", status=505)


def _parse_request(method, uri_text, version, headers, body, stream) -> Request:
    _check_version(version)
    uri = parse_uri(uri_text)
    if isinstance(uri, SipUri) and uri.headers:
        raise SipParseError("Request-URI must not contain headers (?...)")
    _check_common_headers(headers)
    cseq = parse_cseq(headers.get("CSeq") or "")
    if cseq.method != method:
        # An unknown method is the bigger problem (RFC 4475 §3.1.2.18): say 501 for it.
        status = 400 if method in KNOWN_METHODS else 501
        raise SipParseError(
            f"CSeq method {cseq.method} does not match request method {method}", status=status
        )
    max_forwards = headers.get("Max-Forwards")
    if max_forwards is not None and (
        not (max_forwards.isascii() and max_forwards.isdigit())
        or len(max_forwards) > 10
        or int(max_forwards) > 255
    ):
        raise SipParseError(f"Max-Forwards must be 0-255: {max_forwards[:20]!r}")
    for contact in headers.get_list("Contact"):
        if contact != "*":
            parse_name_address(contact)
    for name in ("Route", "Record-Route"):
        for value in headers.get_list(name):
            parse_name_address(value)
    body = _frame_body(headers, body, stream)
    return Request(method, uri, headers, body)


def _parse_response(start, headers, body, stream) -> Response:
    m = _STATUS_LINE.match(start)
    if not m:
        raise SipParseError(f"malformed status line {start[:80]!r}")
    major, minor, code, reason = m.groups()
    reason = reason or ""
    if (int(major), int(minor)) != (2, 0):
        raise SipParseError(f"SIP version {major}.{minor} not supported", status=505)
    status = int(code)
    if not 100 <= status <= 699:
        raise SipParseError(f"status code {status} out of range")
    _check_common_headers(headers)
    for value in headers.get_list("Contact"):
        if value != "*":
            parse_name_address(value)
    for value in headers.get_list("Record-Route"):
        parse_name_address(value)
    body = _frame_body(headers, body, stream)
    return Response(status, reason, headers, body)


def _check_common_headers(headers: Headers) -> None:
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        if name not in headers:
            raise SipParseError(f"missing {name} header")
    counts: dict[str, int] = {}
    for name, _ in headers:
        key = name.lower()
        if key in SINGLE_HEADERS:
            counts[key] = counts.get(key, 0) + 1
            if counts[key] > 1:
                raise SipParseError(f"more than one {canonical_name(name)} header")
    for via in headers.get_list("Via"):
        parse_via(via)
    parse_name_address(headers.get("From") or "")
    parse_name_address(headers.get("To") or "")
    _check_call_id(headers.get("Call-ID") or "")
    parse_cseq(headers.get("CSeq") or "")


def _frame_body(headers: Headers, body: bytes, stream: bool) -> bytes:
    value = headers.get("Content-Length")
    if value is None:
        if stream:
            raise SipParseError("missing Content-Length on a stream transport")
        return body
    if not (value.isascii() and value.isdigit()) or len(value) > 10:
        raise SipParseError(f"bad Content-Length {value[:20]!r}")
    length = int(value)
    if length > len(body):
        raise SipParseError(
            f"Content-Length {length} larger than the {len(body)} bytes of body received"
        )
    return body[:length]


def new_response(
    request: Request, status: int, reason: str | None = None, *, to_tag: str | None = None
) -> Response:
    """A response to `request` with Via, From, To, Call-ID and CSeq copied (§8.2.6.2)."""
    headers = Headers()
    for value in request.headers.get_all("Via"):
        headers.add("Via", value)
    headers.add("From", request.headers.get("From") or "")
    to = request.headers.get("To") or ""
    if to_tag is not None and status != 100 and parse_name_address(to).tag is None:
        to = f"{to};tag={to_tag}"
    headers.add("To", to)
    headers.add("Call-ID", request.call_id)
    headers.add("CSeq", request.headers.get("CSeq") or "")
    return Response(status, reason or REASON_PHRASES.get(status, ""), headers)


def bad_request_response(error: RequestParseError) -> Response:
    """The 400 (or 505, 513) for a malformed request, said in words.

    It goes back to the address the request came from, since the broken part may be the
    Via. Only header values that are themselves valid are copied, so that nothing broken is
    echoed; the reason phrase and a Warning say what was wrong. A mandatory header the
    request lacks or broke (Via, From, To, Call-ID, CSeq) is missing from the reply too:
    such a reply is for the person reading a trace, not for the peer's transaction layer.
    """
    h = error.headers
    headers = Headers()
    for value in _valid_values(
        h.get_all("Via"), lambda v: [parse_via(x) for x in split_header_list(v)]
    ):
        headers.add("Via", value)
    for name, check in (
        ("From", parse_name_address),
        ("To", parse_name_address),
        ("Call-ID", _check_call_id),
        ("CSeq", parse_cseq),
    ):
        for value in _valid_values(h.get_all(name)[:1], check):
            headers.add(name, value)
    reason_text = _printable(error.reason)[:200]
    headers.add("Warning", f'399 - "{reason_text}"')
    phrase = REASON_PHRASES.get(error.status, "Bad Request")
    return Response(error.status, f"{phrase} ({reason_text})", headers)


def _valid_values(values: list[str], check) -> list[str]:
    valid = []
    for value in values:
        try:
            check(value)
        except SipParseError:
            continue
        valid.append(value)
    return valid


def _check_call_id(call_id: str) -> None:
    if not call_id or any(c in call_id for c in " \t"):
        raise SipParseError(f"bad Call-ID {call_id[:80]!r}")


def _printable(text: str) -> str:
    return "".join(c if " " <= c < "\x7f" and c not in '"\\' else "?" for c in text)


class StreamFramer:
    """Cuts a TCP/TLS byte stream into SIP messages by Content-Length (RFC 3261 §18.3).

    CRLF keep-alives (RFC 5626 §3.5.1) between messages are skipped. A header section
    that grows past the limit, or a body larger than the limit, is an error: the connection
    should then be closed, since the framing is lost.
    """

    def __init__(self, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self._buffer = bytearray()
        self._max_size = max_size
        # A peer trickling a large message a byte at a time must not make each byte rescan
        # (or re-parse) all the bytes before it: remember how far the search for the end
        # of the header section got, and the size of the message once it is known.
        self._searched = 0
        self._total: int | None = None

    def feed(self, data: bytes) -> list[bytes]:
        """Add received bytes; return the whole messages now complete (raw, unparsed)."""
        self._buffer += data
        messages: list[bytes] = []
        while True:
            if self._total is None:
                if self._buffer[:2] == b"\r\n":
                    while self._buffer[:2] == b"\r\n":
                        del self._buffer[:2]
                    self._searched = 0
                end = self._buffer.find(b"\r\n\r\n", max(0, self._searched - 3))
                if end < 0:
                    self._searched = len(self._buffer)
                    if len(self._buffer) > self._max_size:
                        raise SipParseError("header section too large on stream", status=513)
                    return messages
                total = end + 4 + _content_length_of(bytes(self._buffer[:end]))
                if total > self._max_size:
                    raise SipParseError("message too large on stream", status=513)
                self._total = total
            if len(self._buffer) < self._total:
                return messages
            messages.append(bytes(self._buffer[: self._total]))
            del self._buffer[: self._total]
            self._total = None
            self._searched = 0


def _content_length_of(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() in (b"content-length", b"l"):
            value = value.strip()
            if not value.isdigit() or len(value) > 10:
                raise SipParseError("bad Content-Length on stream")
            return int(value)
    raise SipParseError("missing Content-Length on a stream transport")
