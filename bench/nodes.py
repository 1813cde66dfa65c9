"""Several nodes: what PostgreSQL and Redis add to a call's set-up, and how many set-ups a
second two nodes take through HAProxy. Real servers on loopback, started here (the test
fixtures' PostgreSQL 15, Redis 7 and HAProxy 2.6), gateways as `python -m gateway
--workers 1` processes, each ringing its own built-in demo phone.

  scripts/in-loopback-netns .venv/bin/python bench/nodes.py setup-cost [--calls 60]
  scripts/in-loopback-netns .venv/bin/python bench/nodes.py throughput [--seconds 10]

setup-cost: one node, calls one after the other, first with the embedded default storage
  (SQLite file, the machine's ledger), then with PostgreSQL + Redis. Per call, from the
  client: POST /api/token; the websocket's connect (the token redeemed: its single use is a
  ledger write); call:start until its answer (admission: the limits read and the call added
  in one transaction); its answer until the operator's phone rings (ICE and DTLS with the
  node, then the INVITE: the gateway rings nobody before the visitor's media path is up).
  Medians, and the difference: the cost of the shared storage on the set-up path (the
  history's writes are off it). The client's own offer (aiortc gathering) is left out.
throughput: nodes a (127.0.0.2) and b (127.0.0.3) behind HAProxy (127.0.0.1), sharing
  PostgreSQL and Redis. Calls arrive at a fixed rate for --seconds (token, websocket,
  call:start, ringing, hang up), stepping the rate up; a rate is sustained when 99% of its
  calls ring and their set-up's 95th percentile stays under a second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import socketio
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.load.procstat import children, cpu_seconds
from gateway.media.webrtc_leg import use_host_addresses
from tests.support import haproxy as haproxies
from tests.support import postgres
from tests.support import redis_server as redis_servers
from tests.support.gateway_process import GatewayProcess
from tests.support.ports import free_port_block, free_udp_port

SECRET = "bench-nodes-token-secret-0123456789abcdef"


def node_toml(host: str, ports: dict[str, int], state: Path, storage: str, node: str) -> str:
    return f"""
[http]
listen = "{host}:{ports["http"]}"
public_url = "http://127.0.0.1:{ports["http"]}"
trusted_proxies = ["127.0.0.1"]
connections_per_client = 1000000  # every call comes from one address, the client's
sockets_per_client = 1000000
[sip]
listen = "{host}:{ports["sip"]}"
[media]
rtp_ports = "{ports["rtp"]}-{ports["rtp"] + 99}"
browser_codecs = ["PCMU"]
[ice]
host_addresses = ["{host}"]
[demo]
enabled = true
sip_listen = "{host}:{ports["demo"]}"
[access]
token_secret = "{SECRET}"
tokens_per_client_minute = 1000000
[limits]
max_calls = 200
max_calls_per_client = 100000
[storage]
state_directory = "{state}"
node = "{node}"
{storage}
[[sites]]
id = "shop"
destination = "sip:operator@{host}:{ports["demo"]}"
health_interval = 0
max_site_calls = 100000
calls_per_client_15min = 1000000
calls_per_client_hour = 1000000
calls_per_client_day = 1000000
daily_call_minutes = 1000000
"""


def ports() -> dict[str, int]:
    return {
        "http": free_udp_port(),
        "sip": free_udp_port(),
        "demo": free_udp_port(),
        "rtp": free_port_block(100),
    }


async def one_call(session: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """Token, connect, call:start, ringing, hang up: the times of each step (seconds). Each
    call is a peer connection of its own that completes ICE and DTLS with its node, as a
    browser's does: the gateway rings nobody before the visitor's media path is up."""
    origin = "http://127.0.0.1:" + url.rsplit(":", 1)[1]  # the gateway's own pages
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="sendrecv")
    started = time.perf_counter()
    async with session.post(
        f"{url}/api/token", json={"site": "shop"}, headers={"Origin": origin}
    ) as answer:
        body = await answer.json()
        if answer.status != 200:
            raise RuntimeError(f"token: {answer.status} {body}")
    token_done = time.perf_counter()
    client = socketio.AsyncClient(reconnection=False)
    ringing = asyncio.Event()

    @client.on("call:state")
    async def on_state(payload: dict) -> None:
        if payload.get("state") in ("ringing", "early_media", "answered"):
            ringing.set()

    try:
        await client.connect(
            url,
            transports=["websocket"],
            auth={"site": "shop", "token": body["token"]},
            headers={"Origin": origin},
            wait_timeout=10,
        )
        connected = time.perf_counter()
        await pc.setLocalDescription(await pc.createOffer())
        offered = time.perf_counter()
        ack = await client.call("call:start", {"sdp": pc.localDescription.sdp}, timeout=20)
        if not ack.get("ok"):
            raise RuntimeError(f"call:start: {ack}")
        answered = time.perf_counter()
        await pc.setRemoteDescription(RTCSessionDescription(ack["sdp"], "answer"))
        await asyncio.wait_for(ringing.wait(), 20)
        rang = time.perf_counter()
        await client.call("call:hangup", {}, timeout=10)
    finally:
        with contextlib.suppress(Exception):
            await client.disconnect()
        await pc.close()
    return {
        "token": token_done - started,
        "connect": connected - token_done,
        "start": answered - offered,
        "ringing": rang - answered,
        "total": rang - started - (offered - connected),
    }


@contextlib.asynccontextmanager
async def node(workdir: Path, toml: str, name: str) -> AsyncIterator[GatewayProcess]:
    process = GatewayProcess(workdir, toml, workers=1, name=name)
    process.start()
    try:
        await process.wait_ready(timeout=60)
        yield process
    finally:
        process.stop(grace=10)


def median_ms(samples: list[dict[str, float]], key: str) -> float:
    return round(statistics.median(s[key] for s in samples) * 1000, 2)


async def setup_cost(calls: int) -> dict:
    """Both nodes run at once and take turns, so that the machine's other load falls on
    both alike; then the ledger's own operations, alone."""
    use_host_addresses(["127.0.0.1"])
    samples: dict[str, list[dict[str, float]]] = {}
    root = Path(tempfile.mkdtemp(prefix="bench-nodes-"))
    with postgres.postgres_server() as pg, redis_servers.redis_server() as redis:
        database = pg.create_database("bench_setup")
        storages = {
            "sqlite": "",  # the embedded defaults: var/gateway.db, the machine's ledger
            "postgresql+redis": f'database = "{database}"\nredis = "{redis.url}"',
        }
        urls = {}
        async with contextlib.AsyncExitStack() as stack:
            for n, (label, storage) in enumerate(storages.items()):
                p = ports()
                host = f"127.0.0.{n + 2}"
                toml = node_toml(host, p, root / label / "state", storage, label.split("+")[0])
                await stack.enter_async_context(node(root / label, toml, label))
                urls[label] = f"http://{host}:{p['http']}"
            session = await stack.enter_async_context(aiohttp.ClientSession())
            for label, url in urls.items():
                samples[label] = []
                for _ in range(5):  # warm-up: imports, first connections
                    await one_call(session, url)
            for i in range(calls):
                order = list(urls.items()) if i % 2 == 0 else list(urls.items())[::-1]
                for label, url in order:
                    samples[label].append(await one_call(session, url))
        ledger = await ledger_costs(root / "ledger.sqlite3", redis.url)
    results = {
        label: {key: median_ms(taken, key) for key in taken[0]} for label, taken in samples.items()
    }
    results["added by postgresql+redis"] = {
        key: round(results["postgresql+redis"][key] - results["sqlite"][key], 2)
        for key in results["sqlite"]
    }
    return {"calls": calls, "median_ms": results, "ledger_median_ms": ledger}


async def ledger_costs(sqlite_file: Path, redis_url: str, count: int = 300) -> dict:
    """The ledger's work on a call's set-up path, alone: a token's single use, and a call's
    admission (the limits read and the call added in one transaction) with its end."""
    from gateway.access.ledger import CallFacts, SqliteLedger
    from gateway.access.redis_ledger import RedisLedger
    from gateway.storage.redis_server import RedisUrl, connect

    client = connect(RedisUrl.parse(redis_url))
    ledgers = {
        "sqlite": SqliteLedger.open(sqlite_file, "bench/worker-0"),
        "redis": RedisLedger(client, "bench/worker-0"),
    }

    def allow(facts: CallFacts) -> None:
        return None

    result = {}
    try:
        for label, ledger in ledgers.items():
            uses, admissions = [], []
            now = time.time()
            for i in range(count):
                started = time.perf_counter()
                await ledger.first_use(f"token:{label}{i}", now + 60, now)
                uses.append(time.perf_counter() - started)
                started = time.perf_counter()
                call = await ledger.admit_call(
                    "shop", f"198.51.100.{i % 200}", now, allow, lasts=60
                )
                admissions.append(time.perf_counter() - started)
                await ledger.call_ended(call, now + 1, None)
            result[label] = {
                "token single use": round(statistics.median(uses) * 1000, 3),
                "admission": round(statistics.median(admissions) * 1000, 3),
            }
    finally:
        for ledger in ledgers.values():
            await ledger.close()
        await client.aclose()
    return result


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


POSTGRES_DIRECTORY: list[str] = []  # the bench's own PostgreSQL (its postmaster detaches)


def _postmasters() -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _command(int(entry.name)).startswith("postgres"):
            try:
                cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if any(directory in cmdline for directory in POSTGRES_DIRECTORY):
                found.append(int(entry.name))
    return found


def cpu_by_program() -> dict[str, float]:
    """CPU seconds so far of what this bench started, by program: the gateway nodes
    (python), redis-server, postgres, haproxy (and this client)."""
    totals: dict[str, float] = {"client": cpu_seconds(os.getpid())}
    postmasters = _postmasters()
    pids = _descendants(os.getpid()) + postmasters
    for postmaster in postmasters:
        pids += _descendants(postmaster)
    for pid in pids:
        command = _command(pid)
        name = next(
            (n for n in ("redis-server", "postgres", "haproxy", "python") if command.startswith(n)),
            None,
        )
        if name is not None:
            label = "nodes" if name == "python" else name
            totals[label] = totals.get(label, 0.0) + cpu_seconds(pid)
    return totals


async def at_rate(url: str, rate: float, seconds: float) -> dict:
    samples: list[dict[str, float]] = []
    failures: list[str] = []
    cpu_before = cpu_by_program()
    wall_before = time.perf_counter()

    async def call(session: aiohttp.ClientSession) -> None:
        try:
            samples.append(await one_call(session, url))
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}"[:200])

    async with aiohttp.ClientSession() as session:
        tasks = []
        start = time.perf_counter()
        for n in range(int(rate * seconds)):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(call(session)))
        await asyncio.gather(*tasks)
    wall = time.perf_counter() - wall_before
    cpu_after = cpu_by_program()
    totals = sorted(s["total"] for s in samples)
    p95 = totals[int(0.95 * (len(totals) - 1))] if totals else float("inf")
    return {
        "cpu_percent_of_a_core": {
            name: round(100 * (cpu_after.get(name, 0.0) - cpu_before.get(name, 0.0)) / wall, 1)
            for name in cpu_after
        },
        "rate": rate,
        "calls": len(samples) + len(failures),
        "rang": len(samples),
        "failed": len(failures),
        "setup_p50_ms": round(statistics.median(totals) * 1000, 1) if totals else None,
        "setup_p95_ms": round(p95 * 1000, 1),
        "failures": sorted(set(failures))[:3],
    }


async def throughput(seconds: float, rates: list[float]) -> dict:
    use_host_addresses(["127.0.0.1"])
    root = Path(tempfile.mkdtemp(prefix="bench-nodes-"))
    steps = []
    with postgres.postgres_server() as pg, redis_servers.redis_server() as redis:
        POSTGRES_DIRECTORY.append(str(pg.directory))
        database = pg.create_database("bench_throughput")
        storage = f'database = "{database}"\nredis = "{redis.url}"'
        p = ports()
        hosts = {"a": "127.0.0.2", "b": "127.0.0.3"}
        async with contextlib.AsyncExitStack() as stack:
            for name, host in hosts.items():
                toml = node_toml(host, p, root / name / "state", storage, name)
                await stack.enter_async_context(node(root / name, toml, f"node-{name}"))
            servers = [(name, host, p["http"]) for name, host in hosts.items()]
            balancer = stack.enter_context(haproxies.haproxy(("127.0.0.1", p["http"]), servers))
            await at_rate(balancer.url, 2, 2)  # warm-up
            for rate in rates:
                step = await at_rate(balancer.url, rate, seconds)
                steps.append(step)
                print(json.dumps(step), flush=True)
                if step["failed"] > 0.01 * step["calls"] or step["setup_p95_ms"] > 1000:
                    break
    sustained = [
        s["rate"] for s in steps if s["failed"] <= 0.01 * s["calls"] and s["setup_p95_ms"] <= 1000
    ]
    return {
        "seconds_per_step": seconds,
        "steps": steps,
        "sustained_calls_per_second": max(sustained) if sustained else 0,
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cost = sub.add_parser("setup-cost")
    cost.add_argument("--calls", type=int, default=60)
    rate = sub.add_parser("throughput")
    rate.add_argument("--seconds", type=float, default=10)
    rate.add_argument("--rates", default="2,4,8,12,16,24,32,48")
    args = parser.parse_args()
    if args.command == "setup-cost":
        result = asyncio.run(setup_cost(args.calls))
    else:
        rates = [float(r) for r in args.rates.split(",")]
        result = asyncio.run(throughput(args.seconds, rates))
    print(json.dumps(result, indent=2))
    out = Path(__file__).parent / "results" / f"nodes-{args.command}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
