"""Signed claims: a small JSON object the page carries and gives back unaltered.

Text form: `base64url(JSON) "." base64url(HMAC-SHA256(key, first part))`, without padding.
Call tokens and proof-of-work challenges both use it, each with its own key derived from
the gateway's secret (`derive_key`), so that one can never be passed off as the other.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re

# Longer than any claims we issue; bounds the work spent on a hostile value.
MAX_SIGNED_CHARS = 1024
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_MAC_CHARS = 43  # 32 bytes of HMAC-SHA256 in unpadded base64url


class SignatureError(ValueError):
    """Signed text that is malformed, or (`forged`) whose signature does not verify."""

    def __init__(self, message: str, *, forged: bool = False) -> None:
        super().__init__(message)
        self.forged = forged


def derive_key(secret: bytes, label: str) -> bytes:
    """A key for one purpose (`label`) from the gateway's secret."""
    return hmac.new(secret, f"click-to-call {label}".encode(), hashlib.sha256).digest()


def sign(key: bytes, claims: dict[str, object]) -> str:
    body = _encode(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_encode(_mac(key, body))}"


def unsign(key: bytes, text: object) -> dict[str, object]:
    """The claims of `text`, once its signature is verified; else SignatureError."""
    if not isinstance(text, str) or not 0 < len(text) <= MAX_SIGNED_CHARS:
        raise SignatureError("malformed")
    body, dot, mac = text.partition(".")
    if not dot or len(mac) != _MAC_CHARS or not _BASE64URL.fullmatch(body):
        raise SignatureError("malformed")
    if not _BASE64URL.fullmatch(mac):
        raise SignatureError("malformed")
    if not hmac.compare_digest(_decode(mac), _mac(key, body)):
        raise SignatureError("signature does not verify", forged=True)
    try:
        claims = json.loads(_decode(body))
    except ValueError:  # only our own signed text gets here, so this is a bug of ours
        raise SignatureError("malformed") from None
    if not isinstance(claims, dict):
        raise SignatureError("malformed")
    return claims


def _mac(key: bytes, body: str) -> bytes:
    return hmac.new(key, body.encode("ascii"), hashlib.sha256).digest()


def _encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _decode(text: str) -> bytes:
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise SignatureError("malformed") from None
    # The decoder ignores the unused low bits of the last character: without this check,
    # several texts would carry one signature.
    if _encode(data) != text:
        raise SignatureError("malformed")
    return data
