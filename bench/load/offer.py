"""The offer a visitor sends: Chromium's, with this peer's own ICE, DTLS and SSRC values.

`chromium-offer.sdp` is what Chromium 156 (Debian) offers for one microphone track
(`createOffer()` after `addTrack`, trickle ICE: no candidates). The server under test sees
the same codecs, header extensions, RTCP options and attributes as from a browser; aiortc,
which does the handshakes, supplies the ICE credentials, the certificate fingerprint and
the candidates (trickled after the offer, as the widget does).
"""

from __future__ import annotations

import random
import re
import uuid
from pathlib import Path

TEMPLATE = Path(__file__).with_name("chromium-offer.sdp")


def _value(sdp: str, attribute: str) -> str:
    match = re.search(rf"^a={attribute}:(.*?)\r?$", sdp, re.MULTILINE)
    if match is None:
        raise ValueError(f"no a={attribute} in aiortc's offer")
    return match.group(1)


def chromium_offer(aiortc_sdp: str, ssrc: int, cname: str, rng: random.Random) -> str:
    """Chromium's offer carrying aiortc's credentials and fingerprint and our SSRC."""
    fingerprint = next(
        (
            line[len("a=fingerprint:") :]
            for line in aiortc_sdp.splitlines()
            if line.startswith("a=fingerprint:sha-256 ")
        ),
        None,
    )
    if fingerprint is None:
        raise ValueError("no sha-256 fingerprint in aiortc's offer")
    stream, track = uuid.UUID(int=rng.getrandbits(128)), uuid.UUID(int=rng.getrandbits(128))
    lines = []
    for line in TEMPLATE.read_text().splitlines():
        if line.startswith("o=- "):
            line = f"o=- {rng.getrandbits(62)} 2 IN IP4 127.0.0.1"
        elif line.startswith("a=msid-semantic:"):
            line = f"a=msid-semantic: WMS {stream}"
        elif line.startswith("a=ice-ufrag:"):
            line = f"a=ice-ufrag:{_value(aiortc_sdp, 'ice-ufrag')}"
        elif line.startswith("a=ice-pwd:"):
            line = f"a=ice-pwd:{_value(aiortc_sdp, 'ice-pwd')}"
        elif line.startswith("a=fingerprint:"):
            line = f"a=fingerprint:{fingerprint}"
        elif line.startswith("a=msid:"):
            line = f"a=msid:{stream} {track}"
        elif line.startswith("a=ssrc:") and " cname:" in line:
            line = f"a=ssrc:{ssrc} cname:{cname}"
        elif line.startswith("a=ssrc:") and " msid:" in line:
            line = f"a=ssrc:{ssrc} msid:{stream} {track}"
        lines.append(line)
    return "\r\n".join(lines) + "\r\n"


def candidates(aiortc_sdp: str) -> list[str]:
    """aiortc's candidates, as `RTCIceCandidate.candidate` strings (to trickle)."""
    return [line[2:].strip() for line in aiortc_sdp.splitlines() if line.startswith("a=candidate:")]


def cname(rng: random.Random) -> str:
    """A CNAME like Chromium's: 16 characters of base64."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    return "".join(rng.choice(alphabet) for _ in range(16))


__all__ = ["candidates", "chromium_offer", "cname"]
