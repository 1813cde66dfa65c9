"""Signed, expiring download links: what a webhook receiver (or anyone it passes the link
to) needs to fetch a voicemail's audio, and nothing more.

A link is `<path>?expires=<seconds since the epoch>&signature=<base64url HMAC-SHA256>`,
signed over the path and the expiry with a key of its own derived from the gateway's secret
(`access.token_secret`): it cannot be moved to another voicemail, made to last longer, or
forged. Sans-I/O: the time is passed in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from urllib.parse import quote

from gateway.access.signed import derive_key

DOWNLOAD_LIFETIME = 7 * 24 * 3600.0  # seconds a link works: webhooks are retried for a day


class DownloadRefused(ValueError):
    """A link that is unsigned, forged, for another file, or expired; the message says
    which (for the log: the answer to the request is a plain 403)."""


class DownloadLinks:
    def __init__(self, secret: bytes, lifetime: float = DOWNLOAD_LIFETIME) -> None:
        self._key = derive_key(secret, "download link")
        self.lifetime = lifetime

    def sign(self, path: str, now: float) -> str:
        """`path` (from the gateway's root, `/api/voicemails/<id>/audio`) with its query:
        good until `now + lifetime`."""
        expires = int(now + self.lifetime)
        return f"{path}?expires={expires}&signature={quote(self._signature(path, expires))}"

    def check(self, path: str, expires: object, signature: object, now: float) -> None:
        """Raise DownloadRefused unless `signature` signs `path` until `expires`, still to
        come at `now`."""
        if not isinstance(expires, str) or not isinstance(signature, str):
            raise DownloadRefused("the link is not signed")
        if not expires.isdigit() or len(expires) > 12 or len(signature) > 64:
            raise DownloadRefused("the link is malformed")
        try:
            given = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
        except (binascii.Error, ValueError):
            raise DownloadRefused("the link is malformed") from None
        if not hmac.compare_digest(given, self._mac(path, int(expires))):
            raise DownloadRefused("the link's signature does not verify")
        if now >= int(expires):
            raise DownloadRefused("the link has expired")

    def _mac(self, path: str, expires: int) -> bytes:
        return hmac.new(self._key, f"{path}\n{expires}".encode(), hashlib.sha256).digest()

    def _signature(self, path: str, expires: int) -> str:
        return base64.urlsafe_b64encode(self._mac(path, expires)).rstrip(b"=").decode()
