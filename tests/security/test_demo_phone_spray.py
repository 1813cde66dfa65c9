"""The demo phone latches RTP like the gateway's own SIP legs (`media.rtp_latching`): RTP
sprayed at the whole port range from the moment a call starts must neither silence a demo
call nor be echoed to the sprayer. The visitor (aiortc) sends a tone and must hear its
echo; the sprayer sends another tone and must hear nothing back."""

from __future__ import annotations

import asyncio
import contextlib

from gateway.config import DEFAULT_CONFIG, parse_config
from gateway.process.gateway import Gateway
from tests.support.audio import assert_tone
from tests.support.ports import free_port_block, free_udp_port

from .test_gateway_edge import HOST, INJECTED_HZ, VISITOR_HZ, Attacker, band_fraction
from .test_gateway_edge import rtp_tone_packets as tone_packets
from .visitor import Visitor

RTP_PORTS = 20


def demo_toml() -> str:
    http, sip, demo, rtp = free_udp_port(), free_udp_port(), free_udp_port(), free_port_block(20)
    return f"""
[http]
listen = "{HOST}:{http}"
[sip]
listen = "{HOST}:{sip}"
[media]
rtp_ports = "{rtp}-{rtp + RTP_PORTS - 1}"
browser_codecs = ["PCMU"]
[ice]
host_addresses = ["{HOST}"]
[demo]
enabled = true
sip_listen = "{HOST}:{demo}"
[[sites]]
id = "shop"
destination = "sip:operator@{HOST}:{demo}"
"""


async def spray(attacker: Attacker, ports: tuple[int, int]) -> None:
    """A tone's RTP at every port of the range, 50 packets a second each, until cancelled."""
    packets = tone_packets(INJECTED_HZ, 2.0, ssrc=0x5EED)
    index = 0
    while True:
        for port in range(ports[0], ports[1] + 1):
            attacker.send(packets[index % len(packets)], (HOST, port))
        index += 1
        await asyncio.sleep(0.02)


async def test_rtp_sprayed_at_the_range_does_not_take_a_demo_call():
    gateway = await Gateway.start(parse_config(demo_toml(), {}))
    assert gateway.demo is not None
    visitor = Visitor(VISITOR_HZ)
    sprayer = Attacker()
    spraying = asyncio.create_task(spray(sprayer, gateway.config.media.rtp_ports))
    try:
        await visitor.call(gateway)  # the spray runs from before the INVITE on
        await visitor.wait_for_state("answered")
        await asyncio.sleep(1.0)  # the demo phone echoes as soon as it has answered
        mark = visitor.mark()
        await asyncio.sleep(2.0)
        heard = visitor.heard_since(mark)
        assert_tone(heard, visitor.rate, VISITOR_HZ, what="the visitor's echo from the demo phone")
        assert band_fraction(heard, visitor.rate, INJECTED_HZ) < 0.001
        assert sprayer.received() == []  # no echo went to the sprayer
    finally:
        spraying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await spraying
        await visitor.hangup()
        await visitor.close()
        sprayer.close()
        await gateway.stop()


SITE = '[[sites]]\nid = "shop"\ndestination = "sip:desk@pbx.example.com"\n'


def test_a_file_with_its_own_sites_runs_no_demo_phone_unless_it_asks():
    assert parse_config(DEFAULT_CONFIG).demo.enabled  # the embedded defaults
    assert parse_config('[http]\nlisten = "127.0.0.1:9000"\n').demo.enabled  # the demo site
    assert not parse_config(SITE).demo.enabled  # production: no test phone by accident
    assert parse_config("[demo]\nenabled = true\n" + SITE).demo.enabled
    assert parse_config(SITE, {"GATEWAY_DEMO_ENABLED": "true"}).demo.enabled
    assert not parse_config("[demo]\nenabled = false\n").demo.enabled
