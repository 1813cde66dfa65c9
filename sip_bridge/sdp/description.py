"""The SDP data model (RFC 4566) and its serialization.

A parsed description keeps everything the gateway does not interpret (unknown attributes,
bandwidth lines, `i=`/`k=`/`r=`/`z=` lines) so that it serializes back with the same meaning.
Serialization writes the lines of a section in the order of RFC 4566 section 5 whatever order
they were received in; attributes of one section keep their relative order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
DEFAULT_DIRECTION = "sendrecv"

# Which optional line types may appear where, and in which slot they are written back.
SESSION_LINES_BEFORE_CONNECTION = "iuep"
SESSION_LINES_AFTER_TIMING = "trz"
LINES_BEFORE_ATTRIBUTES = "k"
MEDIA_LINES_BEFORE_CONNECTION = "i"
SESSION_EXTRA_SLOTS = (
    SESSION_LINES_BEFORE_CONNECTION,
    SESSION_LINES_AFTER_TIMING,
    LINES_BEFORE_ATTRIBUTES,
)
MEDIA_EXTRA_SLOTS = (MEDIA_LINES_BEFORE_CONNECTION, LINES_BEFORE_ATTRIBUTES)
SESSION_EXTRA_TYPES = "".join(SESSION_EXTRA_SLOTS)
MEDIA_EXTRA_TYPES = "".join(MEDIA_EXTRA_SLOTS)

Attribute = tuple[str, str | None]
"""`a=name:value` as (name, value); a property attribute `a=name` has value None."""

_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def address_type(address: str) -> str:
    """The SDP addrtype of a connection address: IP6 for an IPv6 literal, else IP4."""
    return "IP6" if ":" in address else "IP4"


@dataclass
class RtpMap:
    """One RTP payload type of a media description: `a=rtpmap` plus its `a=fmtp`, if any."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1
    fmtp: str | None = None


@dataclass(frozen=True)
class Origin:
    """The `o=` line. `version` must grow whenever a session's description changes."""

    username: str
    session_id: int
    version: int
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "127.0.0.1"


@dataclass
class MediaDescription:
    """One `m=` section.

    `formats` are the m-line's format tokens as text; for RTP profiles they are payload type
    numbers (see `payload_types`). `rtpmaps` maps payload types to codecs, with the static
    payload types of RFC 3551 filled in when the section lists them without an `a=rtpmap`.
    `connection` and `direction` are this section's own `c=` address and direction attribute,
    None when it has none: `SessionDescription.effective_connection` and
    `effective_direction` apply the session-level defaults.
    """

    media: str
    port: int
    proto: str
    formats: list[str]
    connection: str | None = None
    rtpmaps: dict[int, RtpMap] = field(default_factory=dict)
    direction: str | None = None
    ptime: int | None = None
    attributes: list[Attribute] = field(default_factory=list)
    port_count: int | None = None
    bandwidths: list[str] = field(default_factory=list)
    extra_lines: list[tuple[str, str]] = field(default_factory=list)

    @property
    def is_rtp(self) -> bool:
        return is_rtp_proto(self.proto)

    @property
    def payload_types(self) -> list[int]:
        """The formats as RTP payload type numbers (empty for a non-RTP protocol)."""
        return [int(fmt) for fmt in self.formats] if self.is_rtp else []

    @property
    def rejected(self) -> bool:
        """Port 0: the stream is disabled (RFC 3264 section 5.1, 6)."""
        return self.port == 0

    def attribute(self, name: str) -> str | None:
        """The value of the first attribute named `name` (case-insensitive); None if absent,
        "" for a property attribute."""
        return _find_attribute(self.attributes, name)

    def _lines(self) -> list[str]:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        lines = [" ".join(["m=" + self.media, port, self.proto, *self.formats])]
        lines += _extra(self.extra_lines, MEDIA_LINES_BEFORE_CONNECTION)
        if self.connection is not None:
            lines.append(_connection_line(self.connection))
        lines += ["b=" + bandwidth for bandwidth in self.bandwidths]
        lines += _extra(self.extra_lines, LINES_BEFORE_ATTRIBUTES)
        rtpmaps = sorted(self.rtpmaps.values(), key=self._rtpmap_order)
        for rtpmap in rtpmaps:
            channels = "" if rtpmap.channels == 1 else f"/{rtpmap.channels}"
            lines.append(
                f"a=rtpmap:{rtpmap.payload_type} {rtpmap.encoding}/{rtpmap.clock_rate}{channels}"
            )
        lines += [f"a=fmtp:{r.payload_type} {r.fmtp}" for r in rtpmaps if r.fmtp is not None]
        if self.ptime is not None:
            lines.append(f"a=ptime:{self.ptime}")
        lines += _attribute_lines(self.attributes)
        if self.direction is not None:
            lines.append("a=" + self.direction)
        return lines

    def _rtpmap_order(self, rtpmap: RtpMap) -> tuple[int, int]:
        # In the order of the m-line, then any the m-line does not list.
        try:
            return (self.formats.index(str(rtpmap.payload_type)), 0)
        except ValueError:
            return (len(self.formats), rtpmap.payload_type)


@dataclass
class SessionDescription:
    """A whole SDP body: the session-level lines and the media sections in order."""

    origin: Origin
    session_name: str = "-"
    connection: str | None = None
    timing: tuple[int, int] = (0, 0)
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    direction: str | None = None
    bandwidths: list[str] = field(default_factory=list)
    extra_lines: list[tuple[str, str]] = field(default_factory=list)

    def effective_connection(self, media: MediaDescription) -> str | None:
        """The address media of this section goes to: its own `c=`, else the session's."""
        return media.connection if media.connection is not None else self.connection

    def effective_direction(self, media: MediaDescription) -> str:
        """The section's direction: its own attribute, else the session's, else sendrecv."""
        return media.direction or self.direction or DEFAULT_DIRECTION

    def attribute(self, name: str) -> str | None:
        """The value of the first session-level attribute named `name` (case-insensitive)."""
        return _find_attribute(self.attributes, name)

    def serialize(self) -> bytes:
        """The description as an SDP body: UTF-8, CRLF line ends.

        Raises ValueError if a field holds a line break or another control character, so
        that no value can smuggle extra lines into the body.
        """
        o = self.origin
        lines = [
            "v=0",
            f"o={o.username} {o.session_id} {o.version} {o.nettype} {o.addrtype} {o.address}",
            "s=" + self.session_name,
        ]
        lines += _extra(self.extra_lines, SESSION_LINES_BEFORE_CONNECTION)
        if self.connection is not None:
            lines.append(_connection_line(self.connection))
        lines += ["b=" + bandwidth for bandwidth in self.bandwidths]
        lines.append(f"t={self.timing[0]} {self.timing[1]}")
        lines += _extra(self.extra_lines, SESSION_LINES_AFTER_TIMING)
        lines += _extra(self.extra_lines, LINES_BEFORE_ATTRIBUTES)
        lines += _attribute_lines(self.attributes)
        if self.direction is not None:
            lines.append("a=" + self.direction)
        for media in self.media:
            lines += media._lines()
        _check_extra_types(self.extra_lines, SESSION_EXTRA_TYPES, "session")
        for media in self.media:
            _check_extra_types(media.extra_lines, MEDIA_EXTRA_TYPES, "media")
        for line in lines:
            if _UNSAFE.search(line):
                raise ValueError(f"cannot serialize SDP: control character in {line!r}")
        return ("\r\n".join(lines) + "\r\n").encode()


def is_rtp_proto(proto: str) -> bool:
    """Whether formats of a media description with this protocol are RTP payload types."""
    return "RTP/" in proto.upper()


def _connection_line(address: str) -> str:
    return f"c=IN {address_type(address)} {address}"


def _attribute_lines(attributes: list[Attribute]) -> list[str]:
    return [f"a={name}" if value is None else f"a={name}:{value}" for name, value in attributes]


def _extra(extra_lines: list[tuple[str, str]], types: str) -> list[str]:
    return [f"{kind}={value}" for kind, value in extra_lines if kind in types]


def _check_extra_types(extra_lines: list[tuple[str, str]], allowed: str, where: str) -> None:
    for kind, _ in extra_lines:
        if len(kind) != 1 or kind not in allowed:
            raise ValueError(f"cannot serialize SDP: {kind!r} lines do not belong in a {where}")


def in_written_order(
    extra_lines: list[tuple[str, str]], slots: tuple[str, ...]
) -> list[tuple[str, str]]:
    """`extra_lines` in the order serialization writes them: by slot, then as received."""
    return sorted(
        extra_lines,
        key=lambda line: next(
            (index for index, kinds in enumerate(slots) if line[0] in kinds), len(slots)
        ),
    )


def _find_attribute(attributes: list[Attribute], name: str) -> str | None:
    name = name.lower()
    for key, value in attributes:
        if key.lower() == name:
            return "" if value is None else value
    return None
