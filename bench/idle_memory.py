"""Idle memory of the gateway as the load benchmark starts it, process by process.

    scripts/in-loopback-netns .venv/bin/python bench/idle_memory.py [--workers 2] [--top 8]

Starts `python -m gateway` with the benchmark's configuration (bench/load/servers.py), waits
until every worker is ready and `--wait` seconds more, then prints each process's PSS with
its private clean/dirty and shared clean/dirty parts (/proc/PID/smaps), the `--top` mappings
by PSS ([anon], [heap], each shared library), and the total: the benchmark's `pss_mb_idle`.
Shared libraries' pages count shared with every process of the machine that maps them
(other gateways, test runs), so the libraries' part varies a little with what else runs.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load.servers import idle_gateway

FIELDS = ("Pss", "Private_Clean", "Private_Dirty", "Shared_Clean", "Shared_Dirty")
MAPPING = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")


def mappings(pid: int) -> dict[str, Counter]:
    """kB of each of FIELDS by mapping name (anonymous ones as [anon])."""
    out: dict[str, Counter] = defaultdict(Counter)
    name = "[anon]"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        parts = line.split()
        if MAPPING.match(line):
            name = parts[5] if len(parts) > 5 else "[anon]"
        elif parts[0].rstrip(":") in FIELDS:
            out[name][parts[0].rstrip(":")] += int(parts[1])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--wait", type=float, default=3.0, help="seconds after ready")
    parser.add_argument("--top", type=int, default=8, help="mappings listed per process")
    args = parser.parse_args(argv)
    with idle_gateway(args.workers, args.wait) as server:
        total = 0
        for n, pid in enumerate(server.pids()):
            role = "supervisor" if n == 0 else "worker"
            by_name = mappings(pid)
            sums: Counter = Counter()
            for fields in by_name.values():
                sums.update(fields)
            total += sums["Pss"]
            print(
                f"{role} (pid {pid}): PSS {sums['Pss'] / 1024:.1f} MB; private clean "
                f"{sums['Private_Clean'] / 1024:.1f}, private dirty "
                f"{sums['Private_Dirty'] / 1024:.1f}, shared clean "
                f"{sums['Shared_Clean'] / 1024:.1f}, shared dirty "
                f"{sums['Shared_Dirty'] / 1024:.1f}"
            )
            ranked = sorted(by_name.items(), key=lambda item: -item[1]["Pss"])
            for name, fields in ranked[: args.top]:
                print(
                    f"  {fields['Pss'] / 1024:6.1f} PSS {fields['Private_Dirty'] / 1024:6.1f}"
                    f" private dirty  {name}"
                )
        print(f"total PSS {total / 1024:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
