"""Does the load generator load the gateway like real browsers do? A cross-check.

  python -m bench.crosscheck [--calls 10] [--seconds 20] [--rounds 2] [--codec pcmu]
  (inside scripts/in-loopback-netns; `make bench-crosscheck` runs it)

Per round, twice at the same N, each time on a fresh gateway (all workers) and SIPp echo:

- **Chromium**: Debian's Chromium (headless, Playwright, a fake microphone playing the
  benchmark's tone) opens the gateway's call page N times, one browser context per visitor,
  and clicks Call; all N in call, then the measurement window, then Hang up.
- **generator**: `bench.load` with N visitors.

Both measure the gateway's CPU (supervisor + workers, /proc) per answered call and second
of the window, and count the packets on loopback by kind (bench/load/capture.py). Rounds
alternate which goes first. The generator passes when the median of its CPU-ms per
call-second is within 15% of Chromium's (`--tolerance`). Results in
bench/results/crosscheck.json, a table printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import wave
from pathlib import Path

from bench.load import procstat
from bench.load.audio import pattern_pcm
from bench.load.capture import Capture
from bench.load.run import SETTLE, PointSpec, run_point
from bench.load.servers import Processes, start_gateway, start_operator

RESULTS = Path(__file__).resolve().parent / "results"
MIC_RATE = 48000


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (the browser: Playwright's driver and Chromium's tree)."""
    found, frontier = [], [pid]
    while frontier:
        children = [c for p in frontier for c in procstat.children(p)]
        found += children
        frontier = children
    return found


def write_mic(path: Path, seconds: int = 60) -> Path:
    """The benchmark's tone pattern as the fake microphone's WAV (Chromium loops it)."""
    pcm = pattern_pcm(MIC_RATE, periods=seconds)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(MIC_RATE)
        out.writeframes(pcm.tobytes())
    return path


async def chromium_point(calls: int, seconds: float, codec: str, rate: float) -> dict:
    """N calls from Chromium through the gateway's own call page, measured like a point."""
    from tests.support.browser import chromium

    workdir = Path(tempfile.mkdtemp(prefix="bench-crosscheck-"))
    processes = Processes(workdir)
    try:
        operator = start_operator(processes, calls, seconds + 120)
        server = start_gateway(
            processes, calls=calls, codec=codec, workers=None, operator_port=operator.port
        )
        url = server.signaling["url"]
        idle_rss = procstat.total_rss(server.pids())
        async with chromium(write_mic(workdir / "mic.wav")) as browser:
            pages = []
            for _ in range(calls):
                context = await browser.new_context()
                page = await context.new_page()
                await page.goto(f"{url}/embed/bench")
                await page.get_by_role("button", name="Call", exact=True).click()
                pages.append(page)
                await asyncio.sleep(1 / rate)
            answered = 0
            for page in pages:
                status = page.get_by_role("status").filter(has_text="In call")
                try:
                    await status.wait_for(timeout=15_000)
                    answered += 1
                except Exception:  # Playwright's TimeoutError: counted as not answered
                    continue
            await asyncio.sleep(SETTLE)
            browser_pids = descendants(os.getpid())
            pids = server.pids()
            capture = Capture(pids, ignore_pids=[operator.process.pid])
            capture.start()
            cpu0 = procstat.total_cpu(pids)
            browser0 = procstat.total_cpu(browser_pids)
            started = time.monotonic()
            await asyncio.sleep(seconds)
            elapsed = time.monotonic() - started
            cpu = procstat.total_cpu(server.pids()) - cpu0
            browser_cpu = procstat.total_cpu(browser_pids) - browser0
            busy_rss = procstat.total_rss(server.pids())
            capture.stop()
            for page in pages:
                await page.get_by_role("button", name="Hang up").click()
            await asyncio.sleep(0.5)
        live = max(answered, 1)
        return {
            "load": "chromium",
            "calls": calls,
            "calls_answered": answered,
            "codec": codec,
            "seconds": round(elapsed, 2),
            "cpu_ms_per_call_s": round(cpu * 1000 / (live * elapsed), 2),
            "server_cpu_pct": round(cpu / elapsed * 100, 1),
            "rss_mb_per_call": round((busy_rss - idle_rss) / live / 2**20, 3),
            "load_cpu_pct": round(browser_cpu / elapsed * 100, 1),
            "packets": capture.summary(live),
        }
    finally:
        processes.stop_all()
        shutil.rmtree(workdir, ignore_errors=True)


def generator_point(calls: int, seconds: float, codec: str, rate: float, seed: int) -> dict:
    result = run_point(
        PointSpec(calls=calls, seconds=seconds, codec=codec, rate=rate, capture=True, seed=seed)
    )
    return {
        "load": "generator",
        "calls": calls,
        "calls_answered": result["calls_answered"],
        "calls_ok": result["calls_ok"],
        "codec": codec,
        "seconds": result["seconds"],
        "cpu_ms_per_call_s": result["cpu_ms_per_call_s"],
        "server_cpu_pct": result["server_cpu_pct"],
        "rss_mb_per_call": result["rss_mb_per_call"],
        "load_cpu_pct": result["generator_cpu_pct"],
        "packets": result["packets"],
    }


def packet_mix(point: dict) -> dict[str, float]:
    """Packets per call-second by direction and kind, e.g. {"to server rtp": 50.0}."""
    return {
        f"{direction} {kind}": figures["per_call_s"]
        for direction, kinds in point["packets"]["rates"].items()
        for kind, figures in kinds.items()
    }


def report(points: list[dict], tolerance: float) -> dict:
    by_load = {load: [p for p in points if p["load"] == load] for load in ("chromium", "generator")}
    medians = {
        load: statistics.median(p["cpu_ms_per_call_s"] for p in ps) for load, ps in by_load.items()
    }
    ratio = medians["generator"] / medians["chromium"]
    mixes = {load: [packet_mix(p) for p in ps] for load, ps in by_load.items()}
    kinds = sorted({k for ms in mixes.values() for m in ms for k in m})
    mix = {
        kind: {
            load: round(statistics.mean(m.get(kind, 0.0) for m in ms), 3)
            for load, ms in mixes.items()
        }
        for kind in kinds
    }
    timing = {
        load: {
            key: statistics.mean(
                p["packets"]["rtp_to_server"][key]
                for p in ps
                if p["packets"]["rtp_to_server"][key] is not None
            )
            for key in ("interval_jitter_ms", "burst_pct")
        }
        for load, ps in by_load.items()
    }
    return {
        "cpu_ms_per_call_s_median": medians,
        "generator_over_chromium": round(ratio, 3),
        "agrees": abs(ratio - 1) <= tolerance,
        "tolerance": tolerance,
        "packets_per_call_s": mix,
        "rtp_to_server_timing": timing,
        "points": points,
        "loadavg_before": None,
    }


def print_report(result: dict) -> None:
    print(f"{'load':>10} {'calls':>5} {'answered':>8} {'cpu ms/call-s':>13} "
          f"{'server cpu %':>12} {'load cpu %':>10}")  # fmt: skip
    for p in result["points"]:
        print(
            f"{p['load']:>10} {p['calls']:>5} {p['calls_answered']:>8} "
            f"{p['cpu_ms_per_call_s']:>13.2f} {p['server_cpu_pct']:>12.1f} "
            f"{p['load_cpu_pct']:>10.1f}"
        )
    print()
    print(f"{'packets per call-second':<32} {'chromium':>9} {'generator':>9}")
    for kind, figures in result["packets_per_call_s"].items():
        print(f"{kind:<32} {figures['chromium']:>9.3f} {figures['generator']:>9.3f}")
    for load, timing in result["rtp_to_server_timing"].items():
        print(
            f"{load}: RTP interval jitter {timing['interval_jitter_ms']:.3f} ms, "
            f"packets of different calls within 50 us: {timing['burst_pct']:.1f}%"
        )
    medians = result["cpu_ms_per_call_s_median"]
    print(
        f"\nmedian CPU-ms per call-second: Chromium {medians['chromium']:.2f}, "
        f"generator {medians['generator']:.2f}: ratio {result['generator_over_chromium']:.3f} "
        f"({'within' if result['agrees'] else 'NOT within'} {result['tolerance']:.0%}); "
        f"load average before: {result['loadavg_before']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.crosscheck",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--codec", choices=["pcmu", "opus"], default="pcmu")
    parser.add_argument("--rate", type=float, default=5.0, help="calls started per second")
    parser.add_argument("--tolerance", type=float, default=0.15)
    parser.add_argument("--output", type=Path, default=RESULTS / "crosscheck.json")
    args = parser.parse_args(argv)
    loadavg = Path("/proc/loadavg").read_text().split()[:3]
    points = []
    for round_ in range(args.rounds):
        order = ("chromium", "generator") if round_ % 2 == 0 else ("generator", "chromium")
        for load in order:
            if load == "chromium":
                point = asyncio.run(chromium_point(args.calls, args.seconds, args.codec, args.rate))
            else:
                point = generator_point(args.calls, args.seconds, args.codec, args.rate, round_)
            point["round"] = round_
            print(
                f"round {round_} {load}: {point['cpu_ms_per_call_s']:.2f} CPU-ms per call-second "
                f"({point['calls_answered']}/{point['calls']} answered)",
                flush=True,
            )
            points.append(point)
    result = report(points, args.tolerance)
    result["loadavg_before"] = " ".join(loadavg)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print_report(result)
    return 0 if result["agrees"] else 1


if __name__ == "__main__":
    sys.exit(main())
