"""POST /api/token and the token check at connect, over real sockets.

The tokens and challenges are the gateway's own (`PageAccess` with `CallTokens` and
`ProofOfWork`) on a clock the test moves; the HTTP server and the socket.io clients are real.
"""

from __future__ import annotations

import aiohttp
import pytest

from gateway.access.challenge import solve
from tests.signaling.conftest import (
    DEMO_ORIGIN,
    OTHER_SITE_ORIGIN,
    PAGE_ORIGIN,
    Connect,
    SignalingServer,
    call_token,
    refused_connection,
    request_token,
)
from tests.signaling.memory_service import POW_DIFFICULTY, TOKEN_LIFETIME

# --- the token request -------------------------------------------------------------------------


async def test_a_page_of_the_site_gets_a_short_lived_token(
    signaling_server: SignalingServer,
) -> None:
    status, headers, answer = await request_token(
        signaling_server.url, {"site": "shop"}, OTHER_SITE_ORIGIN
    )
    assert status == 200
    assert answer.keys() == {"token", "expires_in"}
    assert answer["expires_in"] == TOKEN_LIFETIME
    assert headers["Cache-Control"] == "no-store"
    # A page of the site's origin (another origin than the gateway's) may read the answer.
    assert headers["Access-Control-Allow-Origin"] == OTHER_SITE_ORIGIN
    assert headers["Vary"] == "Origin"


async def test_the_gateways_own_pages_get_tokens_for_every_site(
    signaling_server: SignalingServer,
) -> None:
    for site in ("demo", "shop"):
        for origin in (PAGE_ORIGIN, signaling_server.url):
            status, _, answer = await request_token(signaling_server.url, {"site": site}, origin)
            assert status == 200, answer


@pytest.mark.parametrize(
    ("body", "origin", "status", "code", "words"),
    [
        ({"site": "shop"}, None, 403, "origin_required", "an Origin header is required"),
        ({"site": "shop"}, DEMO_ORIGIN, 403, "origin_refused", "may not use site 'shop'"),
        ({"site": "demo"}, "https://evil.example", 403, "origin_refused", "may not use site"),
        ({"site": "nope"}, DEMO_ORIGIN, 404, "unknown_site", "no site 'nope'"),
        ({}, DEMO_ORIGIN, 400, "bad_request", 'must be {"site"'),
        ({"site": "demo", "x": 1}, DEMO_ORIGIN, 400, "bad_request", 'must be {"site"'),
        (["demo"], DEMO_ORIGIN, 400, "bad_request", 'must be {"site"'),
        ({"site": 5}, DEMO_ORIGIN, 400, "bad_request", "site must be a site id"),
        ({"site": "x" * 65}, DEMO_ORIGIN, 400, "bad_request", "site must be a site id"),
        (b"{not json", DEMO_ORIGIN, 400, "bad_request", "not valid JSON"),
        (b"\xff\xfe", DEMO_ORIGIN, 400, "bad_request", "not valid JSON"),
        (b"[" * 5000, DEMO_ORIGIN, 400, "bad_request", "nested deeper"),
        (b'{"site": "' + b"x" * 9000 + b'"}', DEMO_ORIGIN, 413, "too_large", "at most 8192"),
    ],
)
async def test_a_bad_token_request_is_refused_with_a_reason(
    signaling_server: SignalingServer,
    body: object,
    origin: str | None,
    status: int,
    code: str,
    words: str,
) -> None:
    got, headers, answer = await request_token(signaling_server.url, body, origin)
    assert got == status
    assert answer["error"]["code"] == code
    assert words in answer["error"]["message"]
    assert "token" not in answer
    assert headers["Cache-Control"] == "no-store"


async def test_a_token_request_must_be_json(signaling_server: SignalingServer) -> None:
    status, _, answer = await request_token(
        signaling_server.url, {"site": "demo"}, DEMO_ORIGIN, content_type="text/plain"
    )
    assert (status, answer["error"]["code"]) == (415, "bad_request")


async def test_the_preflight_lets_any_page_ask(signaling_server: SignalingServer) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.options(
            f"{signaling_server.url}/api/token",
            headers={
                "Origin": OTHER_SITE_ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        ) as response,
    ):
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == OTHER_SITE_ORIGIN
        assert response.headers["Access-Control-Allow-Methods"] == "POST"
        assert response.headers["Access-Control-Allow-Headers"] == "Content-Type"


# --- the token at connect ----------------------------------------------------------------------


async def test_a_valid_token_connects_once(
    signaling_server: SignalingServer, connect: Connect
) -> None:
    token = await call_token(signaling_server.url, "demo")
    client = await connect(auth={"site": "demo", "token": token})
    assert (await client.next("session"))["ice_servers"]
    reason = await refused_connection(
        signaling_server, {"site": "demo", "token": token}, DEMO_ORIGIN
    )
    assert reason == "the call token was already used"


async def test_an_expired_token_is_refused(signaling_server: SignalingServer) -> None:
    token = await call_token(signaling_server.url, "demo")
    signaling_server.service.clock.advance(TOKEN_LIFETIME + 1)
    reason = await refused_connection(
        signaling_server, {"site": "demo", "token": token}, DEMO_ORIGIN
    )
    assert reason == "the call token has expired; reload the page"
    assert signaling_server.namespace.client_count == 0


async def test_a_token_of_another_site_is_refused(signaling_server: SignalingServer) -> None:
    # The gateway's own page may use both sites; a token for one is no use for the other.
    token = await call_token(signaling_server.url, "shop", PAGE_ORIGIN)
    reason = await refused_connection(
        signaling_server, {"site": "demo", "token": token}, PAGE_ORIGIN
    )
    assert reason == "the call token is for another site"


async def test_a_token_of_another_origin_is_refused(signaling_server: SignalingServer) -> None:
    # Both origins may use the shop; a token fetched by one does not open the other's socket.
    token = await call_token(signaling_server.url, "shop", OTHER_SITE_ORIGIN)
    reason = await refused_connection(
        signaling_server, {"site": "shop", "token": token}, "https://www.shop.example"
    )
    assert reason == "the call token is for another origin"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "the call token is malformed"),
        (None, "the call token is malformed"),
        (42, "the call token is malformed"),
        ("x" * 5000, "the call token is malformed"),
        ("eyJzaXRlIjoiZGVtbyJ9." + "A" * 43, "not valid (forged, or from another gateway)"),
    ],
)
async def test_a_forged_or_malformed_token_is_refused(
    signaling_server: SignalingServer, token: object, reason: str
) -> None:
    refusal = await refused_connection(
        signaling_server, {"site": "demo", "token": token}, DEMO_ORIGIN
    )
    assert reason in refusal
    assert signaling_server.namespace.client_count == 0


async def test_a_refused_origin_does_not_use_the_token_up(
    signaling_server: SignalingServer, connect: Connect
) -> None:
    token = await call_token(signaling_server.url, "shop", OTHER_SITE_ORIGIN)
    reason = await refused_connection(
        signaling_server, {"site": "shop", "token": token}, DEMO_ORIGIN
    )
    assert "may not use site 'shop'" in reason
    client = await connect(origin=OTHER_SITE_ORIGIN, auth={"site": "shop", "token": token})
    assert await client.next("session")


# --- the proof-of-work challenge ---------------------------------------------------------------


async def test_a_site_with_a_challenge_gives_a_token_for_a_solved_proof_of_work(
    signaling_server: SignalingServer, connect: Connect
) -> None:
    signaling_server.service.challenges["demo"] = "pow"
    url = signaling_server.url
    status, _, answer = await request_token(url, {"site": "demo"})
    assert status == 403
    assert answer["error"]["code"] == "challenge_required"
    challenge = answer["challenge"]
    assert challenge.keys() == {"kind", "challenge", "difficulty"}
    assert (challenge["kind"], challenge["difficulty"]) == ("pow", POW_DIFFICULTY)
    proof = {
        "challenge": challenge["challenge"],
        "solution": solve(challenge["challenge"], POW_DIFFICULTY),
    }
    status, _, answer = await request_token(url, {"site": "demo", "proof": proof})
    assert status == 200
    client = await connect(auth={"site": "demo", "token": answer["token"]})
    assert await client.next("session")
    # A solved challenge buys one token.
    status, _, answer = await request_token(url, {"site": "demo", "proof": proof})
    assert (status, answer["error"]["code"]) == (403, "challenge_failed")
    assert answer["error"]["message"] == "the challenge was already used; ask for a new one"
    assert answer["challenge"]["challenge"] != proof["challenge"]  # a new one to solve


@pytest.mark.parametrize(
    ("proof", "reason"),
    [
        ({"challenge": "x", "solution": "1"}, "not one this gateway issued"),
        ({"solution": "1"}, "the proof must be"),
        ("solved", "proof must be an object"),
    ],
)
async def test_a_bad_proof_gets_no_token(
    signaling_server: SignalingServer, proof: object, reason: str
) -> None:
    signaling_server.service.challenges["demo"] = "pow"
    status, _, answer = await request_token(signaling_server.url, {"site": "demo", "proof": proof})
    assert status in (400, 403)
    assert reason in answer["error"]["message"]
    assert "token" not in answer


async def test_an_expired_challenge_gets_no_token(signaling_server: SignalingServer) -> None:
    service = signaling_server.service
    service.challenges["demo"] = "pow"
    _, _, answer = await request_token(signaling_server.url, {"site": "demo"})
    text = answer["challenge"]["challenge"]
    service.clock.advance(301)
    proof = {"challenge": text, "solution": solve(text, POW_DIFFICULTY)}
    status, _, answer = await request_token(signaling_server.url, {"site": "demo", "proof": proof})
    assert (status, answer["error"]["code"]) == (403, "challenge_failed")
    assert "expired" in answer["error"]["message"]


async def test_the_challenge_is_only_asked_of_sites_that_want_it(
    signaling_server: SignalingServer,
) -> None:
    signaling_server.service.challenges["demo"] = "pow"
    status, _, _ = await request_token(signaling_server.url, {"site": "shop"}, OTHER_SITE_ORIGIN)
    assert status == 200
