"""RFC 3263 against a real DNS server (dnsmasq on 127.0.0.1): NAPTR, then SRV in priority
order, then A; the first server answers 503 and the call fails over to the second; the
answers are kept for their TTL."""

from __future__ import annotations

import asyncio

from sip_bridge.asyncio.resolver import DnsResolver
from sip_bridge.events import CallAnswered, EndReason

from .sip_call import caller


async def test_naptr_srv_failover_and_ttl(sipp_factory, dnsmasq_factory):
    down = sipp_factory("uas_unavailable", calls=2)
    up = sipp_factory("uas_answer_echo", rtp_echo=True, calls=2)
    dns = dnsmasq_factory(
        [
            '--naptr-record=example.test,10,10,"S","SIP+D2U","",_sip._udp.example.test',
            f"--srv-host=_sip._udp.example.test,a.example.test,{down.port},10,0",
            f"--srv-host=_sip._udp.example.test,b.example.test,{up.port},20,0",
            "--host-record=a.example.test,127.0.0.1",
            "--host-record=b.example.test,127.0.0.1",
        ],
        ttl=60,
    )
    resolver = DnsResolver([dns.address])
    async with caller(resolve_names=True) as c:
        c.endpoint.resolver = resolver
        for _ in range(2):
            call = await c.call("sip:operator@example.test")
            answer = await call.wait_for(CallAnswered, timeout=10)
            assert answer.sdp
            call.hangup()
            ended = await asyncio.wait_for(call.ended, 5)
            assert ended.reason == EndReason.LOCAL_HANGUP
    # NAPTR, SRV and the two A records, asked once: the second call used the cache.
    assert sorted(dns.queries()) == [
        "A a.example.test",
        "A b.example.test",
        "NAPTR example.test",
        "SRV _sip._udp.example.test",
    ]
    assert resolver.queries == 4
    await down.assert_passed_async()
    await up.assert_passed_async()
