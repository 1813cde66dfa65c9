"""Call transfer as the transferee (RFC 3515 REFER, RFC 5589 call flows, RFC 3891 Replaces).

The far end of one of our calls sends REFER with `Refer-To: <sip:target>`: we ring the
target with a new INVITE and report how it goes by NOTIFY, each carrying the target's status
line as a `message/sipfrag` (`SIP/2.0 180 Ringing`). An attended transfer puts a Replaces
header in the Refer-To URI (`<sip:bob@pbx?Replaces=call%40pbx%3Bto-tag%3Da%3Bfrom-tag%3Db>`),
which our INVITE to the target carries, so the target swaps the call it holds with the
transferor for ours.

Pure parsing and building; the user agent runs the transactions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from sip_bridge.errors import SipParseError
from sip_bridge.headers import Headers
from sip_bridge.message import REASON_PHRASES
from sip_bridge.uri import SipUri, parse_name_address

SIPFRAG = "message/sipfrag"
SIPFRAG_CONTENT_TYPE = "message/sipfrag;version=2.0"
MAX_TARGET_LENGTH = 512
# RFC 3891: callid;to-tag=...;from-tag=...[;early-only], as printable header text.
_REPLACES = re.compile(r"^[!-~]+(;[ \t]*[A-Za-z0-9\-.!%*_+`'~]+(=[!-~]+)?)*$")


class ReferError(ValueError):
    """A REFER we cannot act on; `status` is the response it gets."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class ReferTarget:
    """Whom a REFER asks us to call, and how."""

    uri: str  # the target's SIP URI, without the URI's headers
    replaces: str | None  # the Replaces header value for our INVITE (attended transfer)
    referred_by: str | None  # the Referred-By header value, to pass on
    subscription: bool  # False when the transferor asked for no NOTIFYs (RFC 4488)


def parse_refer(headers: Headers) -> ReferTarget:
    """What a REFER's headers ask; ReferError (with the status to answer) otherwise."""
    values = headers.get_all("Refer-To")
    if len(values) != 1:
        raise ReferError(f"a REFER needs exactly one Refer-To, it has {len(values)}")
    if len(values[0]) > MAX_TARGET_LENGTH:
        raise ReferError("Refer-To is too long")
    try:
        address = parse_name_address(values[0])
    except SipParseError as exc:
        raise ReferError(f"bad Refer-To: {exc}") from None
    uri = address.uri
    if not isinstance(uri, SipUri):
        # We place SIP calls only; a tel: or http: target is not for us to reach.
        raise ReferError(f"cannot transfer to {uri}", status=403)
    method = uri.param("method")
    if method is not None and method.upper() != "INVITE":
        raise ReferError(f"cannot act on a Refer-To with method={method}", status=403)
    replaces = None
    for name, value in uri.headers:
        if name.lower() == "replaces":
            replaces = unquote(value)
            if not _REPLACES.match(replaces) or "to-tag=" not in replaces.lower():
                raise ReferError("bad Replaces in Refer-To")
    target = SipUri(uri.scheme, uri.user, None, uri.host, uri.port, uri.params)
    referred_by = headers.get("Referred-By")
    if referred_by is not None and (
        len(referred_by) > MAX_TARGET_LENGTH or not _printable(referred_by)
    ):
        referred_by = None
    refer_sub = (headers.get("Refer-Sub") or "true").strip().lower()
    return ReferTarget(str(target), replaces, referred_by, subscription=refer_sub != "false")


def sipfrag(status: int, reason: str | None = None) -> bytes:
    """The body of a NOTIFY about the target's progress: its status line."""
    words = reason if reason else REASON_PHRASES.get(status, "")
    clean = "".join(ch for ch in words if " " <= ch < "\x7f")[:100]
    return f"SIP/2.0 {status} {clean}".rstrip().encode() + b"\r\n"


def _printable(text: str) -> bool:
    return all(" " <= ch != "\x7f" for ch in text)
