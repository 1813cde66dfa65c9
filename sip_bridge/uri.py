"""SIP URIs and name-addr values (RFC 3261 §19.1, §25.1).

Parsing keeps the text of every part as received so that a URI taken from the network (a
Contact, a Record-Route) goes back out exactly as the peer wrote it; comparison follows the
rules of §19.1.4 (case-insensitive scheme and host, escapes decoded, parameters by name).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

from sip_bridge.errors import SipParseError

# Unreserved and escaped characters allowed in user, password, parameter names and values.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?:{_LABEL}\.)*{_LABEL}\.?$")
_IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")
_IPV6_BODY = re.compile(r"^[0-9A-Fa-f:.]+$")
_USER_CHARS = re.compile(r"^[A-Za-z0-9\-_.!~*'()&=+$,;?/%]*$")
_PASSWORD_CHARS = re.compile(r"^[A-Za-z0-9\-_.!~*'()&=+$,%]*$")
_PARAM_CHARS = re.compile(r"^[A-Za-z0-9\-_.!~*'()\[\]/:&+$%]+$")
_HEADER_CHARS = re.compile(r"^[A-Za-z0-9\-_.!~*'()\[\]/?:+$%]*$")
_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Header parameter values are token / host / quoted-string; accept what real peers send.
_HEADER_PARAM_VALUE = re.compile(r'^[^\s;,"<>]+$')
_TOKEN = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+\-.]*$")

MAX_URI_LENGTH = 2048


Params = tuple[tuple[str, str | None], ...]


def param_value(params: Params, name: str) -> str | None:
    """A parameter's value by case-insensitive name: "" for a flag (`;lr`), None if absent."""
    name = name.lower()
    for key, value in params:
        if key.lower() == name:
            return "" if value is None else value
    return None


def _check_escapes(text: str, what: str) -> None:
    if _ESCAPE.search(text):
        raise SipParseError(f"bad %-escape in URI {what}: {text!r}")


@dataclass(frozen=True, slots=True)
class SipUri:
    """A sip: or sips: URI. Other schemes (tel:, mailto:, ...) parse as AbsoluteUri."""

    scheme: str
    user: str | None
    password: str | None
    host: str
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def build(
        cls,
        host: str,
        *,
        user: str | None = None,
        port: int | None = None,
        scheme: str = "sip",
        params: Mapping[str, str | None] | None = None,
    ) -> SipUri:
        return cls(scheme, user, None, host, port, tuple((params or {}).items()))

    def param(self, name: str) -> str | None:
        """The value of a URI parameter ("" for a flag like `lr`), None when absent."""
        return param_value(self.params, name)

    def has_param(self, name: str) -> bool:
        return param_value(self.params, name) is not None

    def with_params(self, **params: str | None) -> SipUri:
        kept = tuple((k, v) for k, v in self.params if k.lower() not in params)
        return SipUri(
            self.scheme,
            self.user,
            self.password,
            self.host,
            self.port,
            kept + tuple(params.items()),
            self.headers,
        )

    def without_headers(self) -> SipUri:
        return SipUri(self.scheme, self.user, self.password, self.host, self.port, self.params)

    @property
    def transport(self) -> str:
        """Transport named by the URI: its transport parameter, or tls for sips."""
        value = self.param("transport")
        if value:
            return value.lower()
        return "tls" if self.scheme.lower() == "sips" else "udp"

    @property
    def host_port(self) -> tuple[str, int | None]:
        return self.host.strip("[]"), self.port

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out += [":", self.password]
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out += [":", str(self.port)]
        for key, value in self.params:
            out += [";", key] if value is None else [";", key, "=", value]
        if self.headers:
            out += ["?", "&".join(f"{k}={v}" for k, v in self.headers)]
        return "".join(out)

    def equivalent(self, other: object) -> bool:
        """URI equality per RFC 3261 §19.1.4 (escapes decoded, host case-insensitive)."""
        if not isinstance(other, SipUri):
            return False
        if self.scheme.lower() != other.scheme.lower():
            return False
        if _unq(self.user) != _unq(other.user) or _unq(self.password) != _unq(other.password):
            return False
        if self.host.lower() != other.host.lower() or self.port != other.port:
            return False
        mine = {k.lower(): _unq(v) for k, v in self.params}
        theirs = {k.lower(): _unq(v) for k, v in other.params}
        for name in ("user", "ttl", "method", "maddr", "transport"):
            if (mine.get(name) or "").lower() != (theirs.get(name) or "").lower():
                return False
        for name in mine.keys() & theirs.keys():
            if (mine[name] or "").lower() != (theirs[name] or "").lower():
                return False
        mine_h = {k.lower(): _unq(v) for k, v in self.headers}
        theirs_h = {k.lower(): _unq(v) for k, v in other.headers}
        return mine_h == theirs_h


def _unq(value: str | None) -> str | None:
    return None if value is None else unquote(value)


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """A URI of another scheme (tel:, urn:, mailto:...), kept as text."""

    scheme: str
    text: str

    def __str__(self) -> str:
        return self.text

    def equivalent(self, other: object) -> bool:
        return isinstance(other, AbsoluteUri) and other.text.lower() == self.text.lower()


Uri = SipUri | AbsoluteUri


def parse_uri(text: str) -> Uri:
    """Parse a Request-URI or the URI of a name-addr."""
    if len(text) > MAX_URI_LENGTH:
        raise SipParseError(f"URI longer than {MAX_URI_LENGTH} characters")
    if any(c in text for c in ' \t\r\n<>"'):
        raise SipParseError(f"URI contains whitespace, angle brackets or quotes: {text!r}")
    scheme, sep, rest = text.partition(":")
    if not sep or not _SCHEME.match(scheme):
        raise SipParseError(f"URI without a scheme: {text!r}")
    if scheme.lower() not in ("sip", "sips"):
        if not rest:
            raise SipParseError(f"empty {scheme}: URI")
        return AbsoluteUri(scheme.lower(), text)
    return _parse_sip_uri(scheme, rest, text)


def parse_sip_uri(text: str) -> SipUri:
    uri = parse_uri(text)
    if not isinstance(uri, SipUri):
        raise SipParseError(f"not a sip: or sips: URI: {text!r}")
    return uri


def _parse_sip_uri(scheme: str, rest: str, text: str) -> SipUri:
    # '@' cannot appear unescaped in parameters or headers, so the first one ends userinfo;
    # userinfo itself may hold ';', '?' and '/' (RFC 3261 user-unreserved).
    userinfo, at, hostpart = rest.partition("@")
    if not at:
        userinfo, hostpart = "", rest
    hostpart, _, header_part = hostpart.partition("?")
    user = password = None
    if at:
        user, colon, pw = userinfo.partition(":")
        if not _USER_CHARS.match(user) or not user:
            raise SipParseError(f"bad user part in URI {text!r}")
        _check_escapes(user, "user")
        if colon:
            if not _PASSWORD_CHARS.match(pw):
                raise SipParseError(f"bad password in URI {text!r}")
            _check_escapes(pw, "password")
            password = pw
    hostport, *raw_params = hostpart.split(";")
    host, port = _parse_hostport(hostport, text)
    params: list[tuple[str, str | None]] = []
    for raw in raw_params:
        name, eq, value = raw.partition("=")
        if not name or not _PARAM_CHARS.match(name) or (eq and not _PARAM_CHARS.match(value)):
            raise SipParseError(f"bad URI parameter {raw!r} in {text!r}")
        _check_escapes(raw, "parameter")
        params.append((name, value if eq else None))
    headers: list[tuple[str, str]] = []
    if header_part:
        for raw in header_part.split("&"):
            name, eq, value = raw.partition("=")
            valid = name and eq and _HEADER_CHARS.match(name) and _HEADER_CHARS.match(value)
            if not valid:
                raise SipParseError(f"bad URI header {raw!r} in {text!r}")
            _check_escapes(raw, "header")
            headers.append((name, value))
    return SipUri(scheme, user, password, host, port, tuple(params), tuple(headers))


def _parse_hostport(hostport: str, text: str) -> tuple[str, int | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0 or not _IPV6_BODY.match(hostport[1:end]) or ":" not in hostport[1:end]:
            raise SipParseError(f"bad IPv6 reference in URI {text!r}")
        host, after = hostport[: end + 1], hostport[end + 1 :]
        if after and not after.startswith(":"):
            raise SipParseError(f"junk after IPv6 reference in URI {text!r}")
        port_text = after[1:] if after else None
    else:
        host, colon, port_text = hostport.partition(":")
        if not colon:
            port_text = None
        if not host:
            raise SipParseError(f"URI without a host: {text!r}")
        if _IPV4.match(host):
            if any(int(octet) > 255 for octet in host.split(".")):
                raise SipParseError(f"bad IPv4 address in URI {text!r}")
        elif not _HOSTNAME.match(host):
            raise SipParseError(f"bad host {host!r} in URI {text!r}")
    port = None
    if port_text is not None:
        if (
            not (port_text.isascii() and port_text.isdigit())
            or len(port_text) > 5
            or not 0 < int(port_text) < 65536
        ):
            raise SipParseError(f"bad port in URI {text!r}")
        port = int(port_text)
    return host, port


def quote_display_name(name: str) -> str:
    """A display name as a quoted-string, escaping backslash and quote, dropping controls."""
    cleaned = "".join(ch for ch in name if ch >= " " and ch != "\x7f")
    return '"' + cleaned.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True, slots=True)
class NameAddress:
    """A name-addr or addr-spec with header parameters: From, To, Contact, Route, ..."""

    uri: Uri
    display_name: str | None = None
    params: tuple[tuple[str, str | None], ...] = field(default=())

    def param(self, name: str) -> str | None:
        return param_value(self.params, name)

    @property
    def tag(self) -> str | None:
        return self.param("tag")

    def with_tag(self, tag: str) -> NameAddress:
        kept = tuple((k, v) for k, v in self.params if k.lower() != "tag")
        return NameAddress(self.uri, self.display_name, (*kept, ("tag", tag)))

    def __str__(self) -> str:
        out = []
        if self.display_name:
            out += [quote_display_name(self.display_name), " "]
        out += ["<", str(self.uri), ">"]
        for key, value in self.params:
            out += [";", key] if value is None else [";", key, "=", value]
        return "".join(out)


def parse_name_address(text: str) -> NameAddress:
    """Parse one name-addr / addr-spec with its parameters (no list splitting here)."""
    s = text.strip(" \t")
    display = None
    if s.startswith('"'):
        display, end = _read_quoted(s, 0)
        s = s[end:].lstrip(" \t")
        if not s.startswith("<"):
            raise SipParseError(f"quoted display name not followed by <URI>: {text!r}")
    if "<" in s:
        lt = s.index("<")
        if display is None:
            tokens = s[:lt].split()
            if tokens and not all(_TOKEN.match(t) for t in tokens):
                raise SipParseError(f"bad display name in {text!r}")
            display = " ".join(tokens) or None
        gt = s.find(">", lt)
        if gt < 0:
            raise SipParseError(f"unterminated <URI> in {text!r}")
        uri = parse_uri(s[lt + 1 : gt])  # no LWS inside <> (RFC 4475 §3.1.2.14)
        rest = s[gt + 1 :]
    else:
        # addr-spec form: parameters after the URI belong to the header, not the URI.
        uri_text, semi, rest = s.partition(";")
        rest = semi + rest
        uri_text = uri_text.strip(" \t")
        if "?" in uri_text:
            raise SipParseError(f"URI with headers must be in <>: {text!r}")
        uri = parse_uri(uri_text)
    return NameAddress(uri, display, parse_params(rest, text))


def parse_params(text: str, context: str) -> tuple[tuple[str, str | None], ...]:
    """Header parameters `;name=value;flag` with LWS around `;` and `=`; quoted values kept."""
    params: list[tuple[str, str | None]] = []
    s = text.strip(" \t")
    i, n = 0, len(s)
    while i < n:
        if s[i] != ";":
            raise SipParseError(f"expected ';' before parameter in {context!r}")
        i += 1
        while i < n and s[i] in " \t":
            i += 1
        start = i
        while i < n and s[i] not in "=; \t":
            i += 1
        name = s[start:i]
        if not name or not _TOKEN.match(name):
            raise SipParseError(f"bad parameter name {name!r} in {context!r}")
        while i < n and s[i] in " \t":
            i += 1
        value: str | None = None
        if i < n and s[i] == "=":
            i += 1
            while i < n and s[i] in " \t":
                i += 1
            if i < n and s[i] == '"':
                quote_start = i
                _, i = _read_quoted(s, i)
                value = s[quote_start:i]  # kept quoted, as received
            else:
                start = i
                while i < n and s[i] not in "; \t":
                    i += 1
                value = s[start:i]
                if not value or not _HEADER_PARAM_VALUE.match(value):
                    raise SipParseError(f"bad value for parameter {name!r} in {context!r}")
            while i < n and s[i] in " \t":
                i += 1
        params.append((name, value))
    return tuple(params)


def _read_quoted(s: str, start: int) -> tuple[str, int]:
    """Read a quoted-string at s[start] == '"'; returns (unescaped text, index after it)."""
    out = []
    i = start + 1
    n = len(s)
    while i < n:
        ch = s[i]
        if ch == "\\":
            if i + 1 >= n:
                break
            out.append(s[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise SipParseError(f"unterminated quoted string in {s!r}")


def split_header_list(value: str) -> list[str]:
    """Split a comma-joined header value, respecting quotes and <...> (commas inside URIs)."""
    parts: list[str] = []
    depth_angle = False
    in_quote = False
    start = 0
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if in_quote:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quote = False
        elif ch == '"':
            in_quote = True
        elif ch == "<":
            depth_angle = True
        elif ch == ">":
            depth_angle = False
        elif ch == "," and not depth_angle:
            parts.append(value[start:i].strip(" \t"))
            start = i + 1
        i += 1
    if in_quote:
        raise SipParseError(f"unterminated quoted string in {value!r}")
    parts.append(value[start:].strip(" \t"))
    if any(not p for p in parts):
        raise SipParseError(f"empty element in list {value!r}")
    return parts
