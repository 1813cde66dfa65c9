"""CPU an idle gateway spends, process by process, as the load benchmark starts it.

    scripts/in-loopback-netns .venv/bin/python bench/idle_cpu.py [--workers 2] [--seconds 20]

Starts `python -m gateway` with the benchmark's configuration (bench/load/servers.py), waits
until every worker is ready and `--wait` seconds more, then reads each process's CPU time
(every thread's, from /proc/PID/task/*/schedstat: nanoseconds, not the 10 ms ticks of
/proc/PID/stat) at both ends of a `--seconds` window without any call. Whatever an idle
gateway spends is paid at every load, and weighs most per call where calls are few: at 10
calls, 1 CPU-ms a second of housekeeping is 0.1 CPU-ms per call-second of the benchmark.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load.servers import idle_gateway


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of `pid` so far, in nanoseconds."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):  # a thread that ended meanwhile
            continue
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--wait", type=float, default=3.0, help="seconds after ready")
    parser.add_argument("--seconds", type=float, default=20.0, help="the window")
    args = parser.parse_args(argv)
    with idle_gateway(args.workers, args.wait) as server:
        pids = server.pids()
        before = {pid: cpu_ns(pid) for pid in pids}
        time.sleep(args.seconds)
        after = {pid: cpu_ns(pid) for pid in pids}
        total = 0.0
        for n, pid in enumerate(pids):
            per_second = (after[pid] - before[pid]) / 1e6 / args.seconds
            total += per_second
            role = "supervisor" if n == 0 else "worker"
            print(f"{role} (pid {pid}): {per_second:.2f} CPU-ms per second")
        print(f"total {total:.2f} CPU-ms per second, idle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
