"""The gateway's configuration: a TOML file over embedded defaults, then environment overrides.

Loading runs in three steps, each collecting every problem it finds so that one start
reports them all:

1. merge: the file's tables over `DEFAULT_CONFIG` key by key (`sites` is replaced whole);
   an unknown section or key is a problem, since a typo must not silently fall back;
2. environment: `GATEWAY_<SECTION>_<KEY>` and `GATEWAY_SITE_<ID>_<KEY>` replace raw values,
   converted from text by the type of the key they name;
3. validation: each key is converted to its useful type (addresses as (host, port), ranges
   as (low, high), timeouts as float seconds), then rules that span keys run.

Any problem raises one `ConfigError` naming each key path (`sites[1].destination`; indexes
count from 0) and, for a value that came from the environment, the variable.

Secrets (a site's password, an ICE server's credential) never appear in a repr, a str or an
error message.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway.api import SiteInfo
from gateway.http.forwarded import parse_networks
from gateway.sites.hours import BusinessHours, HoursError
from gateway.sites.routing import (
    FALLBACKS,
    RING_STRATEGIES,
    CallbackPolicy,
    SiteDestination,
    parse_callback,
    parse_destinations,
    parse_hours,
)
from gateway.sites.widget import WidgetSettings, parse_widget
from sip_bridge.errors import SipParseError
from sip_bridge.uri import SipUri, parse_sip_uri

__all__ = [
    "DEFAULT_CONFIG",
    "AccessConfig",
    "ConfigError",
    "DemoConfig",
    "GatewayConfig",
    "HttpConfig",
    "IceConfig",
    "IceServer",
    "LimitsConfig",
    "LogConfig",
    "MediaConfig",
    "RingbackTone",
    "SipConfig",
    "SiteConfig",
    "load_config",
    "parse_config",
]

DEFAULT_CONFIG = """\
# Embedded defaults of the click-to-call gateway: what runs when no config file is given.
# A key left out of a config file keeps the value it has here (a file without [[sites]]
# keeps the demo site). Every key is described in docs/configuration.md.

[http]
listen = "127.0.0.1:8080"        # host:port of the HTTP + socket.io server
public_url = ""                   # how visitors reach it; empty: http://<listen>
trusted_proxies = []              # reverse proxies whose X-Forwarded-For names the visitor

[sip]
listen = "127.0.0.1:5070"        # where the SIP user agent binds
public_address = ""               # host[:port] announced in Via/Contact/SDP; empty: listen
transport = "udp"                 # udp | tcp | tls
outbound_proxy = ""               # SIP URI every call goes through; empty: none
user = "gateway"                  # user part of From and Contact
from_domain = ""                  # host part of From; empty: the announced address
tls_certificate = ""              # PEM certificate chain (transport = "tls")
tls_private_key = ""              # PEM private key (transport = "tls")
tls_ca_certificates = ""          # PEM CA bundle to verify TLS peers; empty: system store
allowed_peers = []                # addresses/networks SIP is accepted from; empty: any
requests_per_second = 20          # SIP requests per second from one source; 0: no limit
request_burst = 100               # requests one source may send at once above that rate
connections_per_source = 16       # TCP/TLS connections one source may hold open
max_connections = 1000            # TCP/TLS connections peers may hold open in all

[media]
rtp_ports = "20000-20999"        # UDP range of the SIP leg's RTP/RTCP pairs
browser_codecs = ["PCMU", "opus"] # browser leg, in preference order
sip_codecs = ["PCMU", "PCMA", "G722"]  # offered to SIP, in preference order
ringback = "425/1000/4000"       # Hz[+Hz]/on ms/off ms while ringing without early media
media_timeout = 30                # seconds without RTP from a talking leg before hanging up
rtp_latching = "sdp"              # "sdp": only the SDP address; "any": first source (NAT)

[ice]
servers = []                      # [{urls = ["stun:host:port"], username, credential}]
host_addresses = ["127.0.0.1"]   # addresses gathered and announced for the browser leg

[demo]
enabled = true                    # run the built-in demo phone
sip_listen = "127.0.0.1:5080"    # where the demo phone's SIP binds

[access]
token_secret = ""                 # HMAC key of call tokens (secret); empty: random per start
token_lifetime = 60               # seconds a call token may be used to connect
pow_difficulty = 16               # leading zero bits of a proof of work (challenge = "pow")

[limits]
max_calls = 50                    # concurrent calls of each worker process; more are refused
max_calls_per_client = 2          # concurrent calls from one visitor address
# Defaults for every site; a [[sites]] table may set any of these for itself.
max_site_calls = 5                # concurrent calls of one site
calls_per_client_15min = 5        # calls one visitor address may start in any 15 minutes
calls_per_client_hour = 10        # ... in any hour
calls_per_client_day = 20         # ... in any 24 hours
max_call_duration = 1800          # seconds from the answer; then the gateway hangs up
daily_call_minutes = 300          # spend guard: talk minutes of a site in any 24 hours

[log]
level = "info"                    # debug | info | warning | error

[callbacks]
database = "var/callbacks.db"     # SQLite file of Request-a-Call requests (relative: to the
                                  # config file's folder, or the working directory)

[[sites]]
id = "demo"
destination = "sip:operator@127.0.0.1:5080"
origins = []                      # empty: only the gateway's own pages (http.public_url)
ring_timeout = 30
caller_name = "Web visitor"
"""


# --------------------------------------------------------------------------- errors


class ConfigError(ValueError):
    """The configuration cannot be used. `problems` holds one line per bad key."""

    def __init__(self, problems: Sequence[str] | str, *, source: str = "<config>") -> None:
        self.problems = (problems,) if isinstance(problems, str) else tuple(problems)
        self.source = source
        if len(self.problems) == 1:
            message = f"{source}: {self.problems[0]}"
        else:
            listed = "\n  ".join(self.problems)
            message = f"{source}: {len(self.problems)} problems:\n  {listed}"
        super().__init__(message)


class _Invalid(Exception):
    """A value failed its conversion; `where` extends the key path (`[2].urls`)."""

    def __init__(self, reason: str, where: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.where = where


# --------------------------------------------------------------------------- config objects


def _redacted_repr(self: Any) -> str:
    """A dataclass repr that shows `***` for the fields named in `_SECRET_FIELDS`."""
    parts = []
    for f in fields(self):
        value = getattr(self, f.name)
        shown = "***" if f.name in self._SECRET_FIELDS and value else repr(value)
        parts.append(f"{f.name}={shown}")
    return f"{type(self).__name__}({', '.join(parts)})"


@dataclass(frozen=True, slots=True)
class HttpConfig:
    listen: tuple[str, int]
    public_url: str  # no trailing slash; may carry a path prefix (reverse proxy)
    trusted_proxies: tuple[str, ...]  # addresses/networks, normalized ("127.0.0.1/32")

    @property
    def public_origin(self) -> str:
        """scheme://host[:port] of `public_url`: the Origin of the gateway's own pages."""
        return _origin_of_url(self.public_url)


@dataclass(frozen=True, slots=True)
class SipConfig:
    listen: tuple[str, int]
    public_address: tuple[str, int]  # what peers see: sent-by, Contact host, SDP c=
    transport: str  # udp | tcp | tls
    outbound_proxy: SipUri | None
    user: str
    from_domain: str | None
    tls_certificate: Path | None
    tls_private_key: Path | None
    tls_ca_certificates: Path | None
    allowed_peers: tuple[str, ...]  # networks; empty: any peer
    requests_per_second: float  # per source; 0: no limit
    request_burst: int
    connections_per_source: int  # TCP/TLS, inbound
    max_connections: int


@dataclass(frozen=True, slots=True)
class RingbackTone:
    """A cadenced tone: the frequencies sound together for on_ms, then silence for off_ms."""

    frequencies: tuple[int, ...]
    on_ms: int
    off_ms: int  # 0: continuous


@dataclass(frozen=True, slots=True)
class MediaConfig:
    rtp_ports: tuple[int, int]  # inclusive; low is even
    browser_codecs: tuple[str, ...]
    sip_codecs: tuple[str, ...]
    ringback: RingbackTone | None  # None: no local ringback
    media_timeout: float
    rtp_latching: str  # sdp | any


@dataclass(frozen=True, slots=True)
class IceServer:
    """One STUN/TURN server, shaped like RTCIceServer (and aiortc's)."""

    _SECRET_FIELDS = frozenset({"credential"})

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None

    __repr__ = _redacted_repr


@dataclass(frozen=True, slots=True)
class IceConfig:
    servers: tuple[IceServer, ...]
    host_addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class DemoConfig:
    enabled: bool
    sip_listen: tuple[str, int]


@dataclass(frozen=True, slots=True)
class AccessConfig:
    """Call tokens and the proof-of-work challenge (gateway.access.pages)."""

    _SECRET_FIELDS = frozenset({"token_secret"})

    token_secret: str | None  # None: a random secret is made at start
    token_lifetime: float
    pow_difficulty: int

    __repr__ = _redacted_repr


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    max_calls: int
    max_calls_per_client: int
    # Defaults of the sites' own keys of the same names (SiteConfig has the resolved ones).
    max_site_calls: int
    calls_per_client_15min: int
    calls_per_client_hour: int
    calls_per_client_day: int
    max_call_duration: float
    daily_call_minutes: float


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str  # debug | info | warning | error


@dataclass(frozen=True, slots=True)
class CallbacksConfig:
    database: Path  # the SQLite file of stored callbacks


@dataclass(frozen=True, slots=True)
class SiteConfig:
    """One site: which pages may call (public) and where their calls go (private)."""

    _SECRET_FIELDS = frozenset({"password"})

    id: str
    destination: SipUri
    origins: tuple[str, ...]  # normalized: lower-case, default port dropped
    ring_timeout: float
    username: str | None
    password: str | None
    proxy: SipUri | None  # overrides sip.outbound_proxy for this site
    caller_name: str | None
    from_user: str | None  # overrides sip.user in From for this site
    # Limits: the site's own value, else [limits]' (see gateway.access.admission).
    max_site_calls: int
    calls_per_client_15min: int
    calls_per_client_hour: int
    calls_per_client_day: int
    max_call_duration: float  # seconds from the answer
    daily_call_minutes: float  # spend guard: talk minutes in any 24 hours
    challenge: str | None  # kind of challenge before a call token ("pow"); None: none
    # Routing (gateway.sites.routing): whom to ring, how, when, and callbacks.
    destinations: tuple[SiteDestination, ...]  # `destination` alone gives one
    ring: str  # parallel | sequential | round-robin
    ring_total: float | None  # overall ring time; None: no limit beyond ring_timeout
    hours: BusinessHours | None  # None: always open
    fallback: str  # callback | message: what the page offers when busy/no answer/closed
    callback: CallbackPolicy | None  # None: the site takes no callbacks
    widget: WidgetSettings  # the visitor's widget: label, colours, position, language

    __repr__ = _redacted_repr

    @property
    def public_info(self) -> SiteInfo:
        """What the page and signaling may know: never destination, proxy or credentials."""
        return SiteInfo(
            id=self.id,
            origins=self.origins,
            widget=self.widget,
            hours=self.hours,
            fallback=self.fallback,
            callback_countries=self.callback.countries if self.callback is not None else None,
        )

    @property
    def credentials(self) -> tuple[str, str] | None:
        """(username, password) for 401/407 challenges, or None."""
        if self.username is None or self.password is None:
            return None
        return self.username, self.password

    def allows_origin(self, origin: str) -> bool:
        """Whether a page of `origin` (an Origin header value) may use this site."""
        try:
            return _origin(origin) in self.origins
        except _Invalid:
            return False


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    http: HttpConfig
    sip: SipConfig
    media: MediaConfig
    ice: IceConfig
    demo: DemoConfig
    access: AccessConfig
    limits: LimitsConfig
    log: LogConfig
    callbacks: CallbacksConfig
    sites: tuple[SiteConfig, ...]
    source: str = "<defaults>"

    def site(self, site_id: str) -> SiteConfig | None:
        for site in self.sites:
            if site.id == site_id:
                return site
        return None


# --------------------------------------------------------------------------- value converters
# Each takes a raw TOML value and returns the typed value or raises _Invalid. None of them
# echoes a value of a secret key.

_TYPE_NAMES = {
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "float",
    list: "array",
    dict: "table",
}


def _type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"expected a string, got {_type_name(value)}")
    return value


def _list(value: object) -> list[Any]:
    if not isinstance(value, list):
        raise _Invalid(f"expected an array, got {_type_name(value)}")
    return value


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise _Invalid(f"expected true or false, got {_type_name(value)}")
    return value


def _positive_seconds(value: object) -> float:
    return _positive_number(value, "seconds")


def _positive_minutes(value: object) -> float:
    return _positive_number(value, "minutes")


def _positive_number(value: object, unit: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Invalid(f"expected a number of {unit}, got {_type_name(value)}")
    if not math.isfinite(value) or value <= 0:
        raise _Invalid(f"must be a positive number of {unit}, not {value!r}")
    return float(value)


def _positive_int(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"expected an integer, got {_type_name(value)}")
    if value < 1:
        raise _Invalid(f"must be at least 1, not {value}")
    return value


def _no_controls(text: str, *, secret: bool = False) -> str:
    if any(ch < " " or ch == "\x7f" for ch in text):
        shown = "" if secret else f": {text!r}"
        raise _Invalid(f"contains control characters{shown}")
    return text


_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"^(?:{_LABEL}\.)*{_LABEL}$")
_DOTTED_DIGITS = re.compile(r"^[0-9.]+$")


def _host(text: str) -> str:
    """A hostname, an IPv4 address or a bracketed IPv6 address; returned without brackets."""
    if text.startswith("[") and text.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(text[1:-1]))
        except ValueError:
            raise _Invalid(f"not an IPv6 address: {text!r}") from None
    if ":" in text:
        raise _Invalid(f"an IPv6 address must be in brackets: {text!r}")
    if _DOTTED_DIGITS.match(text):
        try:
            return str(ipaddress.IPv4Address(text))
        except ValueError:
            raise _Invalid(f"not an IPv4 address: {text!r}") from None
    if len(text) > 253 or not _HOSTNAME.match(text):
        raise _Invalid(f"not a host name or address: {text!r}")
    return text.lower()


def _port(text: str, whole: str) -> int:
    # isascii: str.isdigit() also accepts digits such as '²' that int() refuses.
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or not 1 <= int(text) <= 65535:
        raise _Invalid(f"port must be 1-65535 in {whole!r}")
    return int(text)


def _split_host_port(text: str) -> tuple[str, str | None]:
    """Split `host[:port]` / `[v6][:port]` into host text (brackets kept) and port text."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise _Invalid(f"unclosed '[' in {text!r}")
        rest = text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise _Invalid(f"junk after ']' in {text!r}")
        return text[: end + 1], (rest[1:] if rest else None)
    if text.count(":") > 1:
        raise _Invalid(f"an IPv6 address must be in brackets: {text!r}")
    host, colon, port = text.partition(":")
    return host, (port if colon else None)


def _host_port(value: object) -> tuple[str, int]:
    text = _string(value).strip()
    host_text, port_text = _split_host_port(text)
    if port_text is None or not host_text:
        raise _Invalid(f"expected host:port, got {text!r}")
    return _host(host_text), _port(port_text, text)


def _is_unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def _host_for_url(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _ip_address(value: object) -> str:
    text = _string(value).strip()
    try:
        address = ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        raise _Invalid(f"not an IP address: {text!r}") from None
    if address.is_unspecified:
        raise _Invalid(f"{text!r} cannot be announced: give the machine's address")
    return str(address)


def _optional_host_port(value: object) -> tuple[str, int | None] | None:
    """`host` or `host:port` (NAT may map the port too); "" is None."""
    text = _string(value).strip()
    if not text:
        return None
    host_text, port_text = _split_host_port(text)
    if not host_text:
        raise _Invalid(f"expected host or host:port, got {text!r}")
    host = _host(host_text)
    if _is_unspecified(host):
        raise _Invalid(f"{text!r} cannot be announced: give the address peers reach")
    return host, (None if port_text is None else _port(port_text, text))


def _optional_host(value: object) -> str | None:
    text = _string(value).strip()
    return _host(text) if text else None


def _sip_uri(value: object) -> SipUri:
    text = _string(value).strip()
    try:
        uri = parse_sip_uri(text)
    except SipParseError as exc:
        raise _Invalid(f"not a SIP URI: {text!r} ({exc.reason})") from None
    except ValueError:  # the parser lets a few malformed ports through as int() errors
        raise _Invalid(f"not a SIP URI: {text!r}") from None
    if uri.password is not None:
        # A password here would show up in logs and reprs: it belongs in `password`.
        raise _Invalid("a password in the URI is not allowed: use the password key")
    return uri


def _optional_sip_uri(value: object) -> SipUri | None:
    return _sip_uri(value) if _string(value).strip() else None


def _sip_user(value: object) -> str:
    text = _string(value)
    if not text:
        raise _Invalid("must not be empty")
    try:
        uri = parse_sip_uri(f"sip:{text}@example.invalid")
    except ValueError:
        uri = None
    if uri is None or uri.user != text or uri.password is not None:
        raise _Invalid(f"not a valid SIP user part: {text!r}")
    return text


def _optional_sip_user(value: object) -> str | None:
    return _sip_user(value) if _string(value) else None


def _choice(*allowed: str) -> Callable[[object], str]:
    def convert(value: object) -> str:
        text = _string(value).strip().lower()
        if text not in allowed:
            raise _Invalid(f"must be one of {', '.join(allowed)}, not {value!r}")
        return text

    return convert


def _optional_path(value: object) -> str | None:
    text = _string(value).strip()
    return text or None


def _public_url(value: object) -> str | None:
    text = _string(value).strip()
    if not text:
        return None
    parts = _url_parts(text, "public URL")
    if parts.query or parts.fragment:
        raise _Invalid(f"a public URL takes no query or fragment: {text!r}")
    return f"{_normalized_origin(parts, text)}{parts.path.rstrip('/')}"


def _url_parts(text: str, what: str) -> Any:
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise _Invalid(f"not a {what}: {text!r} ({exc})") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise _Invalid(f"not a {what} (http:// or https://): {text!r}")
    if "@" in parts.netloc:
        raise _Invalid(f"a {what} takes no user or password: {text!r}")
    return parts


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _normalized_origin(parts: Any, text: str) -> str:
    """scheme://host[:port] as browsers send it: lower case, default port left out."""
    scheme = parts.scheme.lower()
    host_text, port_text = _split_host_port(parts.netloc)
    host = _host(host_text)
    if _is_unspecified(host):
        raise _Invalid(f"{host!r} is no address a browser can use: {text!r}")
    port = None if port_text is None else _port(port_text, text)
    netloc = _host_for_url(host)
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    return f"{scheme}://{netloc}"


def _origin_of_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _origin(value: object) -> str:
    text = _string(value).strip()
    parts = _url_parts(text, "origin")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise _Invalid(f"an origin is scheme://host[:port] without a path: {text!r}")
    return _normalized_origin(parts, text)


def _origins(value: object) -> tuple[str, ...]:
    result = []
    for i, item in enumerate(_list(value)):
        try:
            origin = _origin(item)
        except _Invalid as exc:
            raise _Invalid(exc.reason, f"[{i}]") from None
        if origin in result:
            raise _Invalid(f"duplicate origin {origin!r}", f"[{i}]")
        result.append(origin)
    return tuple(result)


_PORT_RANGE = re.compile(r"^([0-9]{1,5}) *- *([0-9]{1,5})$")


def _port_range(value: object) -> tuple[int, int]:
    text = _string(value).strip()
    match = _PORT_RANGE.match(text)
    if not match:
        raise _Invalid(f"expected a port range low-high, got {text!r}")
    low, high = int(match[1]), int(match[2])
    if not (1 <= low <= 65535 and 1 <= high <= 65535):
        raise _Invalid(f"ports must be 1-65535 in {text!r}")
    if low % 2:
        raise _Invalid(f"must start on an even port (RTP even, RTCP odd): {text!r}")
    if high < low + 1:
        raise _Invalid(f"must hold at least one even/odd pair (2 ports): {text!r}")
    return low, high


_SIP_CODECS = {"pcmu": "PCMU", "pcma": "PCMA", "g722": "G722"}
_BROWSER_CODECS = {"pcmu": "PCMU", "pcma": "PCMA", "opus": "opus"}


def _codec_list(known: dict[str, str]) -> Callable[[object], tuple[str, ...]]:
    def convert(value: object) -> tuple[str, ...]:
        items = _list(value)
        if not items:
            raise _Invalid(f"needs at least one of {', '.join(known.values())}")
        result: list[str] = []
        for i, item in enumerate(items):
            name = known.get(item.lower()) if isinstance(item, str) else None
            if name is None:
                raise _Invalid(
                    f"unknown codec {item!r} (supported: {', '.join(known.values())})", f"[{i}]"
                )
            if name in result:
                raise _Invalid(f"codec {name} listed twice", f"[{i}]")
            result.append(name)
        return tuple(result)

    return convert


_RINGBACK = re.compile(r"^([0-9]{1,5}(?:\+[0-9]{1,5})?)/([0-9]{1,6})/([0-9]{1,6})$")


def _ringback(value: object) -> RingbackTone | None:
    text = _string(value).strip()
    if not text:
        return None
    match = _RINGBACK.match(text.replace(" ", ""))
    if not match:
        raise _Invalid(f"expected Hz[+Hz]/on ms/off ms (like 425/1000/4000), got {text!r}")
    frequencies = tuple(int(hz) for hz in match[1].split("+"))
    on_ms, off_ms = int(match[2]), int(match[3])
    # The SIP leg may run at 8 kHz: a tone must stay below its 4 kHz Nyquist limit.
    if not all(20 <= hz < 4000 for hz in frequencies):
        raise _Invalid(f"frequencies must be 20-3999 Hz in {text!r}")
    if on_ms < 1:
        raise _Invalid(f"the tone must sound for at least 1 ms in {text!r}")
    return RingbackTone(frequencies, on_ms, off_ms)


_ICE_SCHEMES = ("stun", "stuns", "turn", "turns")
_ICE_SERVER_KEYS = ("urls", "username", "credential")


def _ice_url(text: str) -> str:
    # RFC 7064 (stun:, stuns:) and RFC 7065 (turn:, turns:): scheme:host[:port][?transport=]
    scheme, colon, rest = text.partition(":")
    if not colon or scheme.lower() not in _ICE_SCHEMES:
        raise _Invalid(f"ICE server URL must start with stun:, stuns:, turn: or turns:: {text!r}")
    if rest.startswith("//"):
        raise _Invalid(f"ICE server URLs take no '//': {text!r}")
    hostport, question, query = rest.partition("?")
    if question:
        if not scheme.lower().startswith("turn"):
            raise _Invalid(f"only turn: and turns: URLs take ?transport=: {text!r}")
        if query.lower() not in ("transport=udp", "transport=tcp"):
            raise _Invalid(f"expected ?transport=udp or ?transport=tcp in {text!r}")
    host_text, port_text = _split_host_port(hostport)
    if not host_text:
        raise _Invalid(f"ICE server URL without a host: {text!r}")
    _host(host_text)
    if port_text is not None:
        _port(port_text, text)
    return text


def _ice_server(item: object) -> IceServer:
    if isinstance(item, str):  # shorthand: a bare URL
        return IceServer(urls=(_ice_url(item.strip()),))
    if not isinstance(item, dict):
        raise _Invalid(f"expected a table or a URL string, got {_type_name(item)}")
    for key in item:
        if key not in _ICE_SERVER_KEYS:
            raise _Invalid(_unknown_key_reason(key, _ICE_SERVER_KEYS), f".{key}")
    if "urls" not in item:
        raise _Invalid("required", ".urls")
    raw_urls = item["urls"]
    try:
        urls = [raw_urls] if isinstance(raw_urls, str) else _list(raw_urls)
        if not urls:
            raise _Invalid("needs at least one URL")
        checked = tuple(_ice_url(_string(url).strip()) for url in urls)
    except _Invalid as exc:
        raise _Invalid(exc.reason, ".urls") from None
    try:
        username = _no_controls(_string(item.get("username", ""))) or None
    except _Invalid as exc:
        raise _Invalid(exc.reason, ".username") from None
    try:
        credential = _no_controls(_string(item.get("credential", "")), secret=True) or None
    except _Invalid as exc:
        raise _Invalid(exc.reason, ".credential") from None
    if any(url.lower().startswith("turn") for url in checked) and not (username and credential):
        # Browsers refuse a TURN server without both (RTCPeerConnection throws).
        raise _Invalid("a turn:/turns: server needs username and credential")
    return IceServer(urls=checked, username=username, credential=credential)


def _ice_servers(value: object) -> tuple[IceServer, ...]:
    servers = []
    for i, item in enumerate(_list(value)):
        try:
            servers.append(_ice_server(item))
        except _Invalid as exc:
            raise _Invalid(exc.reason, f"[{i}]{exc.where}") from None
    return tuple(servers)


def _host_addresses(value: object) -> tuple[str, ...]:
    items = _list(value)
    if not items:
        raise _Invalid("needs at least one address")
    result: list[str] = []
    for i, item in enumerate(items):
        try:
            address = _ip_address(item)
        except _Invalid as exc:
            raise _Invalid(exc.reason, f"[{i}]") from None
        if address in result:
            raise _Invalid(f"duplicate address {address!r}", f"[{i}]")
        result.append(address)
    return tuple(result)


_SITE_ID = re.compile(r"^[a-z0-9-]{1,40}$")


def _site_id(value: object) -> str:
    text = _string(value)
    if not _SITE_ID.match(text):
        raise _Invalid(f"must be 1-40 characters of a-z, 0-9 and '-', not {text!r}")
    return text


def _optional_text(value: object) -> str | None:
    return _no_controls(_string(value)) or None


def _optional_secret(value: object) -> str | None:
    return _no_controls(_string(value), secret=True) or None


def _networks(value: object) -> tuple[str, ...]:
    result: list[str] = []
    for i, item in enumerate(_list(value)):
        try:
            (network,) = parse_networks([_string(item)])
        except (_Invalid, ValueError) as exc:
            reason = exc.reason if isinstance(exc, _Invalid) else str(exc)
            raise _Invalid(reason, f"[{i}]") from None
        if str(network) in result:
            raise _Invalid(f"duplicate network {str(network)!r}", f"[{i}]")
        result.append(str(network))
    return tuple(result)


def _token_secret(value: object) -> str | None:
    text = _no_controls(_string(value), secret=True)
    if text and len(text) < 32:
        # Never echo it: say only how long it must be.
        raise _Invalid(
            "must be at least 32 characters (for example: openssl rand -base64 32), or empty"
        )
    return text or None


def _token_lifetime(value: object) -> float:
    seconds = _positive_seconds(value)
    if seconds > 3600:
        raise _Invalid(f"a call token lives at most 3600 seconds, not {value!r}")
    return seconds


def _pow_difficulty(value: object) -> int:
    bits = _positive_int(value)
    if bits > 32:
        raise _Invalid(f"must be 1-32 bits, not {bits}")
    return bits


_CHALLENGE = re.compile(r"^[a-z0-9-]{1,40}$")


def _challenge(value: object) -> str | None:
    text = _string(value).strip()
    if text == "none":
        return None
    if not _CHALLENGE.match(text):
        raise _Invalid(f"must be none, pow, or the name of an installed verifier, not {text!r}")
    return text


class _Inherit:
    """The default of a site key that takes [limits]' value of the same name."""

    def __repr__(self) -> str:
        return "<from [limits]>"


_INHERIT: Any = _Inherit()


def _inheriting(convert: Converter) -> Converter:
    def inherit_or_convert(value: object) -> Any:
        return _INHERIT if value is _INHERIT else convert(value)

    return inherit_or_convert


def _routing(convert: Callable[[object], Any]) -> Callable[[object], Any]:
    """A gateway.sites.routing converter, its ValueError told as a problem of the key."""

    def converter(value: object) -> Any:
        try:
            return convert(value)
        except (ValueError, HoursError) as exc:
            raise _Invalid(str(exc)) from None

    return converter


def _non_negative_number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e6:
        raise _Invalid(f"must be a number from 0 up, not {value!r}")
    return float(value)


def _optional_seconds(value: object) -> float | None:
    """Seconds, or 0 for none."""
    if value == 0:
        return None
    return _positive_seconds(value)


def _relative_path(text: str, base_dir: Path | None) -> Path:
    path = Path(text).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    return path


def _caller_name(value: object) -> str | None:
    text = _optional_text(value)
    if text is not None and len(text) > 100:
        raise _Invalid("longer than 100 characters")
    return text


# --------------------------------------------------------------------------- schema

Converter = Callable[[object], Any]

# Every section key and its converter. The keys must match DEFAULT_CONFIG (a test checks).
_SECTIONS: dict[str, dict[str, Converter]] = {
    "http": {"listen": _host_port, "public_url": _public_url, "trusted_proxies": _networks},
    "sip": {
        "listen": _host_port,
        "public_address": _optional_host_port,
        "transport": _choice("udp", "tcp", "tls"),
        "outbound_proxy": _optional_sip_uri,
        "user": _sip_user,
        "from_domain": _optional_host,
        "tls_certificate": _optional_path,
        "tls_private_key": _optional_path,
        "tls_ca_certificates": _optional_path,
        "allowed_peers": _networks,
        "requests_per_second": _non_negative_number,
        "request_burst": _positive_int,
        "connections_per_source": _positive_int,
        "max_connections": _positive_int,
    },
    "media": {
        "rtp_ports": _port_range,
        "browser_codecs": _codec_list(_BROWSER_CODECS),
        "sip_codecs": _codec_list(_SIP_CODECS),
        "ringback": _ringback,
        "media_timeout": _positive_seconds,
        "rtp_latching": _choice("sdp", "any"),
    },
    "ice": {"servers": _ice_servers, "host_addresses": _host_addresses},
    "demo": {"enabled": _boolean, "sip_listen": _host_port},
    "access": {
        "token_secret": _token_secret,
        "token_lifetime": _token_lifetime,
        "pow_difficulty": _pow_difficulty,
    },
    "limits": {
        "max_calls": _positive_int,
        "max_calls_per_client": _positive_int,
        "max_site_calls": _positive_int,
        "calls_per_client_15min": _positive_int,
        "calls_per_client_hour": _positive_int,
        "calls_per_client_day": _positive_int,
        "max_call_duration": _positive_seconds,
        "daily_call_minutes": _positive_minutes,
    },
    "log": {"level": _choice("debug", "info", "warning", "error")},
    "callbacks": {"database": _string},
}

# Site keys whose default is the [limits] key of the same name.
_INHERITED_SITE_KEYS = (
    "max_site_calls",
    "calls_per_client_15min",
    "calls_per_client_hour",
    "calls_per_client_day",
    "max_call_duration",
    "daily_call_minutes",
)

# Site keys: converter and the default when the key is left out (None: required).
_SITE_KEYS: dict[str, tuple[Converter, object]] = {
    "id": (_site_id, None),
    "destination": (_optional_sip_uri, ""),
    "origins": (_origins, []),
    "ring_timeout": (_positive_seconds, 30),
    "username": (_optional_text, ""),
    "password": (_optional_secret, ""),
    "proxy": (_optional_sip_uri, ""),
    "caller_name": (_caller_name, ""),
    "from_user": (_optional_sip_user, ""),
    **{key: (_inheriting(_SECTIONS["limits"][key]), _INHERIT) for key in _INHERITED_SITE_KEYS},
    "challenge": (_challenge, "none"),
    "destinations": (_routing(parse_destinations), []),
    "ring": (_choice(*RING_STRATEGIES), "sequential"),
    "ring_total": (_optional_seconds, 0),
    "hours": (_routing(parse_hours), {}),
    "fallback": (_choice(*FALLBACKS), "callback"),
    "callback": (_routing(parse_callback), {}),
    "widget": (_routing(parse_widget), {}),
}


def _unknown_key_reason(key: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known)})"
    return f"unknown key{hint}"


# --------------------------------------------------------------------------- loading


class _Problems:
    """Collects problems; names a key's environment variable when it came from there."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.from_env: dict[str, str] = {}  # key path -> variable

    def add(self, path: str, reason: str, where: str = "") -> None:
        """Record a problem of the key at `path`, or of the part `where` inside its value."""
        variable = self.from_env.get(path)
        label = f"{path}{where} (from {variable})" if variable else f"{path}{where}"
        self.lines.append(f"{label}: {reason}")

    def convert(self, path: str, convert: Converter, value: object) -> Any:
        """The converted value, or _FAILED after recording why."""
        try:
            return convert(value)
        except _Invalid as exc:
            self.add(path, exc.reason, exc.where)
            return _FAILED


_FAILED: Any = object()
_DEFAULT_DOCUMENT = tomllib.loads(DEFAULT_CONFIG)


def _merge(document: dict[str, Any], problems: _Problems) -> dict[str, Any]:
    """The file's values over the defaults; unknown sections and keys are problems."""
    merged: dict[str, Any] = {
        name: dict(table) for name, table in _DEFAULT_DOCUMENT.items() if name != "sites"
    }
    merged["sites"] = [dict(site) for site in _DEFAULT_DOCUMENT["sites"]]
    known_sections = [*_SECTIONS, "sites"]
    for name, value in document.items():
        if name == "sites":
            if not isinstance(value, list) or not all(isinstance(s, dict) for s in value):
                problems.add("sites", "expected an array of tables ([[sites]])")
                continue
            merged["sites"] = [dict(site) for site in value]
        elif name in _SECTIONS:
            if not isinstance(value, dict):
                problems.add(name, f"expected a table ([{name}]), got {_type_name(value)}")
                continue
            for key, item in value.items():
                if key in _SECTIONS[name]:
                    merged[name][key] = item
                else:
                    problems.add(f"{name}.{key}", _unknown_key_reason(key, list(_SECTIONS[name])))
        else:
            close = difflib.get_close_matches(name, known_sections, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.add(name, f"unknown section{hint}")
    return merged


_ENV_PREFIX = "GATEWAY_"
_SITE_ENV_PREFIX = "GATEWAY_SITE_"
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")


def _from_env_text(text: str, like: object) -> object:
    """An environment value converted to the raw TOML type of `like` (the default)."""
    if isinstance(like, bool):
        lowered = text.strip().lower()
        if lowered in _TRUE or lowered in _FALSE:
            return lowered in _TRUE
        raise _Invalid(f"expected true or false, got {text!r}")
    if isinstance(like, int | float):
        stripped = text.strip()
        try:
            return int(stripped)
        except ValueError:
            pass
        try:
            return float(stripped)
        except ValueError:
            raise _Invalid(f"not a number: {text!r}") from None
    if isinstance(like, list):
        stripped = text.strip()
        if stripped.startswith("["):
            try:
                value = json.loads(stripped)
            except ValueError as exc:
                raise _Invalid(f"not a JSON array: {exc}") from None
            if not isinstance(value, list):
                raise _Invalid("not a JSON array")
            return value
        return [item.strip() for item in stripped.split(",") if item.strip()]
    return text


def _apply_env(merged: dict[str, Any], env: Mapping[str, str], problems: _Problems) -> None:
    for variable in sorted(env):
        if not variable.startswith(_ENV_PREFIX):
            continue
        if variable.startswith(_SITE_ENV_PREFIX):
            _apply_site_env(merged["sites"], variable, env[variable], problems)
            continue
        section, _, key = variable[len(_ENV_PREFIX) :].lower().partition("_")
        if section not in _SECTIONS:
            problems.lines.append(
                f"{variable}: unknown section {section!r} (known: {', '.join(_SECTIONS)}, "
                "or SITE_<ID>_<KEY>)"
            )
            continue
        if key not in _SECTIONS[section]:
            reason = _unknown_key_reason(key, list(_SECTIONS[section]))
            problems.lines.append(f"{variable}: {section}.{key}: {reason}")
            continue
        path = f"{section}.{key}"
        problems.from_env[path] = variable
        try:
            merged[section][key] = _from_env_text(env[variable], _DEFAULT_DOCUMENT[section][key])
        except _Invalid as exc:
            problems.add(path, exc.reason)
            merged[section][key] = _FAILED


def _apply_site_env(
    sites: list[dict[str, Any]], variable: str, text: str, problems: _Problems
) -> None:
    rest = variable[len(_SITE_ENV_PREFIX) :]
    # Both ids and keys may hold '_' (an id's '-' becomes '_'), so try every site.
    matches: list[tuple[int, str]] = []
    for index, site in enumerate(sites):
        site_id = site.get("id")
        if not isinstance(site_id, str):
            continue
        token = site_id.upper().replace("-", "_") + "_"
        if rest.upper().startswith(token):
            key = rest[len(token) :].lower()
            if key in _SITE_KEYS and key != "id":
                matches.append((index, key))
    if not matches:
        problems.lines.append(
            f"{variable}: no site id and key match it (GATEWAY_SITE_<ID>_<KEY>, site keys: "
            f"{', '.join(k for k in _SITE_KEYS if k != 'id')})"
        )
        return
    if len(matches) > 1:
        named = ", ".join(f"sites[{i}].{key}" for i, key in matches)
        problems.lines.append(f"{variable}: ambiguous, matches {named}")
        return
    index, key = matches[0]
    path = f"sites[{index}].{key}"
    problems.from_env[path] = variable
    like = _SITE_KEYS[key][1]
    if like is _INHERIT:
        like = _DEFAULT_DOCUMENT["limits"][key]
    try:
        sites[index][key] = _from_env_text(text, like)
    except _Invalid as exc:
        problems.add(path, exc.reason)
        sites[index][key] = _FAILED


def _convert_section(name: str, raw: dict[str, Any], problems: _Problems) -> dict[str, Any]:
    converted = {}
    for key, convert in _SECTIONS[name].items():
        value = raw[key]
        converted[key] = (
            _FAILED if value is _FAILED else problems.convert(f"{name}.{key}", convert, value)
        )
    return converted


def _convert_site(index: int, raw: dict[str, Any], problems: _Problems) -> dict[str, Any]:
    converted: dict[str, Any] = {}
    for key in raw:
        if key not in _SITE_KEYS:
            problems.add(f"sites[{index}].{key}", _unknown_key_reason(key, list(_SITE_KEYS)))
    for key, (convert, default) in _SITE_KEYS.items():
        path = f"sites[{index}].{key}"
        if key not in raw and default is None:
            problems.add(path, "required")
            converted[key] = _FAILED
            continue
        value = raw.get(key, default)
        converted[key] = _FAILED if value is _FAILED else problems.convert(path, convert, value)
    for present, missing in (("password", "username"), ("username", "password")):
        if converted[present] not in (None, _FAILED) and converted[missing] is None:
            problems.add(f"sites[{index}].{missing}", f"required when {present} is set")
    _resolve_destinations(index, converted, problems)
    return converted


def _resolve_destinations(index: int, site: dict[str, Any], problems: _Problems) -> None:
    """One `destination` (with the site's credentials and proxy) or a `destinations` list."""
    single, many = site["destination"], site["destinations"]
    if _FAILED in (single, many):
        return
    if single is not None and many:
        problems.add(f"sites[{index}].destinations", "give destination or destinations, not both")
    elif single is None and not many:
        problems.add(f"sites[{index}].destination", "required (or a destinations list)")
    elif single is not None:
        credentials = site["username"], site["password"]
        if _FAILED not in credentials and site["proxy"] is not _FAILED:
            site["destinations"] = (SiteDestination(single, *credentials, site["proxy"]),)
    else:
        site["destination"] = many[0].uri


def _ok(*values: object) -> bool:
    return all(value is not _FAILED for value in values)


def _hosts_overlap(a: str, b: str) -> bool:
    return a == b or _is_unspecified(a) or _is_unspecified(b)


def _existing_file(text: str, base_dir: Path | None) -> Path:
    try:
        path = Path(text).expanduser()
    except RuntimeError:  # ~user of an unknown user
        raise _Invalid(f"cannot expand '~' in {text!r}") from None
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise _Invalid(f"no such file: {str(path)!r}")
    return path


def _finish_http(c: dict[str, Any], problems: _Problems) -> None:
    if c["public_url"] is None and _ok(c["listen"]):
        host, port = c["listen"]
        if _is_unspecified(host):
            problems.add(
                "http.public_url",
                f"required when http.listen binds every address "
                f"({host!r}): set how visitors reach the gateway",
            )
        else:
            c["public_url"] = _public_url(f"http://{_host_for_url(host)}:{port}")


def _finish_sip(c: dict[str, Any], base_dir: Path | None, problems: _Problems) -> None:
    public = c["public_address"]
    if _ok(c["listen"], public):
        host, port = c["listen"]
        if public is None:
            if _is_unspecified(host):
                problems.add(
                    "sip.public_address", f"required when sip.listen binds every address ({host!r})"
                )
            else:
                c["public_address"] = (host, port)
        else:
            c["public_address"] = (public[0], public[1] if public[1] is not None else port)
    for key in ("tls_certificate", "tls_private_key", "tls_ca_certificates"):
        if c[key] not in (None, _FAILED):
            c[key] = problems.convert(
                f"sip.{key}", lambda text: _existing_file(text, base_dir), c[key]
            )
    if c["transport"] == "tls":
        for key in ("tls_certificate", "tls_private_key"):
            if c[key] is None:
                problems.add(f"sip.{key}", "required when sip.transport is 'tls'")


def _check_ports(sections: dict[str, dict[str, Any]], problems: _Problems) -> None:
    sip, media, demo = sections["sip"], sections["media"], sections["demo"]
    demo_on = demo["enabled"] is True and _ok(demo["sip_listen"])
    if demo_on and _ok(sip["listen"]) and demo["sip_listen"] == sip["listen"]:
        problems.add("demo.sip_listen", "same address as sip.listen")
    if not _ok(media["rtp_ports"], sip["listen"]):
        return
    low, high = media["rtp_ports"]
    rtp_host = sip["listen"][0]  # RTP binds where SIP does
    taken = [("sip.listen", sip["listen"])]
    if demo_on:
        taken.append(("demo.sip_listen", demo["sip_listen"]))
    for name, (host, port) in taken:
        if low <= port <= high and _hosts_overlap(host, rtp_host):
            problems.add("media.rtp_ports", f"{low}-{high} contains the port of {name} ({port})")


def _build(
    merged: dict[str, Any], problems: _Problems, base_dir: Path | None, source: str
) -> GatewayConfig | None:
    sections = {name: _convert_section(name, merged[name], problems) for name in _SECTIONS}
    sites = [_convert_site(i, raw, problems) for i, raw in enumerate(merged["sites"])]
    if not merged["sites"]:
        problems.add("sites", "at least one [[sites]] table is required")
    _finish_http(sections["http"], problems)
    _finish_sip(sections["sip"], base_dir, problems)
    _check_ports(sections, problems)
    first_index: dict[str, int] = {}
    for index, site in enumerate(sites):
        if site["id"] is _FAILED:
            continue
        if site["id"] in first_index:
            problems.add(
                f"sites[{index}].id",
                f"duplicate id {site['id']!r} (also sites[{first_index[site['id']]}].id)",
            )
        first_index.setdefault(site["id"], index)
        if site["origins"] == () and isinstance(sections["http"]["public_url"], str):
            site["origins"] = (_origin_of_url(sections["http"]["public_url"]),)
        for key in _INHERITED_SITE_KEYS:
            if site[key] is _INHERIT:
                site[key] = sections["limits"][key]
    if problems.lines:
        return None
    return GatewayConfig(
        http=HttpConfig(**sections["http"]),
        sip=SipConfig(**sections["sip"]),
        media=MediaConfig(**sections["media"]),
        ice=IceConfig(**sections["ice"]),
        demo=DemoConfig(**sections["demo"]),
        access=AccessConfig(**sections["access"]),
        limits=LimitsConfig(**sections["limits"]),
        log=LogConfig(**sections["log"]),
        callbacks=CallbacksConfig(_relative_path(sections["callbacks"]["database"], base_dir)),
        sites=tuple(SiteConfig(**site) for site in sites),
        source=source,
    )


def parse_config(
    text: str,
    env: Mapping[str, str] | None = None,
    *,
    source: str = "<config>",
    base_dir: Path | None = None,
) -> GatewayConfig:
    """The configuration from TOML `text` over the defaults, then `env` overrides.

    `env` None means no overrides (this function reads nothing but its arguments and the
    TLS files it checks). Relative TLS paths resolve against `base_dir` (else the working
    directory). Raises ConfigError listing every problem.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], source=source) from None
    problems = _Problems()
    merged = _merge(document, problems)
    _apply_env(merged, env or {}, problems)
    config = _build(merged, problems, base_dir, source)
    if config is None:
        raise ConfigError(problems.lines, source=source)
    return config


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """The configuration from the TOML file at `path` (None: the embedded defaults).

    `env` None means the process environment. Relative paths inside the file resolve
    against the file's directory.
    """
    environment = os.environ if env is None else env
    if path is None:
        return parse_config(DEFAULT_CONFIG, environment, source="<defaults>")
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([f"cannot read the config file: {reason}"], source=str(path)) from None
    return parse_config(text, environment, source=str(path), base_dir=path.parent)
