"""SDP offer/answer (RFC 3264) for the one audio stream of a SIP call.

We speak PCMU, PCMA, G.722, G.729 (when bcg729 is installed) and Opus (RFC 7587) over plain
RTP/AVP, plus RFC 4733 telephone-events for DTMF at the audio codec's clock.
Every other stream of an offer (video, T.38, data channels, a second audio stream, audio over
SRTP) is rejected in the answer with port 0 at its position, as RFC 3264 section 6 requires.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from sip_bridge.sdp.description import (
    DIRECTIONS,
    MediaDescription,
    Origin,
    RtpMap,
    SessionDescription,
    address_type,
)
from sip_bridge.sdp.errors import NoCommonCodec, SdpError


@dataclass(frozen=True, slots=True)
class _Codec:
    name: str  # as we name it: "PCMU", "PCMA", "G722", "G729", "opus"
    payload_type: int  # static, or the dynamic one we offer it under
    clock_rate: int  # RTP clock (G.722's is 8000 though it samples at 16 kHz)
    channels: int  # in the rtpmap: Opus is always "opus/48000/2" (RFC 7587 §7)
    fmtp: str | None = None  # what we offer with it


_CODECS = (
    _Codec("PCMU", 0, 8000, 1),
    _Codec("PCMA", 8, 8000, 1),
    _Codec("G722", 9, 8000, 1),
    # We send no Annex B (VAD/comfort noise) SID frames, though we decode a peer's.
    _Codec("G729", 18, 8000, 1, "annexb=no"),
    # Mono voice, 10 ms frames allowed, in-band FEC welcome (RFC 7587 §6.1).
    _Codec("opus", 111, 48000, 2, "minptime=10;useinbandfec=1"),
)
_BY_NAME = {codec.name.lower(): codec for codec in _CODECS}
# Codec name -> the payload type we offer it under.
SUPPORTED_CODECS: dict[str, int] = {codec.name: codec.payload_type for codec in _CODECS}
AUDIO_CLOCK_RATE = 8000
DTMF_48K_PAYLOAD_TYPE = 110  # telephone-event/48000, offered next to Opus
RTP_PROTO = "RTP/AVP"
TELEPHONE_EVENT = "telephone-event"
DTMF_PAYLOAD_TYPE = 101
DEFAULT_PTIME = 20
# Events we can receive (digits, *, #, A-D, flash) and must be able to send (digits, *, #).
RECEIVABLE_EVENTS = frozenset(range(17))
REQUIRED_EVENTS = frozenset(range(12))
# RFC 4733 section 7.1.1: a telephone-event without fmtp carries events 0-15.
_DEFAULT_EVENTS = frozenset(range(16))
_EVENT_ITEM = re.compile(r"([0-9]{1,3})(?:-([0-9]{1,3}))?")

_SENDS = {"sendrecv": True, "sendonly": True, "recvonly": False, "inactive": False}
_RECEIVES = {"sendrecv": True, "sendonly": False, "recvonly": True, "inactive": False}
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


@dataclass(frozen=True)
class NegotiatedAudio:
    """What the RTP session of the SIP leg needs once offer and answer are both known.

    `remote_address` is the peer's `c=` address as written: nearly always an IP literal, but
    SDP allows a host name there, which the caller must resolve before sending.
    """

    codec: str  # "PCMU" | "PCMA" | "G722" | "G729" | "opus"
    clock_rate: int  # RTP clock (8000, or 48000 for Opus)
    send_payload_type: int  # the PT the remote declared for the codec (we send with it)
    recv_payload_type: int  # the PT we declared
    dtmf_send_payload_type: int | None
    dtmf_recv_payload_type: int | None
    remote_address: tuple[str, int] | None  # None when port 0 or c=0.0.0.0 (old hold)
    direction: str  # OUR direction: "sendrecv" | "sendonly" | "recvonly" | "inactive"
    ptime: int  # ms; remote's ptime if given, else 20

    @property
    def sends(self) -> bool:
        return _SENDS[self.direction]

    @property
    def receives(self) -> bool:
        return _RECEIVES[self.direction]


def mirror_direction(direction: str) -> str:
    """The direction the other side sees: sendonly <-> recvonly; the others stay."""
    _check_direction(direction)
    return _direction(_RECEIVES[direction], _SENDS[direction])


def intersect_directions(first: str, second: str) -> str:
    """The direction allowed by both: media flows one way only if both permit it."""
    _check_direction(first)
    _check_direction(second)
    return _direction(_SENDS[first] and _SENDS[second], _RECEIVES[first] and _RECEIVES[second])


def build_offer(
    *,
    address: str,
    port: int,
    codecs: Sequence[str],
    dtmf: bool = True,
    ptime: int = 20,
    direction: str = "sendrecv",
    session_id: int,
    session_version: int,
    username: str = "-",
) -> SessionDescription:
    """Our offer: one audio stream with `codecs` in our order of preference."""
    names = _normalize_codecs(codecs)
    _check_local(address, port, ptime, direction, session_id, session_version, username)
    rtpmaps = {}
    for name in names:
        codec = _BY_NAME[name.lower()]
        rtpmaps[codec.payload_type] = _rtpmap(codec)
    if dtmf:
        clocks = sorted({_BY_NAME[name.lower()].clock_rate for name in names})
        for clock in clocks:
            payload_type = DTMF_PAYLOAD_TYPE if clock == AUDIO_CLOCK_RATE else DTMF_48K_PAYLOAD_TYPE
            rtpmaps[payload_type] = RtpMap(
                payload_type, TELEPHONE_EVENT, clock, fmtp=_format_events(RECEIVABLE_EVENTS)
            )
    media = MediaDescription(
        media="audio",
        port=port,
        proto=RTP_PROTO,
        formats=[str(payload_type) for payload_type in rtpmaps],
        rtpmaps=rtpmaps,
        direction=direction,
        ptime=ptime,
    )
    return SessionDescription(
        origin=_origin(username, session_id, session_version, address),
        connection=address,
        media=[media],
    )


def build_answer(
    offer: SessionDescription,
    *,
    address: str,
    port: int,
    codecs: Sequence[str],
    dtmf: bool = True,
    ptime: int = 20,
    direction: str = "sendrecv",
    session_id: int,
    session_version: int,
) -> tuple[SessionDescription, NegotiatedAudio]:
    """Answer an offer (initial or a re-offer: pass the same session id, version + 1).

    The first audio stream that has one of our codecs is accepted with the first codec of
    `codecs` (our preference) that it offers, plus telephone-event under the offer's payload
    type when both sides want DTMF; every other stream is rejected with port 0. Raises
    NoCommonCodec when no audio stream can be accepted.
    """
    names = _normalize_codecs(codecs)
    _check_local(address, port, ptime, direction, session_id, session_version, "-")
    chosen = _choose_offered_stream(offer, names)
    if chosen is None:
        raise NoCommonCodec(
            f"no audio stream offers any of {', '.join(names)} over {RTP_PROTO}; "
            f"offered: {_describe_streams(offer)}"
        )
    index, codec, codec_payload_type = chosen
    offered = offer.media[index]
    info = _BY_NAME[codec.lower()]
    dtmf_offer = _dtmf_of(offered, info.clock_rate) if dtmf else None
    formats = [codec_payload_type]
    rtpmaps = {codec_payload_type: _rtpmap(info, codec_payload_type)}
    if dtmf_offer is not None:
        dtmf_payload_type, events = dtmf_offer
        formats.append(dtmf_payload_type)
        rtpmaps[dtmf_payload_type] = RtpMap(
            dtmf_payload_type,
            TELEPHONE_EVENT,
            info.clock_rate,
            fmtp=_format_events(events & RECEIVABLE_EVENTS),
        )
    remote_address = _remote_address(offer, offered)
    our_direction = intersect_directions(
        mirror_direction(offer.effective_direction(offered)), direction
    )
    if remote_address is None:
        # RFC 3264 section 8.4: c=0.0.0.0 means send neither RTP nor RTCP to the peer.
        our_direction = intersect_directions(our_direction, "recvonly")
    media = []
    for position, stream in enumerate(offer.media):
        if position == index:
            media.append(
                MediaDescription(
                    media=stream.media,
                    port=port,
                    proto=stream.proto,
                    formats=[str(payload_type) for payload_type in formats],
                    rtpmaps=rtpmaps,
                    direction=our_direction,
                    ptime=ptime,
                )
            )
        else:
            media.append(_rejected(stream))
    answer = SessionDescription(
        origin=_origin("-", session_id, session_version, address),
        connection=address,
        media=media,
    )
    negotiated = NegotiatedAudio(
        codec=codec,
        clock_rate=info.clock_rate,
        send_payload_type=codec_payload_type,
        recv_payload_type=codec_payload_type,
        dtmf_send_payload_type=dtmf_offer[0] if dtmf_offer else None,
        dtmf_recv_payload_type=dtmf_offer[0] if dtmf_offer else None,
        remote_address=remote_address,
        direction=our_direction,
        ptime=_remote_ptime(offer, offered),
    )
    return answer, negotiated


def negotiate_answer(offer: SessionDescription, answer: SessionDescription) -> NegotiatedAudio:
    """What the remote's answer to our offer agreed on.

    The codec is the first one of the answer's accepted audio stream that we offered. Raises
    NoCommonCodec when the answer rejected our audio stream (port 0) or kept none of our
    codecs, and SdpError when the answer does not match the offer's streams.
    """
    if len(answer.media) != len(offer.media):
        raise SdpError(
            f"the answer has {len(answer.media)} m= lines, the offer has {len(offer.media)}"
        )
    for position, (ours, theirs) in enumerate(zip(offer.media, answer.media, strict=True), 1):
        if ours.media.lower() != theirs.media.lower():
            raise SdpError(
                f"m= line {position} of the answer is {theirs.media!r}, the offer's is "
                f"{ours.media!r}"
            )
        if not theirs.rejected and theirs.proto.upper() != ours.proto.upper():
            raise SdpError(
                f"m= line {position} of the answer uses {theirs.proto!r}, the offer {ours.proto!r}"
            )
    reason = "the offer has no active RTP/AVP audio stream"
    for ours, theirs in zip(offer.media, answer.media, strict=True):
        if not _is_plain_rtp_audio(ours):
            continue
        if theirs.rejected:
            reason = "the answer rejected the audio stream (port 0)"
            continue
        negotiated = _agreed_in_answer(offer, ours, answer, theirs)
        if negotiated is not None:
            return negotiated
        reason = (
            "the answer accepted the audio stream with none of the codecs we offered: "
            + _describe_stream(theirs)
        )
    raise NoCommonCodec(reason)


def _agreed_in_answer(
    offer: SessionDescription,
    ours: MediaDescription,
    answer: SessionDescription,
    theirs: MediaDescription,
) -> NegotiatedAudio | None:
    for payload_type in theirs.payload_types:
        rtpmap = theirs.rtpmaps.get(payload_type)
        codec = _codec_name(rtpmap) if rtpmap is not None else None
        our_payload_type = _payload_type_for(ours, codec) if codec is not None else None
        if codec is None or our_payload_type is None:
            continue
        clock_rate = _BY_NAME[codec.lower()].clock_rate
        dtmf_ours = _dtmf_of(ours, clock_rate)
        dtmf_theirs = _dtmf_of(theirs, clock_rate)
        remote_address = _remote_address(answer, theirs)
        our_direction = intersect_directions(
            offer.effective_direction(ours),
            mirror_direction(answer.effective_direction(theirs)),
        )
        if remote_address is None:
            our_direction = intersect_directions(our_direction, "recvonly")
        return NegotiatedAudio(
            codec=codec,
            clock_rate=clock_rate,
            send_payload_type=payload_type,
            recv_payload_type=our_payload_type,
            dtmf_send_payload_type=dtmf_theirs[0] if dtmf_ours and dtmf_theirs else None,
            dtmf_recv_payload_type=dtmf_ours[0] if dtmf_ours and dtmf_theirs else None,
            remote_address=remote_address,
            direction=our_direction,
            ptime=_remote_ptime(answer, theirs),
        )
    return None


def build_reoffer(previous: SessionDescription, *, direction: str) -> SessionDescription:
    """Our next offer in a session (hold, resume): our previous offer or answer, with the
    audio stream's direction set and the origin version incremented (RFC 3264 section 8).

    Every m= line of `previous` is kept, rejected ones with port 0, so the count never drops.
    """
    _check_direction(direction)
    reoffer = copy.deepcopy(previous)
    origin = reoffer.origin
    reoffer.origin = Origin(
        origin.username,
        origin.session_id,
        origin.version + 1,
        origin.nettype,
        origin.addrtype,
        origin.address,
    )
    for media in reoffer.media:
        if _is_plain_rtp_audio(media):
            media.direction = direction
            break
    else:
        raise ValueError("the previous description has no active RTP/AVP audio stream")
    return reoffer


def is_same_version(previous: SessionDescription, current: SessionDescription) -> bool:
    """Whether `current` is `previous` again (same origin, same version): a session refresh
    re-INVITE that changes nothing (RFC 3264 section 8)."""
    return previous.origin == current.origin


def _choose_offered_stream(
    offer: SessionDescription, names: list[str]
) -> tuple[int, str, int] | None:
    for index, media in enumerate(offer.media):
        if not _is_plain_rtp_audio(media):
            continue
        for name in names:
            payload_type = _payload_type_for(media, name)
            if payload_type is not None:
                return index, name, payload_type
    return None


def _rejected(media: MediaDescription) -> MediaDescription:
    """The offer's m-line with port 0 (its formats and their rtpmaps, nothing else)."""
    return MediaDescription(
        media=media.media,
        port=0,
        proto=media.proto,
        formats=list(media.formats),
        rtpmaps=copy.deepcopy(media.rtpmaps),
    )


def _is_plain_rtp_audio(media: MediaDescription) -> bool:
    return (
        not media.rejected and media.media.lower() == "audio" and media.proto.upper() == RTP_PROTO
    )


def _codec_name(rtpmap: RtpMap) -> str | None:
    codec = _BY_NAME.get(rtpmap.encoding.lower())
    if codec is None or rtpmap.clock_rate != codec.clock_rate:
        return None
    # Opus says 2 channels whatever it carries; a peer writing /1 is read leniently.
    if rtpmap.channels != codec.channels and not (codec.name == "opus" and rtpmap.channels == 1):
        return None
    return codec.name


def _rtpmap(codec: _Codec, payload_type: int | None = None) -> RtpMap:
    return RtpMap(
        codec.payload_type if payload_type is None else payload_type,
        codec.name,
        codec.clock_rate,
        codec.channels,
        codec.fmtp,
    )


def _payload_type_for(media: MediaDescription, codec: str) -> int | None:
    for payload_type in media.payload_types:
        rtpmap = media.rtpmaps.get(payload_type)
        if rtpmap is not None and _codec_name(rtpmap) == codec:
            return payload_type
    return None


def _dtmf_of(
    media: MediaDescription, clock_rate: int = AUDIO_CLOCK_RATE
) -> tuple[int, frozenset[int]] | None:
    """The stream's usable telephone-event payload type (at the audio's clock, RFC 4733
    §2.1) and the events it carries."""
    for payload_type in media.payload_types:
        rtpmap = media.rtpmaps.get(payload_type)
        if (
            rtpmap is not None
            and rtpmap.encoding.lower() == TELEPHONE_EVENT
            and rtpmap.clock_rate == clock_rate
            and rtpmap.channels == 1
        ):
            events = _parse_events(rtpmap.fmtp)
            if events is not None and REQUIRED_EVENTS.issubset(events):
                return payload_type, events
    return None


def _parse_events(fmtp: str | None) -> frozenset[int] | None:
    """The events of a telephone-event fmtp such as "0-15,66"; None if it is malformed."""
    if fmtp is None:
        return _DEFAULT_EVENTS
    events: set[int] = set()
    for item in fmtp.split(","):
        match = _EVENT_ITEM.fullmatch(item.strip(" \t"))
        if match is None:
            return None
        low = int(match[1])
        high = int(match[2]) if match[2] is not None else low
        if low > high or high > 255:
            return None
        events.update(range(low, high + 1))
    return frozenset(events)


def _format_events(events: frozenset[int]) -> str:
    ranges: list[str] = []
    ordered = sorted(events)
    start = previous = ordered[0]
    for event in [*ordered[1:], None]:
        if event is not None and event == previous + 1:
            previous = event
            continue
        ranges.append(str(start) if start == previous else f"{start}-{previous}")
        if event is not None:
            start = previous = event
    return ",".join(ranges)


def _remote_address(session: SessionDescription, media: MediaDescription) -> tuple[str, int] | None:
    address = session.effective_connection(media)
    if media.rejected or address is None or _is_unspecified(address):
        return None
    return address, media.port


def _is_unspecified(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_unspecified
    except ValueError:  # a host name
        return False


def _remote_ptime(session: SessionDescription, media: MediaDescription) -> int:
    if media.ptime is not None:
        return media.ptime
    # Some peers put ptime at session level, where RFC 4566 does not define it.
    session_ptime = session.attribute("ptime")
    if session_ptime and session_ptime.strip().isdecimal() and len(session_ptime.strip()) <= 4:
        value = int(session_ptime.strip())
        if value > 0:
            return value
    return DEFAULT_PTIME


def _direction(sends: bool, receives: bool) -> str:
    if sends:
        return "sendrecv" if receives else "sendonly"
    return "recvonly" if receives else "inactive"


def _check_direction(direction: str) -> None:
    if direction not in _SENDS:
        raise ValueError(
            f"unknown direction {direction!r}; expected one of {', '.join(DIRECTIONS)}"
        )


def _normalize_codecs(codecs: Sequence[str]) -> list[str]:
    if isinstance(codecs, str):
        raise ValueError(f"codecs must be a sequence of names, not the string {codecs!r}")
    names: list[str] = []
    for codec in codecs:
        known = _BY_NAME.get(codec.lower())
        if known is None:
            raise ValueError(f"unknown codec {codec!r}; supported: {', '.join(SUPPORTED_CODECS)}")
        name = known.name
        if name not in names:
            names.append(name)
    if not names:
        raise ValueError("no codecs given")
    return names


def _check_local(
    address: str,
    port: int,
    ptime: int,
    direction: str,
    session_id: int,
    session_version: int,
    username: str,
) -> None:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        if not _HOSTNAME.fullmatch(address):
            raise ValueError(f"{address!r} is neither an IP address nor a host name") from None
    if not 0 < port < 65536:
        raise ValueError(f"port {port} is not in 1..65535")
    if not 0 < ptime <= 1000:
        raise ValueError(f"ptime {ptime} is not in 1..1000 ms")
    _check_direction(direction)
    if session_id < 0 or session_version < 0:
        raise ValueError("session id and version must not be negative")
    if not username or any(ch.isspace() or ch < " " for ch in username):
        raise ValueError(f"bad origin username {username!r}")


def _origin(username: str, session_id: int, session_version: int, address: str) -> Origin:
    return Origin(username, session_id, session_version, "IN", address_type(address), address)


def _describe_streams(session: SessionDescription) -> str:
    if not session.media:
        return "no streams"
    return "; ".join(_describe_stream(media) for media in session.media)


def _describe_stream(media: MediaDescription) -> str:
    codecs = []
    for fmt in media.formats[:12]:
        rtpmap = media.rtpmaps.get(int(fmt)) if media.is_rtp else None
        codecs.append(f"{rtpmap.encoding}/{rtpmap.clock_rate}" if rtpmap else fmt)
    more = " ..." if len(media.formats) > 12 else ""
    return f"{media.media} {media.port} {media.proto} {' '.join(codecs)}{more}".rstrip()
