"""The gateway's PageAccess from its configuration: the secret, the challenges installed."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import pytest

from gateway.access.challenge import ChallengeError, ProofOfWork
from gateway.access.pages import page_access_from_config
from gateway.api import AccessRefused
from gateway.config import parse_config
from tests.gateway.clock import FakeClock

SECRET = "Tk5-token-secret-of-at-least-32-chars"
SHOP = """
[[sites]]
id = "shop"
destination = "sip:desk@pbx.example.com"
origins = ["https://shop.example"]
"""


def test_without_a_secret_a_random_one_is_made_and_the_log_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    one = page_access_from_config(parse_config(SHOP))
    two = page_access_from_config(parse_config(SHOP))
    assert "access.token_secret is not set" in caplog.text
    assert "GATEWAY_ACCESS_TOKEN_SECRET" in caplog.text
    # Two processes without a shared secret refuse each other's tokens.
    token = one.tokens.issue("shop", "https://shop.example", 0)
    with pytest.raises(ValueError, match="forged, or from another gateway"):
        two.tokens.check(token, site_id="shop", origin="https://shop.example", now=0)


def test_with_a_secret_workers_accept_each_others_tokens(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = parse_config(SHOP, {"GATEWAY_ACCESS_TOKEN_SECRET": SECRET})
    one, two = page_access_from_config(config), page_access_from_config(config)
    token = one.tokens.issue("shop", "https://shop.example", 0)
    two.tokens.check(token, site_id="shop", origin="https://shop.example", now=0)
    assert caplog.text == ""
    assert isinstance(one.verifiers["pow"], ProofOfWork)
    assert one.verifiers["pow"].difficulty == config.access.pow_difficulty


class Captcha:
    kind = "captcha"

    def __init__(self) -> None:
        self.asked: list[tuple[str, object, str]] = []

    def challenge(self, site_id: str, now: float) -> dict[str, object]:
        return {"kind": self.kind, "site_key": "public"}

    async def verify(
        self, site_id: str, proof: Mapping[str, object], client: str, now: float
    ) -> None:
        self.asked.append((site_id, dict(proof), client))
        if proof.get("response") != "human":
            raise ChallengeError("the CAPTCHA was not solved")


async def test_a_site_may_name_an_installed_verifier() -> None:
    config = parse_config(SHOP + 'challenge = "captcha"\n')
    captcha = Captcha()
    access = page_access_from_config(config, clock=FakeClock(), verifiers={"captcha": captcha})
    (site,) = config.sites
    ask = {"challenge": "captcha", "origin": "https://shop.example", "client": "192.0.2.1"}
    with pytest.raises(AccessRefused) as refused:
        await access.issue_token(site.public_info, proof=None, **ask)
    assert refused.value.code == "challenge_required"
    assert refused.value.challenge == {"kind": "captcha", "site_key": "public"}
    with pytest.raises(AccessRefused) as refused:
        await access.issue_token(site.public_info, proof={"response": "bot"}, **ask)
    assert (refused.value.code, refused.value.message) == (
        "challenge_failed",
        "the CAPTCHA was not solved",
    )
    grant = await access.issue_token(site.public_info, proof={"response": "human"}, **ask)
    assert grant.token
    assert captcha.asked[-1] == ("shop", {"response": "human"}, "192.0.2.1")


def test_a_site_naming_a_verifier_that_is_not_installed_stops_the_start() -> None:
    config = parse_config(SHOP + 'challenge = "captcha"\n')
    with pytest.raises(ValueError, match="site 'shop' asks for challenge 'captcha'"):
        page_access_from_config(config)
