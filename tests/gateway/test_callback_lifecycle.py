"""The callback lifecycle is defined once, and the documentation names it as it is."""

from __future__ import annotations

from pathlib import Path

from gateway.storage.callback_lifecycle import (
    FINAL,
    PLACEABLE_AGAIN,
    STATUS_EVENTS,
    TRANSITIONS,
    CallbackEvent,
    CallbackStatus,
    sources,
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "callbacks.md"


def test_statuses_and_their_moves() -> None:
    assert [s.value for s in CallbackStatus] == [
        "scheduled",
        "dialing",
        "done",
        "failed",
        "cancelled",
        "interrupted",
    ]
    assert {"done", "failed", "cancelled", "interrupted"} == FINAL
    assert sources(CallbackStatus.DIALING) == {CallbackStatus.SCHEDULED}
    assert sources(CallbackStatus.SCHEDULED) == {CallbackStatus.DIALING}  # a retry
    assert sources(CallbackStatus.CANCELLED) == {CallbackStatus.SCHEDULED}
    assert sources(CallbackStatus.INTERRUPTED) == {CallbackStatus.DIALING}
    # Every status can be reached from `scheduled`, and none leaves a final one.
    reached, frontier = {CallbackStatus.SCHEDULED}, [CallbackStatus.SCHEDULED]
    while frontier:
        for target in TRANSITIONS[frontier.pop()]:
            if target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(CallbackStatus)
    assert all(not TRANSITIONS[s] for s in FINAL)
    # The site owner's one way out of a final status.
    assert {CallbackStatus.FAILED, CallbackStatus.INTERRUPTED} == PLACEABLE_AGAIN
    assert PLACEABLE_AGAIN <= FINAL


def test_every_status_has_its_history_event() -> None:
    assert {e.value for e in STATUS_EVENTS} == {s.value for s in CallbackStatus}


def test_the_http_api_documents_every_status_and_event() -> None:
    text = DOCS.read_text()
    for name in [*CallbackStatus, *CallbackEvent]:
        assert f"`{name.value}`" in text, name
