"""Opt-in memory diagnostics of a gateway process (off unless the environment asks).

    CLICK_TO_CALL_MEMORY_REPORTS=DIR python -m gateway ...

starts `tracemalloc` in every worker and, on SIGUSR1, appends a report to
`DIR/memory-<pid>.txt`: RSS, RSS after a full collection and after glibc's `malloc_trim`
(what the allocator could give back: fragmentation, not live data; the report trims, so
later RSS figures are not those of an untouched process), glibc's and pymalloc's heap
statistics, live objects by type and the allocations by line (and by traceback), each
against the first report and the previous one. Send SIGUSR1 after some warm-up calls and
again after many more: what grew in between, and where it was allocated, is what leaks. A
report is also written when the worker stops. CLICK_TO_CALL_MEMORY_FRAMES sets the frames
kept per allocation (default 1; 0: no tracemalloc, which also leaves pymalloc's statistics
readable). The name is not GATEWAY_*: those are configuration keys. tracemalloc slows the
process down: a debugging aid only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
import signal
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

from gateway.process.heap import malloc_trim

ENVIRONMENT_VARIABLE = "CLICK_TO_CALL_MEMORY_REPORTS"
FRAMES_VARIABLE = "CLICK_TO_CALL_MEMORY_FRAMES"  # frames per traceback; default 1
TOP = 30

# Objects whose live count says whether calls are freed (0 or a constant when idle).
WATCHED_TYPES = (
    "Call",
    "_Attempt",
    "WebRtcLeg",
    "SrtpAudioChannel",
    "MediaBridge",
    "CallMedia",
    "RtpSession",
    "SipCall",
    "Dialog",
    "InviteClientTransaction",
    "NonInviteClientTransaction",
    "InviteServerTransaction",
    "NonInviteServerTransaction",
    "RTCPeerConnection",
    "RTCDtlsTransport",
    "RTCIceTransport",
    "RTCIceGatherer",
    "RTCRtpSender",
    "RTCRtpReceiver",
    "RTCRtpTransceiver",
    "Session",  # pylibsrtp
    "Connection",  # aioice
    "StunProtocol",
    "AsyncServer",
    "AsyncSocket",
    "Task",
    "Future",
    "TimerHandle",
    "Handle",
)


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c"))


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
            "fsmblks", "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def malloc_info() -> str:
    """glibc's view of its heap: in use, free inside it (fragmentation), mmapped."""
    try:
        mallinfo2 = _libc().mallinfo2
    except (OSError, AttributeError, TypeError):
        return "malloc: no mallinfo2"
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    mb = 2**20
    return (
        f"malloc: heap {info.arena / mb:.2f} MB of which in use {info.uordblks / mb:.2f} MB, "
        f"free {info.fordblks / mb:.2f} MB ({info.ordblks} free chunks, trimmable at the top "
        f"{info.keepcost / mb:.2f} MB); mmapped {info.hblkhd / mb:.2f} MB in {info.hblks} blocks"
    )


def pymalloc_info() -> str:
    """pymalloc's arenas (Python's small objects): allocated, and bytes used in them."""
    with tempfile.TemporaryFile("w+") as capture:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(capture.fileno(), 2)
            sys._debugmallocstats()
            _libc().fflush(None)  # C's stderr is buffered when not a terminal
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read()
    wanted = ("# arenas allocated current", "# bytes in allocated blocks")
    fields = [line.split("=")[0].strip(" #") + " " + line.split("=")[-1].strip()
              for line in text.splitlines() if line.startswith(wanted)]  # fmt: skip
    if not fields:
        return "pymalloc: no statistics (not while tracemalloc traces)"
    return "pymalloc: " + "; ".join(fields)


def type_counts() -> Counter[str]:
    return Counter(type(o).__name__ for o in gc.get_objects())


class MemoryReporter:
    """Writes the reports described in the module docstring to `directory`."""

    def __init__(self, directory: Path, frames: int = 1) -> None:
        self.directory = directory
        self.frames = frames
        self.path = directory / f"memory-{os.getpid()}.txt"
        self._first: tuple[tracemalloc.Snapshot | None, Counter[str]] | None = None
        self._previous: tuple[tracemalloc.Snapshot | None, Counter[str]] | None = None
        self._count = 0
        self._reporting = False

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.frames > 0 and not tracemalloc.is_tracing():
            tracemalloc.start(self.frames)

    def report(self, reason: str = "SIGUSR1") -> None:
        if self._reporting:  # a signal during a report: that report will do
            return
        self._reporting = True
        try:
            self._report(reason)
        finally:
            self._reporting = False

    def _report(self, reason: str) -> None:
        self._count += 1
        rss = rss_bytes()
        gc.collect()
        rss_collected = rss_bytes()
        trimmed = malloc_trim()
        rss_trimmed = rss_bytes()
        snapshot = None
        if tracemalloc.is_tracing():
            snapshot = tracemalloc.take_snapshot().filter_traces(
                [tracemalloc.Filter(False, tracemalloc.__file__)]
            )
        counts = type_counts()
        traced, peak = tracemalloc.get_traced_memory()
        lines = [
            f"===== report {self._count} ({reason}) at {time.strftime('%H:%M:%S')}, "
            f"pid {os.getpid()}",
            f"rss {rss / 2**20:.2f} MB; after gc.collect {rss_collected / 2**20:.2f} MB; "
            f"after malloc_trim {rss_trimmed / 2**20:.2f} MB (released: {trimmed})",
            f"traced by tracemalloc {traced / 2**20:.2f} MB (peak {peak / 2**20:.2f} MB); "
            f"gc objects {sum(counts.values())}",
            malloc_info(),
            pymalloc_info(),
            "watched objects: "
            + ", ".join(f"{name} {counts.get(name, 0)}" for name in WATCHED_TYPES),
        ]
        for label, base in (("first report", self._first), ("previous report", self._previous)):
            if base is None:
                continue
            old_snapshot, old_counts = base
            lines.append(f"--- object types, growth since the {label}")
            growth = Counter(counts)
            growth.subtract(old_counts)
            lines += [f"  {n:+7d} {name}" for name, n in growth.most_common(TOP) if n > 0]
            if snapshot is None or old_snapshot is None:
                continue
            lines.append(f"--- allocations by line, growth since the {label}")
            for stat in snapshot.compare_to(old_snapshot, "lineno")[:TOP]:
                lines.append(f"  {stat}")
            if self.frames < 2:
                continue
            lines.append(f"--- allocations by traceback, growth since the {label} (top 8)")
            for stat in snapshot.compare_to(old_snapshot, "traceback")[:8]:
                lines.append(f"  {stat.size_diff / 1024:+.1f} KiB, {stat.count_diff:+d} blocks")
                lines += [f"      {line}" for line in stat.traceback.format(limit=12)]
        if self._first is None:
            self._first = (snapshot, counts)
        self._previous = (snapshot, counts)
        with self.path.open("a") as out:
            out.write("\n".join(lines) + "\n\n")


def install_from_environment(environ: Mapping[str, str] = os.environ) -> MemoryReporter | None:
    """Start the reporter if the environment names a directory; report on SIGUSR1."""
    directory = environ.get(ENVIRONMENT_VARIABLE)
    if not directory:
        return None
    frames = int(environ.get(FRAMES_VARIABLE) or 1)
    reporter = MemoryReporter(Path(directory), frames)
    reporter.start()
    signal.signal(signal.SIGUSR1, lambda signum, frame: reporter.report())
    return reporter
