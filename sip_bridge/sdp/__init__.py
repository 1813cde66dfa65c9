"""SDP for the SIP leg: the session description model (RFC 4566) and offer/answer for one
audio stream (RFC 3264). Sans-I/O and stdlib only.

    offer = parse_sdp(body)
    answer, audio = build_answer(offer, address=..., port=..., codecs=["PCMA", "PCMU"],
                                 session_id=sid, session_version=1)
    send(answer.serialize())   # `audio` tells the RTP session what to send where
"""

from sip_bridge.sdp.description import (
    DIRECTIONS,
    Attribute,
    MediaDescription,
    Origin,
    RtpMap,
    SessionDescription,
)
from sip_bridge.sdp.errors import NoCommonCodec, SdpError
from sip_bridge.sdp.offer_answer import (
    DTMF_PAYLOAD_TYPE,
    SUPPORTED_CODECS,
    NegotiatedAudio,
    build_answer,
    build_offer,
    build_reoffer,
    intersect_directions,
    is_same_version,
    mirror_direction,
    negotiate_answer,
)
from sip_bridge.sdp.parser import MAX_FORMATS, MAX_LINES, MAX_MEDIA, MAX_SDP_BYTES, parse_sdp
from sip_bridge.sdp.payload_types import STATIC_PAYLOAD_TYPES

__all__ = [
    "DIRECTIONS",
    "DTMF_PAYLOAD_TYPE",
    "MAX_FORMATS",
    "MAX_LINES",
    "MAX_MEDIA",
    "MAX_SDP_BYTES",
    "STATIC_PAYLOAD_TYPES",
    "SUPPORTED_CODECS",
    "Attribute",
    "MediaDescription",
    "NegotiatedAudio",
    "NoCommonCodec",
    "Origin",
    "RtpMap",
    "SdpError",
    "SessionDescription",
    "build_answer",
    "build_offer",
    "build_reoffer",
    "intersect_directions",
    "is_same_version",
    "mirror_direction",
    "negotiate_answer",
    "parse_sdp",
]
