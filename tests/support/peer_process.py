"""A peer program (SIPp, baresip) run as a child process for one test.

Common ground of the peers: output goes to files in the test's own directory (so that a
failing test can show it), readiness is seen by the peer's socket appearing in
``/proc/net/udp`` (neither peer prints anything reliable before it listens, and binding the
port ourselves to probe it could steal it from the peer), and the process, in its own
session, is always killed at teardown so that no peer outlives its test and keeps its port.

``/proc/net/udp`` shows the sockets of the reader's network namespace, which is the peer's
too when both run inside ``scripts/in-loopback-netns``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["PeerProcess", "PeerStartError", "is_port_bound", "tail"]


class PeerStartError(RuntimeError):
    """A peer exited or did not listen in time; the message carries its output."""


def _bound_ports(table: str) -> set[int]:
    ports: set[int] = set()
    try:
        lines = Path("/proc/net", table).read_text().splitlines()[1:]
    except FileNotFoundError:
        return ports
    for line in lines:
        fields = line.split()
        if len(fields) > 1:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def is_port_bound(port: int, *, tcp: bool = False) -> bool:
    """Whether some socket (IPv4 or IPv6) of this network namespace is bound to ``port``."""
    tables = ("tcp", "tcp6") if tcp else ("udp", "udp6")
    return any(port in _bound_ports(table) for table in tables)


def tail(path: Path, limit: int = 6000) -> str:
    """The last ``limit`` characters of a text file, or '' if it does not exist."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return text if len(text) <= limit else "...\n" + text[-limit:]


class PeerProcess:
    """One child process with stdout/stderr in files under ``workdir``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        workdir: Path,
        *,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """`env`: the child's environment (default: this process's)."""
        self.name = name
        self.argv = list(argv)
        self.workdir = workdir
        self.env = dict(env) if env is not None else None
        self.stdout_path = workdir / f"{name}.stdout"
        self.stderr_path = workdir / f"{name}.stderr"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self._process = subprocess.Popen(
                self.argv,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=self.env,
                start_new_session=True,  # its own process group, killed as one at teardown
            )

    @property
    def pid(self) -> int:
        return self._require().pid

    @property
    def returncode(self) -> int | None:
        return self._require().poll()

    def _require(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError(f"{self.name} was not started")
        return self._process

    def output(self, limit: int = 6000) -> str:
        """The command line and the tails of stdout and stderr, for failure messages."""
        return (
            f"$ {' '.join(self.argv)}\n"
            f"--- {self.name} stdout ---\n{tail(self.stdout_path, limit)}\n"
            f"--- {self.name} stderr ---\n{tail(self.stderr_path, limit)}"
        )

    def wait_until_bound(self, port: int, timeout: float, *, tcp: bool = False) -> None:
        """Block until ``port`` is bound, failing early if the process exits."""
        deadline = time.monotonic() + timeout
        while not is_port_bound(port, tcp=tcp):
            if self.returncode is not None:
                raise PeerStartError(
                    f"{self.name} exited with {self.returncode} before binding port {port}\n"
                    + self.output()
                )
            if time.monotonic() > deadline:
                raise PeerStartError(
                    f"{self.name} did not bind port {port} within {timeout} s\n" + self.output()
                )
            time.sleep(0.005)

    def wait(self, timeout: float) -> int | None:
        """The exit status, or None if still running after ``timeout`` seconds."""
        try:
            return self._require().wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    async def wait_async(self, timeout: float) -> int | None:
        """``wait`` without blocking the event loop (the code under test may run on it)."""
        deadline = time.monotonic() + timeout
        while (status := self.returncode) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return status

    def stop(self, grace: float = 2.0) -> None:
        """Ask with ``SIGTERM``, then ``SIGKILL`` the process group; reap the child.

        Signals go only to a group whose leader has not been reaped yet, so its id cannot
        have been reused by another process.
        """
        process = self._process
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
