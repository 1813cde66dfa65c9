"""What a page must show before it may call: a call token, and for some sites a challenge.

`POST /api/token` (gateway.http.app) asks `issue_token`: the page's Origin must be one of the
site's origins or the gateway's own, and a site with a `challenge` first answers
`challenge_required` with what to solve. The socket.io connect (signaling) then hands the
token to `redeem_token`. `gateway.api.GatewayService` is the whole interface the page's
two faces use; the gateway's `CallManager` implements it.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable, Mapping

from gateway.access.challenge import ChallengeError, ChallengeVerifier, ProofOfWork
from gateway.access.downloads import DownloadLinks
from gateway.access.ledger import Ledger, LedgerUnavailable
from gateway.access.ratings import RatingProofs
from gateway.access.tokens import CallTokens, TokenError
from gateway.api import AccessRefused, Clock, SiteInfo, TokenGrant
from gateway.config import GatewayConfig

logger = logging.getLogger(__name__)


class PageAccess:
    """Issues and redeems call tokens for sites, with their challenges (`verifiers` by
    kind); `page_origins` may use every site (the gateway's own pages)."""

    def __init__(
        self,
        tokens: CallTokens,
        *,
        page_origins: Iterable[str] = (),
        verifiers: Mapping[str, ChallengeVerifier] | None = None,
        clock: Clock = time.time,
        ratings: RatingProofs | None = None,
        downloads: DownloadLinks | None = None,
    ) -> None:
        self.tokens = tokens
        # Proofs that let a visitor rate the call they had (signed with the same secret).
        self.ratings = ratings or RatingProofs(secrets.token_bytes(32))
        # Signed links to a voicemail's audio, for webhooks (the same secret too).
        self.downloads = downloads or DownloadLinks(secrets.token_bytes(32))
        self.page_origins = frozenset(origin.lower() for origin in page_origins)
        self.verifiers = dict(verifiers or {})
        self.clock = clock

    def allows_origin(self, site: SiteInfo, origin: str) -> bool:
        return site.allows_origin(origin, self.page_origins)

    async def issue_token(
        self,
        site: SiteInfo,
        *,
        challenge: str | None,
        origin: str | None,
        client: str,
        proof: object,
    ) -> TokenGrant:
        """`challenge` is the kind the site asks for (None: no challenge)."""
        if origin is None:
            raise AccessRefused("origin_required", "an Origin header is required")
        if not self.allows_origin(site, origin):
            raise AccessRefused(
                "origin_refused", f"origin {_shown(origin)} may not use site {site.id!r}"
            )
        if challenge is not None:
            await self._pass_challenge(site.id, challenge, client, proof)
        token = self.tokens.issue(site.id, origin.lower(), self.clock())
        return TokenGrant(token, self.tokens.lifetime)

    async def redeem_token(self, site: SiteInfo, token: object, *, origin: str) -> None:
        try:
            await self.tokens.redeem(token, site_id=site.id, origin=origin, now=self.clock())
        except TokenError as exc:
            raise AccessRefused("token_refused", str(exc)) from None
        except LedgerUnavailable as exc:
            logger.warning("call token refused: %s", exc)
            raise AccessRefused(
                "unavailable",
                "calls cannot be taken right now; please try again in a few minutes",
                status=503,
            ) from None

    async def _pass_challenge(self, site_id: str, kind: str, client: str, proof: object) -> None:
        verifier = self.verifiers.get(kind)
        if verifier is None:  # a configuration the gateway's start should have refused
            raise AccessRefused("unavailable", "calls cannot be made now", status=503)
        if proof is None:
            raise AccessRefused(
                "challenge_required",
                "solve the challenge to get a call token",
                challenge=verifier.challenge(site_id, self.clock()),
            )
        if not isinstance(proof, Mapping):
            raise AccessRefused("bad_request", "proof must be an object", status=400)
        try:
            await verifier.verify(site_id, proof, client, self.clock())
        except LedgerUnavailable as exc:
            logger.warning("challenge refused: %s", exc)
            raise AccessRefused(
                "unavailable",
                "calls cannot be taken right now; please try again in a few minutes",
                status=503,
            ) from None
        except ChallengeError as exc:
            raise AccessRefused(
                "challenge_failed", str(exc), challenge=verifier.challenge(site_id, self.clock())
            ) from None


def page_access_from_config(
    config: GatewayConfig,
    *,
    clock: Clock = time.time,
    verifiers: Mapping[str, ChallengeVerifier] | None = None,
    ledger: Ledger | None = None,
) -> PageAccess:
    """The gateway's PageAccess: its secret (random when unset: warned about), token
    lifetime and the built-in proof of work, plus any `verifiers` (say, a CAPTCHA).
    Used tokens and solved challenges are remembered in `ledger` (shared by workers and
    nodes)."""
    access = config.access
    secret = access.token_secret.encode() if access.token_secret else None
    if secret is None:
        secret = secrets.token_bytes(32)
        logger.warning(
            "access.token_secret is not set: using a random one, so call tokens are good "
            "only at this gateway until it stops; set GATEWAY_ACCESS_TOKEN_SECRET to share "
            "them between gateways behind one load balancer"
        )
    installed: dict[str, ChallengeVerifier] = {
        "pow": ProofOfWork(secret, access.pow_difficulty, used=ledger),
        **(verifiers or {}),
    }
    for site in config.sites:
        if site.challenge is not None and site.challenge not in installed:
            raise ValueError(
                f"site {site.id!r} asks for challenge {site.challenge!r}, which is not "
                f"installed (installed: {', '.join(sorted(installed))})"
            )
    return PageAccess(
        CallTokens(secret, access.token_lifetime, used=ledger),
        page_origins=[config.http.public_origin],
        verifiers=installed,
        clock=clock,
        ratings=RatingProofs(secret),
        downloads=DownloadLinks(secret),
    )


def _shown(value: str, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
