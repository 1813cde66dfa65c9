"""One load point: gateway (all workers) + SIPp echoing + generator processes, measured.

Timeline of a point (monotonic clock, shared by all processes):

  t0 ............ t0 + calls/rate ... +SETTLE ===== measurement window (SECONDS) ===== hang up
  calls start one after another        all set up     CPU, RSS, frames, echo delay

CPU is read from /proc at both ends of the window for every gateway worker, every generator
and SIPp; memory (RSS) of the workers before any call and at the end of the window.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from gateway.process.supervisor import default_worker_count

from . import procstat

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = Path(__file__).resolve().parent / "uas_echo.xml"
SETTLE = 1.0  # seconds after the last call started before measuring
GENERATOR_START = 2.0  # seconds for generator processes to import and get ready
PLAYOUT_ALLOWANCE = 0.05  # a frame is on time within 50 ms of the call's fastest frame
HOST = "127.0.0.1"


@dataclass(frozen=True)
class PointSpec:
    calls: int
    seconds: float = 20.0
    codec: str = "pcmu"  # what the visitors send: pcmu (relayed) or opus (transcoded)
    workers: int | None = None  # None: the gateway's default (one per core)
    rate: float = 20.0  # calls started per second
    generators: int | None = None  # None: one process per 50 calls
    profile: str | None = None  # directory: py-spy records each worker during the window


def _free_port(count: int = 1) -> int:
    from tests.support.ports import free_port_block

    return free_port_block(count, align=2)


def gateway_config(http: int, sip: int, rtp: tuple[int, int], sipp: int, codec: str) -> str:
    return f"""
[http]
listen = "{HOST}:{http}"
[sip]
listen = "{HOST}:{sip}"
[media]
rtp_ports = "{rtp[0]}-{rtp[1]}"
browser_codecs = ["{"PCMU" if codec == "pcmu" else "opus"}"]
sip_codecs = ["PCMU"]
ringback = ""
[ice]
host_addresses = ["{HOST}"]
[demo]
enabled = false
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
destination = "sip:operator@{HOST}:{sipp}"
ring_timeout = 10
health_interval = 0               # SIPp's scenario takes no OPTIONS
"""


class Processes:
    """The processes of one point; all stopped on exit, whatever happened."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[subprocess.Popen] = []

    def start(self, name: str, argv: list[str], cwd: Path | None = None) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        # The gateway keeps its ledger and journals in the point's directory, removed with
        # it: each point starts with fresh rate windows.
        process = subprocess.Popen(
            argv,
            cwd=cwd or ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "GATEWAY_STORAGE_STATE_DIRECTORY": str(self.workdir / "state")},
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


def _workers(asked: int | None) -> int:
    """How many workers the gateway starts for `--workers asked` (as gateway/process/supervisor.py
    counts cores: the CPUs this process may use, not the machine's)."""
    if asked is not None and asked < 1:
        raise ValueError("the benchmark measures the gateway's workers: --workers 1 or more")
    return asked if asked is not None else default_worker_count()


def _wait_for_lines(path: Path, text: str, count: int, process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text(errors="replace") if path.exists() else ""
        if content.count(text) >= count:
            return
        if process.poll() is not None:
            raise RuntimeError(f"{path.name}: exited with {process.returncode}:\n{content[-3000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"{path.name}: not ready after {timeout} s:\n{content[-3000:]}")


def _wait_bound(port: int, process, timeout: float = 10) -> None:
    """Until something listens on UDP `port` (SIPp says nothing when it is ready)."""
    needle = f":{port:04X} "
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in Path("/proc/net/udp").read_text():
            return
        if process.poll() is not None:
            raise RuntimeError(f"SIPp exited with {process.returncode}")
        time.sleep(0.05)
    raise RuntimeError(f"SIPp did not bind UDP {port}")


def _profile(processes: Processes, pids: list[int], directory: Path, seconds: float) -> None:
    """py-spy, sampling each worker for the window (collapsed stacks, for profile.py)."""
    directory.mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).with_name("py-spy")
    for index, pid in enumerate(sorted(pids)):
        argv = [str(py_spy), "record", "--pid", str(pid), "--duration", str(int(seconds))]
        argv += ["--rate", "200", "--nonblocking", "--format", "raw"]
        argv += ["--output", str(directory / f"worker-{index}.txt")]
        processes.start(f"py-spy-{index}", argv)


def _start_sipp(
    processes: Processes, workdir: Path, port: int, calls: int, duration: float
) -> subprocess.Popen:
    """SIPp as the operator: SIP on `port`, media echo on port + 2 (-rtp_echo also binds
    port + 4), control port + 5; it ends after `calls` calls."""
    argv = ["sipp", "-sf", str(SCENARIO), "-i", HOST, "-p", str(port)]
    argv += ["-mi", HOST, "-mp", str(port + 2), "-rtp_echo", "-ci", HOST, "-cp", str(port + 5)]
    argv += ["-m", str(calls), "-timeout", f"{int(duration + 60)}s", "-timeout_error"]
    argv += ["-nostdin", "-s", "operator"]
    return processes.start("sipp", argv, cwd=workdir)


def _generator_argv(spec_path: Path, result_path: Path) -> list[str]:
    return [sys.executable, "-m", "bench.load.generator", str(spec_path), str(result_path)]


def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def run_point(spec: PointSpec, *, keep: bool = False) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="bench-load-"))
    processes = Processes(workdir)
    try:
        return _run_point(spec, workdir, processes)
    finally:
        processes.stop_all()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _run_point(spec: PointSpec, workdir: Path, processes: Processes) -> dict:
    calls = spec.calls
    ramp = calls / spec.rate
    duration = GENERATOR_START + ramp + SETTLE + spec.seconds
    # SIPp: SIP port, media port (+2; -rtp_echo also echoes on +4), control port (+5).
    sipp_port = _free_port(6)
    sipp = _start_sipp(processes, workdir, sipp_port, calls, duration)
    _wait_bound(sipp_port, sipp)

    http, sip = _free_port(), _free_port(40)
    rtp_low = 40000
    config = workdir / "gateway.toml"
    config.write_text(
        gateway_config(
            http, sip, (rtp_low, rtp_low + 4 * max(calls, 50) * 2 - 1), sipp_port, spec.codec
        )
    )
    argv = [sys.executable, "-m", "gateway", "--config", str(config)]
    if spec.workers is not None:
        argv += ["--workers", str(spec.workers)]
    gateway = processes.start("gateway", argv)
    _wait_for_lines(workdir / "gateway.log", "ready: pid", _workers(spec.workers), gateway, 30)
    workers = procstat.children(gateway.pid)
    idle_rss = procstat.total_rss(workers)

    t0 = time.monotonic() + GENERATOR_START
    window = (t0 + ramp + SETTLE, t0 + ramp + SETTLE + spec.seconds)
    hangup_at = window[1] + 0.3
    count = spec.generators or max(1, math.ceil(calls / 50))
    generators = []
    for g in range(count):
        spec_path = workdir / f"generator-{g}.json"
        spec_path.write_text(
            json.dumps(
                {
                    "url": f"http://{HOST}:{http}",
                    "origin": f"http://{HOST}:{http}",
                    "site": "bench",
                    "codec": spec.codec,
                    "indexes": list(range(g, calls, count)),
                    "start_at": t0,
                    "rate": spec.rate,
                    "hangup_at": hangup_at,
                    "window": window,
                }
            )
        )
        generators.append(
            processes.start(
                f"generator-{g}",
                _generator_argv(spec_path, workdir / f"result-{g}.json"),
            )
        )
    generator_pids = [p.pid for p in generators]

    _sleep_until(window[0])
    workers = procstat.children(gateway.pid)
    if spec.profile:
        _profile(processes, workers, Path(spec.profile), spec.seconds)
    start_each = {pid: procstat.cpu_seconds(pid) for pid in workers}
    start_generator_cpu = procstat.total_cpu(generator_pids)
    start_sipp_cpu = procstat.cpu_seconds(sipp.pid)
    started = time.monotonic()
    _sleep_until(window[1])
    elapsed = time.monotonic() - started
    workers_now = procstat.children(gateway.pid)
    each = [procstat.cpu_seconds(pid) - start_each.get(pid, 0.0) for pid in sorted(workers_now)]
    cpu = sum(each)
    generator_cpu = procstat.total_cpu(generator_pids) - start_generator_cpu
    sipp_cpu = procstat.cpu_seconds(sipp.pid) - start_sipp_cpu
    busy_rss = procstat.total_rss(workers_now)
    restarted = sorted(set(workers_now) ^ set(workers))

    results = []
    for g, process in enumerate(generators):
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        path = workdir / f"result-{g}.json"
        if path.exists():
            results.append(json.loads(path.read_text()))
        else:
            log = (workdir / f"generator-{g}.log").read_text(errors="replace")
            raise RuntimeError(f"generator {g} wrote no result:\n{log[-3000:]}")
    return summarize(
        spec,
        results,
        cpu=cpu,
        elapsed=elapsed,
        generator_cpu=generator_cpu,
        sipp_cpu=sipp_cpu,
        idle_rss=idle_rss,
        busy_rss=busy_rss,
        workers=len(workers_now),
        worker_changes=len(restarted),
        worker_cpu=each,
    )


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 2)


def summarize(spec: PointSpec, results: list[dict], **measured) -> dict:
    calls = [c for r in results for c in r["calls"]]
    answered = [c for c in calls if c.get("answered")]
    carried = [c for c in answered if c.get("frames_expected")]
    expected = sum(c["frames_expected"] for c in carried)
    on_time = sum(c["frames_on_time"] for c in carried)
    received = sum(c["frames_received"] for c in carried)
    rtt = [x for c in carried for x in c["rtt_s"]]
    setup = [c["setup_s"] for c in answered if c.get("setup_s") is not None]
    elapsed = measured["elapsed"]
    live = max(len(answered), 1)
    ticks = sum(r["ticks"] for r in results)
    errors = Counter(c["error"] for c in calls if c.get("error"))
    return {
        "calls": spec.calls,
        "calls_ok": sum(1 for c in calls if c.get("ok")),
        "calls_answered": len(answered),
        "codec": spec.codec,
        "workers": measured["workers"],
        "seconds": spec.seconds,
        "cpu_ms_per_call_s": round(measured["cpu"] * 1000 / (live * elapsed), 2),
        "gateway_cpu_pct": round(measured["cpu"] / elapsed * 100, 1),
        "worker_cpu_pct": [round(c / elapsed * 100, 1) for c in measured["worker_cpu"]],
        "frames_on_time_pct": round(on_time / expected * 100, 3) if expected else None,
        "frames_lost_pct": round((expected - received) / expected * 100, 3) if expected else None,
        "gaps": sum(c["gaps"] for c in carried),
        "echo_rtt_ms_p50": _ms(_percentile(rtt, 0.5)),
        "echo_rtt_ms_p95": _ms(_percentile(rtt, 0.95)),
        "echo_rtt_samples": len(rtt),
        "setup_ms_p50": _ms(_percentile(setup, 0.5)),
        "setup_ms_p95": _ms(_percentile(setup, 0.95)),
        "rss_mb_per_call": round((measured["busy_rss"] - measured["idle_rss"]) / live / 2**20, 3),
        "rss_mb_idle": round(measured["idle_rss"] / 2**20, 1),
        "rss_mb_busy": round(measured["busy_rss"] / 2**20, 1),
        "generator_cpu_pct": round(measured["generator_cpu"] / elapsed * 100, 1),
        "generator_processes": len(results),
        "generator_late_ticks_pct": round(
            sum(r["late_ticks"] for r in results) / max(ticks, 1) * 100, 2
        ),
        "generator_max_late_ms": _ms(max((r["max_late_s"] for r in results), default=0.0)),
        "generator_max_gc_pause_ms": _ms(
            max((r.get("max_gc_pause_s", 0.0) for r in results), default=0.0)
        ),
        "sipp_cpu_pct": round(measured["sipp_cpu"] / elapsed * 100, 1),
        "worker_changes": measured["worker_changes"],
        "frequency_hz_median": (
            round(statistics.median(f), 1)
            if (f := [c["frequency_hz"] for c in carried if c.get("frequency_hz")])
            else None
        ),
        "errors": dict(errors.most_common(5)),
        "playout_allowance_ms": PLAYOUT_ALLOWANCE * 1000,
        "spec": asdict(spec),
        "machine_cores": os.cpu_count(),
    }


def run_churn(
    total: int,
    *,
    codec: str = "pcmu",
    workers: int | None = None,
    rate: float = 10.0,
    hold: float = 2.5,
    sample_every: float = 5.0,
) -> dict:
    """`total` short calls (`hold` seconds each, `rate` per second): RSS of the workers
    sampled as they go, to show whether memory grows with the number of calls served."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-churn-"))
    processes = Processes(workdir)
    try:
        sipp_port = _free_port(6)
        duration = GENERATOR_START + total / rate + hold + 10
        sipp = _start_sipp(processes, workdir, sipp_port, total, duration)
        _wait_bound(sipp_port, sipp)
        http, sip = _free_port(), _free_port(40)
        config = workdir / "gateway.toml"
        config.write_text(gateway_config(http, sip, (40000, 41999), sipp_port, codec))
        argv = [sys.executable, "-m", "gateway", "--config", str(config)]
        if workers is not None:
            argv += ["--workers", str(workers)]
        gateway = processes.start("gateway", argv)
        _wait_for_lines(workdir / "gateway.log", "ready: pid", _workers(workers), gateway, 30)
        t0 = time.monotonic() + GENERATOR_START
        spec_path = workdir / "generator-0.json"
        spec_path.write_text(
            json.dumps(
                {
                    "url": f"http://{HOST}:{http}",
                    "origin": f"http://{HOST}:{http}",
                    "site": "bench",
                    "codec": codec,
                    "indexes": list(range(total)),
                    "start_at": t0,
                    "rate": rate,
                    "hold": hold,
                    "hangup_at": 0,
                    "window": [t0, t0 + duration],
                }
            )
        )
        generator = processes.start(
            "generator-0",
            _generator_argv(spec_path, workdir / "result-0.json"),
        )
        samples = []
        while generator.poll() is None:
            elapsed = time.monotonic() - t0
            started = min(total, max(0, int(elapsed * rate)))
            samples.append(
                {
                    "t_s": round(elapsed, 1),
                    "calls_started": started,
                    "rss_mb": round(procstat.total_rss(procstat.children(gateway.pid)) / 2**20, 2),
                }
            )
            time.sleep(sample_every)
        time.sleep(2)  # calls finish releasing
        final = procstat.total_rss(procstat.children(gateway.pid))
        samples.append({"t_s": round(time.monotonic() - t0, 1), "calls_started": total,
                        "rss_mb": round(final / 2**20, 2)})  # fmt: skip
        result = json.loads((workdir / "result-0.json").read_text())
        ok = sum(1 for c in result["calls"] if c.get("ok"))
        after_warmup = [s for s in samples if s["calls_started"] >= min(100, total)]
        return {
            "calls": total,
            "calls_ok": ok,
            "codec": codec,
            "rss_mb_after_100_calls": after_warmup[0]["rss_mb"] if after_warmup else None,
            "rss_mb_at_end": samples[-1]["rss_mb"],
            "samples": samples,
            "errors": dict(Counter(c["error"] for c in result["calls"] if c.get("error"))),
        }
    finally:
        processes.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
