"""One load point: the server under test + SIPp echoing + generator processes, measured.

Timeline of a point (monotonic clock, shared by all processes):

  t0 ....... t0 + calls/rate .... all up +SETTLE ===== window (SECONDS) ===== hang up
  calls start one after another  (however long)      CPU, RSS, frames, echo delay

The server is this gateway (supervisor and workers) or the Janus SIP plugin (`server`).
CPU is read from /proc at both ends of the window for every process of the server, every
generator and SIPp; memory (RSS) of the server before any call and at the end of the window.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from . import native, procstat
from .capture import Capture
from .servers import Processes, Server, start_gateway, start_operator
from .window import publish

SETTLE = 1.0  # seconds after the last call was set up before measuring
SETUP_BUDGET = 30.0  # seconds after the last call started: the window opens anyway
GENERATOR_START = 2.0  # seconds for generator processes to import and get ready
# Calls per generator process (by default), by media path.
# aiortc's own media path costs about 1 ms per frame per peer: few calls per process.
CALLS_PER_GENERATOR = {"c": 300, "python": 50, "aiortc": 5}
PLAYOUT_ALLOWANCE = 0.05  # a frame is on time within 50 ms of the call's fastest frame


@dataclass(frozen=True)
class PointSpec:
    calls: int
    seconds: float = 20.0
    codec: str = "pcmu"  # what the visitors send: pcmu (relayed) or opus (transcoded)
    workers: int | None = None  # None: the gateway's default (one per core)
    rate: float = 20.0  # calls started per second
    generators: int | None = None  # None: one process per 50 calls
    profile: str | None = None  # directory: py-spy records each worker during the window
    perf: str | None = None  # directory: `perf record -g` of the workers during the window
    server: str = "gateway"  # or "janus"
    jitter_ms: float = 0.5  # each frame is sent up to this much after its time
    seed: int = 0
    capture: bool = False  # count the packets by kind in the window (bench/load/capture.py)
    # "c": the media in C (bench/load/native.py), "python", or "aiortc": stock aiortc
    # peers, G.711 only (bench/load/stock_visitor.py)
    generator_media: str = "c"


def start_server(processes: Processes, spec: PointSpec, operator_port: int) -> Server:
    if spec.server == "gateway":
        return start_gateway(
            processes,
            calls=spec.calls,
            codec=spec.codec,
            workers=spec.workers,
            operator_port=operator_port,
        )
    if spec.server == "janus":
        from .janus import start_janus

        if spec.codec != "pcmu":
            raise ValueError("the Janus SIP plugin does not transcode: codec pcmu only")
        return start_janus(processes, calls=spec.calls, operator_port=operator_port)
    raise ValueError(f"unknown server {spec.server!r}")


def _perf(processes: Processes, pids: list[int], directory: Path, seconds: float) -> None:
    """Linux perf, sampling the workers' C and kernel time too (py-spy sees Python only):
    `perf report -i DIR/perf.data --no-children --sort dso` says where the time goes."""
    directory.mkdir(parents=True, exist_ok=True)
    argv = ["perf", "record", "-F", "999", "-g", "-p", ",".join(map(str, sorted(pids)))]
    argv += ["-o", str(directory / "perf.data"), "--", "sleep", str(int(seconds))]
    processes.start("perf", argv)


def _profile(processes: Processes, pids: list[int], directory: Path, seconds: float) -> None:
    """py-spy, sampling each worker for the window (collapsed stacks, for profile.py)."""
    directory.mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).with_name("py-spy")
    for index, pid in enumerate(sorted(pids)):
        argv = [str(py_spy), "record", "--pid", str(pid), "--duration", str(int(seconds))]
        argv += ["--rate", "200", "--nonblocking", "--format", "raw"]
        argv += ["--output", str(directory / f"worker-{index}.txt")]
        processes.start(f"py-spy-{index}", argv)


def _native_library(spec: PointSpec, workdir: Path) -> str | None:
    """The generators' C media path, compiled for this point (None: the Python path)."""
    if spec.generator_media == "aiortc" and spec.codec != "pcmu":
        raise ValueError("the stock aiortc visitors send G.711 (pcmu) only")
    if spec.generator_media in ("python", "aiortc"):
        return None
    if spec.generator_media != "c":
        raise ValueError(f"unknown generator media {spec.generator_media!r}: c, python or aiortc")
    return str(native.build(workdir))


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
        if keep:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _generator_spec(server: Server, spec: PointSpec, indexes: list[int], **timeline) -> dict:
    return {
        "native_library": timeline.pop("native_library", None),
        "server": server.signaling,
        "codec": spec.codec,
        "indexes": indexes,
        "rate": spec.rate,
        "jitter": spec.jitter_ms / 1000,
        "seed": spec.seed,
        "generator_media": spec.generator_media,
        **timeline,
    }


def _run_point(spec: PointSpec, workdir: Path, processes: Processes) -> dict:
    calls = spec.calls
    ramp = calls / spec.rate
    duration = GENERATOR_START + ramp + SETUP_BUDGET + SETTLE + spec.seconds
    operator = start_operator(processes, calls, duration)
    server = start_server(processes, spec, operator.port)
    idle_rss = procstat.total_rss(server.pids())
    idle_pss = procstat.total_pss(server.pids())

    native_library = _native_library(spec, workdir)
    t0 = time.monotonic() + GENERATOR_START
    count = spec.generators or max(1, math.ceil(calls / CALLS_PER_GENERATOR[spec.generator_media]))
    window_file = workdir / "window.json"
    generators = []
    for g in range(count):
        spec_path = workdir / f"generator-{g}.json"
        timeline = {
            "start_at": t0,
            "window_file": str(window_file),
            "ready_file": str(workdir / f"ready-{g}"),
            "native_library": native_library,
        }
        indexes = list(range(g, calls, count))
        spec_path.write_text(json.dumps(_generator_spec(server, spec, indexes, **timeline)))
        generators.append(
            processes.start(
                f"generator-{g}",
                _generator_argv(spec_path, workdir / f"result-{g}.json"),
            )
        )
    generator_pids = [p.pid for p in generators]

    # The window opens SETTLE after every call is up (answered or failed), whenever that is.
    deadline = t0 + ramp + SETUP_BUDGET
    while time.monotonic() < deadline and not all(
        (workdir / f"ready-{g}").exists() for g in range(count)
    ):
        if any(p.poll() is not None for p in generators):
            break  # a generator died: its log says why, below
        time.sleep(0.05)
    set_up = time.monotonic()
    window = (set_up + SETTLE, set_up + SETTLE + spec.seconds)
    publish(window_file, *window)
    _sleep_until(window[0])
    pids = server.pids()
    workers = server.worker_pids()
    if spec.profile:
        _profile(processes, workers or pids, Path(spec.profile), spec.seconds)
    if spec.perf:
        _perf(processes, workers or pids, Path(spec.perf), spec.seconds)
    capture = Capture(pids, ignore_pids=[operator.process.pid]) if spec.capture else None
    if capture is not None:
        capture.start()
    start_each = {pid: procstat.cpu_seconds(pid) for pid in pids}
    start_generator_cpu = procstat.total_cpu(generator_pids)
    start_sipp_cpu = procstat.cpu_seconds(operator.process.pid)
    started = time.monotonic()
    _sleep_until(window[1])
    elapsed = time.monotonic() - started
    pids_now = server.pids()
    each = {pid: procstat.cpu_seconds(pid) - start_each.get(pid, 0.0) for pid in pids_now}
    generator_cpu = procstat.total_cpu(generator_pids) - start_generator_cpu
    sipp_cpu = procstat.cpu_seconds(operator.process.pid) - start_sipp_cpu
    busy_rss = procstat.total_rss(pids_now)
    busy_pss = procstat.total_pss(pids_now)
    workers_now = server.worker_pids()
    restarted = sorted(set(workers_now) ^ set(workers))
    if capture is not None:
        capture.stop()

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
    result = summarize(
        spec,
        results,
        cpu=sum(each.values()),
        elapsed=elapsed,
        generator_cpu=generator_cpu,
        sipp_cpu=sipp_cpu,
        idle_rss=idle_rss,
        busy_rss=busy_rss,
        idle_pss=idle_pss,
        busy_pss=busy_pss,
        workers=len(workers_now),
        worker_changes=len(restarted),
        worker_cpu=[each.get(pid, 0.0) for pid in sorted(workers_now)],
        threads=procstat.total_threads(pids_now),
    )
    result["all_up_s"] = round(set_up - t0, 2)  # first call started -> every call up
    if capture is not None:
        result["packets"] = capture.summary(max(result["calls_answered"], 1))
    result.update(server.notes)
    return result


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
        "server": spec.server,
        "calls": spec.calls,
        "calls_ok": sum(1 for c in calls if c.get("ok")),
        "calls_answered": len(answered),
        "codec": spec.codec,
        "workers": measured["workers"],
        "seconds": spec.seconds,
        "cpu_ms_per_call_s": round(measured["cpu"] * 1000 / (live * elapsed), 2),
        "server_cpu_pct": round(measured["cpu"] / elapsed * 100, 1),
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
        "pss_mb_idle": round(measured["idle_pss"] / 2**20, 1),
        "pss_mb_busy": round(measured["busy_pss"] / 2**20, 1),
        "threads": measured["threads"],
        "generator_cpu_pct": round(measured["generator_cpu"] / elapsed * 100, 1),
        "generator_processes": len(results),
        "generator_media": sorted({r.get("generator_media", "python") for r in results}),
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
    """`total` short calls (`hold` seconds each, `rate` per second): RSS of the gateway
    sampled as they go, to show whether memory grows with the number of calls served."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-churn-"))
    processes = Processes(workdir)
    try:
        duration = GENERATOR_START + total / rate + hold + 10
        operator = start_operator(processes, total, duration)
        server = start_gateway(
            processes, calls=25, codec=codec, workers=workers, operator_port=operator.port
        )
        t0 = time.monotonic() + GENERATOR_START
        spec = PointSpec(calls=total, codec=codec, workers=workers, rate=rate)
        spec_path = workdir / "generator-0.json"
        timeline = {"start_at": t0, "hold": hold, "window": [t0, t0 + duration]}
        spec_path.write_text(
            json.dumps(_generator_spec(server, spec, list(range(total)), **timeline))
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
                    "rss_mb": round(procstat.total_rss(server.worker_pids()) / 2**20, 2),
                    # The whole gateway, supervisor included, shared pages counted once.
                    "pss_mb": round(procstat.total_pss(server.pids()) / 2**20, 2),
                }
            )
            time.sleep(sample_every)
        time.sleep(2)  # calls finish releasing
        final = procstat.total_rss(server.worker_pids())
        samples.append({"t_s": round(time.monotonic() - t0, 1), "calls_started": total,
                        "rss_mb": round(final / 2**20, 2),
                        "pss_mb": round(procstat.total_pss(server.pids()) / 2**20, 2)})  # fmt: skip
        result = json.loads((workdir / "result-0.json").read_text())
        ok = sum(1 for c in result["calls"] if c.get("ok"))
        after_warmup = [s for s in samples if s["calls_started"] >= min(100, total)]
        return {
            "calls": total,
            "calls_ok": ok,
            "codec": codec,
            "rss_mb_after_100_calls": after_warmup[0]["rss_mb"] if after_warmup else None,
            "rss_mb_at_end": samples[-1]["rss_mb"],
            "pss_mb_at_start": samples[0]["pss_mb"],
            "pss_mb_after_100_calls": after_warmup[0]["pss_mb"] if after_warmup else None,
            "pss_mb_at_end": samples[-1]["pss_mb"],
            "samples": samples,
            "errors": dict(Counter(c["error"] for c in result["calls"] if c.get("error"))),
        }
    finally:
        processes.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)
