"""The media side of one SIP call: our SDP, what was negotiated, and its RTP session.

It ties the SDP offer/answer rules (`sdp`) to an `RtpSession`: whoever places or answers a
call (the CLI, the demo phone, the gateway's SIP leg) asks it for an offer or an answer and
hands it the peer's SDP; re-offers for hold and resume update the session in place, and a
re-offer that moves the call to another codec or packet time switches what the session
sends (`on_codec_change` tells the owner).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from sip_bridge import sdp
from sip_bridge.asyncio.rtp_session import RtpSession
from sip_bridge.rtp.codecs import BYTE_PER_TICK
from sip_bridge.rtp.repacketize import packet_time


class CallMedia:
    """Offer/answer state and the RTP session of one call. Create with `await open(...)`."""

    def __init__(
        self,
        rtp: RtpSession,
        *,
        announce: str,
        codecs: Sequence[str],
        dtmf: bool = True,
        ptime: int = 20,
        media_timeout: float | None = None,
        latch_any_source: bool = True,
    ) -> None:
        self.rtp = rtp
        self.announce = announce
        self.codecs = list(codecs)
        self.dtmf = dtmf
        self.ptime = ptime
        self.media_timeout = media_timeout
        self.latch_any_source = latch_any_source
        self.negotiated: sdp.NegotiatedAudio | None = None
        # Told when a re-INVITE switched the codec (the bridge re-plans relay/transcoding).
        self.on_codec_change: Callable[[sdp.NegotiatedAudio], None] | None = None
        self._session_id = random.getrandbits(48)
        self._version = 0
        self._offer: sdp.SessionDescription | None = None

    @classmethod
    async def open(
        cls,
        host: str,
        port_range: tuple[int, int],
        *,
        announce: str | None = None,
        codecs: Sequence[str] = ("PCMU", "PCMA"),
        **options,
    ) -> CallMedia:
        """Bind an RTP port pair on `host`; `announce` is the address put in our SDP
        (the public address behind NAT; default `host`)."""
        rtp = await RtpSession.open(host, port_range)
        return cls(rtp, announce=announce or host, codecs=codecs, **options)

    def _next_version(self) -> int:
        self._version += 1
        return self._version

    def offer(self) -> bytes:
        """Our SDP offer for an outgoing INVITE."""
        self._offer = sdp.build_offer(
            address=self.announce,
            port=self.rtp.local_port,
            codecs=self.codecs,
            dtmf=self.dtmf,
            ptime=self.ptime,
            session_id=self._session_id,
            session_version=self._next_version(),
        )
        return self._offer.serialize()

    def accept_answer(self, answer: bytes) -> sdp.NegotiatedAudio:
        """Apply the answer to our offer (from a 183 or the 200); raises `sdp.SdpError`."""
        if self._offer is None:
            raise RuntimeError("no offer was made")
        negotiated = sdp.negotiate_answer(self._offer, sdp.parse_sdp(answer))
        self._apply(negotiated)
        return negotiated

    def answer(self, offer: bytes) -> bytes:
        """Answer an incoming offer (a call to us, or a re-INVITE/UPDATE); starts or updates
        the RTP session. Raises `sdp.NoCommonCodec` (reply 488) or `sdp.SdpError`."""
        preferences = self.codecs
        if self.negotiated is not None:
            # Keep the codec we already use when the re-offer still has it.
            preferences = [
                self.negotiated.codec,
                *(c for c in self.codecs if c != self.negotiated.codec),
            ]
        description, negotiated = sdp.build_answer(
            sdp.parse_sdp(offer),
            address=self.announce,
            port=self.rtp.local_port,
            codecs=preferences,
            dtmf=self.dtmf,
            ptime=self.ptime,
            session_id=self._session_id,
            session_version=self._next_version(),
        )
        self._apply(negotiated)
        return description.serialize()

    def _apply(self, negotiated: sdp.NegotiatedAudio) -> None:
        remote_direction = sdp.mirror_direction(negotiated.direction)
        previous = self.negotiated
        ptime = send_ptime(negotiated)
        if previous is None:
            self.rtp.start(
                negotiated.remote_address,
                negotiated.codec,
                send_payload_type=negotiated.send_payload_type,
                recv_payload_type=negotiated.recv_payload_type,
                dtmf_send_pt=negotiated.dtmf_send_payload_type,
                dtmf_recv_pt=negotiated.dtmf_recv_payload_type,
                ptime=ptime,
                remote_direction=remote_direction,
                latch_any_source=self.latch_any_source,
                media_timeout=self.media_timeout,
            )
        else:
            if _media_format(previous) != _media_format(negotiated):
                # A re-INVITE moved the call to another codec or packet time: what we
                # send follows the answer we gave, never the codec of before.
                self.rtp.change_codec(
                    negotiated.codec,
                    send_payload_type=negotiated.send_payload_type,
                    recv_payload_type=negotiated.recv_payload_type,
                    dtmf_send_pt=negotiated.dtmf_send_payload_type,
                    dtmf_recv_pt=negotiated.dtmf_recv_payload_type,
                    ptime=ptime,
                )
            self.rtp.update_remote(negotiated.remote_address, remote_direction=remote_direction)
        self.negotiated = negotiated
        if (
            previous is not None
            and previous.codec != negotiated.codec
            and self.on_codec_change is not None
        ):
            self.on_codec_change(negotiated)

    @property
    def on_hold(self) -> bool:
        """True while the far end holds the call (we may not send to it)."""
        return self.negotiated is not None and self.negotiated.direction in ("recvonly", "inactive")

    async def close(self) -> None:
        await self.rtp.close()


def send_ptime(negotiated: sdp.NegotiatedAudio) -> int:
    """The packet time we send with: the peer's `a=ptime` from 10 to 60 ms for the codecs we
    can re-cut without decoding (G.711, G.722); 20 ms for Opus, whose frames we relay as
    they come."""
    if negotiated.codec.upper() not in BYTE_PER_TICK:
        return 20
    return packet_time(negotiated.ptime)


def _media_format(negotiated: sdp.NegotiatedAudio) -> tuple:
    return (
        negotiated.codec,
        negotiated.send_payload_type,
        negotiated.recv_payload_type,
        negotiated.dtmf_send_payload_type,
        negotiated.dtmf_recv_payload_type,
        send_ptime(negotiated),
    )
