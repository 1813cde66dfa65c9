"""Challenges a page must pass before it gets a call token, for sites that ask for one.

`ChallengeVerifier` is the interface: `challenge()` says what the page must solve (sent to
it as JSON), `verify()` checks the page's `proof` (a JSON object). `ProofOfWork` is the
built-in one; a CAPTCHA service plugs in as another verifier whose `challenge()` names the
service's public site key and whose `verify()` asks the service about the response token.

Proof of work, hashcash style: the challenge is a signed, expiring string `c` (bound to the
site) and a difficulty `d`; the page finds a decimal `n` such that SHA-256(`c` ":" `n`)
starts with `d` zero bits (2**d hashes on average; the page does it in a Web Worker). Each
challenge is accepted once. It makes every token cost a bot CPU time; it does not tell a
human from a patient machine.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Mapping
from typing import Protocol

from gateway.access.ledger import Ledger, SqliteLedger
from gateway.access.signed import SignatureError, derive_key, sign, unsign

MAX_DIFFICULTY = 32
_SOLUTION = re.compile(r"[0-9]{1,20}")


class ChallengeError(ValueError):
    """A proof is refused; the message says why, in words fit for the page."""


class ChallengeVerifier(Protocol):
    """One kind of challenge (`kind` is what a site's `challenge` key names)."""

    kind: str

    def challenge(self, site_id: str, now: float) -> dict[str, object]:
        """What the page needs to solve a new challenge (JSON; includes "kind")."""
        ...

    async def verify(
        self, site_id: str, proof: Mapping[str, object], client: str, now: float
    ) -> None:
        """Accept `proof` from the visitor at address `client`, or raise ChallengeError."""
        ...


class ProofOfWork:
    """Hashcash-style SHA-256 proof of work with `difficulty` leading zero bits."""

    kind = "pow"

    def __init__(
        self,
        secret: bytes,
        difficulty: int,
        lifetime: float = 300.0,
        used: Ledger | None = None,
    ) -> None:
        if not 1 <= difficulty <= MAX_DIFFICULTY:
            raise ValueError(f"difficulty must be 1-{MAX_DIFFICULTY} bits, not {difficulty!r}")
        self._key = derive_key(secret, "proof of work")
        self.difficulty = difficulty
        self.lifetime = lifetime
        # Where solved challenges are remembered: shared by the workers (and nodes).
        self._used: Ledger = used if used is not None else SqliteLedger.in_memory()

    def challenge(self, site_id: str, now: float) -> dict[str, object]:
        text = sign(
            self._key,
            {
                "site": site_id,
                "exp": round(now + self.lifetime, 3),
                "bits": self.difficulty,
                "nonce": secrets.token_urlsafe(12),
            },
        )
        return {"kind": self.kind, "challenge": text, "difficulty": self.difficulty}

    async def verify(
        self, site_id: str, proof: Mapping[str, object], client: str, now: float
    ) -> None:
        text, expires = self.check(site_id, proof, now)
        if not await self._used.first_use(f"pow:{text}", expires, now):
            raise ChallengeError("the challenge was already used; ask for a new one")

    def check(self, site_id: str, proof: Mapping[str, object], now: float) -> tuple[str, float]:
        """Everything `verify` checks but the single use, which is the ledger's: the
        challenge and when it expires."""
        if not isinstance(proof, Mapping) or proof.keys() != {"challenge", "solution"}:
            raise ChallengeError('the proof must be {"challenge": "...", "solution": "<digits>"}')
        text, solution = proof["challenge"], proof["solution"]
        if not isinstance(text, str):
            raise ChallengeError("the proof's challenge must be the string that was issued")
        if not isinstance(solution, str) or not _SOLUTION.fullmatch(solution):
            raise ChallengeError("the proof's solution must be 1-20 decimal digits")
        try:
            claims = unsign(self._key, text)
        except SignatureError:
            raise ChallengeError("the challenge is not one this gateway issued") from None
        expires, bits = claims.get("exp"), claims.get("bits")
        if not isinstance(expires, int | float) or not isinstance(bits, int):
            raise ChallengeError("the challenge is not one this gateway issued")
        if now > expires:
            raise ChallengeError("the challenge has expired; ask for a new one")
        if claims.get("site") != site_id:
            raise ChallengeError("the challenge is for another site")
        digest = hashlib.sha256(f"{text}:{solution}".encode("ascii")).digest()
        if leading_zero_bits(digest) < bits:
            raise ChallengeError("the proof of work is wrong")
        return text, float(expires)


def leading_zero_bits(digest: bytes) -> int:
    value = int.from_bytes(digest, "big")
    return len(digest) * 8 - value.bit_length()


def solve(challenge: str, difficulty: int, start: int = 0) -> str:
    """A solution, the slow way the page does it (for tests and command-line clients)."""
    n = start
    while True:
        digest = hashlib.sha256(f"{challenge}:{n}".encode("ascii")).digest()
        if leading_zero_bits(digest) >= difficulty:
            return str(n)
        n += 1
