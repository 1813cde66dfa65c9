"""Workers: how the configuration is split, how a dead worker's calls are ended, and a real
crash: `python -m gateway --workers 2`, a call through it to SIPp, the worker carrying the
call killed with SIGKILL. The browser's socket must drop, SIPp must get a BYE, and the
supervisor must start the worker again."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import socketio
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from gateway.config import parse_config
from gateway.process.journal import OrphanCallEnder
from gateway.process.supervisor import WorkerConfigError, worker_configs
from sip_bridge.message import Request, Response, parse_message
from tests.e2e.conftest import gateway_toml
from tests.support.sipp import Sipp

ROOT = Path(__file__).resolve().parents[2]


def config(extra: str = "", **options):
    return parse_config(gateway_toml(destination="sip:op@127.0.0.1:5999", **options) + extra, {})


def test_each_worker_gets_its_sip_port_and_a_slice_of_the_rtp_range():
    base = config()
    low, high = base.media.rtp_ports
    configs = worker_configs(base, 3)
    assert [c.sip.listen[1] for c in configs] == [base.sip.listen[1] + i for i in range(3)]
    assert [c.sip.public_address[1] for c in configs] == [c.sip.listen[1] for c in configs]
    assert [c.http.listen for c in configs] == [base.http.listen] * 3
    slices = [c.media.rtp_ports for c in configs]
    assert slices[0][0] == low and all(a[1] + 1 == b[0] for a, b in itertools.pairwise(slices))
    assert slices[-1][1] <= high
    assert all(s[0] % 2 == 0 and (s[1] - s[0] + 1) % 2 == 0 for s in slices)
    # Call tokens from one worker are good at another: one secret for all.
    secrets = {c.access.token_secret for c in configs}
    assert len(secrets) == 1 and None not in secrets


def test_only_worker_zero_runs_the_demo_phone():
    base = parse_config("", {})  # the embedded defaults: demo phone on
    configs = worker_configs(base, 2)
    assert [c.demo.enabled for c in configs] == [True, False]


def test_a_configuration_that_cannot_be_split_is_refused_with_the_reason():
    base = config()
    narrow = dataclasses.replace(
        base, media=dataclasses.replace(base.media, rtp_ports=(40000, 40003))
    )
    with pytest.raises(WorkerConfigError, match="2 port pairs, fewer than 3 workers"):
        worker_configs(narrow, 3)
    sip = base.sip.listen[1]
    clash = dataclasses.replace(
        base, media=dataclasses.replace(base.media, rtp_ports=(sip + 1 + sip % 2, sip + 99))
    )
    with pytest.raises(WorkerConfigError, match=r"inside media\.rtp_ports"):
        worker_configs(clash, 4)


DIALOG = {
    "kind": "dialog",
    "call_id": "abc@127.0.0.1",
    "local_tag": "ours",
    "remote_tag": "theirs",
    "local_party": "<sip:gateway@127.0.0.1>;tag=ours",
    "remote_party": "<sip:op@127.0.0.1:5999>;tag=theirs",
    "local_seq": 1,
    "remote_target": "sip:op@127.0.0.1:5999",
    "route_set": ["<sip:proxy.example;lr>"],
    "destination": ["127.0.0.1", 5999],
}
INVITE = (
    "INVITE sip:op@127.0.0.1:5999 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKinvite1;rport\r\n"
    "Max-Forwards: 70\r\nFrom: <sip:gateway@127.0.0.1>;tag=ours2\r\n"
    "To: <sip:op@127.0.0.1:5999>\r\nCall-ID: ringing@127.0.0.1\r\nCSeq: 7 INVITE\r\n"
    "Contact: <sip:gateway@127.0.0.1:5070>\r\nContent-Length: 0\r\n\r\n"
)


def answer(
    request: Request,
    status: int,
    *,
    to_tag: str | None = None,
    method=None,
    contact: str = "<sip:op@127.0.0.1:5999>",
) -> bytes:
    lines = [f"SIP/2.0 {status} X"]
    lines += [f"Via: {v}" for v in request.headers.get_list("Via")]
    to = request.headers.get("To") + (f";tag={to_tag}" if to_tag else "")
    cseq = request.headers.get("CSeq") if method is None else f"{request.cseq.seq} {method}"
    lines += [f"From: {request.headers.get('From')}", f"To: {to}"]
    lines += [f"Call-ID: {request.call_id}", f"CSeq: {cseq}"]
    if status == 200 and method == "INVITE":
        lines.append(f"Contact: {contact}")
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


def test_a_dead_workers_dialog_gets_a_bye_retransmitted_until_answered():
    ender = OrphanCallEnder([DIALOG], ("127.0.0.1", 5070), now=0.0)
    ((data, destination),) = ender.datagrams_to_send(0.0)
    bye = parse_message(data)
    assert isinstance(bye, Request) and bye.method == "BYE"
    assert destination == ("127.0.0.1", 5999)
    assert bye.call_id == DIALOG["call_id"] and bye.cseq.seq == 2
    assert bye.from_.tag == "ours" and bye.to.tag == "theirs"
    assert bye.headers.get_list("Route") == ["<sip:proxy.example;lr>"]
    assert bye.top_via.sent_by == ("127.0.0.1", 5070)
    assert ender.datagrams_to_send(0.4) == []
    assert len(ender.datagrams_to_send(0.5)) == 1  # T1, then doubling
    assert ender.datagrams_to_send(1.4) == []
    assert len(ender.datagrams_to_send(1.5)) == 1
    ender.receive(answer(bye, 200), 1.6)
    assert ender.finished and ender.datagrams_to_send(10) == []


def test_a_ringing_invite_is_cancelled_and_its_487_acked():
    ender = OrphanCallEnder(
        [{"kind": "invite", "invite": INVITE, "destination": ["127.0.0.1", 5999]}],
        ("127.0.0.1", 5070),
        now=0.0,
    )
    ((data, _),) = ender.datagrams_to_send(0.0)
    cancel = parse_message(data)
    assert cancel.method == "CANCEL" and cancel.cseq.seq == 7
    assert cancel.top_via.branch == "z9hG4bKinvite1"  # the INVITE's own branch (§9.1)
    ender.receive(answer(cancel, 200), 0.1)
    assert not ender.finished  # the INVITE still needs its final answer
    invite = parse_message(INVITE.encode())
    ender.receive(answer(invite, 487, to_tag="t1"), 0.2)
    ((ack_data, _),) = ender.datagrams_to_send(0.2)
    ack = parse_message(ack_data)
    assert ack.method == "ACK" and ack.cseq.seq == 7 and ack.to.tag == "t1"
    assert ender.finished


def test_a_200_that_crossed_the_cancel_is_acked_and_ended_with_a_bye():
    ender = OrphanCallEnder(
        [{"kind": "invite", "invite": INVITE, "destination": ["127.0.0.1", 5999]}],
        ("127.0.0.1", 5070),
        now=0.0,
    )
    ender.datagrams_to_send(0.0)
    invite = parse_message(INVITE.encode())
    ender.receive(answer(invite, 200, to_tag="t2", method="INVITE"), 0.1)
    sent = [parse_message(d) for d, _ in ender.datagrams_to_send(0.1)]
    assert [m.method for m in sent] == ["ACK", "BYE"]
    assert all(m.to.tag == "t2" for m in sent)
    assert not ender.finished
    ender.receive(answer(sent[1], 200), 0.2)
    assert ender.finished


def test_the_crossing_200s_ack_and_bye_go_to_its_contact_not_where_the_invite_went():
    # A trunk answering from another host, without Record-Route: the dialog's next hop
    # is that Contact, as the user agent would use.
    ender = OrphanCallEnder(
        [{"kind": "invite", "invite": INVITE, "destination": ["127.0.0.1", 5999]}],
        ("127.0.0.1", 5070),
        now=0.0,
    )
    ender.datagrams_to_send(0.0)
    invite = parse_message(INVITE.encode())
    answered = answer(invite, 200, to_tag="t3", method="INVITE", contact="<sip:op@127.0.0.2:6000>")
    ender.receive(answered, 0.1)
    sent = ender.datagrams_to_send(0.1)
    assert [(parse_message(d).method, hop) for d, hop in sent] == [
        ("ACK", ("127.0.0.2", 6000)),
        ("BYE", ("127.0.0.2", 6000)),
    ]


def test_unreadable_journal_entries_are_skipped_not_fatal():
    ender = OrphanCallEnder(
        [{"kind": "dialog"}, {"kind": "other", "destination": ["h", 1]}, DIALOG],
        ("127.0.0.1", 5070),
        now=0.0,
    )
    assert ender.skipped == 2 and len(ender.datagrams_to_send(0.0)) == 1
    assert isinstance(parse_message(answer(parse_message(INVITE.encode()), 200)), Response)


# ---------------------------------------------------------------------------- a real crash
async def call_through(
    url: str, origin: str
) -> tuple[socketio.AsyncClient, RTCPeerConnection, asyncio.Event, asyncio.Event]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/api/token", json={"site": "shop"}, headers={"Origin": origin}
        ) as response,
    ):
        token = (await response.json())["token"]
    client = socketio.AsyncClient(reconnection=False)
    answered, dropped = asyncio.Event(), asyncio.Event()

    @client.on("call:state")
    async def on_state(payload):
        if payload["state"] == "answered":
            answered.set()

    @client.on("disconnect")
    async def on_disconnect(*args):
        dropped.set()

    await client.connect(
        url,
        transports=["websocket"],
        auth={"site": "shop", "token": token},
        headers={"Origin": origin},
    )
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("audio", direction="sendrecv")
    await pc.setLocalDescription(await pc.createOffer())
    ack = await client.call("call:start", {"sdp": pc.localDescription.sdp}, timeout=10)
    assert ack["ok"], ack
    await pc.setRemoteDescription(RTCSessionDescription(ack["sdp"], "answer"))
    await asyncio.wait_for(answered.wait(), 10)
    return client, pc, answered, dropped


ADMIN_KEY = "worker-test-admin-key-0123456789"


async def admin_text(url: str, path: str) -> str:
    async with (
        aiohttp.ClientSession() as session,  # a new connection: any worker may take it
        session.get(f"{url}{path}", headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as answer,
    ):
        assert answer.status == 200, await answer.text()
        return await answer.text()


async def admin_json(url: str, path: str) -> dict:
    import json

    return json.loads(await admin_text(url, path))


def worker_pids(supervisor: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == supervisor:
                pids.append(int(entry.name))
    return pids


async def test_a_crashed_workers_calls_end_on_both_legs_and_it_is_restarted(tmp_path):
    from gateway.media.webrtc_leg import use_host_addresses

    use_host_addresses(["127.0.0.1"])
    sipp = Sipp("uas_answer_echo", tmp_path / "sipp", rtp_echo=True, calls=1, timeout=30)
    sipp.start()
    state = tmp_path / "state"
    journal_dir = state / "workers"
    toml = gateway_toml(
        destination=sipp.uri,
        extra=f'[storage]\nstate_directory = "{state}"\nnode = "n1"\n'
        f'[admin]\napi_keys = ["{ADMIN_KEY}"]\n',
    )
    (tmp_path / "gateway.toml").write_text(toml)
    base = parse_config(toml, {})
    url, origin = base.http.public_url, base.http.public_origin
    log = tmp_path / "gateway.log"
    gateway = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway",
            "--config",
            str(tmp_path / "gateway.toml"),
            "--workers",
            "2",
        ],
        cwd=tmp_path,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    client = pc = None
    try:
        deadline = time.monotonic() + 30
        while log.read_text().count("ready: pid") < 2:
            assert gateway.poll() is None and time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.05)
        client, pc, _, dropped = await call_through(url, origin)
        # The worker carrying the call is the one whose journal records it.
        await asyncio.sleep(0.8)
        busy = [p for p in journal_dir.glob("worker-*.json") if p.read_text() != "[]"]
        assert len(busy) == 1, [p.read_text() for p in journal_dir.glob("*.json")]
        index = int(busy[0].stem.split("-")[1])
        # Whichever worker answers, the admin API lists the call the other may hold.
        for _ in range(4):
            (live,) = (await admin_json(url, "/api/admin/live"))["calls"]
            assert live["worker"] == f"n1/worker-{index}" and live["state"] == "answered"
        victim = next(
            pid
            for pid in worker_pids(gateway.pid)
            if f"worker {index} ready: pid {pid}," in log.read_text()
        )
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        await asyncio.wait_for(dropped.wait(), 10)  # the browser sees its socket drop...
        # ...and the operator gets a BYE from the supervisor (SIPp's own -timeout is 30 s).
        await sipp.assert_passed_async(timeout=15)
        while log.read_text().count(f"worker {index} ready: pid") < 2:
            assert time.monotonic() - killed < 30, log.read_text()  # a deadline, not a speed
            await asyncio.sleep(0.1)
        text = log.read_text()
        assert (
            f"worker {index}: sent 1 BYE and 0 CANCEL; 1 answered; 1 calls recorded as lost" in text
        ), text
        assert gateway.poll() is None
        # The dead worker's call is no longer in progress, and its record says how it
        # ended; the metrics of every worker, the dead one's too, are summed by whichever
        # worker answers, labelled with the node.
        assert (await admin_json(url, "/api/admin/live"))["calls"] == []
        (record,) = (await admin_json(url, "/api/admin/calls"))["calls"]
        assert (record["outcome"], record["end_cause"]) == ("answered", "lost"), record
        assert record["worker"] == f"n1/worker-{index}"
        assert record["end_detail"].startswith(f"n1/worker-{index} died (signal 9)"), record
        for _ in range(4):
            exposition = await admin_text(url, "/metrics")
            assert 'gateway_call_setup_seconds_count{node="n1"} 1.0' in exposition, exposition
            assert 'gateway_calls_active{node="n1",site="shop"} 1.0' not in exposition
    finally:
        if pc is not None:
            await pc.close()
        if client is not None and client.connected:
            await client.disconnect()
        gateway.send_signal(signal.SIGTERM)
        try:
            gateway.wait(15)
        except subprocess.TimeoutExpired:
            gateway.kill()
        sipp.stop()
    assert gateway.returncode == 0, log.read_text()


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


@pytest.mark.parametrize("lean", [True, False], ids=["lean", "exec-refused"])
def test_the_supervisor_waits_lean_once_its_workers_run_and_stops_them(tmp_path, lean):
    """Once its workers run, the supervisor replaces itself (same pid) with
    gateway.process.watch, without the application (~11 MB RSS, against ~130 MB with it).
    When it cannot (here: no Python executable to run), it watches as it is. Either way
    SIGTERM stops the workers and the gateway exits 0."""
    state = tmp_path / "state"
    toml = gateway_toml(
        destination="sip:op@127.0.0.1:5999", extra=f'[storage]\nstate_directory = "{state}"\n'
    )
    (tmp_path / "gateway.toml").write_text(toml)
    argv = ["--config", str(tmp_path / "gateway.toml"), "--workers", "2"]
    start = f"import sys; sys.argv[1:] = {argv!r}; "
    if not lean:
        start += "sys.executable = ''; "
    start += "from gateway.__main__ import main; sys.exit(main())"
    log = tmp_path / "gateway.log"
    gateway = subprocess.Popen(
        [sys.executable, "-c", start],
        cwd=tmp_path,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while log.read_text().count("ready: pid") < 2:
            assert gateway.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        workers = worker_pids(gateway.pid)
        assert len(workers) == 2, workers
        command = Path(f"/proc/{gateway.pid}/cmdline").read_bytes().replace(b"\0", b" ")
        if lean:
            assert b"gateway.process.watch" in command, command
            assert _rss_kb(gateway.pid) < 40_000, _rss_kb(gateway.pid)
        else:
            assert b"gateway.process.watch" not in command, command
            assert "the supervisor keeps the application loaded" in log.read_text()
            assert _rss_kb(gateway.pid) > 60_000, _rss_kb(gateway.pid)
        gateway.send_signal(signal.SIGTERM)
        assert gateway.wait(20) == 0, log.read_text()
        assert not any(Path(f"/proc/{pid}").exists() for pid in workers), log.read_text()
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.wait()
