"""The gateway's configuration: defaults, every validation rule, environment overrides, secrets."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.api import SiteInfo
from gateway.config import (
    DEFAULT_CONFIG,
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
    load_config,
    parse_config,
)
from gateway.config.legs import browser_leg_settings
from sip_bridge.rtp import g729
from sip_bridge.uri import parse_sip_uri
from tests.support.audio import write_tone_wav

DOCS = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
SECRET = "Zq9-very-secret-pw"
TURN_SECRET = "Tn7-turn-credential"

SECTION_CLASSES = {
    "http": HttpConfig,
    "sip": SipConfig,
    "media": MediaConfig,
    "ice": IceConfig,
    "demo": DemoConfig,
    "access": AccessConfig,
    "limits": LimitsConfig,
    "log": LogConfig,
    "storage": StorageConfig,
    "notifications": NotificationsConfig,
    "admin": AdminConfig,
}
# [email] becomes an EmailConfig (server and sender) built from these keys.
EMAIL_KEYS = ["smtp_url", "from", "username", "password"]

SITE = """
[[sites]]
id = "shop"
destination = "sip:desk@pbx.example.com"
origins = ["https://shop.example.com"]
"""


def problems_of(text: str, env: dict[str, str] | None = None) -> str:
    """The error's message, one problem a line (source prefix and header dropped)."""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, env)
    error = caught.value
    for problem in error.problems:
        assert problem in str(error)
    return "\n".join(error.problems)


# ----------------------------------------------------------------------------- defaults


def test_no_file_gives_the_embedded_defaults() -> None:
    config = load_config(None, env={})
    assert config == parse_config(DEFAULT_CONFIG, source="<defaults>")
    assert config.source == "<defaults>"
    assert config.http.listen == ("127.0.0.1", 8080)
    assert config.http.public_url == "http://127.0.0.1:8080"
    assert config.sip.listen == ("127.0.0.1", 5070)
    assert config.sip.public_address == ("127.0.0.1", 5070)
    assert config.sip.transport == "udp"
    assert config.sip.outbound_proxy is None
    assert config.sip.user == "gateway"
    assert config.media.rtp_ports == (20000, 20999)
    assert config.media.browser_codecs == ("PCMU", "opus")
    assert config.media.sip_codecs == ("PCMU", "PCMA", "G722", "opus")
    assert (config.sip.session_expires, config.sip.min_se, config.sip.dns_servers) == (1800, 90, ())
    assert config.media.ringback == RingbackTone(frequencies=(425,), on_ms=1000, off_ms=4000)
    assert config.media.media_timeout == 30.0
    assert isinstance(config.media.media_timeout, float)
    assert config.ice.servers == ()
    assert config.ice.host_addresses == ("127.0.0.1",)
    assert config.demo == DemoConfig(enabled=True, sip_listen=("127.0.0.1", 5080))
    assert config.limits == LimitsConfig(
        max_calls=50,
        max_calls_per_client=2,
        max_site_calls=5,
        calls_per_client_15min=5,
        calls_per_client_hour=10,
        calls_per_client_day=20,
        max_call_duration=1800.0,
        daily_call_minutes=300.0,
        prechecks_per_client_hour=10,
        max_precheck_duration=15.0,
    )
    assert config.access == AccessConfig(
        token_secret=None, token_lifetime=60.0, pow_difficulty=16, tokens_per_client_minute=20
    )
    assert config.http.connections_per_client == 32
    assert config.http.sockets_per_client == 10
    assert config.http.request_timeout == 10.0
    assert config.ice.turn_credential_lifetime == 600.0
    assert config.ice.denied_candidate_networks == ("own", "169.254.0.0/16", "fe80::/10")
    assert config.ice.max_checks_per_call == 32
    assert config.log.level == "info"
    (site,) = config.sites
    assert site.id == "demo"
    assert site.destination == parse_sip_uri("sip:operator@127.0.0.1:5080")
    # Empty origins in the file: the gateway's own pages only.
    assert site.origins == ("http://127.0.0.1:8080",)
    assert site.ring_timeout == 30.0
    assert site.credentials is None
    # Trying it: the demo site's visitors may call again and again.
    limits = (site.calls_per_client_15min, site.calls_per_client_hour, site.calls_per_client_day)
    assert limits == (100, 200, 500)
    assert site.widget.precheck  # and may test the microphone and connection first
    assert config.site("demo") is site
    assert config.site("nope") is None


def test_an_empty_file_keeps_every_default() -> None:
    assert parse_config("") == parse_config(DEFAULT_CONFIG)


def test_a_file_overrides_only_the_keys_it_names() -> None:
    config = parse_config('[http]\nlisten = "127.0.0.1:9000"\n')
    assert config.http.listen == ("127.0.0.1", 9000)
    assert config.http.public_url == "http://127.0.0.1:9000"
    # The demo site follows the gateway's own origin.
    assert config.sites[0].origins == ("http://127.0.0.1:9000",)
    assert config.sip == parse_config("").sip


def test_file_sites_replace_the_demo_site() -> None:
    config = parse_config(SITE)
    assert [site.id for site in config.sites] == ["shop"]


def test_every_key_is_a_field_and_is_documented() -> None:
    defaults = tomllib.loads(DEFAULT_CONFIG)
    docs = DOCS.read_text(encoding="utf-8")
    for section, cls in SECTION_CLASSES.items():
        keys = list(defaults[section])
        assert keys == [f.name for f in dataclasses.fields(cls)], section
        for key in keys:
            assert f"`{section}.{key}`" in docs, f"{section}.{key} missing from {DOCS.name}"
    assert list(defaults["email"]) == EMAIL_KEYS
    for key in EMAIL_KEYS:
        assert f"`email.{key}`" in docs, f"email.{key} missing from {DOCS.name}"
    site_keys = [f.name for f in dataclasses.fields(SiteConfig)]
    for key in site_keys:
        assert f"`sites[].{key}`" in docs, f"sites[].{key} missing from {DOCS.name}"
    assert set(defaults) == {*SECTION_CLASSES, "email", "sites"}


def test_the_examples_in_the_docs_are_valid() -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    assert len(blocks) >= 2
    for block in blocks:
        # The site example keeps its password in the environment, as the docs advise.
        env = {"GATEWAY_SITE_SHOP_PASSWORD": SECRET} if 'id = "shop"' in block else {}
        parse_config(block, env)


# ----------------------------------------------------------------------------- full file


FULL = f"""
[http]
listen = "[::1]:8443"
public_url = "HTTPS://Call.Example.com:443/c2c/"

[sip]
listen = "0.0.0.0:5060"
public_address = "203.0.113.7"
transport = "tcp"
outbound_proxy = "sip:proxy.example.com;lr"
user = "web-gw"
from_domain = "Trunk.Example.com"

[media]
rtp_ports = "30000-30001"
browser_codecs = ["opus", "pcma"]
sip_codecs = ["g722", "PCMU"]
ringback = "440+480/2000/4000"
media_timeout = 12.5

[ice]
servers = [
  {{ urls = ["stun:stun.example.com:3478"] }},
  {{ urls = "turns:turn.example.com:5349?transport=tcp", username = "u", \
credential = "{TURN_SECRET}" }},
  "stun:[2001:db8::1]",
  {{ urls = "turn:relay.example.com", secret = "{TURN_SECRET}" }},
]
host_addresses = ["203.0.113.7", "2001:db8::7"]
turn_credential_lifetime = 300
denied_candidate_networks = ["10.0.0.0/8", "own", "fd00::/8"]
max_checks_per_call = 20

[demo]
enabled = false
sip_listen = "127.0.0.1:5060"

[limits]
max_calls = 8
max_calls_per_client = 1

[log]
level = "DEBUG"

[[sites]]
id = "shop-1"
destination = "sip:+4930123456@trunk.example.com;user=phone"
origins = ["https://Shop.Example.com:443", "http://localhost:3000"]
ring_timeout = 45
username = "acct"
password = "{SECRET}"
proxy = "sip:edge.example.com:5080;transport=tcp"
caller_name = "Shop visitor"
from_user = "4930999"
"""


def test_a_full_file_parses_into_useful_types() -> None:
    config = parse_config(FULL, source="full.toml")
    assert config.source == "full.toml"
    assert config.http.listen == ("::1", 8443)
    assert config.http.public_url == "https://call.example.com/c2c"
    assert config.http.public_origin == "https://call.example.com"
    assert config.sip.listen == ("0.0.0.0", 5060)
    assert config.sip.public_address == ("203.0.113.7", 5060)  # port from listen
    assert config.sip.transport == "tcp"
    assert config.sip.outbound_proxy == parse_sip_uri("sip:proxy.example.com;lr")
    assert config.sip.from_domain == "trunk.example.com"
    assert config.media.rtp_ports == (30000, 30001)
    assert config.media.browser_codecs == ("opus", "PCMA")
    assert config.media.sip_codecs == ("G722", "PCMU")
    assert config.media.ringback == RingbackTone((440, 480), 2000, 4000)
    assert config.media.media_timeout == 12.5
    assert config.ice.servers == (
        IceServer(urls=("stun:stun.example.com:3478",)),
        IceServer(
            urls=("turns:turn.example.com:5349?transport=tcp",),
            username="u",
            credential=TURN_SECRET,
        ),
        IceServer(urls=("stun:[2001:db8::1]",)),
        IceServer(urls=("turn:relay.example.com",), secret=TURN_SECRET),
    )
    assert config.ice.host_addresses == ("203.0.113.7", "2001:db8::7")
    assert config.ice.turn_credential_lifetime == 300.0
    assert config.ice.denied_candidate_networks == ("10.0.0.0/8", "own", "fd00::/8")
    assert config.ice.max_checks_per_call == 20
    assert config.demo.enabled is False
    assert config.limits.max_calls == 8
    assert config.log.level == "debug"
    site = config.site("shop-1")
    assert site is not None
    assert site.origins == ("https://shop.example.com", "http://localhost:3000")
    assert site.ring_timeout == 45.0
    assert site.credentials == ("acct", SECRET)
    assert site.proxy == parse_sip_uri("sip:edge.example.com:5080;transport=tcp")
    assert site.caller_name == "Shop visitor"
    assert site.from_user == "4930999"
    assert str(site.destination) == "sip:+4930123456@trunk.example.com;user=phone"


def test_public_address_with_a_port_keeps_it() -> None:
    config = parse_config('[sip]\npublic_address = "[2001:db8::5]:15060"\n')
    assert config.sip.public_address == ("2001:db8::5", 15060)


def test_site_public_info_holds_nothing_private() -> None:
    site = parse_config(FULL).sites[0]
    info = site.public_info
    assert info == SiteInfo(id="shop-1", origins=site.origins)
    shown = repr(info)
    for private in ("trunk.example.com", "edge.example.com", "acct", SECRET):
        assert private not in shown


def test_site_allows_only_its_origins() -> None:
    site = parse_config(FULL).sites[0]
    assert site.allows_origin("https://shop.example.com")
    assert site.allows_origin("https://SHOP.example.com:443")
    assert not site.allows_origin("http://shop.example.com")
    assert not site.allows_origin("https://evil.example.com")
    assert not site.allows_origin("null")
    assert not site.allows_origin("")


# ----------------------------------------------------------------------------- validation
# Each case: a file, the key path the message must name, and words of the reason.

INVALID = [
    # host:port
    ('[http]\nlisten = "127.0.0.1"', "http.listen", "expected host:port"),
    ('[http]\nlisten = "127.0.0.1:0"', "http.listen", "port must be 1-65535"),
    ('[http]\nlisten = "127.0.0.1:65536"', "http.listen", "port must be 1-65535"),
    ('[http]\nlisten = "127.0.0.1:http"', "http.listen", "port must be 1-65535"),
    ('[http]\nlisten = "127.0.0.1:\u00b2"', "http.listen", "port must be 1-65535"),
    ('[http]\nlisten = ":8080"', "http.listen", "expected host:port"),
    ("[http]\nlisten = 8080", "http.listen", "expected a string, got integer"),
    ('[sip]\nlisten = "::1:5070"', "sip.listen", "IPv6 address must be in brackets"),
    ('[sip]\nlisten = "[::1:5070"', "sip.listen", "unclosed '['"),
    ('[sip]\nlisten = "[::g]:5070"', "sip.listen", "not an IPv6 address"),
    ('[sip]\nlisten = "[::1]x:5070"', "sip.listen", "junk after ']'"),
    ('[sip]\nlisten = "300.1.1.1:5070"', "sip.listen", "not an IPv4 address"),
    ('[sip]\nlisten = "bad_host:5070"', "sip.listen", "not a host name or address"),
    ('[demo]\nsip_listen = "127.0.0.1:5070"', "demo.sip_listen", "same address as sip.listen"),
    ('[http]\nlisten = "0.0.0.0:8080"', "http.public_url", "required when http.listen"),
    ('[sip]\nlisten = "[::]:5070"', "sip.public_address", "required when sip.listen"),
    ('[sip]\npublic_address = "0.0.0.0"', "sip.public_address", "cannot be announced"),
    ('[sip]\npublic_address = "1.2.3.4:99999"', "sip.public_address", "port must be"),
    ('[sip]\nfrom_domain = "no such"', "sip.from_domain", "not a host name"),
    # URLs and origins
    ('[http]\npublic_url = "ftp://x.example"', "http.public_url", "http:// or https://"),
    ('[http]\npublic_url = "https://x.example/?a=1"', "http.public_url", "no query"),
    ('[http]\npublic_url = "https://u:p@x.example"', "http.public_url", "no user or password"),
    ('[http]\npublic_url = "https://0.0.0.0"', "http.public_url", "no address a browser"),
    (
        SITE.replace('"https://shop.example.com"', '"https://shop.example.com/path"'),
        'sites["shop"].origins[0]',
        "without a path",
    ),
    (
        SITE.replace('"https://shop.example.com"', '"shop.example.com"'),
        'sites["shop"].origins[0]',
        "not a origin",
    ),
    (SITE.replace('"https://shop.example.com"', '"*"'), 'sites["shop"].origins[0]', "not a origin"),
    (
        SITE.replace('"https://shop.example.com"', '"https://a.example:0"'),
        'sites["shop"].origins[0]',
        "port must be",
    ),
    (
        SITE.replace(
            '["https://shop.example.com"]', '["https://a.example", "https://A.example:443"]'
        ),
        'sites["shop"].origins[1]',
        "duplicate origin",
    ),
    (
        SITE.replace('["https://shop.example.com"]', '"https://a.example"'),
        'sites["shop"].origins',
        "expected an array",
    ),
    # SIP URIs and users
    (
        SITE.replace("sip:desk@pbx.example.com", "foo"),
        'sites["shop"].destination',
        "not a SIP URI: 'foo'",
    ),
    (
        SITE.replace("sip:desk@pbx.example.com", "tel:+123"),
        'sites["shop"].destination',
        "not a SIP URI",
    ),
    (
        SITE.replace("sip:desk@pbx.example.com", "sip:desk@pbx.example.com:\u00b2"),
        'sites["shop"].destination',
        "not a SIP URI",
    ),
    (
        SITE.replace("sip:desk@pbx.example.com", "sip:desk:pw@pbx.example.com"),
        'sites["shop"].destination',
        "password in the URI",
    ),
    ('[sip]\noutbound_proxy = "proxy.example.com"', "sip.outbound_proxy", "not a SIP URI"),
    (SITE + 'proxy = "sip:edge example"', 'sites["shop"].proxy', "not a SIP URI"),
    ('[sip]\nuser = ""', "sip.user", "must not be empty"),
    ('[sip]\nuser = "a b"', "sip.user", "not a valid SIP user part"),
    ('[sip]\nuser = "a@b"', "sip.user", "not a valid SIP user part"),
    (SITE + 'from_user = "x:y"', 'sites["shop"].from_user', "not a valid SIP user part"),
    ('[sip]\ntransport = "sctp"', "sip.transport", "one of udp, tcp, tls"),
    # port range
    ('[media]\nrtp_ports = "20001-20999"', "media.rtp_ports", "even port"),
    ('[media]\nrtp_ports = "20000-20000"', "media.rtp_ports", "at least one even/odd pair"),
    ('[media]\nrtp_ports = "20000-10000"', "media.rtp_ports", "at least one even/odd pair"),
    ('[media]\nrtp_ports = "0-100"', "media.rtp_ports", "1-65535"),
    ('[media]\nrtp_ports = "20000-70000"', "media.rtp_ports", "1-65535"),
    ('[media]\nrtp_ports = "20000"', "media.rtp_ports", "expected a port range"),
    (
        '[media]\nrtp_ports = "5000-5099"\n[sip]\nlisten = "127.0.0.1:5070"',
        "media.rtp_ports",
        "contains the port of sip.listen",
    ),
    ('[media]\nrtp_ports = "5000-5099"', "media.rtp_ports", "contains the port of demo.sip_listen"),
    # codecs
    ('[media]\nbrowser_codecs = ["G722"]', "media.browser_codecs[0]", "unknown codec 'G722'"),
    ('[media]\nsip_codecs = ["speex"]', "media.sip_codecs[0]", "unknown codec 'speex'"),
    ("[sip]\nsession_expires = 30", "sip.session_expires", "no less than 90"),
    ("[sip]\nmin_se = 60", "sip.min_se", "no less than 90"),
    ('[sip]\ndns_servers = ["dns.example"]', "sip.dns_servers[0]", "IP address"),
    ('[sip]\ndns_servers = ["127.0.0.1:53", "[::1]:5353"]', "sip.dns_servers", "same port"),
    ('[media]\nsip_codecs = ["PCMU", "pcmu"]', "media.sip_codecs[1]", "listed twice"),
    ("[media]\nsip_codecs = []", "media.sip_codecs", "at least one"),
    ("[media]\nsip_codecs = [0]", "media.sip_codecs[0]", "unknown codec 0"),
    ('[media]\nsip_codecs = "PCMU"', "media.sip_codecs", "expected an array"),
    # ringback
    ('[media]\nringback = "425/1000"', "media.ringback", "Hz[+Hz]/on ms/off ms"),
    ('[media]\nringback = "425+450+500/1000/4000"', "media.ringback", "Hz[+Hz]/on ms/off ms"),
    ('[media]\nringback = "4000/1000/4000"', "media.ringback", "20-3999 Hz"),
    ('[media]\nringback = "10/1000/4000"', "media.ringback", "20-3999 Hz"),
    ('[media]\nringback = "425/0/4000"', "media.ringback", "at least 1 ms"),
    # positive numbers
    ("[media]\nmedia_timeout = 0", "media.media_timeout", "positive number"),
    ("[media]\nmedia_timeout = -3", "media.media_timeout", "positive number"),
    ("[media]\nmedia_timeout = nan", "media.media_timeout", "positive number"),
    ("[media]\nmedia_timeout = inf", "media.media_timeout", "positive number"),
    ('[media]\nmedia_timeout = "30"', "media.media_timeout", "expected a number"),
    (SITE + "ring_timeout = 0", 'sites["shop"].ring_timeout', "positive number"),
    (SITE + "ring_timeout = true", 'sites["shop"].ring_timeout', "got boolean"),
    ("[limits]\nmax_calls = 0", "limits.max_calls", "at least 1"),
    ("[limits]\nmax_calls_per_client = 1.5", "limits.max_calls_per_client", "expected an integer"),
    ('[demo]\nenabled = "yes"', "demo.enabled", "expected true or false"),
    ('[log]\nlevel = "loud"', "log.level", "one of debug, info"),
    # ICE
    ('[ice]\nservers = ["http://stun.example.com"]', "ice.servers[0]", "must start with stun:"),
    ('[ice]\nservers = ["stun://stun.example.com"]', "ice.servers[0]", "no '//'"),
    ('[ice]\nservers = ["stun:"]', "ice.servers[0]", "without a host"),
    ('[ice]\nservers = ["stun:x.example:99999"]', "ice.servers[0]", "port must be"),
    ('[ice]\nservers = ["stun:x.example?transport=udp"]', "ice.servers[0]", "only turn:"),
    (
        '[ice]\nservers = [{urls = "turn:x.example", username = "u", credential = "c"}, '
        '{urls = ["turn:x.example?transport=sctp"], username = "u", credential = "c"}]',
        "ice.servers[1].urls",
        "transport=udp or",
    ),
    ('[ice]\nservers = [{urls = "turn:x.example"}]', "ice.servers[0]", "username and credential"),
    (
        '[ice]\nservers = [{urls = "stun:x.example", secret = "s"}]',
        "ice.servers[0]",
        "turn:/turns:",
    ),
    (
        '[ice]\nservers = [{urls = "turn:x.example", secret = "s", username = "u"}]',
        "ice.servers[0]",
        "not both",
    ),
    ("[ice]\nturn_credential_lifetime = 0", "ice.turn_credential_lifetime", "positive"),
    ("[ice]\nturn_credential_lifetime = 90000", "ice.turn_credential_lifetime", "at most"),
    (
        '[ice]\ndenied_candidate_networks = ["10.0.0.0/33"]',
        "ice.denied_candidate_networks[0]",
        "not an IP",
    ),
    (
        '[ice]\ndenied_candidate_networks = ["own", "Own"]',
        "ice.denied_candidate_networks[1]",
        "duplicate",
    ),
    ("[ice]\nmax_checks_per_call = 0", "ice.max_checks_per_call", "at least 1"),
    ("[http]\nconnections_per_client = 0", "http.connections_per_client", "at least 1"),
    ("[http]\nsockets_per_client = 1.5", "http.sockets_per_client", "expected an integer"),
    ("[http]\nrequest_timeout = -1", "http.request_timeout", "positive"),
    ("[access]\ntokens_per_client_minute = 0", "access.tokens_per_client_minute", "at least 1"),
    ("[ice]\nservers = [{urls = []}]", "ice.servers[0].urls", "at least one URL"),
    ('[ice]\nservers = [{username = "u"}]', "ice.servers[0].urls", "required"),
    (
        '[ice]\nservers = [{urls = "stun:x.example", user = "u"}]',
        "ice.servers[0].user",
        "did you mean 'username'",
    ),
    ("[ice]\nservers = [3]", "ice.servers[0]", "expected a table or a URL"),
    ('[ice]\nservers = ["stun:a.example", 3, 4]', "ice.servers[2]", "expected a table or a URL"),
    ("[ice]\nhost_addresses = []", "ice.host_addresses", "at least one"),
    ('[ice]\nhost_addresses = ["example.com"]', "ice.host_addresses[0]", "not an IP address"),
    ('[ice]\nhost_addresses = ["::"]', "ice.host_addresses[0]", "cannot be announced"),
    ('[ice]\nhost_addresses = ["10.0.0.1", "10.0.0.1"]', "ice.host_addresses[1]", "duplicate"),
    # sites
    ("sites = []", "sites", "at least one [[sites]]"),
    ("sites = 3", "sites", "expected an array of tables"),
    (SITE.replace('"shop"', '"Shop"'), "sites[0].id", "a-z, 0-9 and '-'"),
    (SITE.replace('"shop"', '"' + "a" * 41 + '"'), "sites[0].id", "1-40 characters"),
    (SITE.replace('"shop"', '""'), "sites[0].id", "1-40 characters"),
    (SITE + SITE, "sites[1].id", "duplicate id 'shop'"),
    ('[[sites]]\nid = "x"\norigins = []', 'sites["x"].destination', "required"),
    ('[[sites]]\ndestination = "sip:a@b.example"', "sites[0].id", "required"),
    (SITE + 'password = "p"', 'sites["shop"].username', "required when password is set"),
    (SITE + 'username = "u"', 'sites["shop"].password', "required when username is set"),
    (SITE + 'caller_name = "a\\nb"', 'sites["shop"].caller_name', "control characters"),
    (SITE + 'caller_name = "' + "x" * 101 + '"', 'sites["shop"].caller_name', "longer than 100"),
    # unknown keys and sections
    ('[http]\nlisen = "127.0.0.1:8080"', "http.lisen", "did you mean 'listen'"),
    ("[htp]\n", "htp", "unknown section; did you mean 'http'"),
    ("[foo]\n", "foo", "unknown section"),
    ("http = 3", "http", "expected a table"),
    (SITE + "colour = 1", 'sites["shop"].colour', "unknown key"),
    (SITE + "pasword = 'x'", 'sites["shop"].pasword', "did you mean 'password'"),
    # TLS
    ('[sip]\ntransport = "tls"', "sip.tls_certificate", "required when sip.transport is 'tls'"),
    ('[sip]\ntransport = "tls"', "sip.tls_private_key", "required when sip.transport is 'tls'"),
    (
        '[sip]\ntls_ca_certificates = "/nonexistent/ca.pem"',
        "sip.tls_ca_certificates",
        "no such file",
    ),
    ('[sip]\ntls_certificate = "~nosuchuser-zz/gw.pem"', "sip.tls_certificate", "cannot expand"),
]


@pytest.mark.parametrize(("text", "key", "reason"), INVALID)
def test_each_rule_names_the_key(text: str, key: str, reason: str) -> None:
    message = problems_of(text)
    lines = message.splitlines()
    assert any(line.startswith(f"{key}: ") and reason in line for line in lines), message


def test_g729_is_an_option_of_the_sip_leg_where_bcg729_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = parse_config('[media]\nsip_codecs = ["g729", "PCMU"]')
    assert config.media.sip_codecs == ("G729", "PCMU")
    # The same file on a machine without bcg729: dlopen really fails on a name not there.
    monkeypatch.setattr(g729, "_LIBRARY", "libbcg729-absent.so.0")
    g729._library.cache_clear()
    try:
        message = problems_of('[media]\nsip_codecs = ["G729", "PCMU"]')
        assert message.startswith("media.sip_codecs: G729 is listed but cannot be used")
        assert "libbcg729-0" in message
        assert parse_config('[media]\nsip_codecs = ["PCMU"]').media.sip_codecs == ("PCMU",)
    finally:
        g729._library.cache_clear()


def test_a_syntax_error_is_a_config_error_with_its_position() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config('[http]\nlisten = "127.0.0.1:8080\n', source="gw.toml")
    assert str(caught.value).startswith("gw.toml: not valid TOML")
    assert "line 2" in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    text = """
[http]
listen = "nohost"
[media]
rtp_ports = "1-2"
sip_codecs = ["GSM"]
[[sites]]
id = "a"
destination = "foo"
[[sites]]
id = "b"
destination = "sip:b@x.example"
origins = ["ftp://x"]
"""
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="gw.toml")
    error = caught.value
    assert error.source == "gw.toml"
    assert len(error.problems) == 5
    keys = [problem.split(":")[0] for problem in error.problems]
    assert keys == [
        "http.listen",
        "media.rtp_ports",
        "media.sip_codecs[0]",
        'sites["a"].destination',
        'sites["b"].origins[0]',
    ]
    assert str(error).startswith("gw.toml: 5 problems:\n  http.listen: ")


def test_config_error_is_a_value_error() -> None:
    assert issubclass(ConfigError, ValueError)
    error = ConfigError("sip.user: must not be empty", source="gw.toml")
    assert error.problems == ("sip.user: must not be empty",)
    assert str(error) == "gw.toml: sip.user: must not be empty"


def test_tls_files_resolve_against_the_config_file(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "gw.pem").write_text("cert")
    (tmp_path / "certs" / "gw.key").write_text("key")
    path = tmp_path / "gateway.toml"
    path.write_text(
        '[sip]\ntransport = "tls"\ntls_certificate = "certs/gw.pem"\n'
        'tls_private_key = "certs/gw.key"\n',
        encoding="utf-8",
    )
    config = load_config(path, env={})
    assert config.source == str(path)
    assert config.sip.transport == "tls"
    assert config.sip.tls_certificate == tmp_path / "certs" / "gw.pem"
    assert config.sip.tls_private_key == tmp_path / "certs" / "gw.key"
    assert config.sip.tls_ca_certificates is None

    (tmp_path / "certs" / "gw.key").unlink()
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert "sip.tls_private_key: no such file" in str(caught.value)


def test_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "missing.toml", env={})
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'[[sites]]\nid = "caf\xe9"\n')
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(latin1, env={})


# ----------------------------------------------------------------------------- environment


def test_env_overrides_section_keys() -> None:
    env = {
        "GATEWAY_HTTP_LISTEN": "127.0.0.1:8081",
        "GATEWAY_SIP_PUBLIC_ADDRESS": "198.51.100.4:5999",
        "GATEWAY_SIP_TRANSPORT": "tcp",
        "GATEWAY_MEDIA_SIP_CODECS": "pcma, g722",
        "GATEWAY_MEDIA_BROWSER_CODECS": '["opus"]',
        "GATEWAY_MEDIA_MEDIA_TIMEOUT": "7.5",
        "GATEWAY_DEMO_ENABLED": "false",
        "GATEWAY_LIMITS_MAX_CALLS": "3",
        "GATEWAY_ICE_SERVERS": "stun:stun1.example.com,stun:stun2.example.com:3478",
        "GATEWAY_ICE_HOST_ADDRESSES": "192.0.2.1",
        "PATH": "/usr/bin",  # not ours: ignored
    }
    config = parse_config("", env)
    assert config.http.listen == ("127.0.0.1", 8081)
    assert config.sip.public_address == ("198.51.100.4", 5999)
    assert config.sip.transport == "tcp"
    assert config.media.sip_codecs == ("PCMA", "G722")
    assert config.media.browser_codecs == ("opus",)
    assert config.media.media_timeout == 7.5
    assert config.demo.enabled is False
    assert config.limits.max_calls == 3
    assert [s.urls for s in config.ice.servers] == [
        ("stun:stun1.example.com",),
        ("stun:stun2.example.com:3478",),
    ]
    assert config.ice.host_addresses == ("192.0.2.1",)


def test_env_json_gives_ice_servers_with_credentials() -> None:
    servers = [{"urls": ["turn:turn.example.com"], "username": "u", "credential": TURN_SECRET}]
    config = parse_config("", {"GATEWAY_ICE_SERVERS": json.dumps(servers)})
    assert config.ice.servers[0].credential == TURN_SECRET


def test_env_overrides_win_over_the_file() -> None:
    config = parse_config('[http]\nlisten = "127.0.0.1:9000"', {"GATEWAY_HTTP_LISTEN": "[::1]:80"})
    assert config.http.listen == ("::1", 80)
    assert config.http.public_url == "http://[::1]"


def test_env_gives_a_site_its_password() -> None:
    text = SITE.replace('"shop"', '"shop-eu"') + 'username = "acct"\n'
    env = {"GATEWAY_SITE_SHOP_EU_PASSWORD": SECRET, "GATEWAY_SITE_SHOP_EU_RING_TIMEOUT": "12"}
    site = parse_config(text, env).sites[0]
    assert site.credentials == ("acct", SECRET)
    assert site.ring_timeout == 12.0


def test_env_site_lists_and_the_demo_site() -> None:
    env = {
        "GATEWAY_SITE_DEMO_ORIGINS": "http://127.0.0.1:8080, https://demo.example.com",
        "GATEWAY_SITE_DEMO_USERNAME": "u",
        "GATEWAY_SITE_DEMO_PASSWORD": SECRET,
    }
    site = load_config(None, env).site("demo")
    assert site is not None
    assert site.origins == ("http://127.0.0.1:8080", "https://demo.example.com")
    assert site.credentials == ("u", SECRET)


def test_env_reaches_the_right_site_when_ids_share_a_prefix() -> None:
    text = SITE + SITE.replace('"shop"', '"shop-ring"')
    env = {"GATEWAY_SITE_SHOP_RING_RING_TIMEOUT": "5", "GATEWAY_SITE_SHOP_RING_TIMEOUT": "9"}
    config = parse_config(text, env)
    assert config.site("shop-ring").ring_timeout == 5.0
    assert config.site("shop").ring_timeout == 9.0


def test_load_config_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_LOG_LEVEL", "warning")
    assert load_config().log.level == "warning"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("GATEWAY_HTTP_LISTN", "127.0.0.1:1", "GATEWAY_HTTP_LISTN: http.listn: unknown key"),
        ("GATEWAY_HTTPS_LISTEN", "127.0.0.1:1", "GATEWAY_HTTPS_LISTEN: unknown section 'https'"),
        ("GATEWAY_FOO", "1", "GATEWAY_FOO: unknown section 'foo'"),
        ("GATEWAY_SITE_NOPE_PASSWORD", "x", "GATEWAY_SITE_NOPE_PASSWORD: no site id and key"),
        (
            "GATEWAY_SITE_DEMO_PASWORD",
            "x",
            "GATEWAY_SITE_DEMO_PASWORD: site 'demo' has no key 'pasword': unknown key; "
            "did you mean 'password'?",
        ),
        (
            "GATEWAY_SITE_DEMO_ID",
            "other",
            "GATEWAY_SITE_DEMO_ID: a site's id cannot be changed from the environment",
        ),
        ("GATEWAY_SITES", "[]", "GATEWAY_SITES: unknown section 'sites'"),
        ("GATEWAY_HTTP_LISTEN", "nohost", "http.listen (from GATEWAY_HTTP_LISTEN): expected"),
        ("GATEWAY_DEMO_ENABLED", "maybe", "demo.enabled (from GATEWAY_DEMO_ENABLED): expected"),
        (
            "GATEWAY_LIMITS_MAX_CALLS",
            "many",
            "limits.max_calls (from GATEWAY_LIMITS_MAX_CALLS): not a number",
        ),
        (
            "GATEWAY_MEDIA_SIP_CODECS",
            "[PCMU",
            "media.sip_codecs (from GATEWAY_MEDIA_SIP_CODECS): not a JSON array",
        ),
        (
            "GATEWAY_MEDIA_SIP_CODECS",
            "GSM",
            "media.sip_codecs[0] (from GATEWAY_MEDIA_SIP_CODECS): unknown codec 'GSM'",
        ),
        (
            "GATEWAY_SITE_DEMO_RING_TIMEOUT",
            "-1",
            'sites["demo"].ring_timeout (from GATEWAY_SITE_DEMO_RING_TIMEOUT): must be a positive',
        ),
    ],
)
def test_bad_env_names_the_variable(variable: str, value: str, expected: str) -> None:
    message = problems_of("", {variable: value})
    assert expected in message


def test_an_env_name_matching_two_sites_is_an_error() -> None:
    # No site key extends another by "_<key>", so only a repeated id makes a name ambiguous.
    message = problems_of(SITE + SITE, {"GATEWAY_SITE_SHOP_PASSWORD": "x"})
    assert "GATEWAY_SITE_SHOP_PASSWORD: ambiguous, matches sites[0].password, " in message
    assert "sites[1].id: duplicate id 'shop'" in message


# ----------------------------------------------------------------------------- secrets


def every_config_object(config: GatewayConfig) -> list[object]:
    found: list[object] = []

    def walk(value: object) -> None:
        if dataclasses.is_dataclass(value):
            found.append(value)
            for f in dataclasses.fields(value):
                walk(getattr(value, f.name))
        elif isinstance(value, tuple):
            for item in value:
                walk(item)

    walk(config)
    return found


def test_secrets_never_appear_in_repr_or_str() -> None:
    config = parse_config(FULL)
    objects = every_config_object(config)
    assert any(isinstance(o, SiteConfig) for o in objects)
    assert any(isinstance(o, IceServer) and o.credential for o in objects)
    for obj in objects:
        for text in (repr(obj), str(obj), f"{obj}", f"{obj!r}"):
            assert SECRET not in text
            assert TURN_SECRET not in text
    site_repr = repr(config.sites[0])
    assert "password=***" in site_repr
    assert "username='acct'" in site_repr
    assert "credential=***" in repr(config.ice.servers[1])
    assert "secret=***" in repr(config.ice.servers[3])
    assert "password=None" in repr(parse_config("").sites[0])


def test_secrets_never_appear_in_error_messages() -> None:
    text = SITE + f'password = "{SECRET}\\u0007"\n'
    text += '[ice]\nservers = [{urls = "turn:t.example", username = "u", '
    text += f'credential = "{TURN_SECRET}\\n"}}]\n'
    message = problems_of(text, {"GATEWAY_SITE_SHOP_PASSWORD": SECRET + "\x01"})
    assert 'sites["shop"].password (from GATEWAY_SITE_SHOP_PASSWORD): contains control' in message
    assert "ice.servers[0].credential: contains control characters" in message
    assert SECRET not in message
    assert TURN_SECRET not in message
    text = f'[ice]\nservers = [{{urls = "turn:u.example", secret = "{TURN_SECRET}\\n"}}]\n'
    message = problems_of(text)
    assert "ice.servers[0].secret: contains control characters" in message
    assert TURN_SECRET not in message


TOKEN_SECRET = "Tk5-token-secret-of-at-least-32-chars"


def test_a_site_takes_the_limit_defaults_and_may_override_each() -> None:
    text = f"""
[access]
token_secret = "{TOKEN_SECRET}"
token_lifetime = 30
pow_difficulty = 20
[limits]
max_site_calls = 8
calls_per_client_day = 50
daily_call_minutes = 90.5
{SITE}
max_site_calls = 2
max_call_duration = 600
challenge = "pow"
[[sites]]
id = "other"
destination = "sip:desk@pbx.example.com"
"""
    config = parse_config(text)
    assert config.access == AccessConfig(
        token_secret=TOKEN_SECRET,
        token_lifetime=30.0,
        pow_difficulty=20,
        tokens_per_client_minute=20,
    )
    shop, other = config.sites
    assert (shop.max_site_calls, shop.max_call_duration, shop.challenge) == (2, 600.0, "pow")
    assert (shop.calls_per_client_day, shop.daily_call_minutes) == (50, 90.5)
    assert (other.max_site_calls, other.max_call_duration, other.challenge) == (8, 1800.0, None)
    assert (other.calls_per_client_15min, other.calls_per_client_hour) == (5, 10)


def test_env_sets_limits_of_the_gateway_and_of_a_site() -> None:
    env = {
        "GATEWAY_LIMITS_DAILY_CALL_MINUTES": "45",
        "GATEWAY_SITE_SHOP_MAX_CALL_DURATION": "90.5",
        "GATEWAY_SITE_SHOP_CALLS_PER_CLIENT_15MIN": "2",
        "GATEWAY_SITE_SHOP_CHALLENGE": "pow",
        "GATEWAY_ACCESS_TOKEN_SECRET": TOKEN_SECRET,
        "GATEWAY_HTTP_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8",
    }
    config = parse_config(SITE, env)
    (site,) = config.sites
    assert (site.max_call_duration, site.calls_per_client_15min) == (90.5, 2)
    assert (site.daily_call_minutes, site.challenge) == (45.0, "pow")
    assert config.access.token_secret == TOKEN_SECRET
    assert config.http.trusted_proxies == ("127.0.0.1/32", "10.0.0.0/8")
    message = problems_of(SITE, {"GATEWAY_SITE_SHOP_MAX_SITE_CALLS": "many"})
    assert 'sites["shop"].max_site_calls (from GATEWAY_SITE_SHOP_MAX_SITE_CALLS): not a number' in (
        message
    )


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ('[access]\ntoken_secret = "short"', "access.token_secret", "at least 32 characters"),
        ("[access]\ntoken_lifetime = 7200", "access.token_lifetime", "at most 3600 seconds"),
        ("[access]\ntoken_lifetime = 0", "access.token_lifetime", "positive number of seconds"),
        ("[access]\npow_difficulty = 33", "access.pow_difficulty", "1-32 bits"),
        ("[limits]\nmax_site_calls = 0", "limits.max_site_calls", "at least 1"),
        ("[limits]\ncalls_per_client_hour = 1.5", "limits.calls_per_client_hour", "an integer"),
        ("[limits]\nmax_call_duration = -1", "limits.max_call_duration", "positive number of se"),
        ("[limits]\ndaily_call_minutes = 0", "limits.daily_call_minutes", "number of minutes"),
        ("[limits]\nmax_precheck_duration = 120", "limits.max_precheck_duration", "3-60 seconds"),
        ("[limits]\nprechecks_per_client_hour = 0", "limits.prechecks_per_client_hour", "least 1"),
        (SITE + "calls_per_client_day = 0", 'sites["shop"].calls_per_client_day', "at least 1"),
        (SITE + 'challenge = "Pow!"', 'sites["shop"].challenge', "none, pow, or the name"),
        ('[http]\ntrusted_proxies = ["proxy"]', "http.trusted_proxies[0]", "not an IP address"),
        (
            '[http]\ntrusted_proxies = ["10.0.0.1", "10.0.0.1/32"]',
            "http.trusted_proxies[1]",
            "duplicate network",
        ),
    ],
)
def test_limits_and_access_rules_name_the_key(text: str, key: str, reason: str) -> None:
    message = problems_of(text)
    assert any(line.startswith(f"{key}: ") and reason in line for line in message.splitlines()), (
        message
    )


def test_the_token_secret_never_appears_in_repr_or_errors() -> None:
    config = parse_config(f'[access]\ntoken_secret = "{TOKEN_SECRET}"\n')
    assert TOKEN_SECRET not in repr(config)
    assert "token_secret=***" in repr(config.access)
    short = "Tk5-short-secret"
    message = problems_of("", {"GATEWAY_ACCESS_TOKEN_SECRET": short})
    assert "access.token_secret (from GATEWAY_ACCESS_TOKEN_SECRET)" in message
    assert short not in message


# ----------------------------------------------------------------------------- robustness
# Whatever a file or the environment holds, the only exception is ConfigError.

toml_scalars = (
    st.text(max_size=30)
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats()
    | st.booleans()
    | st.sampled_from(["127.0.0.1:1", "[::1]:2", "sip:a@b", "stun:x", "PCMU", "1-2", "1/1/1"])
    # Unicode digits pass str.isdigit() and \\d but not always int().
    | st.sampled_from(
        [
            "127.0.0.1:\u00b2",
            "sip:a@b:\u00b2",
            "stun:x:\u00b2",
            "\u0664-\u0665",
            "\u0664\u0662\u0665/1/1",
            "http://a.example:\u00b2",
            "~nosuchuser-zz/x",
        ]
    )
)
toml_values = st.recursive(
    toml_scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["urls", "username", "credential", "x"]), inner, max_size=3
        )
    ),
    max_leaves=6,
)
SECTION_KEYS = [
    (section, key)
    for section, table in tomllib.loads(DEFAULT_CONFIG).items()
    if section != "sites"
    for key in table
]
SITE_KEYS = [f.name for f in dataclasses.fields(SiteConfig)]


def toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON string escapes are TOML basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"


def parses_or_config_error(text: str, env: dict[str, str] | None = None) -> None:
    try:
        config = parse_config(text, env)
    except ConfigError as exc:
        assert exc.problems
        return
    assert isinstance(config, GatewayConfig)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from(SECTION_KEYS), toml_values)
def test_any_section_value_is_accepted_or_a_config_error(
    section_key: tuple[str, str], value: object
) -> None:
    section, key = section_key
    parses_or_config_error(f"[{section}]\n{key} = {toml_value(value)}\n")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from(SITE_KEYS), toml_values)
def test_any_site_value_is_accepted_or_a_config_error(key: str, value: object) -> None:
    parses_or_config_error(SITE + f"{key} = {toml_value(value)}\n")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.sampled_from(
        [f"GATEWAY_{s.upper()}_{k.upper()}" for s, k in SECTION_KEYS]
        + [f"GATEWAY_SITE_DEMO_{k.upper()}" for k in SITE_KEYS]
        + ["GATEWAY_", "GATEWAY_SITE_", "GATEWAY_SITE_DEMO_"]
    ),
    st.text(max_size=40) | st.sampled_from(["[", "[1, {}]", '{"a": 1}', "1e999", "-0", "nan"]),
)
def test_any_env_value_is_accepted_or_a_config_error(variable: str, value: str) -> None:
    parses_or_config_error("", {variable: value})


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_is_accepted_or_a_config_error(text: str) -> None:
    parses_or_config_error(text)


def test_message_lines_always_start_with_a_key_path() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(FULL.replace('"tcp"', '"x"') + "[zzz]\n", source="gw.toml")
    lines = str(caught.value).splitlines()
    assert lines[0] == "gw.toml: 2 problems:"
    assert lines[1:] == [
        "  zzz: unknown section",
        "  sip.transport: must be one of udp, tcp, tls, not 'x'",
    ]


# ----------------------------------------------------------------------------- issue 13
def test_fallbacks_are_a_list_in_the_order_offered_and_a_string_still_works() -> None:
    site = 'id = "s"\ndestination = "sip:a@pbx.example"\n'

    def fallback(value: str) -> tuple[str, ...]:
        return parse_config(f"[[sites]]\n{site}fallback = {value}\n").sites[0].fallback

    assert fallback('["voicemail", "callback"]') == ("voicemail", "callback")
    assert fallback('["text", "Voicemail"]') == ("text", "voicemail")
    assert fallback('"callback"') == ("callback",)
    assert fallback('"message"') == fallback("[]") == ()  # nothing but the reason
    problems = problems_of(f'[[sites]]\n{site}fallback = ["voicemail", "fax", "voicemail"]\n')
    assert 'sites["s"].fallback[1]: must be one of voicemail, text, callback' in problems
    assert "sites[\"s\"].fallback[2]: 'voicemail' is listed twice" in problems
    assert "fallback: must be one of" in problems_of(f'[[sites]]\n{site}fallback = "fax"\n')


def test_a_voicemail_greeting_must_be_audio_found_beside_the_config(tmp_path: Path) -> None:
    write_tone_wav(tmp_path / "hello.wav", 440, 0.5, 8000)
    (tmp_path / "notes.txt").write_text("not audio")
    site = '[[sites]]\nid = "s"\ndestination = "sip:a@pbx.example"\n'
    config = parse_config(f'{site}voicemail_greeting = "hello.wav"\n', base_dir=tmp_path)
    assert config.sites[0].voicemail_greeting == tmp_path / "hello.wav"
    assert parse_config(site).sites[0].voicemail_greeting is None  # the tone alone
    for name, reason in (("nosuch.wav", "no such file"), ("notes.txt", "cannot read audio")):
        with pytest.raises(ConfigError) as caught:
            parse_config(f'{site}voicemail_greeting = "{name}"\n', base_dir=tmp_path)
        (problem,) = caught.value.problems
        assert problem.startswith('sites["s"].voicemail_greeting: ') and reason in problem


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("voicemail_max_seconds = 2", "voicemail_max_seconds: must be 3-600 seconds"),
        ("voicemail_max_seconds = 601", "voicemail_max_seconds: must be 3-600 seconds"),
        ("chat_timeout = 1", "chat_timeout: must be 5-3600 seconds"),
        ('chat = "yes"', "chat: expected true or false"),
        ("messages_per_client_minute = 0", "messages_per_client_minute:"),
        ("max_conversation_messages = -1", "max_conversation_messages:"),
    ],
)
def test_voicemail_and_chat_keys_are_checked(line: str, reason: str) -> None:
    site = '[[sites]]\nid = "s"\ndestination = "sip:a@pbx.example"\n'
    assert reason in problems_of(f"{site}{line}\n")


def test_several_nodes_need_redis_urls_node_names_and_one_token_secret() -> None:
    redis = '[storage]\nredis = "redis://:pw@redis.internal:6379/2"\n'
    assert problems_of(redis) == (
        "access.token_secret: required with storage.redis: every node must sign call tokens "
        "with the same secret (best given as GATEWAY_ACCESS_TOKEN_SECRET)"
    )
    config = parse_config(redis + 'node = "a"\n', {"GATEWAY_ACCESS_TOKEN_SECRET": "s" * 32})
    assert config.storage.redis is not None and config.storage.node == "a"
    assert config.storage.redis.redacted() == "redis://:***@redis.internal:6379/2"
    assert "pw" not in repr(config.storage)
    assert parse_config("").storage.redis is None and parse_config("").storage.node is None
    assert problems_of(
        '[storage]\nredis = "http://:secret@x/0"\nnode = "a b"\n',
        {"GATEWAY_ACCESS_TOKEN_SECRET": "s" * 32},
    ) == (
        'storage.redis: expected "redis://host:port/db" or "rediss://..." (TLS)\n'
        "storage.node: must be 1-48 letters, digits, '.', '_' or '-' (starting with a letter "
        "or digit), not 'a b'"
    )


@pytest.mark.parametrize(
    ("sip_codecs", "narrowband"),
    [
        ('["PCMU", "PCMA", "G722", "opus"]', False),
        ('["PCMU", "g729"]', True),
        ('["PCMU", "G722"]', False),
    ],
)
def test_the_browser_is_answered_for_narrowband_when_every_sip_codec_is(sip_codecs, narrowband):
    config = parse_config(f"[media]\nsip_codecs = {sip_codecs}\n")
    assert browser_leg_settings(config).narrowband_phones is narrowband
