"""The RTP side of a SIP leg, opened the same way for a call and for a callback."""

from __future__ import annotations

from collections.abc import Iterable

from gateway.config.legs import SipLegSettings
from sip_bridge import CallMedia


async def open_sip_media(leg: SipLegSettings, codecs: Iterable[str] | None = None) -> CallMedia:
    """An RTP session for one SIP leg, offering `codecs` (default: the leg's, in order)."""
    return await CallMedia.open(
        leg.rtp_host,
        leg.rtp_ports,
        announce=leg.rtp_announce,
        codecs=list(leg.codecs if codecs is None else codecs),
        media_timeout=leg.media_timeout,
        latch_any_source=leg.latch_any_source,
    )
