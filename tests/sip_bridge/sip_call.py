"""A SIP call with media, set up the way the CLI and the gateway do it, for interop tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import numpy as np

from sip_bridge.asyncio.call_media import CallMedia
from sip_bridge.asyncio.endpoint import SipCall, SipEndpoint
from sip_bridge.asyncio.player import PcmRecorder, play_pcm
from sip_bridge.events import CallAnswered
from sip_bridge.useragent import UserAgentConfig

HOST = "127.0.0.1"
RTP_PORTS = (41000, 41999)


@dataclass
class Caller:
    endpoint: SipEndpoint
    media: CallMedia

    async def call(self, uri: str, **options) -> SipCall:
        return await self.endpoint.invite(uri, sdp=self.media.offer(), **options)


@contextlib.asynccontextmanager
async def caller(codecs: Sequence[str] = ("PCMU", "PCMA"), **config) -> AsyncIterator[Caller]:
    endpoint = await SipEndpoint.open(UserAgentConfig(address=(HOST, 0), **config))
    media = await CallMedia.open(HOST, RTP_PORTS, codecs=codecs, media_timeout=None)
    try:
        yield Caller(endpoint, media)
    finally:
        await endpoint.close()
        await media.close()


async def exchange_audio(media: CallMedia, pcm: np.ndarray, seconds: float) -> np.ndarray:
    """Play `pcm` while recording for `seconds`; returns what was received."""
    recorder = PcmRecorder(media.rtp)
    player = asyncio.create_task(play_pcm(media.rtp, pcm))
    await recorder.record(seconds)
    player.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await player
    return recorder.samples()


async def answered(call: SipCall, media: CallMedia, timeout: float = 5.0) -> CallAnswered:
    """Wait for the answer and start media with it, as the CLI and the gateway do."""
    event = await call.wait_for(CallAnswered, timeout=timeout)
    media.accept_answer(event.sdp)
    return event
