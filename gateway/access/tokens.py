"""Call tokens: short-lived permissions for one page to open one signaling connection.

A token names the site and the page's origin it was issued to and when it expires, signed
with a key derived from the gateway's secret (`gateway.access.signed`): it cannot be forged or
altered, only used before it expires, only for that site, only from that origin, and only
once (a replayed token is refused; the used ones are remembered until they expire).

The time is passed in. Workers and nodes behind one balancer must share the secret, since
the token request and the websocket may reach different ones; "used once" holds wherever
the ledger is shared (gateway.access.ledger: the machine, or every node with Redis).
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass

from gateway.access.ledger import Ledger, SqliteLedger
from gateway.access.signed import SignatureError, derive_key, sign, unsign

MAX_TOKEN_CHARS = 1024


class TokenError(ValueError):
    """A token is refused; the message says why, in words fit for the page."""


@dataclass(frozen=True, slots=True)
class TokenClaims:
    site: str
    origin: str
    expires: float
    nonce: str


class CallTokens:
    """Issues and redeems call tokens with one secret and one lifetime (seconds)."""

    def __init__(self, secret: bytes, lifetime: float, used: Ledger | None = None) -> None:
        if len(secret) < 16:
            raise ValueError("the token secret must have at least 16 bytes")
        if not (lifetime > 0 and math.isfinite(lifetime)):
            raise ValueError(f"lifetime must be a positive number of seconds, not {lifetime!r}")
        self._key = derive_key(secret, "call token")
        self.lifetime = lifetime
        # Where redeemed tokens are remembered: shared by the workers (and nodes).
        self._used: Ledger = used if used is not None else SqliteLedger.in_memory()

    def issue(self, site_id: str, origin: str, now: float) -> str:
        claims = {
            "site": site_id,
            "origin": origin,
            "exp": round(now + self.lifetime, 3),
            "nonce": secrets.token_urlsafe(12),
        }
        return sign(self._key, claims)

    async def redeem(self, token: object, *, site_id: str, origin: str, now: float) -> TokenClaims:
        """Check `token` for this site and origin at `now` and mark it used; TokenError
        says why it is refused (LedgerUnavailable: whether it was used cannot be known)."""
        claims = self.check(token, site_id=site_id, origin=origin, now=now)
        if not await self._used.first_use(f"token:{claims.nonce}", claims.expires, now):
            raise TokenError("the call token was already used")
        return claims

    def check(self, token: object, *, site_id: str, origin: str, now: float) -> TokenClaims:
        """Everything `redeem` checks but the single use."""
        claims = self.inspect(token)
        if now > claims.expires:
            raise TokenError("the call token has expired; reload the page")
        if claims.site != site_id:
            raise TokenError("the call token is for another site")
        if claims.origin != origin.lower():
            raise TokenError("the call token is for another origin")
        return claims

    def inspect(self, token: object) -> TokenClaims:
        """The claims of a token this gateway signed, whatever their values (no time, site
        or origin check); TokenError when it is not one."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
            raise TokenError("the call token is malformed")
        try:
            claims = unsign(self._key, token)
        except SignatureError as exc:
            if exc.forged:
                raise TokenError(
                    "the call token is not valid (forged, or from another gateway)"
                ) from None
            raise TokenError("the call token is malformed") from None
        site, origin, expires, nonce = (claims.get(k) for k in ("site", "origin", "exp", "nonce"))
        if not (
            isinstance(site, str)
            and isinstance(origin, str)
            and isinstance(expires, int | float)
            and isinstance(nonce, str)
        ):
            raise TokenError("the call token is malformed")
        return TokenClaims(site, origin, float(expires), nonce)
