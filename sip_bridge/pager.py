"""Page-mode instant messages (RFC 3428): a SIP MESSAGE outside any dialog, sent and
received by the user agent (`UserAgent.message`, `MessageReceived`).

Only plain text is taken, as desk phones send and show it: `text/plain` in UTF-8 (or
US-ASCII, a subset), at most `MAX_BODY_BYTES`. A MESSAGE with another content type is
answered 415 with `Accept: text/plain`, one that is not UTF-8 400, a longer one 413
(RFC 3428 §8: a UAS must answer what it cannot render with 415). What the text says is the
owner's to judge: these functions only check the form. Sans-I/O.
"""

from __future__ import annotations

from sip_bridge.message import Request, Response, new_response

TEXT_PLAIN = "text/plain"
CONTENT_TYPE = "text/plain; charset=UTF-8"
# RFC 3428 §6: a MESSAGE over UDP must stay under 1300 bytes (no fragmentation); over a
# stream it may be larger, but a chat line never needs more than this.
MAX_BODY_BYTES = 4096
MAX_UDP_BODY_BYTES = 1000  # a MESSAGE's headers take the rest of the 1300 bytes
_CHARSETS = ("utf-8", "utf8", "us-ascii")


def charset_of(content_type: str) -> str | None:
    """The `charset` parameter of a Content-Type value, lower case, or None."""
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


def check_incoming(request: Request) -> Response | None:
    """The refusal of a MESSAGE whose body is not plain UTF-8 text, else None."""
    content_type = request.headers.get("Content-Type") or ""
    if request.content_type != TEXT_PLAIN:
        response = new_response(request, 415)
        response.headers.add("Accept", TEXT_PLAIN)
        return response
    charset = charset_of(content_type)
    if charset is not None and charset not in _CHARSETS:
        response = new_response(request, 415, "Unsupported charset")
        response.headers.add("Accept", TEXT_PLAIN)
        return response
    if len(request.body) > MAX_BODY_BYTES:
        return new_response(request, 413)
    try:
        request.body.decode("utf-8")
    except UnicodeDecodeError:
        return new_response(request, 400, "Body is not UTF-8")
    return None


def encode_text(text: str, *, reliable: bool) -> bytes:
    """`text` as a MESSAGE body; ValueError when it cannot be sent (a lone surrogate, or
    too long for the transport)."""
    try:
        body = text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the text is not valid Unicode") from None
    limit = MAX_BODY_BYTES if reliable else MAX_UDP_BODY_BYTES
    if len(body) > limit:
        raise ValueError(f"the text is longer than {limit} bytes of UTF-8")
    return body
