"""Why a call ended, for the page and the record (gateway.calls.causes), and the bridge
following a SIP leg that changed codec (gateway.media.bridge)."""

from __future__ import annotations

import numpy as np
import pytest

from gateway.api import EndCause
from gateway.calls.causes import cause_of, describe
from gateway.media.bridge import MediaBridge
from gateway.media.transcoder import audio_codec
from sip_bridge import CallEnded, EndReason
from sip_bridge.rtp.g711 import alaw_decode, ulaw_encode
from tests.support.audio import assert_tone


@pytest.mark.parametrize(
    ("reason", "status", "cause", "words"),
    [
        (EndReason.FAILED, 421, EndCause.PHONE_SYSTEM_REFUSED, "421 Extension Required"),
        (EndReason.FAILED, 403, EndCause.PHONE_SYSTEM_REFUSED, "403 Forbidden"),
        (EndReason.FAILED, 499, EndCause.PHONE_SYSTEM_REFUSED, "499 Request Failure"),
        (EndReason.NOT_ACCEPTABLE, 488, EndCause.NO_COMMON_CODEC, "488 Not Acceptable Here"),
        (EndReason.REDIRECTED, 302, EndCause.REDIRECT_FAILED, "302 Moved Temporarily"),
        (EndReason.SESSION_EXPIRED, None, EndCause.SESSION_EXPIRED, ""),
        (
            EndReason.AUTH_FAILED,
            407,
            EndCause.PHONE_SYSTEM_REFUSED,
            "407 Proxy Authentication Required",
        ),
        (EndReason.BUSY, 486, EndCause.BUSY, "486 Busy Here"),
        (EndReason.CANCELLED, 487, EndCause.VISITOR_HUNG_UP, ""),  # our own CANCEL
        (EndReason.FAILED, None, EndCause.FAILED, ""),  # no status: our own trouble
    ],
)
def test_a_sip_end_becomes_a_stable_cause_and_standard_words(reason, status, cause, words):
    # The peer's reason phrase never reaches the page: only the status's standard words.
    ended = CallEnded("c", reason, status, "421 <script>whatever the PBX wrote")
    assert cause_of(ended) == (cause, words)


def test_record_words():
    assert (
        describe(EndCause.PHONE_SYSTEM_REFUSED, "421 Extension Required")
        == "the phone system refused the call (421 Extension Required)"
    )
    assert describe(EndCause.NO_COMMON_CODEC) == "no common codec with the operator's phone"
    assert describe(EndCause.BUSY) == "busy"


class Leg:
    """An audio leg in memory: what the bridge sends it, and a way to feed the bridge."""

    def __init__(self, codec: str) -> None:
        self.codec = audio_codec(codec)
        self.sent: list[bytes] = []
        self.handler = None

    def listen(self, handler) -> None:
        self.handler = handler

    def send(self, payload, frames) -> None:
        self.sent.append(bytes(payload))


def test_the_bridge_relays_then_transcodes_after_the_phone_side_switches_codec():
    browser, phone = Leg("PCMU"), Leg("PCMU")
    bridge = MediaBridge(browser, phone)
    bridge.start()
    bridge.a_to_b.muted = True
    t = np.arange(160 * 50) / 8000
    frames = [
        ulaw_encode((np.sin(2 * np.pi * 1000 * t[i * 160 : (i + 1) * 160]) * 8000).astype(np.int16))
        for i in range(50)
    ]
    browser.handler(frames[0], 0)
    assert not bridge.transcoding and phone.sent == [b"\xff" * 160]  # muted: PCMU silence
    bridge.a_to_b.muted = False
    # A re-INVITE moved the phone to PCMA: the bridge now converts, and mute carries over.
    pcma = Leg("PCMA")
    bridge.replace_b(pcma)
    assert bridge.transcoding and phone.handler is None and pcma.handler is not None
    for n, frame in enumerate(frames[1:], 1):
        browser.handler(frame, n * 160)
    heard = alaw_decode(b"".join(pcma.sent)).astype(np.int16)
    assert_tone(heard, 8000, 1000, skip_seconds=0.1, what="PCMA after the switch")
