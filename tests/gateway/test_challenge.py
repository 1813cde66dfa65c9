"""The proof-of-work challenge: solved proofs pass once; anything else is refused with why."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.access.challenge import ChallengeError, ProofOfWork, leading_zero_bits, solve

SECRET = b"0123456789abcdef0123456789abcdef"
NOW = 1_800_000_000.0
BITS = 10


def pow_() -> ProofOfWork:
    return ProofOfWork(SECRET, BITS, lifetime=300)


def solved(verifier: ProofOfWork, site: str = "shop") -> dict[str, object]:
    challenge = verifier.challenge(site, NOW)
    assert challenge["kind"] == "pow" and challenge["difficulty"] == BITS
    text = challenge["challenge"]
    return {"challenge": text, "solution": solve(text, BITS)}


def verify(verifier: ProofOfWork, proof: object, site: str = "shop", now: float = NOW) -> None:
    """The whole verification, single use included (the ledger's part)."""
    asyncio.run(verifier.verify(site, proof, "192.0.2.1", now))  # type: ignore[arg-type]


def refusal(verifier: ProofOfWork, proof: object, site: str = "shop", now: float = NOW) -> str:
    with pytest.raises(ChallengeError) as caught:
        verify(verifier, proof, site, now)
    return str(caught.value)


@pytest.mark.parametrize(
    ("digest_hex", "bits"),
    [("ff" + "00" * 31, 0), ("00" * 32, 256), ("0f" + "ff" * 31, 4), ("0001" + "ff" * 30, 15)],
)
def test_leading_zero_bits(digest_hex: str, bits: int) -> None:
    assert leading_zero_bits(bytes.fromhex(digest_hex)) == bits


def test_a_solved_challenge_passes_once() -> None:
    verifier = pow_()
    proof = solved(verifier)
    digest = hashlib.sha256(f"{proof['challenge']}:{proof['solution']}".encode()).digest()
    assert leading_zero_bits(digest) >= BITS
    verify(verifier, proof, now=NOW + 299)
    assert refusal(verifier, proof) == "the challenge was already used; ask for a new one"


async def test_verify_is_the_check_as_a_coroutine() -> None:
    verifier = pow_()
    await verifier.verify("shop", solved(verifier), "192.0.2.1", NOW)
    with pytest.raises(ChallengeError):
        await verifier.verify("shop", {"challenge": "x", "solution": "1"}, "192.0.2.1", NOW)


def test_a_wrong_solution_is_refused() -> None:
    verifier = pow_()
    proof = solved(verifier)
    text = proof["challenge"]
    wrong = next(
        str(n)
        for n in range(10**6)
        if leading_zero_bits(hashlib.sha256(f"{text}:{n}".encode()).digest()) < BITS
    )
    assert refusal(verifier, {**proof, "solution": wrong}) == "the proof of work is wrong"
    # A wrong try does not use the challenge up.
    verify(verifier, proof)


def test_an_expired_challenge_or_one_of_another_site_is_refused() -> None:
    verifier = pow_()
    proof = solved(verifier)
    assert (
        refusal(verifier, proof, now=NOW + 300.5) == "the challenge has expired; ask for a new one"
    )
    assert refusal(verifier, proof, site="demo") == "the challenge is for another site"


def test_a_challenge_of_another_gateway_is_refused() -> None:
    other = ProofOfWork(b"another secret, another gateway!", BITS)
    proof = solved(other)
    assert refusal(pow_(), proof) == "the challenge is not one this gateway issued"


@pytest.mark.parametrize(
    ("proof", "reason"),
    [
        (None, "the proof must be"),
        ("123", "the proof must be"),
        ({"solution": "1"}, "the proof must be"),
        ({"challenge": "x", "solution": "1", "extra": 1}, "the proof must be"),
        ({"challenge": 5, "solution": "1"}, "must be the string that was issued"),
        ({"challenge": "x", "solution": 1}, "1-20 decimal digits"),
        ({"challenge": "x", "solution": "-1"}, "1-20 decimal digits"),
        ({"challenge": "x", "solution": "1" * 21}, "1-20 decimal digits"),
        ({"challenge": "x", "solution": "\uff11"}, "1-20 decimal digits"),
        ({"challenge": "x.y", "solution": "1"}, "not one this gateway issued"),
    ],
)
def test_malformed_proofs_are_refused(proof: object, reason: str) -> None:
    assert reason in refusal(pow_(), proof)


def test_difficulty_is_1_to_32_bits() -> None:
    for bits in (0, 33):
        with pytest.raises(ValueError):
            ProofOfWork(SECRET, bits)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.none(),
        st.text(max_size=50),
        st.dictionaries(
            st.sampled_from(["challenge", "solution", "x"]),
            st.one_of(st.text(max_size=80), st.integers(), st.none(), st.lists(st.integers())),
        ),
    )
)
def test_any_proof_is_refused_with_challenge_error_only(proof: object) -> None:
    with pytest.raises(ChallengeError):
        pow_().check("shop", proof, NOW)  # type: ignore[arg-type]
