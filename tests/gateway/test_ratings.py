"""Ratings of answered calls on a fake clock: a proof for one call, once, within its
window; the values checked and the comment cleaned; kept with the call's record in the
gateway's database, on SQLite and a real PostgreSQL, whether the record is written before
or after the rating, and forgotten with it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from gateway.access.ledger import SqliteLedger
from gateway.access.ratings import RATING_WINDOW, RatingProofs
from gateway.admin.service import records_csv
from gateway.calls.ratings import CallRatings, RatingRefused
from gateway.storage import CallRating, CallRecord, Database
from tests.gateway.clock import FakeClock

SECRET = b"ratings-tests-secret-0123456789abcdef"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = await Database.open(database_url)
    yield db
    await db.close()


@pytest.fixture
def ratings(database: Database, clock: FakeClock) -> CallRatings:
    return CallRatings(
        RatingProofs(SECRET), database.ratings, SqliteLedger.in_memory(), clock=clock
    )


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
    assert await ratings.store.get("call-1") == taken  # type: ignore[union-attr]
    again = await refused(ratings, "call-1", {"proof": proof, "rating": 1})
    assert (again.code, again.status) == ("already_rated", 409)
    assert (await ratings.store.get("call-1")).rating == 5  # type: ignore[union-attr]
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
    assert await ratings.store.get("call-3") is None  # type: ignore[union-attr]


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
    assert await ratings.store.get("call-1") is None  # type: ignore[union-attr]
    # The proof was not spent by a refused attempt.
    assert (await ratings.rate("call-1", {"proof": proof, "rating": 2})).rating == 2


def record(call_id: str, started: float, **more: object) -> CallRecord:
    return CallRecord(
        id=call_id, kind="call", site="shop", started_at=started, outcome="answered", **more
    )


async def test_the_rating_is_read_with_its_record_whichever_is_written_first(
    ratings: CallRatings, database: Database, clock: FakeClock
) -> None:
    records = database.records
    # The record first, then the rating.
    await records.add(record("early", 100, ended_at=130))
    before = (await records.get("early")).public()  # type: ignore[union-attr]
    assert (before["rating"], before["rating_comment"], before["rated_at"]) == (None, "", None)
    proof = ratings.proof("early", "shop")
    await ratings.rate("early", {"proof": proof, "rating": 4, "comment": "Clear <b>sound</b>"})
    # The rating first (the call history's queue is behind): kept, and found with the
    # record once it lands.
    proof = ratings.proof("late", "shop")
    await ratings.rate("late", {"proof": proof, "rating": 2})
    assert await records.get("late") is None
    await records.add(record("late", 200, ended_at=230))
    late, early = await records.find()  # one row per record, the rating with it
    assert (early.id, early.rating, early.rating_comment) == ("early", 4, "Clear <b>sound</b>")
    assert early.rated_at == clock()
    assert (late.id, late.rating, late.rating_comment) == ("late", 2, "")
    header, *rows = records_csv([late, early]).splitlines()
    assert header.endswith(",rating,rating_comment,rated_at")
    assert rows[1].split(",")[-3:-1] == ["4", "Clear <b>sound</b>"]
    # A second rating from another node (its own ledger) is refused by the database.
    elsewhere = CallRatings(ratings.proofs, database.ratings, SqliteLedger.in_memory(), clock=clock)
    again = await refused(
        elsewhere, "early", {"proof": ratings.proof("early", "shop"), "rating": 1}
    )
    assert (again.code, again.status) == ("already_rated", 409)
    assert (await records.get("early")).rating == 4  # type: ignore[union-attr]


async def test_ratings_are_forgotten_with_their_records(database: Database) -> None:
    records, store = database.records, database.ratings
    for call_id, started in (("gone", 100), ("purged", 110), ("kept", 300)):
        await records.add(record(call_id, started))
        assert await store.add(CallRating(call_id, "shop", 5, "Good", started + 60))
    # A rating whose record never came (its call's history write was lost), and a record
    # started before the retention limit but rated after it.
    assert await store.add(CallRating("orphan", "shop", 3, "", 120))
    await records.add(record("straddles", 150))
    assert await store.add(CallRating("straddles", "shop", 1, "", 260))
    assert (await records.delete("gone")).rating == 5  # type: ignore[union-attr]
    assert await store.get("gone") is None
    assert await records.purge("shop", before=250) == 2  # purged, straddles
    for call_id in ("purged", "orphan", "straddles"):
        assert await store.get(call_id) is None
    assert (await records.get("kept")).rating == 5  # type: ignore[union-attr]
    assert not await store.add(CallRating("kept", "shop", 1, "", 400))  # rated already


async def test_a_gateway_without_a_database_asks_for_no_rating(clock: FakeClock) -> None:
    ratings = CallRatings(RatingProofs(SECRET), None, SqliteLedger.in_memory(), clock=clock)
    assert ratings.proof("call-1", "shop") == ""
    refusal = await refused(ratings, "call-1", {"proof": "x", "rating": 5})
    assert (refusal.code, refusal.status) == ("rating_refused", 403)
