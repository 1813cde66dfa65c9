"""sip_bridge: a SIP user agent and the RTP media of its calls, knowing nothing of browsers.

Two layers (docs/architecture.md), as aioquic keeps `quic/` apart from `asyncio/`:

- the sans-I/O core: messages (`message`, `headers`, `uri`), SDP offer/answer (`sdp`),
  digest authentication (`digest`), the RFC 3261 transactions (`transaction`), dialogs
  (`dialog`) and the `UserAgent` (`useragent`) driven by `receive_datagram /
  datagrams_to_send / get_timer / handle_timer / next_event`, reporting `events`; and the
  RTP pieces in `rtp` (packets, codecs, RFC 4733, jitter buffer, concealment, RTCP);
- the asyncio layer in `sip_bridge.asyncio`: transports, the `SipEndpoint` that runs a
  `UserAgent` on them, the RTP session, port allocation, a tone/file player and the CLI.

This module is the facade the gateway imports from.
"""

from sip_bridge import sdp
from sip_bridge.asyncio.call_media import CallMedia
from sip_bridge.asyncio.endpoint import CallEndedError, SipCall, SipEndpoint
from sip_bridge.asyncio.player import paced_ticks, play_pcm
from sip_bridge.asyncio.resolver import DnsResolver
from sip_bridge.asyncio.rtp_ports import RtpPortsExhaustedError
from sip_bridge.asyncio.rtp_session import RtpSession
from sip_bridge.asyncio.transport import ConnectionLimits
from sip_bridge.dialog import Dialog
from sip_bridge.errors import SipParseError
from sip_bridge.events import (
    AckReceived,
    CallAnswered,
    CallEnded,
    CallProgress,
    CallRedirected,
    CallRinging,
    EarlyMedia,
    EndReason,
    Event,
    IncomingCall,
    InfoReceived,
    MessageReceived,
    MessageResult,
    OfferReceived,
    OptionsResult,
    RegistrationChanged,
    TransferRequested,
)
from sip_bridge.message import Request, Response, parse_message, status_words
from sip_bridge.rate_limit import RateLimit
from sip_bridge.registration import RegistrationSettings
from sip_bridge.rtp.codecs import codec_by_name
from sip_bridge.rtp.concealment import LossConcealer
from sip_bridge.rtp.dtmf import DtmfDigit
from sip_bridge.rtp.g729 import g729_missing
from sip_bridge.transaction import build_non2xx_ack, same_transaction_request
from sip_bridge.uri import SipUri, parse_name_address, parse_sip_uri, parse_uri
from sip_bridge.useragent import (
    CallError,
    ConfirmedDialog,
    UserAgent,
    UserAgentConfig,
    uri_address,
)

__all__ = [
    "AckReceived",
    "CallAnswered",
    "CallEnded",
    "CallEndedError",
    "CallError",
    "CallMedia",
    "CallProgress",
    "CallRedirected",
    "CallRinging",
    "ConfirmedDialog",
    "ConnectionLimits",
    "Dialog",
    "DnsResolver",
    "DtmfDigit",
    "EarlyMedia",
    "EndReason",
    "Event",
    "IncomingCall",
    "InfoReceived",
    "LossConcealer",
    "MessageReceived",
    "MessageResult",
    "OfferReceived",
    "OptionsResult",
    "RateLimit",
    "RegistrationChanged",
    "RegistrationSettings",
    "Request",
    "Response",
    "RtpPortsExhaustedError",
    "RtpSession",
    "SipCall",
    "SipEndpoint",
    "SipParseError",
    "SipUri",
    "TransferRequested",
    "UserAgent",
    "UserAgentConfig",
    "build_non2xx_ack",
    "codec_by_name",
    "g729_missing",
    "paced_ticks",
    "parse_message",
    "parse_name_address",
    "parse_sip_uri",
    "parse_uri",
    "play_pcm",
    "same_transaction_request",
    "sdp",
    "status_words",
    "uri_address",
]
