"""Call tokens: forged, expired, other-site, other-origin and replayed tokens are refused."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.access.ledger import SqliteLedger
from gateway.access.signed import derive_key, sign
from gateway.access.tokens import CallTokens, TokenClaims, TokenError

SECRET = b"0123456789abcdef0123456789abcdef"
SITE, ORIGIN = "shop", "https://shop.example"
NOW = 1_800_000_000.0


def tokens() -> CallTokens:
    return CallTokens(SECRET, lifetime=60)


def redeem(issuer: CallTokens, token: object, **arguments: object) -> TokenClaims:
    return asyncio.run(issuer.redeem(token, **arguments))  # type: ignore[arg-type]


def refusal(issuer: CallTokens, token: object, **overrides: object) -> str:
    arguments = {"site_id": SITE, "origin": ORIGIN, "now": NOW + 1, **overrides}
    with pytest.raises(TokenError) as caught:
        redeem(issuer, token, **arguments)
    return str(caught.value)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_token_admits_one_connection_of_its_site_and_origin() -> None:
    issuer = tokens()
    token = issuer.issue(SITE, ORIGIN, NOW)
    claims = redeem(issuer, token, site_id=SITE, origin=ORIGIN, now=NOW + 59)
    assert (claims.site, claims.origin, claims.expires) == (SITE, ORIGIN, NOW + 60)
    assert refusal(issuer, token) == "the call token was already used"


def test_origins_compare_as_browsers_send_them() -> None:
    issuer = tokens()
    token = issuer.issue(SITE, ORIGIN, NOW)
    redeem(issuer, token, site_id=SITE, origin="HTTPS://Shop.Example", now=NOW)


def test_an_expired_token_is_refused() -> None:
    issuer = tokens()
    token = issuer.issue(SITE, ORIGIN, NOW)
    assert refusal(issuer, token, now=NOW + 60.001) == "the call token has expired; reload the page"


def test_a_token_of_another_site_or_origin_is_refused() -> None:
    issuer = tokens()
    token = issuer.issue(SITE, ORIGIN, NOW)
    assert refusal(issuer, token, site_id="demo") == "the call token is for another site"
    assert refusal(issuer, token, origin="https://evil.example") == (
        "the call token is for another origin"
    )
    # Refusals do not use the token up.
    redeem(issuer, token, site_id=SITE, origin=ORIGIN, now=NOW)


FORGED = "the call token is not valid (forged, or from another gateway)"


def test_forged_tokens_are_refused() -> None:
    issuer = tokens()
    token = issuer.issue(SITE, ORIGIN, NOW)
    body, mac = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    # Claims altered (another site, a later expiry), signature kept.
    for change in ({"site": "demo"}, {"exp": NOW + 10**6}):
        altered = b64(json.dumps({**claims, **change}, separators=(",", ":")).encode())
        assert refusal(issuer, f"{altered}.{mac}") == FORGED
    # Signature altered.
    flipped = ("A" if mac[0] != "A" else "B") + mac[1:]
    assert refusal(issuer, f"{body}.{flipped}") == FORGED
    # Signed with another secret (another gateway, or a guess).
    other = CallTokens(b"another secret of at least 16 bytes", lifetime=60)
    assert refusal(issuer, other.issue(SITE, ORIGIN, NOW)) == FORGED
    # A proof-of-work challenge is signed with the same secret, but another derived key.
    challenge = sign(derive_key(SECRET, "proof of work"), {"site": SITE, "exp": NOW + 60})
    assert refusal(issuer, challenge) == FORGED


@pytest.mark.parametrize(
    "token",
    [None, 7, "", "no-dot", "a.b", "x" * 2000, "é.é", ["a.b"], {"site": SITE}, "a..b"],
)
def test_malformed_tokens_are_refused(token: object) -> None:
    assert refusal(tokens(), token) == "the call token is malformed"


def test_a_token_has_one_spelling() -> None:
    """The last character of base64 carries unused bits: a token whose last character
    differs only there decodes to the same bytes, and is refused all the same."""
    issuer = tokens()
    token = issuer.issue(SITE, ORIGIN, NOW)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    twin = token[:-1] + alphabet[last ^ 1]  # 43 characters: the last has 2 unused bits
    assert base64.urlsafe_b64decode(twin.split(".")[1] + "=") == base64.urlsafe_b64decode(
        token.split(".")[1] + "="
    )
    assert refusal(issuer, twin) == "the call token is malformed"
    redeem(issuer, token, site_id=SITE, origin=ORIGIN, now=NOW)


def test_signed_claims_of_the_wrong_shape_are_refused() -> None:
    key = derive_key(SECRET, "call token")
    token = sign(key, {"site": SITE, "origin": ORIGIN, "exp": "tomorrow", "nonce": "n"})
    assert refusal(tokens(), token) == "the call token is malformed"


def test_used_tokens_are_forgotten_once_expired() -> None:
    ledger = SqliteLedger.in_memory()
    issuer = CallTokens(SECRET, lifetime=60, used=ledger)
    for n in range(100):
        token = issuer.issue(SITE, ORIGIN, NOW + n)
        redeem(issuer, token, site_id=SITE, origin=ORIGIN, now=NOW + n)
    late = NOW + 1000
    redeem(issuer, issuer.issue(SITE, ORIGIN, late), site_id=SITE, origin=ORIGIN, now=late)
    assert ledger.remembered() == 1


def test_a_short_secret_or_a_bad_lifetime_is_a_bug() -> None:
    with pytest.raises(ValueError):
        CallTokens(b"short", 60)
    with pytest.raises(ValueError):
        CallTokens(SECRET, 0)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=100), st.integers(), st.none()))
def test_any_value_is_refused_with_token_error_only(value: object) -> None:
    with pytest.raises(TokenError):
        redeem(tokens(), value, site_id=SITE, origin=ORIGIN, now=NOW)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_mutation_of_a_real_token_is_refused(data: st.DataObject) -> None:
    issuer = tokens()
    token = issuer.issue(SITE, ORIGIN, NOW)
    index = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    replacement = data.draw(st.characters(codec="ascii").filter(lambda c: c != token[index]))
    mutated = token[:index] + replacement + token[index + 1 :]
    with pytest.raises(TokenError):
        redeem(issuer, mutated, site_id=SITE, origin=ORIGIN, now=NOW)
