"""Where a worker's time goes, from py-spy's collapsed stacks (`--format raw`).

  python -m bench.load.profile bench/results/profile/worker-0.txt [--top 25]

Prints, in % of all samples: the functions that were running (self time), and the
functions that were on the stack (inclusive time), with idle time (the event loop waiting
in select/epoll) shown apart, so the rest is what the worker spent its CPU on.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

IDLE = re.compile(r"\b(select|poll|_run_once)\b.*\(selectors\.py|epoll")
ROOT = f"{Path(__file__).resolve().parents[2]}/"  # the checkout: paths shown from here
FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")


def short(frame: str) -> str:
    """'handle (aiortc/rtcdtlstransport.py:123)' -> 'handle (aiortc/rtcdtlstransport.py)'."""
    match = FRAME.match(frame)
    if not match:
        return frame
    path = match.group("file")
    for marker in ("site-packages/", ROOT, "python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{match.group('name')} ({path})"


def load(path: Path) -> Counter[tuple[str, ...]]:
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = tuple(short(f) for f in stack.split(";") if f and not f.startswith("process "))
        stacks[frames] += int(count)
    return stacks


def idle(stack: tuple[str, ...]) -> bool:
    return bool(stack) and ("select (selectors.py)" in stack[-1] or "poll" in stack[-1])


def report(stacks: Counter[tuple[str, ...]], top: int) -> str:
    total = sum(stacks.values())
    waiting = sum(n for s, n in stacks.items() if idle(s))
    busy = {s: n for s, n in stacks.items() if not idle(s)}
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for stack, n in busy.items():
        if stack:
            own[stack[-1]] += n
        for frame in set(stack):
            inclusive[frame] += n
    lines = [
        f"{total} samples; waiting for I/O {waiting / total:.1%}, busy {1 - waiting / total:.1%}",
        "",
        "self time (% of busy samples):",
    ]
    busy_total = max(sum(busy.values()), 1)
    lines += [f"  {n / busy_total:6.1%}  {f}" for f, n in own.most_common(top)]
    lines += ["", "inclusive time (% of busy samples):"]
    lines += [f"  {n / busy_total:6.1%}  {f}" for f, n in inclusive.most_common(top)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    stacks: Counter[tuple[str, ...]] = Counter()
    for path in args.files:
        stacks.update(load(path))
    print(report(stacks, args.top))


if __name__ == "__main__":
    main()
