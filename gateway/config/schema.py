"""The configuration as typed, frozen objects: one dataclass per section, `SiteConfig` per
site, `GatewayConfig` for the whole. Secrets (a site's password, an ICE server's credential,
the token secret) never appear in a repr."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from gateway.api import SiteInfo
from gateway.config.email import EmailConfig
from gateway.config.values import _Invalid, _origin, _origin_of_url
from gateway.sites.hours import BusinessHours
from gateway.sites.notifications import SiteNotifications, WebhookEndpoint
from gateway.sites.routing import (
    CallbackPolicy,
    RingStrategy,
    SiteDestination,
    TargetPatterns,
)
from gateway.sites.widget import WidgetSettings
from gateway.storage.engine import DatabaseUrl
from gateway.storage.redis_server import RedisUrl
from sip_bridge import SipUri


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
    # Per visitor address and worker (gateway.http.client_limits), trusted proxies apart.
    connections_per_client: int  # open TCP connections
    sockets_per_client: int  # open socket.io connections
    request_timeout: float  # seconds to send a request's head, and its body

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
    session_expires: int  # RFC 4028 interval asked for; 0: none
    min_se: int  # smallest interval accepted from a peer
    dns_servers: tuple[tuple[str, int], ...]  # empty: the system's resolvers


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
    native_relay: bool  # G.711 relayed (or Opus<->G.711 transcoded) in C while steady


@dataclass(frozen=True, slots=True)
class IceServer:
    """One STUN/TURN server, shaped like RTCIceServer (and aiortc's), with static
    credentials (`username`, `credential`: the gateway's own agent only) or the TURN REST
    API shared `secret` (short-lived credentials made per use, gateway.media.ice_servers)."""

    _SECRET_FIELDS = frozenset({"credential", "secret"})

    urls: tuple[str, ...]
    username: str | None = None
    credential: str | None = None
    secret: str | None = None

    __repr__ = _redacted_repr


@dataclass(frozen=True, slots=True)
class IceConfig:
    servers: tuple[IceServer, ...]
    host_addresses: tuple[str, ...]
    # UDP port of every browser leg's ICE (worker i: port + i) on each host address;
    # 0: aioice binds an ephemeral port per call.
    port: int
    connect_timeout: float  # seconds the browser's media path may take; then the call ends
    turn_credential_lifetime: float  # seconds a page's TURN credential is valid
    # Networks (normalized, "own" expanded at load) no signalled candidate may point into.
    denied_candidate_networks: tuple[str, ...]
    max_checks_per_call: int  # connectivity checks the gateway's agent starts per call


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
    tokens_per_client_minute: int  # POST /api/token per visitor address (and worker)

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
    # Pre-call checks (gateway.calls.precheck): one at a time per visitor address.
    prechecks_per_client_hour: int
    max_precheck_duration: float


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: str  # debug | info | warning | error: the gateway's own loggers
    library_level: str  # the same, for the libraries' loggers (aioice, aiohttp, ...)
    format: str  # text | json


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """Where state lives: files (ledger, journals, metrics), the database, and the Redis
    that several nodes share; and this node's name among them."""

    _SECRET_FIELDS = frozenset({"database", "redis"})  # URLs may carry a password

    state_directory: Path  # the instance's state files; relative: to the working directory
    database: DatabaseUrl
    redis: RedisUrl | None  # None: the limits' facts per machine (the ledger file)
    node: str | None  # None: derived (gateway.process.state.node_name)

    __repr__ = _redacted_repr


@dataclass(frozen=True, slots=True)
class AdminConfig:
    """The site owner's side (docs/admin.md): API keys, page users, metrics listener."""

    _SECRET_FIELDS = frozenset({"api_keys", "users"})

    api_keys: tuple[str, ...]  # Bearer keys of /api/admin/... and /metrics; empty: no API
    users: tuple[tuple[str, str], ...]  # (name, Argon2id hash); empty: no admin page
    metrics_listen: tuple[str, int] | None  # /metrics without a key there; None: not served
    session_lifetime: float  # seconds an admin page login lasts

    __repr__ = _redacted_repr

    @property
    def enabled(self) -> bool:
        return bool(self.api_keys or self.users)


@dataclass(frozen=True, slots=True)
class NotificationsConfig:
    """How the outbox delivers webhooks and mails (gateway.notify)."""

    retry_backoff: float  # seconds before the first retry; doubled each time, up to an hour


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
    ring: RingStrategy
    ring_total: float | None  # overall ring time; None: no limit beyond ring_timeout
    hours: BusinessHours | None  # None: always open
    # What the page offers when nobody can answer (busy, no answer, down, closed), in order:
    # voicemail, text (a written message), callback.
    fallback: tuple[str, ...]
    callback: CallbackPolicy | None  # None: the site takes no callbacks
    widget: WidgetSettings  # the visitor's widget: label, colours, position, language
    # Where an operator may send the call (REFER, 3xx): default, the site's destinations.
    transfer_to: TargetPatterns
    register: bool  # keep a registration with `registrar` (a trunk or PBX)
    registrar: SipUri | None  # default: the destination's host (when register is on)
    register_expires: int  # seconds asked for each registration
    # The site owner's side (gateway.sites.notifications): destination checks, webhooks
    # (their secrets are not in a repr), mail recipients and the events mailed.
    health_interval: float  # seconds between OPTIONS to each destination; 0: off
    webhooks: tuple[WebhookEndpoint, ...]
    notify_email: tuple[str, ...]
    notify_events: tuple[str, ...]
    retention_days: int  # call records (and finished callbacks) are kept this long
    # Voicemail (gateway.calls.voicemail): the greeting (None: a tone) and the longest message.
    voicemail_greeting: Path | None
    voicemail_max_seconds: float
    # Chat (gateway.chat): visitor messages to the destinations as SIP MESSAGE; how long to
    # wait for a destination's reply before offering to leave a message; the bounds.
    chat: bool
    chat_timeout: float
    messages_per_client_minute: int
    max_conversation_messages: int

    __repr__ = _redacted_repr

    @property
    def notifications(self) -> SiteNotifications:
        return SiteNotifications(self.webhooks, self.notify_email, self.notify_events)

    @property
    def public_info(self) -> SiteInfo:
        """What the page and signaling may know: never destination, proxy or credentials."""
        return SiteInfo(
            id=self.id,
            origins=self.origins,
            widget=self.widget,
            hours=self.hours,
            fallback=tuple(
                choice for choice in self.fallback if choice != "callback" or self.callback
            ),
            callback_countries=self.callback.countries if self.callback is not None else None,
            voicemail_max_seconds=self.voicemail_max_seconds,
            chat=self.chat,
            chat_timeout=self.chat_timeout,
        )

    @property
    def credentials(self) -> tuple[str, str] | None:
        """(username, password) for 401/407 challenges, or None."""
        if self.username is None or self.password is None:
            return None
        return self.username, self.password

    @property
    def address_of_record(self) -> SipUri | None:
        """Who the site registers as (`register`): its username at the registrar."""
        if not self.register or self.registrar is None or self.username is None:
            return None
        return SipUri(self.registrar.scheme, self.username, None, self.registrar.host)

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
    storage: StorageConfig
    admin: AdminConfig
    email: EmailConfig
    notifications: NotificationsConfig
    sites: tuple[SiteConfig, ...]
    source: str = "<defaults>"

    def site(self, site_id: str) -> SiteConfig | None:
        for site in self.sites:
            if site.id == site_id:
                return site
        return None
