"""The processes of a load point: the SIPp operator and the server under test.

The server is this gateway (`python -m gateway`, supervisor and workers) or the Janus SIP
plugin (bench/load/janus.py); both call the same operator, a SIPp UAS that answers at once
and echoes the media. `Processes` starts them with logs in the point's directory and stops
them all, whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from gateway.process.supervisor import default_worker_count

from . import procstat

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).resolve().parent / "uas_echo.xml"
HOST = "127.0.0.1"
# BENCH_SERVER_SESSION=own: the server under test in a session of its own (default: in the
# benchmark's, with the generators and SIPp).
SERVER_SESSION = os.environ.get("BENCH_SERVER_SESSION", "shared") == "own"
OPERATOR_USER = "operator"


def free_port(count: int = 1) -> int:
    from tests.support.ports import free_port_block

    return free_port_block(count, align=2)


class Processes:
    """The processes of one point; all stopped on exit, whatever happened."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[subprocess.Popen] = []

    def start(
        self,
        name: str,
        argv: list[str],
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
        own_session: bool = False,
    ) -> subprocess.Popen:
        """`own_session`: a session (so a scheduler autogroup) of its own, as a service has
        its own cgroup: the kernel then shares the CPU between the server and the load as
        between two programs, not as threads of one (docs/benchmark.md)."""
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        # The gateway keeps its ledger, journals and database in the point's directory,
        # removed with it: each point starts with fresh rate windows, and nothing is written
        # into the checkout (the database's default path is relative to the working one).
        process = subprocess.Popen(
            argv,
            cwd=cwd or ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=own_session,
            env={
                **os.environ,
                "GATEWAY_STORAGE_STATE_DIRECTORY": str(self.workdir / "state"),
                "GATEWAY_STORAGE_DATABASE": f"sqlite:///{self.workdir / 'state' / 'gateway.db'}",
                **(env or {}),
            },
        )
        log.close()
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in reversed(self.started):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclass
class Server:
    """A server under test: what visitors need to reach it, and whose CPU counts."""

    name: str  # "gateway" or "janus"
    process: subprocess.Popen
    signaling: dict  # for the generator: {"kind": name, "url": ..., ...}
    notes: dict = field(default_factory=dict)

    def pids(self) -> list[int]:
        """Every process of the server: the gateway's supervisor and its workers."""
        return [self.process.pid, *procstat.children(self.process.pid)]

    def worker_pids(self) -> list[int]:
        return procstat.children(self.process.pid) if self.name == "gateway" else []


def wait_for_lines(path: Path, text: str, count: int, process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    content = ""
    while time.monotonic() < deadline:
        content = path.read_text(errors="replace") if path.exists() else ""
        if content.count(text) >= count:
            return
        if process.poll() is not None:
            raise RuntimeError(f"{path.name}: exited with {process.returncode}:\n{content[-3000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"{path.name}: not ready after {timeout} s:\n{content[-3000:]}")


def wait_bound(port: int, process, timeout: float = 10, proto: str = "udp") -> None:
    """Until something listens on `port` (SIPp and Janus say nothing when they are ready)."""
    needle = f":{port:04X} "
    deadline = time.monotonic() + timeout
    table = Path(f"/proc/net/{proto}")
    while time.monotonic() < deadline:
        if needle in table.read_text():
            return
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        time.sleep(0.05)
    raise RuntimeError(f"{process.args[0]} did not bind {proto.upper()} {port}")


@dataclass(frozen=True)
class Operator:
    port: int  # SIP; media echo on port + 2 (-rtp_echo also binds port + 4)
    process: subprocess.Popen


def start_operator(processes: Processes, calls: int, duration: float) -> Operator:
    """SIPp as the operator: SIP on a free port, media echo on port + 2 (-rtp_echo also
    binds port + 4), control port + 5; it ends after `calls` calls."""
    port = free_port(6)
    argv = ["sipp", "-sf", str(SCENARIO), "-i", HOST, "-p", str(port)]
    argv += ["-mi", HOST, "-mp", str(port + 2), "-rtp_echo", "-ci", HOST, "-cp", str(port + 5)]
    argv += ["-m", str(calls), "-timeout", f"{int(duration + 60)}s", "-timeout_error"]
    argv += ["-nostdin", "-s", OPERATOR_USER]
    sipp = processes.start("sipp", argv, cwd=processes.workdir)
    wait_bound(port, sipp)
    return Operator(port, sipp)


def gateway_config(
    http: int, sip: int, rtp: tuple[int, int], sipp: int, codec: str, ice: int
) -> str:
    """No SIP OPTIONS health checks: SIPp's operator scenario would take each for a call."""
    return f"""
[http]
listen = "{HOST}:{http}"
# Every visitor of the benchmark comes from one address: no per-address caps.
connections_per_client = 1000000
sockets_per_client = 1000000
[sip]
listen = "{HOST}:{sip}"
[media]
rtp_ports = "{rtp[0]}-{rtp[1]}"
browser_codecs = ["{"PCMU" if codec == "pcmu" else "opus"}"]
sip_codecs = ["PCMU"]
ringback = ""
[ice]
host_addresses = ["{HOST}"]
port = {ice}
# The visitors' host candidates are on loopback here, where a browser's are on its network:
# checked, as a browser's would be (the default denies loopback candidates).
denied_candidate_networks = []
[demo]
enabled = false
[access]
tokens_per_client_minute = 1000000
[limits]
max_calls = 10000
max_calls_per_client = 10000
max_site_calls = 10000
calls_per_client_15min = 1000000
calls_per_client_hour = 1000000
calls_per_client_day = 1000000
daily_call_minutes = 1000000
[log]
level = "warning"
[[sites]]
id = "bench"
destination = "sip:{OPERATOR_USER}@{HOST}:{sipp}"
ring_timeout = 10
health_interval = 0
"""


def worker_count(asked: int | None) -> int:
    """How many workers the gateway starts for `--workers asked` (as gateway/workers.py
    counts cores: the CPUs this process may use, not the machine's)."""
    if asked is not None and asked < 1:
        raise ValueError("the benchmark measures the gateway's workers: --workers 1 or more")
    return asked if asked is not None else default_worker_count()


def start_gateway(
    processes: Processes,
    *,
    calls: int,
    codec: str,
    workers: int | None,
    operator_port: int,
    env: dict[str, str] | None = None,
) -> Server:
    """`python -m gateway` with all its workers, calling the operator; once all are ready."""
    http, sip = free_port(), free_port(40)
    rtp_low = 40000
    rtp = (rtp_low, rtp_low + 4 * max(calls, 50) * 2 - 1)
    config = processes.workdir / "gateway.toml"
    ice = free_port(worker_count(workers))
    config.write_text(gateway_config(http, sip, rtp, operator_port, codec, ice))
    argv = [sys.executable, "-m", "gateway", "--config", str(config)]
    if workers is not None:
        argv += ["--workers", str(workers)]
    process = processes.start("gateway", argv, env=env, own_session=SERVER_SESSION)
    log = processes.workdir / "gateway.log"
    wait_for_lines(log, "ready: pid", worker_count(workers), process, 30)
    url = f"http://{HOST}:{http}"
    return Server(
        "gateway",
        process,
        {"kind": "gateway", "url": url, "origin": url, "site": "bench"},
    )


@contextlib.contextmanager
def idle_gateway(workers: int, wait: float) -> Iterator[Server]:
    """The benchmark's gateway with `workers` workers and no call, `wait` seconds after every
    worker is ready (bench/idle_memory.py, bench/idle_cpu.py); stopped on exit."""
    with tempfile.TemporaryDirectory() as workdir:
        processes = Processes(Path(workdir))
        try:
            server = start_gateway(
                processes, calls=100, codec="pcmu", workers=workers, operator_port=5999
            )
            time.sleep(wait)
            yield server
        finally:
            processes.stop_all()
