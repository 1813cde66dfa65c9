"""Parsing SDP bodies (RFC 4566) into the model of `description.py`.

The parser accepts what real peers send (LF or CRLF line ends, trailing blanks, lines of a
section in any order, static payload types without `a=rtpmap`, encoding names in any case) and
rejects anything it cannot represent faithfully with one precise `SdpError` that names the
line. Sizes are bounded before any work that grows with them.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from sip_bridge.sdp.description import (
    DIRECTIONS,
    MEDIA_EXTRA_SLOTS,
    MEDIA_EXTRA_TYPES,
    SESSION_EXTRA_SLOTS,
    SESSION_EXTRA_TYPES,
    Attribute,
    MediaDescription,
    Origin,
    RtpMap,
    SessionDescription,
    in_written_order,
    is_rtp_proto,
)
from sip_bridge.sdp.errors import SdpError
from sip_bridge.sdp.payload_types import STATIC_PAYLOAD_TYPES

MAX_SDP_BYTES = 64 * 1024
MAX_LINES = 1000
MAX_MEDIA = 32
MAX_FORMATS = 128
MAX_PTIME = 1000

_LINE_TYPES = frozenset("vosiuepcbtrzkam")
# C0 controls other than tab, DEL, and (in str input) lone surrogates: never in a valid body.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")
_FIELD_SEP = re.compile(r"[ \t]+")
# RFC 4566 token-char: visible ASCII except the specials.
_TOKEN = re.compile(r"[!#-'*+\-.0-9A-Z^-~]+")
_PROTO = re.compile(r"[!#-'*+\-.0-9A-Z^-~]+(?:/[!#-'*+\-.0-9A-Z^-~]+)*")
_NUMBER = re.compile(r"[0-9]{1,20}")
_SESSION_NUMBER = re.compile(r"[0-9]{1,64}")
_PORT = re.compile(r"([0-9]{1,5})(?:/([0-9]{1,5}))?")
_PAYLOAD_TYPE = re.compile(r"[0-9]{1,3}")
_BANDWIDTH = re.compile(r"[!#-'*+\-.0-9A-Z^-~]+:[0-9]{1,20}")
_RTPMAP = re.compile(r"([0-9]{1,3})[ \t]+([^/ \t]+)/([0-9]{1,10})(?:/([0-9]{1,3}))?")
_FMTP = re.compile(r"([^ \t]+)(?:[ \t]+(.*))?")
_PTIME = re.compile(r"([0-9]{1,4})(?:\.[0-9]{1,6})?")
_DOTTED = re.compile(r"[0-9.]+")
_HOSTNAME = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
    r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?"
)


@dataclass(frozen=True, slots=True)
class _Line:
    number: int
    kind: str
    value: str


def parse_sdp(data: bytes | str) -> SessionDescription:
    """Parse an SDP body; raises SdpError (and nothing else) for any malformed input."""
    lines = _split_lines(_decode(data))
    if lines[0].kind != "v" or lines[0].value != "0":
        raise SdpError(f"the first line must be v=0, got {_show(lines[0])}", line=1)
    starts = [i for i, line in enumerate(lines) if line.kind == "m"]
    if len(starts) > MAX_MEDIA:
        raise SdpError(f"more than {MAX_MEDIA} m= lines", line=lines[starts[MAX_MEDIA]].number)
    session = _parse_session(lines[1 : starts[0] if starts else len(lines)])
    for index, start in enumerate(starts):
        end = starts[index + 1] if index + 1 < len(starts) else len(lines)
        media = _parse_media(lines[start:end])
        if media.port != 0 and media.connection is None and session.connection is None:
            raise SdpError(
                "media section has no c= line and the session has none", line=lines[start].number
            )
        session.media.append(media)
    return session


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        if len(data) > MAX_SDP_BYTES:
            raise SdpError(f"SDP longer than {MAX_SDP_BYTES} characters")
        return data
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"SDP must be bytes or str, not {type(data).__name__}")
    raw = bytes(data)
    if len(raw) > MAX_SDP_BYTES:
        raise SdpError(f"SDP larger than {MAX_SDP_BYTES} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SdpError(f"SDP is not UTF-8: bad byte at offset {exc.start}") from None


def _split_lines(text: str) -> list[_Line]:
    raw = text.split("\n")
    while raw and not raw[-1].strip("\r \t"):
        raw.pop()
    if not raw:
        raise SdpError("empty SDP body")
    if len(raw) > MAX_LINES:
        raise SdpError(f"SDP has more than {MAX_LINES} lines")
    lines = []
    for number, text_line in enumerate(raw, 1):
        line = text_line[:-1] if text_line.endswith("\r") else text_line
        line = line.rstrip(" \t")
        if not line:
            raise SdpError("empty line", line=number)
        bad = _FORBIDDEN.search(line)
        if bad:
            raise SdpError(f"control character U+{ord(bad.group()):04X} in line", line=number)
        if len(line) < 2 or line[1] != "=":
            raise SdpError(f"expected <type>=<value>, got {_show(line)}", line=number)
        if line[0] not in _LINE_TYPES:
            raise SdpError(f"unknown line type {line[0]!r}", line=number)
        lines.append(_Line(number, line[0], line[2:]))
    return lines


def _parse_session(lines: list[_Line]) -> SessionDescription:
    origin: Origin | None = None
    session_name: str | None = None
    connection: str | None = None
    timing: tuple[int, int] | None = None
    bandwidths: list[str] = []
    extra_lines: list[tuple[str, str]] = []
    attributes: list[tuple[_Line, Attribute]] = []
    for line in lines:
        kind = line.kind
        if kind == "o":
            _check_once(origin, line)
            origin = _parse_origin(line)
        elif kind == "s":
            _check_once(session_name, line)
            session_name = line.value
        elif kind == "c":
            _check_once(connection, line)
            connection = _parse_connection(line)
        elif kind == "t":
            parsed = _parse_timing(line)
            if timing is None:
                timing = parsed
            else:
                extra_lines.append((kind, line.value))
        elif kind == "b":
            bandwidths.append(_parse_bandwidth(line))
        elif kind == "a":
            attributes.append((line, _parse_attribute(line)))
        elif kind in SESSION_EXTRA_TYPES:
            extra_lines.append((kind, line.value))
        else:  # v
            raise SdpError(f"{kind}= may only be the first line", line=line.number)
    if origin is None:
        raise SdpError("no o= line")
    if session_name is None:
        raise SdpError("no s= line")
    direction, rest = _take_direction(attributes)
    return SessionDescription(
        origin=origin,
        session_name=session_name,
        connection=connection,
        timing=timing if timing is not None else (0, 0),
        attributes=[attribute for _, attribute in rest],
        direction=direction,
        bandwidths=bandwidths,
        extra_lines=in_written_order(extra_lines, SESSION_EXTRA_SLOTS),
    )


def _parse_media(lines: list[_Line]) -> MediaDescription:
    media = _parse_m_line(lines[0])
    attributes: list[tuple[_Line, Attribute]] = []
    for line in lines[1:]:
        kind = line.kind
        if kind == "a":
            attributes.append((line, _parse_attribute(line)))
        elif kind == "c":
            _check_once(media.connection, line)
            media.connection = _parse_connection(line)
        elif kind == "b":
            media.bandwidths.append(_parse_bandwidth(line))
        elif kind in MEDIA_EXTRA_TYPES:
            media.extra_lines.append((kind, line.value))
        else:
            raise SdpError(f"{kind}= is not allowed in a media section", line=line.number)
    media.extra_lines = in_written_order(media.extra_lines, MEDIA_EXTRA_SLOTS)
    media.direction, attributes = _take_direction(attributes)
    if media.is_rtp:
        attributes = _take_rtpmaps(media, attributes)
    kept: list[Attribute] = []
    for line, (name, value) in attributes:
        lowered = name.lower()
        if lowered == "ptime" and value is not None:
            ptime = _parse_ptime(value, line)
            if media.ptime is not None and media.ptime != ptime:
                raise SdpError(f"second, different ptime {value!r}", line=line.number)
            media.ptime = ptime
        elif not (lowered == "fmtp" and value is not None and _attach_fmtp(media, value, line)):
            kept.append((name, value))
    media.attributes = kept
    return media


def _parse_m_line(line: _Line) -> MediaDescription:
    fields = _fields(line.value)
    if len(fields) < 3:
        raise SdpError(
            f"m= needs <media> <port> <proto> <formats>, got {_show(line.value)}",
            line=line.number,
        )
    media_type, port_text, proto, *formats = fields
    if not _TOKEN.fullmatch(media_type):
        raise SdpError(f"bad media type {_show(media_type)}", line=line.number)
    port_match = _PORT.fullmatch(port_text)
    if not port_match or int(port_match[1]) > 65535:
        raise SdpError(f"bad port {_show(port_text)} in m= line", line=line.number)
    port_count = int(port_match[2]) if port_match[2] is not None else None
    if port_count == 0:
        raise SdpError(f"bad port count {_show(port_text)} in m= line", line=line.number)
    if not _PROTO.fullmatch(proto):
        raise SdpError(f"bad transport protocol {_show(proto)}", line=line.number)
    if len(formats) > MAX_FORMATS:
        raise SdpError(f"more than {MAX_FORMATS} formats in m= line", line=line.number)
    if not formats and int(port_match[1]) != 0:
        raise SdpError("m= line of an active stream lists no formats", line=line.number)
    if is_rtp_proto(proto):
        payload_types = []
        for fmt in formats:
            if not _PAYLOAD_TYPE.fullmatch(fmt) or int(fmt) > 127:
                raise SdpError(f"bad RTP payload type {_show(fmt)} in m= line", line=line.number)
            payload_types.append(str(int(fmt)))
        formats = payload_types
    else:
        for fmt in formats:
            if not _TOKEN.fullmatch(fmt):
                raise SdpError(f"bad format {_show(fmt)} in m= line", line=line.number)
    return MediaDescription(
        media=media_type,
        port=int(port_match[1]),
        proto=proto,
        formats=formats,
        port_count=port_count,
    )


def _take_rtpmaps(
    media: MediaDescription, attributes: list[tuple[_Line, Attribute]]
) -> list[tuple[_Line, Attribute]]:
    """Move the `a=rtpmap` lines into `media.rtpmaps`, then fill in static payload types."""
    rest = []
    for line, (name, value) in attributes:
        if name.lower() != "rtpmap" or value is None:
            rest.append((line, (name, value)))
            continue
        rtpmap = _parse_rtpmap(value, line)
        known = media.rtpmaps.get(rtpmap.payload_type)
        if known is not None and known != rtpmap:
            raise SdpError(
                f"second, different rtpmap for payload type {rtpmap.payload_type}",
                line=line.number,
            )
        media.rtpmaps[rtpmap.payload_type] = rtpmap
    for payload_type in media.payload_types:
        static = STATIC_PAYLOAD_TYPES.get(payload_type)
        if static is not None and payload_type not in media.rtpmaps:
            media.rtpmaps[payload_type] = RtpMap(payload_type, *static)
    return rest


def _parse_rtpmap(value: str, line: _Line) -> RtpMap:
    match = _RTPMAP.fullmatch(value.lstrip(" \t"))
    if match is None or not _TOKEN.fullmatch(match[2]):
        raise SdpError(
            f"bad rtpmap {_show(value)}: expected <payload type> <encoding>/<clock rate>"
            "[/<channels>]",
            line=line.number,
        )
    payload_type, clock_rate = int(match[1]), int(match[3])
    channels = int(match[4]) if match[4] is not None else 1
    if payload_type > 127 or clock_rate == 0 or channels == 0:
        raise SdpError(f"bad rtpmap {_show(value)}: value out of range", line=line.number)
    return RtpMap(payload_type, match[2], clock_rate, channels)


def _attach_fmtp(media: MediaDescription, value: str, line: _Line) -> bool:
    """Attach an `a=fmtp` to its payload type; False when it names none of ours (kept as is)."""
    match = _FMTP.fullmatch(value.lstrip(" \t"))
    if match is None or not _PAYLOAD_TYPE.fullmatch(match[1]):
        return False
    rtpmap = media.rtpmaps.get(int(match[1]))
    if rtpmap is None:
        return False
    params = match[2] or None
    if rtpmap.fmtp is not None and params is not None and rtpmap.fmtp != params:
        raise SdpError(
            f"second, different fmtp for payload type {rtpmap.payload_type}", line=line.number
        )
    if params is not None:
        rtpmap.fmtp = params
    return True


def _take_direction(
    attributes: list[tuple[_Line, Attribute]],
) -> tuple[str | None, list[tuple[_Line, Attribute]]]:
    direction = None
    rest = []
    for line, (name, value) in attributes:
        lowered = name.lower()
        if value is None and lowered in DIRECTIONS:
            if direction is not None and direction != lowered:
                raise SdpError(
                    f"conflicting direction attributes a={direction} and a={lowered}",
                    line=line.number,
                )
            direction = lowered
        else:
            rest.append((line, (name, value)))
    return direction, rest


def _parse_attribute(line: _Line) -> Attribute:
    name, colon, value = line.value.partition(":")
    if not _TOKEN.fullmatch(name):
        raise SdpError(f"bad attribute name {_show(name)}", line=line.number)
    return name, value if colon else None


def _parse_ptime(value: str, line: _Line) -> int:
    match = _PTIME.fullmatch(value.strip(" \t"))
    ptime = round(float(match[0])) if match else 0
    if not 1 <= ptime <= MAX_PTIME:
        raise SdpError(
            f"bad ptime {_show(value)}: expected milliseconds from 1 to {MAX_PTIME}",
            line=line.number,
        )
    return ptime


def _parse_origin(line: _Line) -> Origin:
    fields = _fields(line.value)
    if len(fields) != 6:
        raise SdpError(
            "o= needs 6 fields (<username> <sess-id> <sess-version> <nettype> <addrtype> "
            f"<address>), got {len(fields)}",
            line=line.number,
        )
    username, session_id, version, nettype, addrtype, address = fields
    for name, number in (("session id", session_id), ("session version", version)):
        if not _SESSION_NUMBER.fullmatch(number):
            raise SdpError(f"bad {name} {_show(number)} in o= line", line=line.number)
    for name, token in (("nettype", nettype), ("addrtype", addrtype)):
        if not _TOKEN.fullmatch(token):
            raise SdpError(f"bad {name} {_show(token)} in o= line", line=line.number)
    return Origin(username, int(session_id), int(version), nettype, addrtype, address)


def _parse_connection(line: _Line) -> str:
    fields = _fields(line.value)
    if len(fields) != 3:
        raise SdpError(
            f"c= needs <nettype> <addrtype> <address>, got {_show(line.value)}", line=line.number
        )
    nettype, addrtype, address = fields
    if nettype.upper() != "IN":
        raise SdpError(f"unsupported network type {_show(nettype)} in c= line", line=line.number)
    addrtype = addrtype.upper()
    if "/" in address:
        raise SdpError(
            f"multicast connection address {_show(address)} is not supported", line=line.number
        )
    if addrtype == "IP6":
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            raise SdpError(
                f"IP6 connection address {_show(address)} is not an IPv6 address",
                line=line.number,
            ) from None
    elif addrtype == "IP4":
        if _DOTTED.fullmatch(address):
            try:
                ipaddress.IPv4Address(address)
            except ValueError:
                raise SdpError(
                    f"bad IPv4 connection address {_show(address)}", line=line.number
                ) from None
        elif len(address) > 253 or not _HOSTNAME.fullmatch(address):
            raise SdpError(
                f"IP4 connection address {_show(address)} is neither an IPv4 address nor a "
                "host name",
                line=line.number,
            )
    else:
        raise SdpError(f"unsupported address type {_show(addrtype)} in c= line", line=line.number)
    return address


def _parse_timing(line: _Line) -> tuple[int, int]:
    fields = _fields(line.value)
    if len(fields) != 2 or not all(_NUMBER.fullmatch(field) for field in fields):
        raise SdpError(f"t= needs <start> <stop> times, got {_show(line.value)}", line=line.number)
    return int(fields[0]), int(fields[1])


def _parse_bandwidth(line: _Line) -> str:
    if not _BANDWIDTH.fullmatch(line.value):
        raise SdpError(f"b= needs <bwtype>:<bandwidth>, got {_show(line.value)}", line=line.number)
    return line.value


def _check_once(previous: object, line: _Line) -> None:
    if previous is not None:
        raise SdpError(f"second {line.kind}= line in the same section", line=line.number)


def _fields(value: str) -> list[str]:
    stripped = value.strip(" \t")
    return _FIELD_SEP.split(stripped) if stripped else []


def _show(value: _Line | str) -> str:
    text = f"{value.kind}={value.value}" if isinstance(value, _Line) else value
    return repr(text if len(text) <= 60 else text[:57] + "...")
