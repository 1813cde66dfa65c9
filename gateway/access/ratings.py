"""Rating proofs: what lets a visitor rate the call they had, and only that one.

When an answered call ends, the page is given a proof (signed claims: the call's id, its
site and an expiry, `gateway.access.signed` with a key of its own derived from the
gateway's secret). A rating comes back with it: the proof cannot be forged or moved to
another call, and it expires (`RATING_WINDOW`). That each call is rated once is the
ledger's business (single use, shared by the workers). Sans-I/O: the time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.access.signed import SignatureError, derive_key, sign, unsign

RATING_WINDOW = 15 * 60.0  # seconds after the call's end a rating is taken


class RatingProofError(ValueError):
    """A proof refused; the message says why."""


@dataclass(frozen=True, slots=True)
class RatedCall:
    call_id: str
    site: str
    expires: float


class RatingProofs:
    def __init__(self, secret: bytes, window: float = RATING_WINDOW) -> None:
        self._key = derive_key(secret, "call rating")
        self.window = window

    def issue(self, call_id: str, site_id: str, now: float) -> str:
        return sign(self._key, {"call": call_id, "site": site_id, "exp": round(now + self.window)})

    def check(self, proof: object, call_id: str, now: float) -> RatedCall:
        """The call `proof` is for, when it is this gateway's, for `call_id` and not expired;
        else RatingProofError."""
        try:
            claims = unsign(self._key, proof)
        except SignatureError:
            raise RatingProofError("the rating's proof is not valid") from None
        call, site, expires = claims.get("call"), claims.get("site"), claims.get("exp")
        if not (isinstance(call, str) and isinstance(site, str) and isinstance(expires, int)):
            raise RatingProofError("the rating's proof is not valid")
        if call != call_id:
            raise RatingProofError("the rating's proof is for another call")
        if now > expires:
            raise RatingProofError("it is too late to rate this call")
        return RatedCall(call, site, float(expires))
