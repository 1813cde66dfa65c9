"""The gateway's configuration: a TOML file over embedded defaults, then environment overrides.

Loading runs in three steps, each collecting every problem it finds so that one start
reports them all:

1. merge: the file's tables over the embedded defaults (defaults.toml) key by key (`sites`
   is replaced whole); an unknown section or key is a problem, since a typo must not
   silently fall back;
2. environment: `GATEWAY_<SECTION>_<KEY>` and `GATEWAY_SITE_<ID>_<KEY>` replace raw values,
   converted from text by the type of the key they name;
3. validation: each key is converted to its useful type (addresses as (host, port), ranges
   as (low, high), timeouts as float seconds), then rules that span keys run.

Any problem raises one `ConfigError` naming each key path (`sites["shop"].hours.mon`: a
site by its id, or by its place in the file, from 0, when its id is missing, invalid or
repeated) and, for a value that came from the environment, the variable. Problems inside a
site's tables (`hours`, `callback`, `destinations`, `widget`) are each reported too.

Secrets (a site's password, an ICE server's credential) never appear in a repr, a str or an
error message.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import av

from gateway.config.email import EmailConfig
from gateway.config.schema import (
    AccessConfig,
    AdminConfig,
    ConfigError,
    DemoConfig,
    GatewayConfig,
    HttpConfig,
    IceConfig,
    IceServer,
    LimitsConfig,
    LogConfig,
    MediaConfig,
    NotificationsConfig,
    RingbackTone,
    SipConfig,
    SiteConfig,
    StorageConfig,
)
from gateway.config.values import (
    _BROWSER_CODECS,
    _INHERIT,
    _SITE_ID,
    Converter,
    _admin_users,
    _api_keys,
    _boolean,
    _caller_name,
    _candidate_networks,
    _challenge,
    _choice,
    _codec_list,
    _database_url,
    _directory,
    _dns_servers,
    _host,
    _host_addresses,
    _host_for_url,
    _host_port,
    _ice_port,
    _inheriting,
    _Invalid,
    _is_unspecified,
    _list,
    _max_checks,
    _member,
    _min_se,
    _networks,
    _no_controls,
    _node_name,
    _non_negative_number,
    _optional_email_address,
    _optional_host,
    _optional_host_port,
    _optional_listen,
    _optional_path,
    _optional_seconds,
    _optional_secret,
    _optional_sip_uri,
    _optional_sip_user,
    _optional_text,
    _origin_of_url,
    _origins,
    _port,
    _port_range,
    _positive_int,
    _positive_minutes,
    _positive_seconds,
    _pow_difficulty,
    _public_url,
    _redis_url,
    _register_expires,
    _retention_days,
    _routing,
    _session_interval,
    _sip_codecs,
    _sip_user,
    _site_id,
    _smtp_url,
    _split_host_port,
    _string,
    _token_lifetime,
    _token_secret,
    _turn_credential_lifetime,
    _type_name,
)
from gateway.sites.notifications import (
    DEFAULT_MAIL_EVENTS,
    parse_events,
    parse_health_interval,
    parse_recipients,
    parse_webhooks,
)
from gateway.sites.problems import unknown_key_reason
from gateway.sites.routing import (
    RingStrategy,
    SiteDestination,
    TargetPatterns,
    destination_patterns,
    parse_callback,
    parse_destinations,
    parse_fallback,
    parse_hours,
    parse_target_patterns,
)
from gateway.sites.widget import parse_widget
from sip_bridge import SipUri

# The embedded defaults: what runs without a file, and the base a file's keys replace.
DEFAULT_CONFIG = (Path(__file__).with_name("defaults.toml")).read_text(encoding="utf-8")

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
_ICE_SERVER_KEYS = ("urls", "username", "credential", "secret")


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
            raise _Invalid(unknown_key_reason(key, _ICE_SERVER_KEYS), f".{key}")
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
    try:
        secret = _no_controls(_string(item.get("secret", "")), secret=True) or None
    except _Invalid as exc:
        raise _Invalid(exc.reason, ".secret") from None
    turn = any(url.lower().startswith("turn") for url in checked)
    if secret is not None:
        if username or credential:
            raise _Invalid("give secret, or username and credential, not both")
        if not turn:
            raise _Invalid("secret is for turn:/turns: servers (the TURN REST API)")
    elif turn and not (username and credential):
        # Browsers refuse a TURN server without both (RTCPeerConnection throws).
        raise _Invalid("a turn:/turns: server needs secret, or username and credential")
    return IceServer(urls=checked, username=username, credential=credential, secret=secret)


def _ice_servers(value: object) -> tuple[IceServer, ...]:
    """Every server's problems are reported, not only the first server's."""
    servers = []
    problems: list[tuple[str, str]] = []
    for i, item in enumerate(_list(value)):
        try:
            servers.append(_ice_server(item))
        except _Invalid as exc:
            problems.append((f"[{i}]{exc.where}", exc.reason))
    if problems:
        raise _Invalid(problems[0][1], problems[0][0], tuple(problems))
    return tuple(servers)


def _voicemail_seconds(value: object) -> float:
    seconds = _positive_seconds(value)
    if not 3 <= seconds <= 600:
        raise _Invalid(f"must be 3-600 seconds, not {value!r}")
    return seconds


def _chat_timeout(value: object) -> float:
    seconds = _positive_seconds(value)
    if not 5 <= seconds <= 3600:
        raise _Invalid(f"must be 5-3600 seconds, not {value!r}")
    return seconds


def _precheck_duration(value: object) -> float:
    seconds = _positive_seconds(value)
    if not 3 <= seconds <= 60:
        raise _Invalid(f"must be 3-60 seconds (a check measures a few seconds), not {value!r}")
    return seconds


# --------------------------------------------------------------------------- keys

_LOG_LEVEL = _choice("debug", "info", "warning", "error")

# Every section key and its converter. The keys must match DEFAULT_CONFIG (a test checks).
_SECTIONS: dict[str, dict[str, Converter]] = {
    "http": {
        "listen": _host_port,
        "public_url": _public_url,
        "trusted_proxies": _networks,
        "connections_per_client": _positive_int,
        "sockets_per_client": _positive_int,
        "request_timeout": _positive_seconds,
    },
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
        "session_expires": _session_interval,
        "min_se": _min_se,
        "dns_servers": _dns_servers,
    },
    "media": {
        "rtp_ports": _port_range,
        "browser_codecs": _codec_list(_BROWSER_CODECS),
        "sip_codecs": _sip_codecs,
        "ringback": _ringback,
        "media_timeout": _positive_seconds,
        "rtp_latching": _choice("sdp", "any"),
        "native_relay": _boolean,
    },
    "ice": {
        "servers": _ice_servers,
        "host_addresses": _host_addresses,
        "port": _ice_port,
        "connect_timeout": _positive_seconds,
        "turn_credential_lifetime": _turn_credential_lifetime,
        "denied_candidate_networks": _candidate_networks,
        "max_checks_per_call": _max_checks,
    },
    "demo": {"enabled": _boolean, "sip_listen": _host_port},
    "access": {
        "token_secret": _token_secret,
        "token_lifetime": _token_lifetime,
        "pow_difficulty": _pow_difficulty,
        "tokens_per_client_minute": _positive_int,
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
        "prechecks_per_client_hour": _positive_int,
        "max_precheck_duration": _precheck_duration,
    },
    "log": {
        "level": _LOG_LEVEL,
        "library_level": _LOG_LEVEL,
        "format": _choice("text", "json"),
    },
    "email": {
        "smtp_url": _smtp_url,
        "from": _optional_email_address,
        "username": _optional_text,
        "password": _optional_secret,
    },
    "notifications": {"retry_backoff": _positive_seconds},
    "storage": {
        "state_directory": _directory,
        "database": _database_url,
        "redis": _redis_url,
        "node": _node_name,
    },
    "admin": {
        "api_keys": _api_keys,
        "users": _admin_users,
        "metrics_listen": _optional_listen,
        "session_lifetime": _positive_seconds,
    },
}

# Keys that moved: a file (or variable) still setting one gets told where it went.
_MOVED = {
    "callbacks.database": '[storage] database = "sqlite:///<file>" (one database for '
    "callbacks, call records and the admin side; docs/configuration.md)",
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
    "ring": (_member(RingStrategy), "sequential"),
    "ring_total": (_optional_seconds, 0),
    "hours": (_routing(parse_hours), {}),
    "fallback": (_routing(parse_fallback), "callback"),
    "voicemail_greeting": (_optional_path, ""),
    "voicemail_max_seconds": (_voicemail_seconds, 120),
    "chat": (_boolean, False),
    "chat_timeout": (_chat_timeout, 60),
    "messages_per_client_minute": (_positive_int, 10),
    "max_conversation_messages": (_positive_int, 100),
    "callback": (_routing(parse_callback), {}),
    "widget": (_routing(parse_widget), {}),
    "transfer_to": (_routing(parse_target_patterns), []),
    "register": (_boolean, False),
    "registrar": (_optional_sip_uri, ""),
    "register_expires": (_register_expires, 3600),
    "health_interval": (_routing(parse_health_interval), 30),
    "webhooks": (_routing(parse_webhooks), []),
    "notify_email": (_routing(parse_recipients), []),
    "notify_events": (_routing(parse_events), list(DEFAULT_MAIL_EVENTS)),
    "retention_days": (_retention_days, 90),
}


def site_labels(sites: Sequence[object]) -> list[str]:
    """How problems name each site: by its id (`sites["shop"]`) when that is a valid id no
    other site has, else by its place in the file (`sites[3]`, counted from 0)."""
    ids = [site.get("id") if isinstance(site, dict) else None for site in sites]
    labels = []
    for index, site_id in enumerate(ids):
        usable = isinstance(site_id, str) and _SITE_ID.fullmatch(site_id) is not None
        if usable and ids.count(site_id) == 1:
            labels.append(f'sites["{site_id}"]')
        else:
            labels.append(f"sites[{index}]")
    return labels


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
        """The converted value, or _FAILED after recording why (every problem of a table)."""
        try:
            return convert(value)
        except _Invalid as exc:
            for where, reason in exc.more or ((exc.where, exc.reason),):
                self.add(path, reason, where)
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
        elif name in _SECTIONS or any(moved.startswith(f"{name}.") for moved in _MOVED):
            if not isinstance(value, dict):
                problems.add(name, f"expected a table ([{name}]), got {_type_name(value)}")
                continue
            for key, item in value.items():
                if f"{name}.{key}" in _MOVED:
                    problems.add(f"{name}.{key}", f"moved: use {_MOVED[f'{name}.{key}']}")
                elif key in _SECTIONS.get(name, {}):
                    merged[name][key] = item
                else:
                    problems.add(
                        f"{name}.{key}", unknown_key_reason(key, list(_SECTIONS.get(name, {})))
                    )
        else:
            close = difflib.get_close_matches(name, known_sections, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.add(name, f"unknown section{hint}")
    demo = document.get("demo")
    if "sites" in document and not (isinstance(demo, dict) and "enabled" in demo):
        # A file with its own sites runs the demo phone only if it asks for it: a
        # production gateway must not carry a test phone nobody configured. A file without
        # [[sites]] keeps the demo site, and with it the phone that site rings.
        merged["demo"]["enabled"] = False
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


def _apply_env(
    merged: dict[str, Any], env: Mapping[str, str], problems: _Problems, labels: list[str]
) -> None:
    for variable in sorted(env):
        if not variable.startswith(_ENV_PREFIX):
            continue
        if variable.startswith(_SITE_ENV_PREFIX):
            _apply_site_env(merged["sites"], variable, env[variable], problems, labels)
            continue
        section, _, key = variable[len(_ENV_PREFIX) :].lower().partition("_")
        if f"{section}.{key}" in _MOVED:
            problems.lines.append(f"{variable}: moved: use {_MOVED[f'{section}.{key}']}")
            continue
        if section not in _SECTIONS:
            problems.lines.append(
                f"{variable}: unknown section {section!r} (known: {', '.join(_SECTIONS)}, "
                "or SITE_<ID>_<KEY>)"
            )
            continue
        if key not in _SECTIONS[section]:
            reason = unknown_key_reason(key, list(_SECTIONS[section]))
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
    sites: list[dict[str, Any]], variable: str, text: str, problems: _Problems, labels: list[str]
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
        problems.lines.append(f"{variable}: {_site_env_hint(sites, rest)}")
        return
    if len(matches) > 1:
        named = ", ".join(f"{labels[i]}.{key}" for i, key in matches)
        problems.lines.append(f"{variable}: ambiguous, matches {named}")
        return
    index, key = matches[0]
    path = f"{labels[index]}.{key}"
    problems.from_env[path] = variable
    like = _SITE_KEYS[key][1]
    if like is _INHERIT:
        like = _DEFAULT_DOCUMENT["limits"][key]
    try:
        sites[index][key] = _from_env_text(text, like)
    except _Invalid as exc:
        problems.add(path, exc.reason)
        sites[index][key] = _FAILED


def _site_env_hint(sites: list[dict[str, Any]], rest: str) -> str:
    """Why GATEWAY_SITE_<rest> names nothing: with the site key meant when the id matched."""
    keys = [k for k in _SITE_KEYS if k != "id"]
    for site in sites:
        site_id = site.get("id")
        token = site_id.upper().replace("-", "_") + "_" if isinstance(site_id, str) else None
        if token and rest.upper().startswith(token):
            key = rest[len(token) :].lower()
            if key == "id":
                return "a site's id cannot be changed from the environment"
            return f"site {site_id!r} has no key {key!r}: {unknown_key_reason(key, keys)}"
    return f"no site id and key match it (GATEWAY_SITE_<ID>_<KEY>, site keys: {', '.join(keys)})"


def _convert_section(name: str, raw: dict[str, Any], problems: _Problems) -> dict[str, Any]:
    converted = {}
    for key, convert in _SECTIONS[name].items():
        value = raw[key]
        converted[key] = (
            _FAILED if value is _FAILED else problems.convert(f"{name}.{key}", convert, value)
        )
    return converted


def _convert_site(label: str, raw: dict[str, Any], problems: _Problems) -> dict[str, Any]:
    converted: dict[str, Any] = {}
    for key in raw:
        if key not in _SITE_KEYS:
            problems.add(f"{label}.{key}", unknown_key_reason(key, list(_SITE_KEYS)))
    for key, (convert, default) in _SITE_KEYS.items():
        path = f"{label}.{key}"
        if key not in raw and default is None:
            problems.add(path, "required")
            converted[key] = _FAILED
            continue
        value = raw.get(key, default)
        converted[key] = _FAILED if value is _FAILED else problems.convert(path, convert, value)
    for present, missing in (("password", "username"), ("username", "password")):
        if converted[present] not in (None, _FAILED) and converted[missing] is None:
            problems.add(f"{label}.{missing}", f"required when {present} is set")
    _resolve_destinations(label, converted, problems)
    _finish_transfers_and_registration(label, converted, problems)
    return converted


def _resolve_destinations(label: str, site: dict[str, Any], problems: _Problems) -> None:
    """One `destination` (with the site's credentials and proxy) or a `destinations` list."""
    single, many = site["destination"], site["destinations"]
    if _FAILED in (single, many):
        return
    if single is not None and many:
        problems.add(f"{label}.destinations", "give destination or destinations, not both")
    elif single is None and not many:
        problems.add(f"{label}.destination", "required (or a destinations list)")
    elif single is not None:
        credentials = site["username"], site["password"]
        if _FAILED not in credentials and site["proxy"] is not _FAILED:
            site["destinations"] = (SiteDestination(single, *credentials, site["proxy"]),)
    else:
        site["destination"] = many[0].uri


def _finish_transfers_and_registration(
    label: str, site: dict[str, Any], problems: _Problems
) -> None:
    """`transfer_to` defaults to the site's destinations; `register` needs credentials and
    a registrar (default: the destination's host)."""
    destinations = site["destinations"]
    if site["transfer_to"] is not _FAILED and not site["transfer_to"].patterns:
        site["transfer_to"] = (
            destination_patterns(destinations) if destinations is not _FAILED else TargetPatterns()
        )
    if site["register"] is not True:
        return
    if site["username"] is None or site["password"] is None:
        problems.add(f"{label}.register", "needs the site's username and password")
    if site["registrar"] is None and _ok(site["destination"]) and site["destination"] is not None:
        destination = site["destination"]
        site["registrar"] = SipUri(
            destination.scheme, None, None, destination.host, destination.port
        )


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


def _audio_file(text: str, base_dir: Path | None) -> Path:
    """An existing file that holds audio FFmpeg can read (WAV, Ogg, MP3, FLAC...)."""
    path = _existing_file(text, base_dir)
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise _Invalid(f"no audio in {str(path)!r}")
    except av.error.FFmpegError as exc:
        raise _Invalid(f"cannot read audio from {str(path)!r}: {exc.strerror}") from None
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
                f"sip.{key}", lambda text: _existing_file(str(text), base_dir), c[key]
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
    ice = sections["ice"]
    if not _ok(ice["port"], ice["host_addresses"]) or not ice["port"]:
        return
    ice_port, ice_hosts = ice["port"], ice["host_addresses"]
    if low <= ice_port <= high and any(_hosts_overlap(h, rtp_host) for h in ice_hosts):
        problems.add("ice.port", f"{ice_port} is inside media.rtp_ports ({low}-{high})")
    for name, (host, port) in taken:
        if port == ice_port and any(_hosts_overlap(h, host) for h in ice_hosts):
            problems.add("ice.port", f"{ice_port} is the port of {name}")


def _check_email(
    email: dict[str, Any], sites: list[dict[str, Any]], labels: list[str], problems: _Problems
) -> None:
    """Mail needs a server and a sender; a site that wants mail needs the server."""
    if email["smtp_url"] not in (None, _FAILED) and email["from"] is None:
        problems.add("email.from", "required when email.smtp_url is set (the sender address)")
    if email["smtp_url"] is None:
        for label, site in zip(labels, sites, strict=True):
            if site.get("notify_email") not in (None, (), _FAILED):
                problems.add(
                    f"{label}.notify_email",
                    "needs [email] smtp_url (the server the mails go through)",
                )


def _check_nodes(sections: dict[str, Any], problems: _Problems) -> None:
    """Several nodes (Redis shared) sign call tokens with one secret: a page's token
    request and its websocket may reach different nodes."""
    redis, secret = sections["storage"]["redis"], sections["access"]["token_secret"]
    if redis not in (None, _FAILED) and secret is None:
        problems.add(
            "access.token_secret",
            "required with storage.redis: every node must sign call tokens with the same "
            "secret (best given as GATEWAY_ACCESS_TOKEN_SECRET)",
        )


def _build(
    merged: dict[str, Any],
    problems: _Problems,
    base_dir: Path | None,
    source: str,
    labels: list[str],
) -> GatewayConfig | None:
    sections = {name: _convert_section(name, merged[name], problems) for name in _SECTIONS}
    sites = [_convert_site(labels[i], raw, problems) for i, raw in enumerate(merged["sites"])]
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
        if site["voicemail_greeting"] not in (None, _FAILED):
            site["voicemail_greeting"] = problems.convert(
                f"{labels[index]}.voicemail_greeting",
                lambda value: _audio_file(str(value), base_dir),
                site["voicemail_greeting"],
            )
    _check_email(sections["email"], sites, labels, problems)
    _check_nodes(sections, problems)
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
        storage=StorageConfig(**sections["storage"]),
        email=EmailConfig.build(
            sections["email"]["smtp_url"],
            sections["email"]["from"],
            sections["email"]["username"],
            sections["email"]["password"],
        ),
        notifications=NotificationsConfig(**sections["notifications"]),
        admin=AdminConfig(**sections["admin"]),
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
    labels = site_labels(merged["sites"])
    _apply_env(merged, env or {}, problems, labels)
    config = _build(merged, problems, base_dir, source, labels)
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
