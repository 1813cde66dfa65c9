"""The media of a pre-call check: a browser peer connection (ICE, DTLS-SRTP, as a call's)
whose audio goes straight back to the browser, and no SIP. The browser measures the round
trip of its own audio: how much of what it sent came back (loss on the way there and back)
and how late (RTCP's round trip), before its visitor calls.

The offer comes with its candidates (the page gathers first, no trickle); the browser leg
holds them to a call's rules (gateway.media.ice_policy): mDNS names and denied networks
dropped, the connectivity checks capped.
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.config.legs import BrowserLegSettings
from gateway.media.ice_mux import IceMux
from gateway.media.webrtc_leg import WebRtcLeg


class EchoLeg:
    """Answers the browser's offer, then sends each audio frame it receives back at once.
    `on_failed(state)` is told when the connection fails or closes under it."""

    def __init__(self, settings: BrowserLegSettings, ice_mux: IceMux | None = None) -> None:
        self.webrtc = WebRtcLeg(settings, ice_mux=ice_mux)
        self.on_failed: Callable[[str], None] | None = None
        self.webrtc.on_failed = self._failed
        self.echoed = 0

    async def answer(self, offer_sdp: str) -> str:
        """Our SDP answer (ICE gathered). Raises ValueError for an unusable offer."""
        answer = await self.webrtc.answer(offer_sdp)
        self.webrtc.listen(self._echo)
        return answer

    def _echo(self, payload: bytes | memoryview, timestamp: int) -> None:
        self.webrtc.send(payload)  # copied into the outgoing packet before this returns
        self.echoed += 1

    def _failed(self, state: str) -> None:
        if self.on_failed is not None:
            self.on_failed(state)

    async def close(self) -> None:
        await self.webrtc.close()
