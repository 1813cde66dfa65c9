"""`python -m bench.load`: the load benchmark (run it inside scripts/in-loopback-netns).

  python -m bench.load --calls 100 --seconds 20 --codec pcmu   one point, gateway and Janus
  python -m bench.load --calls 10,25,50,100                   several points
  python -m bench.load                                        the sweep -> sweep.json
  python -m bench.load --churn 1000                           memory over sequential calls

Every G.711 point runs twice with the same visitors: against this gateway and against the
Janus SIP plugin (`--server both`, the default; Janus does not transcode, so Opus points run
against the gateway only). docs/benchmark.md explains every field.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from .run import PointSpec, run_churn, run_point

RESULTS = Path(__file__).resolve().parents[1] / "results"
SWEEP = (10, 25, 50, 100, 150, 200, 250, 300, 400)

COLUMNS = [
    ("server", "server", "{}"),
    ("codec", "codec", "{}"),
    ("calls", "calls", "{}"),
    ("calls_ok", "ok", "{}"),
    ("cpu_ms_per_call_s", "cpu ms/call-s", "{:.2f}"),
    ("server_cpu_pct", "cpu %", "{:.0f}"),
    ("frames_on_time_pct", "on time %", "{:.2f}"),
    ("echo_rtt_ms_p50", "rtt p50", "{:.1f}"),
    ("echo_rtt_ms_p95", "rtt p95", "{:.1f}"),
    ("setup_ms_p50", "setup p50", "{:.0f}"),
    ("setup_ms_p95", "setup p95", "{:.0f}"),
    ("pss_mb_idle", "PSS idle", "{:.0f}"),
    ("rss_mb_busy", "RSS MB", "{:.0f}"),
    ("rss_mb_per_call", "MB/call", "{:.2f}"),
    ("threads", "threads", "{}"),
    ("generator_cpu_pct", "gen cpu %", "{:.0f}"),
    ("generator_late_ticks_pct", "gen late %", "{:.1f}"),
]


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


def table(points: list[dict]) -> str:
    rows = [[title for _, title, _ in COLUMNS]]
    for point in points:
        rows.append(
            ["-" if point.get(key) is None else fmt.format(point[key]) for key, _, fmt in COLUMNS]
        )
    return _table(rows)


def comparison(points: list[dict]) -> str:
    """Gateway against Janus at each N: CPU-ms per call-second and their ratio."""
    rows = [
        ["codec", "calls", "Janus cpu ms/call-s", "gateway", "gateway / Janus",
         "setup p50 Janus / gateway ms", "RSS Janus / gateway MB", "on time Janus / gateway %"]
    ]  # fmt: skip
    keys = sorted({(p["codec"], p["calls"]) for p in points}, key=lambda k: (k[0] != "pcmu", k))
    for codec, calls in keys:
        at = {p["server"]: p for p in points if (p["codec"], p["calls"]) == (codec, calls)}
        gateway, janus = at.get("gateway"), at.get("janus")

        def both(key: str, fmt: str, janus=janus, gateway=gateway) -> str:
            values = [
                "-" if p is None or p.get(key) is None else fmt.format(p[key])
                for p in (janus, gateway)
            ]
            return " / ".join(values)

        ratio = (
            f"{gateway['cpu_ms_per_call_s'] / janus['cpu_ms_per_call_s']:.2f}"
            if gateway and janus and janus["cpu_ms_per_call_s"]
            else "-"
        )
        rows.append(
            [
                codec,
                str(calls),
                f"{janus['cpu_ms_per_call_s']:.2f}"
                if janus
                else "cannot"
                if codec != "pcmu"
                else "-",
                f"{gateway['cpu_ms_per_call_s']:.2f}" if gateway else "-",
                ratio,
                both("setup_ms_p50", "{:.0f}"),
                both("rss_mb_busy", "{:.0f}"),
                both("frames_on_time_pct", "{:.2f}"),
            ]
        )
    return _table(rows)


def holds(point: dict) -> bool:
    """A load point holds when 99% of calls were fine and 99.5% of frames on time."""
    on_time = point.get("frames_on_time_pct") or 0
    return point["calls_ok"] >= 0.99 * point["calls"] and on_time >= 99.5


def write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def _calls(text: str) -> list[int]:
    try:
        calls = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of call counts: {text!r}") from None
    if not calls or min(calls) < 1:
        raise argparse.ArgumentTypeError("call counts are 1 or more")
    return calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--calls", type=_calls, help="points with these many calls, e.g. 25 or 10,25 (else sweep)"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window")
    parser.add_argument(
        "--codec",
        choices=["pcmu", "opus", "both"],
        default=None,
        help="what visitors send (default: pcmu for points, both for a sweep)",
    )
    parser.add_argument(
        "--server",
        choices=["gateway", "janus", "both"],
        default="both",
        help="what is loaded (default both: Janus for G.711 points, as the anchor)",
    )
    parser.add_argument("--workers", type=int, help="gateway workers (default: one per core)")
    parser.add_argument("--rate", type=float, default=20.0, help="calls started per second")
    parser.add_argument("--generators", type=int, help="generator processes (default: calls/50)")
    parser.add_argument(
        "--generator-media",
        choices=["c", "python", "aiortc"],
        default="c",
        help="the generators' media path (G.711 and Opus): in C (default, compiled with cc), "
        "Python, or stock aiortc peers as an independent client (G.711 only, 5 calls per "
        "process)",
    )
    parser.add_argument(
        "--jitter-ms", type=float, default=0.5, help="each frame sent up to this late (default 0.5)"
    )
    parser.add_argument("--seed", type=int, default=0, help="the calls' clock phases (default 0)")
    parser.add_argument("--max-calls", type=int, default=SWEEP[-1], help="sweep: stop here")
    parser.add_argument(
        "--churn",
        type=int,
        metavar="N",
        help="N short calls one after another; RSS of the workers as they go",
    )
    parser.add_argument("--keep", action="store_true", help="keep the logs (path printed)")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy each gateway worker during the window; see bench/load/profile.py",
    )
    parser.add_argument(
        "--perf",
        type=Path,
        metavar="DIR",
        help="`perf record -g` of the gateway's workers during the window (C and kernel "
        "time too): perf report -i DIR/perf.data --no-children --sort dso",
    )
    parser.add_argument("--capture", action="store_true", help="count packets by kind")
    parser.add_argument("--output", type=Path, help="result file (default under bench/results)")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="the benchmark's scheduler autogroup nice, e.g. -5 on a machine shared with "
        "others' work (root; set back to 0 at the end)",
    )
    args = parser.parse_args(argv)  # fmt: skip
    if args.generator_media == "aiortc":
        if args.codec not in (None, "pcmu"):
            parser.error("--generator-media aiortc: the stock aiortc visitors send pcmu only")
        args.codec = "pcmu"
    if args.perf and shutil.which("perf") is None:
        raise SystemExit("--perf needs Linux perf (Debian: apt-get install linux-perf)")
    if args.nice:
        set_autogroup_nice(args.nice)
        try:
            return _main(args)
        finally:
            set_autogroup_nice(0)
    return _main(args)


AUTOGROUP = Path("/proc/self/autogroup")


def set_autogroup_nice(nice: int) -> None:
    """Linux shares the CPU between sessions (autogroups) before threads: on a machine
    where others' test runs are busy, the benchmark's session gets 1/k of it. A lower nice
    of its autogroup gives it a bigger share (every process of the benchmark, the server
    too, is in it), so that its figures say more about the server than about the others."""
    try:
        AUTOGROUP.write_text(str(nice))
    except OSError as exc:
        raise SystemExit(f"--nice {nice}: cannot set the autogroup's nice: {exc}") from None


def _main(args: argparse.Namespace) -> int:

    if args.churn:
        result = run_churn(args.churn, codec=args.codec or "pcmu", workers=args.workers)
        write(args.output or RESULTS / "churn.json", result)
        print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
        return 0

    def point(calls: int, codec: str, server: str) -> dict:
        spec = PointSpec(
            calls,
            args.seconds,
            codec,
            args.workers,
            args.rate,
            args.generators,
            str(args.profile) if args.profile and server == "gateway" else None,
            server=server,
            jitter_ms=args.jitter_ms,
            seed=args.seed,
            capture=args.capture,
            generator_media=args.generator_media,
            perf=str(args.perf) if args.perf and server == "gateway" else None,
        )
        result = run_point(spec, keep=args.keep)
        result["loadavg"] = Path("/proc/loadavg").read_text().split()[0]
        result["autogroup_nice"] = args.nice
        write(RESULTS / "latest.json", result)
        print(table([result]).splitlines()[-1], flush=True)
        return result

    def servers(codec: str) -> list[str]:
        chosen = ["gateway", "janus"] if args.server == "both" else [args.server]
        return [s for s in chosen if codec == "pcmu" or s == "gateway"]

    codecs = (
        ["pcmu", "opus"]
        if args.codec == "both" or (args.codec is None and not args.calls)
        else [args.codec or "pcmu"]
    )
    points: list[dict] = []
    output = args.output or RESULTS / ("points.json" if args.calls else "sweep.json")
    print(table([]), flush=True)
    for codec in codecs:
        for calls in args.calls or SWEEP:
            if not args.calls and calls > args.max_calls:
                break
            held = True
            for server in servers(codec):
                result = point(calls, codec, server)
                if not args.calls and server == "gateway" and not holds(result):
                    # Once more before giving up: the machine may have been busy with others.
                    print("(did not hold; once more)", flush=True)
                    result = point(calls, codec, server)
                    result["retried"] = True
                    held = holds(result)
                points.append(result)
                write(output, points)
            if not held:
                break
    print()
    print(table(points))
    print()
    print(comparison(points))
    errors = {
        f"{p['server']} {p['codec']} {p['calls']}": p["errors"] for p in points if p["errors"]
    }
    if errors:
        print("errors:", json.dumps(errors))
    return 0


if __name__ == "__main__":
    sys.exit(main())
