"""The recorded corpus (see corpus/README.md), loaded once per test session."""

from __future__ import annotations

import functools
import json
from pathlib import Path

CORPUS = Path(__file__).resolve().parent / "corpus"
RFC4475 = Path(__file__).resolve().parent.parent / "data" / "rfc4475"


@functools.cache
def sip_messages() -> tuple[bytes, ...]:
    """Recorded SIP messages, then the RFC 4475 torture messages (valid and invalid)."""
    recorded = sorted((CORPUS / "sip").glob("*.sip"))
    torture = sorted(RFC4475.glob("*.dat"))
    messages = tuple(path.read_bytes() for path in [*recorded, *torture])
    assert len(recorded) >= 50, "the SIP corpus is missing: run tests/security/record_corpus.py"
    return messages


@functools.cache
def recorded_sip(prefix: str) -> tuple[bytes, ...]:
    """The recorded messages of one exchange, e.g. "sipp-uas_answer_echo", in order."""
    return tuple(path.read_bytes() for path in sorted((CORPUS / "sip").glob(f"{prefix}-*.sip")))


@functools.cache
def sdp_bodies() -> tuple[bytes, ...]:
    bodies = tuple(path.read_bytes() for path in sorted((CORPUS / "sdp").glob("*.sdp")))
    assert len(bodies) >= 10, "the SDP corpus is missing"
    return bodies


@functools.cache
def packets(kind: str) -> tuple[bytes, ...]:
    """Recorded packets of `kind` ("rtp", "rtcp" or "dtmf"), from every source."""
    found = tuple(
        bytes.fromhex(line)
        for path in sorted((CORPUS / kind).glob("*.hex"))
        for line in path.read_text().split()
    )
    assert found, f"the {kind} corpus is missing"
    return found


@functools.cache
def socketio_events() -> tuple[tuple[str, tuple[object, ...]], ...]:
    """(event, args) of each socket.io event the browser sent."""
    events = []
    for line in (CORPUS / "socketio" / "chromium.jsonl").read_text().splitlines():
        name, *args = json.loads(line)
        events.append((name, tuple(args)))
    assert len(events) >= 5, "the socket.io corpus is missing"
    return tuple(events)
