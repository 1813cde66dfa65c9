"""The settings of one call leg, built from the configuration in one place, so that a
browser call's SIP leg and a callback's two SIP legs cannot differ in how their media is
opened (ports, codecs, latching, the media timeout)."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

import ifaddr

from gateway.config.schema import GatewayConfig, IceServer
from gateway.config.values import OWN_NETWORKS

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# SIP codecs that carry no more than 4 kHz of audio (8 kHz sampling).
NARROWBAND_CODECS = frozenset({"pcmu", "pcma", "g729"})


@dataclass(frozen=True, slots=True)
class SipLegSettings:
    """How a SIP leg's RTP is opened (sip_bridge CallMedia.open)."""

    rtp_host: str  # where its RTP socket binds
    rtp_announce: str  # the address its SDP announces
    rtp_ports: tuple[int, int]
    codecs: tuple[str, ...]  # offered, in preference order
    media_timeout: float | None  # seconds without RTP from a talking leg; None: none
    latch_any_source: bool  # RTP from the first source, not only the SDP's


@dataclass(frozen=True, slots=True)
class BrowserLegSettings:
    """How a browser's WebRTC leg is answered."""

    codecs: tuple[str, ...]  # in preference order
    # The gateway's own agent uses every server; a `secret` gives it fresh TURN REST
    # credentials per call (gateway.media.ice_servers).
    ice_servers: tuple[IceServer, ...] = ()
    turn_credential_lifetime: float = 600.0
    # Candidates signalled by the browser (SDP or trickled) into these are dropped.
    denied_candidate_networks: tuple[IpNetwork, ...] = ()
    max_checks_per_call: int = 32  # connectivity checks the agent starts for the call
    # Its path to a G.711 phone in C while steady, relayed or transcoded from Opus
    # (gateway.media.native_relay).
    native_relay: bool = True
    # Every codec offered to SIP is narrowband (`media.sip_codecs`): the browser's Opus is
    # answered with maxplaybackrate=8000 (RFC 7587), so it encodes no audio a phone drops.
    narrowband_phones: bool = False


def sip_leg_settings(config: GatewayConfig) -> SipLegSettings:
    return SipLegSettings(
        rtp_host=config.sip.listen[0],
        rtp_announce=config.sip.public_address[0],
        rtp_ports=config.media.rtp_ports,
        codecs=config.media.sip_codecs,
        media_timeout=config.media.media_timeout,
        latch_any_source=config.media.rtp_latching == "any",
    )


def browser_leg_settings(config: GatewayConfig) -> BrowserLegSettings:
    """The browser leg's settings; "own" in `ice.denied_candidate_networks` becomes this
    machine's networks as they are now (`machine_networks`)."""
    ice = config.ice
    return BrowserLegSettings(
        codecs=config.media.browser_codecs,
        ice_servers=ice.servers,
        turn_credential_lifetime=ice.turn_credential_lifetime,
        denied_candidate_networks=candidate_networks(
            ice.denied_candidate_networks, ice.host_addresses
        ),
        max_checks_per_call=ice.max_checks_per_call,
        native_relay=config.media.native_relay,
        narrowband_phones=all(c.lower() in NARROWBAND_CODECS for c in config.media.sip_codecs),
    )


def candidate_networks(
    names: Iterable[str], host_addresses: Iterable[str] = ()
) -> tuple[IpNetwork, ...]:
    """Networks of `ice.denied_candidate_networks`, with "own" expanded to this machine's
    networks and the gateway's own ICE addresses."""
    networks: list[IpNetwork] = []
    for name in names:
        if name == OWN_NETWORKS:
            networks += machine_networks()
            networks += (ipaddress.ip_network(address) for address in host_addresses)
        else:
            networks.append(ipaddress.ip_network(name, strict=False))
    return tuple(dict.fromkeys(networks))  # duplicates dropped, order kept


def machine_networks() -> list[IpNetwork]:
    """The networks of this machine's interfaces (loopback included): where a candidate
    would have the gateway send STUN into its own host or LAN."""
    networks: list[IpNetwork] = [
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    ]
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            address = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            try:
                networks.append(
                    ipaddress.ip_network(f"{address}/{ip.network_prefix}", strict=False)
                )
            except ValueError:  # a scoped or odd address the kernel reported: not ours
                continue
    return networks
