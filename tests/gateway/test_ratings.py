"""Ratings of answered calls on a fake clock: a proof for one call, once, within its
window; the values checked and the comment cleaned; kept in the (interim) SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.access.ledger import SqliteLedger
from gateway.access.ratings import RATING_WINDOW, RatingProofs
from gateway.calls.ratings import CallRating, CallRatings, RatingRefused, SqliteRatingStore
from tests.gateway.clock import FakeClock

SECRET = b"ratings-tests-secret-0123456789abcdef"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ratings(tmp_path: Path, clock: FakeClock) -> CallRatings:
    store = SqliteRatingStore(tmp_path / "state" / "call-ratings.db")
    return CallRatings(RatingProofs(SECRET), store, SqliteLedger.in_memory(), clock=clock)


async def refused(ratings: CallRatings, call_id: str, body: object) -> RatingRefused:
    with pytest.raises(RatingRefused) as caught:
        await ratings.rate(call_id, body)
    return caught.value


async def test_a_call_is_rated_once_with_its_own_proof(ratings: CallRatings) -> None:
    proof = ratings.proof("call-1", "shop")
    taken = await ratings.rate("call-1", {"proof": proof, "rating": 5, "comment": " Great\u202e "})
    assert (taken.call_id, taken.site, taken.rating, taken.comment) == (
        "call-1",
        "shop",
        5,
        "Great",
    )
    assert await ratings.store.get("call-1") == taken
    again = await refused(ratings, "call-1", {"proof": proof, "rating": 1})
    assert (again.code, again.status) == ("already_rated", 409)
    assert (await ratings.store.get("call-1")).rating == 5  # the first one stays
    other = await refused(ratings, "call-2", {"proof": proof, "rating": 1})
    assert (other.code, other.status, other.message) == (
        "rating_refused",
        403,
        "the rating's proof is for another call",
    )


async def test_a_proof_expires_and_cannot_be_forged(ratings: CallRatings, clock: FakeClock) -> None:
    proof = ratings.proof("call-1", "shop")
    clock.advance(RATING_WINDOW + 1)
    late = await refused(ratings, "call-1", {"proof": proof, "rating": 3})
    assert (late.code, late.message) == ("rating_refused", "it is too late to rate this call")
    elsewhere = CallRatings(
        RatingProofs(b"another-gateway-secret-0123456789"), ratings.store, ratings.ledger
    ).proof("call-3", "shop")
    forged = await refused(ratings, "call-3", {"proof": elsewhere, "rating": 3})
    assert forged.code == "rating_refused"
    for junk in (None, "", "a.b", 7, "x" * 5000):
        assert (await refused(ratings, "call-3", {"proof": junk, "rating": 3})).status == 403
    assert await ratings.store.get("call-3") is None


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"rating": 0}, "rating must be a whole number from 1 to 5"),
        ({"rating": 6}, "rating must be a whole number from 1 to 5"),
        ({"rating": 4.5}, "rating must be a whole number from 1 to 5"),
        ({"rating": True}, "rating must be a whole number from 1 to 5"),
        ({"rating": "5"}, "rating must be a whole number from 1 to 5"),
        ({"rating": 3, "comment": 3}, "comment must be text"),
        ({"rating": 3, "comment": "x" * 501}, "comment is longer than 500 characters"),
        ({"rating": 3, "comment": "a\x00b"}, "comment contains control characters"),
    ],
)
async def test_bad_values_are_refused_and_nothing_is_kept(
    ratings: CallRatings, body: dict, words: str
) -> None:
    proof = ratings.proof("call-1", "shop")
    refusal = await refused(ratings, "call-1", {"proof": proof, **body})
    assert (refusal.code, refusal.status) == ("bad_request", 400)
    assert words in refusal.message
    assert await ratings.store.get("call-1") is None
    # The proof was not spent by a refused attempt.
    assert (await ratings.rate("call-1", {"proof": proof, "rating": 2})).rating == 2


async def test_the_store_keeps_ratings_across_openings(tmp_path: Path) -> None:
    path = tmp_path / "call-ratings.db"
    rating = CallRating("call-9", "shop", 4, "Fine", 1_800_000_000.0)
    await SqliteRatingStore(path).add(rating)
    assert await SqliteRatingStore(path).get("call-9") == rating
