"""The log is not the attacker's: a page's offer whose ICE candidates carry terminal escape
sequences (ANSI colours, an OSC title) and a 6,150-character host name, against a real
`python -m gateway`. The log must hold no escape character and no unbounded line, the
libraries must not log at INFO by default, and one call is one line when it starts and one
when it ends (README, Operations). With `[log] library_level = "info"` the libraries' lines
come back, still escaped and bounded, and `format = "json"` gives one JSON object a line."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.process.logs import MAX_MESSAGE_CHARS
from tests.support.gateway_process import GatewayProcess
from tests.support.ports import free_port_block, free_udp_port
from tests.support.signaling_client import aiortc_offer, start_call, visitor_socket

ESCAPES = "\x1b]0;owned\x07\x1b[31;1m"  # set the terminal's title, then bold red
LONG_HOST = "x" * 6150  # one label too long for DNS: aioice tries it anyway
EVIL_HOSTS = [f"{ESCAPES}evil{i}.example" for i in range(8)] + [LONG_HOST]


def evil_offer(sdp: str) -> str:
    """The offer with candidates towards the evil host names and a few loopback ports
    (checks that fail: each one an aioice line at INFO). The gateway drops the host names
    before aioice sees them (gateway.media.ice_policy); the loopback ones are allowed by
    this test's `ice.denied_candidate_networks`."""
    lines = [
        f"a=candidate:{i} 1 udp 2130706431 {host} 9 typ host"
        for i, host in enumerate(EVIL_HOSTS, 100)
    ]
    first = free_port_block(16)
    lines += [
        f"a=candidate:{i} 1 udp 2130706431 127.0.0.1 {port} typ host"
        for i, port in enumerate(range(first, first + 16), 200)
    ]
    return sdp.rstrip("\r\n") + "\r\n" + "\r\n".join(lines) + "\r\n"  # in the one m= section


def gateway_toml(log: str) -> tuple[str, str]:
    """A gateway's configuration, and its URL."""
    http, sip, rtp, nobody = free_udp_port(), free_udp_port(), free_port_block(20), free_udp_port()
    return (
        f"http://127.0.0.1:{http}",
        f"""
[http]
listen = "127.0.0.1:{http}"
[sip]
listen = "127.0.0.1:{sip}"
[media]
rtp_ports = "{rtp}-{rtp + 19}"
[ice]
denied_candidate_networks = []  # loopback candidates are checked: aioice logs each check
[log]
{log}
[[sites]]
id = "shop"
destination = "sip:nobody@127.0.0.1:{nobody}"
ring_timeout = 3
""",
    )


async def one_evil_call(url: str) -> str:
    """Start a call with the evil offer, let ICE try for a while, hang up; the call id."""
    offer = evil_offer(await aiortc_offer())
    async with visitor_socket(url, url) as client:
        ended = asyncio.Event()
        client.on("call:state", lambda payload: payload["state"] == "ended" and ended.set())
        ack = await start_call(client, offer)
        assert ack["ok"], ack
        await asyncio.sleep(1.0)  # ICE checks towards the offer's candidates
        await client.call("call:hangup", {}, timeout=10)
        await asyncio.wait_for(ended.wait(), 10)
    return ack["call_id"]


@pytest.mark.parametrize("log", ["text", "json with the libraries at info"])
async def test_an_offer_cannot_write_escapes_or_floods_into_the_log(tmp_path, log):
    settings = 'format = "json"\nlibrary_level = "info"' if log.startswith("json") else ""
    url, toml = gateway_toml(settings)
    gateway = GatewayProcess(tmp_path, toml, workers=0)
    try:
        gateway.start()
        await gateway.wait_ready()
        call_id = await one_evil_call(url)
    finally:
        gateway.stop(grace=10)
    text = gateway.stderr()
    lines = text.splitlines()
    assert "\x1b" not in text and "\x07" not in text, gateway.output()
    longest = max(map(len, lines))
    assert longest < MAX_MESSAGE_CHARS + 200, f"a line of {longest} characters"
    if log == "text":
        messages = lines
        assert not [line for line in lines if " aioice" in line or " aiortc" in line], text
    else:
        records = [json.loads(line) for line in lines]
        assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
        messages = [r["message"] for r in records]
        libraries = [r for r in records if r["logger"].startswith(("aioice", "aiortc"))]
        assert libraries, "library_level = info shows the libraries' lines"
    # The evil host names reach no library at all: the gateway drops candidates that are
    # not IP addresses (gateway.media.ice_policy). What a library would log of them is
    # escaped and bounded all the same (tests/gateway/test_log_format.py).
    assert "evil" not in text and LONG_HOST[:100] not in text
    # One line when the call starts and one when it ends.
    assert len([m for m in messages if f"call {call_id} started" in m]) == 1, text
    assert len([m for m in messages if f"call {call_id} ended" in m]) == 1, text


MALFORMED_REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"GARBAGE\x01\x02 / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n",
]


async def test_malformed_http_requests_get_400_and_write_no_traceback(tmp_path):
    """aiohttp logs each malformed request at ERROR with a traceback: a dozen lines of log
    per request anyone can send. They are answered 400 and leave nothing in the log at the
    default levels (gateway.process.logs.BadRequestFilter)."""
    url, toml = gateway_toml("")
    port = int(url.rsplit(":", 1)[1])
    gateway = GatewayProcess(tmp_path, toml, workers=0)
    try:
        gateway.start()
        await gateway.wait_ready()
        before = gateway.stderr()
        for request in MALFORMED_REQUESTS * 5:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), 10)
            assert status_line.split()[1:2] == [b"400"], (request[:40], status_line)
            writer.close()
        async with visitor_socket(url, url):  # the server still answers well-formed ones
            pass
    finally:
        gateway.stop(grace=10)
    added = gateway.stderr()[len(before) :]
    assert "Traceback" not in added and "aiohttp.server" not in added, added
