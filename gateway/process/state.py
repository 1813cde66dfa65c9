"""The state directory (`[storage] state_directory`): the one place an instance of the
gateway keeps the files it writes while it runs: in `workers/`, the workers' shared ledger
(gateway/access/ledger.py) and each worker's call journal (gateway/process/journal.py); in
`metrics/`, their Prometheus values (gateway/monitoring/metrics.py).

Never a shared /tmp: two gateways of one user on one host (two configurations, two
containers sharing /tmp) would count each other's visitors and spend, and end each other's
calls. So the directory is the operator's choice (default `var` under the working
directory), private to this user (created mode 700; refused when another user owns it or
others may write to it: its files are trusted when read back), and held by one running
instance at a time: `gateway.lock` inside it carries an exclusive lock (flock, released by
the kernel when the holder exits, however it exits) and the holder's pid, so a second
instance pointed at the same directory stops at start and says which process holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import socket
import stat
from pathlib import Path

LOCK_FILE = "gateway.lock"
WORKERS = "workers"  # the supervisor's files: the workers' ledger and their journals
LEDGER_FILE = "ledger.sqlite3"
METRICS = "metrics"  # the workers' Prometheus files (gateway.monitoring.metrics)


def node_name(configured: str | None, state_directory: Path) -> str:
    """This node's name among the nodes of a service (`[storage] node`): the configured one,
    else this host's name and six hex digits of the state directory's absolute path. Stable
    across restarts, and unique: a state directory is held by one running gateway per host
    (two nodes on one host have two). Whatever a node's workers claim or publish (callbacks,
    calls in progress, counted calls, heartbeats) carries it, so a node ends only its own."""
    if configured:
        return configured
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0])[:32] or "host"
    digest = hashlib.sha256(str(state_directory.absolute()).encode()).hexdigest()[:6]
    return f"{host}-{digest}"


def owner_name(node: str, worker: int | None) -> str:
    """The name a worker claims and publishes under: `<node>/worker-<i>`, or
    `<node>/gateway` for a gateway running without workers."""
    return f"{node}/gateway" if worker is None else f"{node}/worker-{worker}"


class StateDirectoryError(Exception):
    """The state directory cannot be used; the message says why and what to do."""


def private_directory(path: Path) -> None:
    """Create `path` for this user only, or check that it is so. Raises StateDirectoryError
    when it belongs to someone else or others may write to it."""
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    except OSError as exc:
        raise StateDirectoryError(f"cannot create {path}: {exc.strerror}") from None
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
        raise StateDirectoryError(
            f"{path} is not a directory of this user that only it may write to; "
            "remove it and start again"
        )
    if info.st_mode & 0o077:
        path.chmod(0o700)  # ours and written by us alone so far: keep it so


class StateDirectory:
    """A state directory held by this process (and the workers it forks) until `release`."""

    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self._lock_fd: int | None = lock_fd

    @classmethod
    def claim(cls, path: Path) -> StateDirectory:
        """Make `path` private and take its lock. Raises StateDirectoryError when it is
        not private to this user, or another running instance holds it."""
        path = path.absolute()
        private_directory(path)
        lock = path / LOCK_FILE
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StateDirectoryError(f"cannot open {lock}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"the gateway with pid {holder}" if holder else "another gateway"
            raise StateDirectoryError(
                f"{path} ([storage] state_directory) is in use by {who} (lock file {lock}): "
                "give each gateway instance its own state_directory"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        claimed = cls(path, fd)
        try:
            private_directory(path / WORKERS)
        except StateDirectoryError:
            claimed.release()
            raise
        return claimed

    @property
    def ledger(self) -> Path:
        """The SQLite file the workers count together in."""
        return self.path / WORKERS / LEDGER_FILE

    @property
    def lock_fd(self) -> int | None:
        """The descriptor holding the lock (None once released): the supervisor keeps it
        open across exec (gateway.process.watch)."""
        return self._lock_fd

    def journal(self, index: int) -> Path:
        """Worker `index`'s call journal."""
        return self.path / WORKERS / f"worker-{index}.json"

    def release(self) -> None:
        """Give the directory up (the kernel does it too when the process exits)."""
        if self._lock_fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._lock_fd, 0)
        os.close(self._lock_fd)
        self._lock_fd = None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
