"""The settings of one call leg, built from the configuration in one place, so that a
browser call's SIP leg and a callback's two SIP legs cannot differ in how their media is
opened (ports, codecs, latching, the media timeout)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.config.schema import GatewayConfig


@dataclass(frozen=True, slots=True)
class SipLegSettings:
    """How a SIP leg's RTP is opened (sip_bridge CallMedia.open)."""

    rtp_host: str  # where its RTP socket binds
    rtp_announce: str  # the address its SDP announces
    rtp_ports: tuple[int, int]
    codecs: tuple[str, ...]  # offered, in preference order
    media_timeout: float | None  # seconds without RTP from a talking leg; None: none
    latch_any_source: bool  # RTP from the first source, not only the SDP's


@dataclass(frozen=True, slots=True)
class BrowserLegSettings:
    """How a browser's WebRTC leg is answered."""

    codecs: tuple[str, ...]  # in preference order
    ice_servers: tuple[dict[str, Any], ...]  # RTCIceServer-shaped, with credentials


def sip_leg_settings(config: GatewayConfig) -> SipLegSettings:
    return SipLegSettings(
        rtp_host=config.sip.listen[0],
        rtp_announce=config.sip.public_address[0],
        rtp_ports=config.media.rtp_ports,
        codecs=config.media.sip_codecs,
        media_timeout=config.media.media_timeout,
        latch_any_source=config.media.rtp_latching == "any",
    )


def browser_leg_settings(config: GatewayConfig) -> BrowserLegSettings:
    return BrowserLegSettings(
        codecs=config.media.browser_codecs,
        ice_servers=tuple(
            {"urls": list(s.urls), "username": s.username, "credential": s.credential}
            for s in config.ice.servers
        ),
    )
