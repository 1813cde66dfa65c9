"""Value converters of the configuration: each takes a raw TOML value and returns its typed
value (addresses as (host, port), ranges as (low, high), timeouts as float seconds) or
raises `_Invalid` saying why. None of them echoes a value of a secret key."""

from __future__ import annotations

import enum
import ipaddress
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import argon2

from gateway.config.email import SmtpServer
from gateway.sites.notifications import email_address
from gateway.sites.problems import SettingsProblems
from gateway.storage.engine import DatabaseUrl
from gateway.storage.redis_server import RedisUrl
from sip_bridge import SipParseError, SipUri, g729_missing, parse_sip_uri

Converter = Callable[[object], Any]
_E = TypeVar("_E", bound=enum.StrEnum)


class _Invalid(Exception):
    """A value failed its conversion; `where` extends the key path (`[2].urls`). A table
    with several problems gives them all in `more`, each (where, reason)."""

    def __init__(
        self, reason: str, where: str = "", more: tuple[tuple[str, str], ...] = ()
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.where = where
        self.more = more


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


def _member(kind: type[_E]) -> Callable[[object], _E]:
    """One of a closed choice defined as a StrEnum (say, `RingStrategy`)."""
    allowed = ", ".join(member.value for member in kind)

    def convert(value: object) -> _E:
        text = _string(value).strip().lower()
        try:
            return kind(text)
        except ValueError:
            raise _Invalid(f"must be one of {allowed}, not {value!r}") from None

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


def _ice_port(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"expected a port number (0: none), got {_type_name(value)}")
    if not 0 <= value <= 65535:
        raise _Invalid(f"must be 1-65535, or 0 for a port per call, not {value}")
    return value


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


_SIP_CODECS = {"pcmu": "PCMU", "pcma": "PCMA", "g722": "G722", "g729": "G729", "opus": "opus"}
_BROWSER_CODECS = {"pcmu": "PCMU", "pcma": "PCMA", "opus": "opus"}


def _sip_codecs(value: object) -> tuple[str, ...]:
    """The SIP leg's codecs; G.729 only where bcg729 is installed (an option, not a default)."""
    codecs = _codec_list(_SIP_CODECS)(value)
    if "G729" in codecs:
        missing = g729_missing()
        if missing is not None:
            raise _Invalid(f"G729 is listed but cannot be used: {missing}")
    return codecs


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
            text = _string(item).strip()
            network = ipaddress.ip_network(text, strict=False)
        except _Invalid as exc:
            raise _Invalid(exc.reason, f"[{i}]") from None
        except ValueError:
            raise _Invalid(f"not an IP address or network: {text!r}", f"[{i}]") from None
        if str(network) in result:
            raise _Invalid(f"duplicate network {str(network)!r}", f"[{i}]")
        result.append(str(network))
    return tuple(result)


OWN_NETWORKS = "own"  # in ice.denied_candidate_networks: this machine's networks


def _candidate_networks(value: object) -> tuple[str, ...]:
    """ice.denied_candidate_networks: networks, and "own" (expanded by the loader)."""
    result: list[str] = []
    for i, item in enumerate(_list(value)):
        if isinstance(item, str) and item.strip().lower() == OWN_NETWORKS:
            name = OWN_NETWORKS
        else:
            try:
                name = _networks([item])[0]
            except _Invalid as exc:
                raise _Invalid(exc.reason, f"[{i}]") from None
        if name in result:
            raise _Invalid(f"duplicate {name!r}", f"[{i}]")
        result.append(name)
    return tuple(result)


def _turn_credential_lifetime(value: object) -> float:
    seconds = _positive_seconds(value)
    if seconds > 86400:
        raise _Invalid(f"a TURN credential lives at most 86400 seconds, not {value!r}")
    return seconds


def _max_checks(value: object) -> int:
    checks = _positive_int(value)
    if checks > 1000:
        raise _Invalid(f"must be 1-1000, not {checks}")
    return checks


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
    """A converter of one of a site's tables (gateway.sites), each of its problems told
    under the table's key path."""

    def converter(value: object) -> Any:
        try:
            return convert(value)
        except SettingsProblems as exc:
            where, reason = exc.problems[0]
            raise _Invalid(reason, where, exc.problems) from None
        except ValueError as exc:
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


def _directory(value: object) -> Path:
    """A directory the gateway writes to; `~` expanded, a relative one kept relative (to
    the working directory of the process)."""
    text = _no_controls(_string(value).strip())
    if not text:
        raise _Invalid("must name a directory")
    try:
        return Path(text).expanduser()
    except RuntimeError:  # ~user of an unknown user
        raise _Invalid(f"cannot expand '~' in {text!r}") from None


def _caller_name(value: object) -> str | None:
    text = _optional_text(value)
    if text is not None and len(text) > 100:
        raise _Invalid("longer than 100 characters")
    return text


def _session_interval(value: object) -> int:
    """RFC 4028 seconds: 0 (none asked), else 90 up to a day."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"expected whole seconds, got {_type_name(value)}")
    if value != 0 and not 90 <= value <= 86400:
        raise _Invalid(f"must be 0 or 90-86400 seconds (RFC 4028: no less than 90), not {value}")
    return value


def _min_se(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 90 <= value <= 86400:
        raise _Invalid(f"must be 90-86400 seconds (RFC 4028: no less than 90), not {value!r}")
    return value


def _dns_servers(value: object) -> tuple[tuple[str, int], ...]:
    """`["127.0.0.1", "192.0.2.53:5353"]`: IP addresses with an optional port (53), one
    port for all (the resolver asks them on one port)."""
    servers = []
    for index, item in enumerate(_list(value)):
        text = _string(item).strip()
        host_text, port_text = _split_host_port(text)
        host_text = host_text.strip("[]")
        try:
            ipaddress.ip_address(host_text)
        except ValueError:
            raise _Invalid(f"expected an IP address[:port], got {text!r}", f"[{index}]") from None
        port = 53 if port_text is None else _port(port_text, text)
        servers.append((host_text, port))
    if len({port for _, port in servers}) > 1:
        raise _Invalid("every DNS server must listen on the same port")
    return tuple(servers)


def _register_expires(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 60 <= value <= 86400:
        raise _Invalid(f"must be 60-86400 seconds, not {value!r}")
    return value


def _smtp_url(value: object) -> SmtpServer | None:
    """`smtp://[user:password@]host[:port]` (STARTTLS when offered) or `smtps://...` (TLS
    from the start); "" is None (no mail). The password is never echoed."""
    text = _no_controls(_string(value), secret=True).strip()
    if not text:
        return None
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise _Invalid("not an smtp:// or smtps:// URL (check the host and port)") from None
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps") or not parts.hostname:
        raise _Invalid("expected smtp://host[:port] or smtps://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise _Invalid("an SMTP URL takes no path, query or fragment")
    host_text = parts.hostname
    host = _host(f"[{host_text}]" if ":" in host_text else host_text)
    return SmtpServer(
        host=host,
        port=port or (465 if scheme == "smtps" else 25),
        implicit_tls=scheme == "smtps",
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def _optional_email_address(value: object) -> str | None:
    text = _string(value).strip()
    if not text:
        return None
    try:
        return email_address(text, "from")
    except ValueError as exc:
        raise _Invalid(str(exc)) from None


def _database_url(value: object) -> DatabaseUrl:
    text = _no_controls(_string(value), secret=True).strip()
    try:
        return DatabaseUrl.parse(text)
    except ValueError as exc:
        raise _Invalid(str(exc)) from None


def _redis_url(value: object) -> RedisUrl | None:
    """`redis://...` or `rediss://...`; "" is None (no Redis: counters per machine)."""
    text = _no_controls(_string(value), secret=True).strip()
    if not text:
        return None
    try:
        return RedisUrl.parse(text)
    except ValueError as exc:
        raise _Invalid(str(exc)) from None


_NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,47}")


def _node_name(value: object) -> str | None:
    """A node's name: 1-48 letters, digits, '.', '_' or '-'; "" is None (derived)."""
    text = _string(value).strip()
    if not text:
        return None
    if not _NODE_NAME.fullmatch(text):
        raise _Invalid(
            f"must be 1-48 letters, digits, '.', '_' or '-' (starting with a letter or digit), "
            f"not {text[:60]!r}"
        )
    return text


MIN_API_KEY_CHARS = 24


def _api_keys(value: object) -> tuple[str, ...]:
    keys: list[str] = []
    for i, item in enumerate(_list(value)):
        try:
            key = _no_controls(_string(item), secret=True).strip()
        except _Invalid as exc:
            raise _Invalid(exc.reason, f"[{i}]") from None
        if len(key) < MIN_API_KEY_CHARS or not key.isascii() or " " in key:
            raise _Invalid(
                f"an API key is at least {MIN_API_KEY_CHARS} ASCII characters without spaces "
                "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(32))')",
                f"[{i}]",
            )
        keys.append(key)
    return tuple(keys)


_ADMIN_USER = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")


def _admin_users(value: object) -> tuple[tuple[str, str], ...]:
    users: list[tuple[str, str]] = []
    for i, item in enumerate(_list(value)):
        if not isinstance(item, dict):
            raise _Invalid(
                "expected a table ([[admin.users]]) with name and password_hash", f"[{i}]"
            )
        unknown = sorted(set(item) - {"name", "password_hash"})
        if unknown:
            raise _Invalid(f"unknown key {unknown[0]!r} (known: name, password_hash)", f"[{i}]")
        name, hashed = item.get("name"), item.get("password_hash")
        if not isinstance(name, str) or not _ADMIN_USER.match(name):
            raise _Invalid("name: 1-64 letters, digits or . _ @ -", f"[{i}]")
        if any(name == known for known, _ in users):
            raise _Invalid(f"duplicate user {name!r}", f"[{i}]")
        if not isinstance(hashed, str) or not hashed.startswith("$argon2id$"):
            raise _Invalid(
                "password_hash: an Argon2id hash ($argon2id$...); make one with "
                "`python -m gateway hash-password`",
                f"[{i}]",
            )
        try:
            argon2.extract_parameters(hashed)
        except argon2.exceptions.InvalidHashError:
            raise _Invalid("password_hash: not a valid Argon2id hash", f"[{i}]") from None
        users.append((name, hashed))
    return tuple(users)


def _optional_listen(value: object) -> tuple[str, int] | None:
    if value == "":
        return None
    return _host_port(value)


def _retention_days(value: object) -> int:
    days = _positive_int(value)
    if days > 36500:
        raise _Invalid("at most 36500 days")
    return days
