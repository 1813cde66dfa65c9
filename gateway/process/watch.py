"""The supervisor once its workers run: a lean process that waits for them.

The supervisor (gateway.process.supervisor) imports the whole application and forks the
workers from it, so they share its modules' memory copy-on-write. Then it has nothing more
to do with that application: it only waits, restarts a worker that dies and stops them all
on SIGINT/SIGTERM. Kept, the application would cost it memory nobody uses (its pages the
workers copied stay private to it, and the pages of shared libraries it touched while
importing, ~40 MB of a 2-worker gateway's ~150 MB PSS: docs/benchmark.md, Memory). So it
replaces itself (`exec`, the same pid: the workers stay its children) with this module,
which imports a few modules of the standard library only, in a Python started without
`site` (~5 MB PSS).

What it knows is handed over in a memory file (`memfd`) it inherits (marshal): the
workers' configurations (pickled; unpickled only by the children below, since that imports
the application), the state directory and the descriptor of its lock, the node's name, and the
workers' pids. Whatever needs the application runs in a child process:

- ending what a dead worker left (gateway.process.supervisor.end_worker): a child that
  imports it, does it and exits;
- starting a worker again: a child that imports the application and becomes the worker. It
  shares no memory with the others (started from this lean process): a restarted worker
  costs about as much as a gateway of its own.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import signal
import sys
import time

from gateway.process.imports import (
    import_socketio_without_redis,
    import_sqlalchemy_asyncio_without_orm,
)

TYPE_CHECKING = False  # (typing itself is not imported here: the lean process stays lean)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# A worker that dies sooner than this after starting failed to start; after this many such
# failures in a row the supervisor gives up instead of spinning.
QUICK_FAILURE = 5.0
MAX_QUICK_FAILURES = 5
STOP_GRACE = 10.0  # seconds workers get to hang up their calls on SIGTERM
# A worker's exit status when it cannot bind an address of its configuration: a new worker
# would fail the same way, so the supervisor stops the gateway instead of restarting it.
EXIT_CANNOT_START = 3


class Handover:
    """What the supervisor hands to its lean self across `exec` (a plain class: the lean
    process imports no more than it must, dataclasses and its inspect included)."""

    def __init__(
        self,
        *,
        configs: bytes,
        count: int,
        state_path: str,
        lock_fd: int,
        node: str,
        pids: dict[int, int],
        started: dict[int, float],
        stopping: bool,
    ) -> None:
        self.configs = configs  # the workers' GatewayConfig list, pickled
        self.count = count  # workers
        self.state_path = state_path  # the state directory (gateway.process.state)
        self.lock_fd = lock_fd  # the descriptor of its lock, held until the gateway stops
        self.node = node
        self.pids = pids  # pid -> worker index
        self.started = started  # worker index -> when (time.monotonic: the same clock)
        self.stopping = stopping  # SIGINT/SIGTERM came while the workers were forked

    def dump(self, file: int) -> None:
        """Write it to the descriptor `file` (marshal: built in, where pickle would cost
        the lean process ~0.5 MB of imports; the same interpreter reads it back)."""
        with open(file, "wb", closefd=False) as out:
            marshal.dump(vars(self), out)

    @classmethod
    def load(cls, file: int) -> Handover:
        """Read what `dump` wrote to `file`, and close it."""
        with os.fdopen(file, "rb") as source:
            return cls(**marshal.load(source))


def become_watcher(handover: Handover) -> int:
    """Replace this process (the supervisor, its workers forked) with the lean one; returns
    only if that cannot be done (no Python executable to run, exec refused): then this
    process watches as it is, the application's memory kept, and returns the gateway's
    status. SIGINT and SIGTERM stay blocked across exec (the mask is kept) until the new
    image has its handlers, so a stop asked meanwhile is not lost."""
    memory = None
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        if not sys.executable:
            raise OSError("sys.executable is unknown")
        memory = os.memfd_create("gateway-supervisor")  # close-on-exec by default
        handover.dump(memory)
        os.lseek(memory, 0, os.SEEK_SET)
        os.set_inheritable(memory, True)
        os.set_inheritable(handover.lock_fd, True)
        sys.stdout.flush()
        sys.stderr.flush()
        # Without `site` (-S: ~1 MB less, its imports and .pth files'): the directory that
        # holds this package goes at the end of sys.path (the standard library still first),
        # and the children that import the application set `site` up (Watcher._in_child).
        home = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        program = (
            f"import sys; sys.path.append({home!r}); "
            f"from gateway.process.watch import main; main({memory})"
        )
        os.execv(sys.executable, [sys.executable, "-S", "-c", program])
    except OSError as exc:
        if memory is not None:
            os.close(memory)
        os.set_inheritable(handover.lock_fd, False)
        print(f"the supervisor keeps the application loaded: {exc}", file=sys.stderr, flush=True)
    return Watcher(handover).run()  # it unblocks SIGINT and SIGTERM


def main(memory: int) -> None:
    """The lean supervisor's entry (after exec): watch until stopped, then exit with the
    gateway's status."""
    handover = Handover.load(memory)
    os.set_inheritable(handover.lock_fd, False)
    try:
        status = Watcher(handover).run()
    finally:  # the state directory given up, as StateDirectory.release does
        with contextlib.suppress(OSError):
            os.ftruncate(handover.lock_fd, 0)
        os.close(handover.lock_fd)
    sys.exit(status)


class Watcher:
    """Restarts the workers that die, stops them all on SIGINT/SIGTERM."""

    def __init__(self, handover: Handover) -> None:
        self.handover = handover
        self._pids = dict(handover.pids)
        self._started = dict(handover.started)
        self._quick_failures = [0] * handover.count
        self._stopping = False

    def run(self) -> int:
        """Until a signal asks to stop (0), or a worker cannot start or keeps failing (1)."""
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        if self.handover.stopping:
            self._stop_workers()
        status = 0
        while self._pids:
            try:
                pid, wait_status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if pid not in self._pids:
                continue
            index = self._pids.pop(pid)
            if self._stopping:
                continue
            code = os.waitstatus_to_exitcode(wait_status)
            if code == EXIT_CANNOT_START:
                print(f"worker {index} cannot start; stopping the gateway", flush=True)
                self._end_worker(index, pid, "could not start")
                self._stop_workers()
                status = 1
                continue
            how = f"signal {-code}" if code < 0 else f"exit status {code}"
            print(f"worker {index} (pid {pid}) died: {how}; ending its calls", flush=True)
            self._end_worker(index, pid, f"died ({how})")
            if time.monotonic() - self._started[index] < QUICK_FAILURE:
                self._quick_failures[index] += 1
                if self._quick_failures[index] >= MAX_QUICK_FAILURES:
                    print(f"worker {index} keeps failing at start; stopping", flush=True)
                    self._stop_workers()
                    status = 1
                    continue
                time.sleep(min(5.0, 0.5 * 2 ** self._quick_failures[index]))
            else:
                self._quick_failures[index] = 0
            if not self._stopping:
                self._spawn(index)
        return status

    def _end_worker(self, index: int, pid: int, why: str) -> None:
        """End what worker `index` (`pid`) left, in a child that imports what it takes."""

        def end(supervisor: Any) -> int:
            supervisor.end_worker(self.handover, index, pid, why)
            return 0

        # The child finishes its job: the watcher waits for it, and stops the workers itself.
        child = self._in_child(end, ignore_stop=True)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(child, 0)

    def _spawn(self, index: int) -> None:
        pid = self._in_child(lambda supervisor: supervisor.restarted_worker(self.handover, index))
        self._pids[pid] = index
        self._started[index] = time.monotonic()

    def _in_child(self, work: Callable[[Any], int], *, ignore_stop: bool = False) -> int:
        """Fork; the child imports the application (gateway.process.supervisor), runs
        `work` with it and exits with what it returns (1 if it raised). The parent gets the
        child's pid."""
        pid = self._fork()
        if pid != 0:
            return pid
        code = 1
        try:
            if ignore_stop:
                signal.signal(signal.SIGINT, signal.SIG_IGN)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            if sys.flags.no_site:  # the lean process runs without it (become_watcher)
                import site

                site.main()
            import_socketio_without_redis()  # first, as gateway.__main__ does
            import_sqlalchemy_asyncio_without_orm()
            from gateway.process import supervisor

            code = work(supervisor)
        except BaseException:
            _print_exception()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    @staticmethod
    def _fork() -> int:
        sys.stdout.flush()
        sys.stderr.flush()
        return os.fork()

    def _on_stop_signal(self, signum, frame) -> None:
        if not self._stopping:
            self._stop_workers()

    def _stop_workers(self) -> None:
        self._stopping = True
        for pid in list(self._pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        signal.signal(signal.SIGALRM, self._kill_workers)
        signal.alarm(int(STOP_GRACE))

    def _kill_workers(self, signum, frame) -> None:
        for pid in list(self._pids):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _print_exception() -> None:
    import traceback  # only when a child fails: the lean process does without it

    traceback.print_exc()
