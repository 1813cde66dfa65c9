"""`python -m bench.load`: the load benchmark (run it inside scripts/in-loopback-netns).

  python -m bench.load --calls 100 --seconds 20 --codec pcmu   one point -> latest.json
  python -m bench.load                                         the sweep -> sweep.json
  python -m bench.load --churn 1000                            memory over sequential calls

docs/benchmark.md explains every field.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .run import PointSpec, run_churn, run_point

RESULTS = Path(__file__).resolve().parents[1] / "results"
SWEEP = (10, 25, 50, 100, 150, 200, 250, 300, 400)

COLUMNS = [
    ("codec", "codec", "{}"),
    ("calls", "calls", "{}"),
    ("calls_ok", "ok", "{}"),
    ("cpu_ms_per_call_s", "cpu ms/call-s", "{:.2f}"),
    ("gateway_cpu_pct", "gw cpu %", "{:.0f}"),
    ("frames_on_time_pct", "on time %", "{:.2f}"),
    ("echo_rtt_ms_p50", "rtt p50", "{:.1f}"),
    ("echo_rtt_ms_p95", "rtt p95", "{:.1f}"),
    ("setup_ms_p50", "setup p50", "{:.0f}"),
    ("setup_ms_p95", "setup p95", "{:.0f}"),
    ("rss_mb_per_call", "MB/call", "{:.2f}"),
    ("generator_cpu_pct", "gen cpu %", "{:.0f}"),
    ("generator_late_ticks_pct", "gen late %", "{:.1f}"),
]


def table(points: list[dict]) -> str:
    rows = [[title for _, title, _ in COLUMNS]]
    for point in points:
        rows.append(
            ["-" if point.get(key) is None else fmt.format(point[key]) for key, _, fmt in COLUMNS]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    return "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


def holds(point: dict) -> bool:
    """A load point holds when 99% of calls were fine and 99.5% of frames on time."""
    on_time = point.get("frames_on_time_pct") or 0
    return point["calls_ok"] >= 0.99 * point["calls"] and on_time >= 99.5


def write(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--calls", type=int, help="one point with this many calls (else sweep)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window")
    parser.add_argument(
        "--codec",
        choices=["pcmu", "opus", "both"],
        default=None,
        help="what visitors send (default: pcmu for a point, both for a sweep)",
    )
    parser.add_argument("--workers", type=int, help="gateway workers (default: one per core)")
    parser.add_argument("--rate", type=float, default=20.0, help="calls started per second")
    parser.add_argument("--generators", type=int, help="generator processes (default: calls/50)")
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
        help="py-spy each worker during the window; see bench/load/profile.py",
    )
    parser.add_argument("--output", type=Path, help="result file (default under bench/results)")
    args = parser.parse_args(argv)  # fmt: skip

    if args.churn:
        result = run_churn(args.churn, codec=args.codec or "pcmu", workers=args.workers)
        write(args.output or RESULTS / "churn.json", result)
        print(json.dumps({k: v for k, v in result.items() if k != "samples"}, indent=2))
        return 0

    def point(calls: int, codec: str) -> dict:
        spec = PointSpec(
            calls,
            args.seconds,
            codec,
            args.workers,
            args.rate,
            args.generators,
            str(args.profile) if args.profile else None,
        )
        result = run_point(spec, keep=args.keep)
        write(RESULTS / "latest.json", result)
        return result

    if args.calls:
        result = point(args.calls, args.codec or "pcmu")
        if args.output:
            write(args.output, result)
        print(table([result]))
        if result["errors"]:
            print("errors:", json.dumps(result["errors"]))
        return 0

    codecs = ["pcmu", "opus"] if args.codec in (None, "both") else [args.codec]
    points: list[dict] = []
    for codec in codecs:
        for calls in SWEEP:
            if calls > args.max_calls:
                break
            result = point(calls, codec)
            if not holds(result):
                # Once more before giving up: the machine may have been busy with others.
                print(table([result]).splitlines()[-1], "(did not hold; once more)", flush=True)
                result = point(calls, codec)
                result["retried"] = True
            points.append(result)
            print(table([result]).splitlines()[-1], flush=True)
            write(args.output or RESULTS / "sweep.json", points)
            if not holds(result):
                break
    print(table(points))
    return 0


if __name__ == "__main__":
    sys.exit(main())
