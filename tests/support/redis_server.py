"""A real Redis 7 (Debian's `redis-server`) for the tests: started on a free loopback port in
a temporary directory, without persistence, and stopped after. As root it runs as the
`redis` user (or `nobody`), never as root."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .ports import free_udp_port

BINARY = "redis-server"


@dataclass
class RedisServer:
    directory: Path
    host: str
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def command(self, *argv: str) -> str:
        """One command over RESP (no client library needed), its reply's first line."""
        parts = [f"*{len(argv)}\r\n"] + [f"${len(a.encode())}\r\n{a}\r\n" for a in argv]
        with socket.create_connection((self.host, self.port), timeout=5) as sock:
            sock.sendall("".join(parts).encode())
            return sock.recv(65536).decode(errors="replace").split("\r\n", 1)[0]

    def flush(self) -> None:
        """Forget every key (a test's own start)."""
        assert self.command("FLUSHALL") == "+OK"

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError):
                self.command("SHUTDOWN", "NOSAVE", "NOW")  # SIGTERM takes Redis 2 s
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(2)
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""


def available() -> bool:
    return shutil.which(BINARY) is not None


def _unprivileged() -> str | None:
    if os.geteuid() != 0:
        return None
    for user in ("redis", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(user)
            return user
    raise RuntimeError("no unprivileged user to run redis-server as")


@contextlib.contextmanager
def redis_server(host: str = "127.0.0.1") -> Iterator[RedisServer]:
    user = _unprivileged()
    directory = Path(tempfile.mkdtemp(prefix="gateway-test-redis-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    port = free_udp_port()
    argv = [
        BINARY,
        "--port", str(port),
        "--bind", host,
        "--dir", str(directory),
        "--save", "",
        "--appendonly", "no",
        "--logfile", str(directory / "redis.log"),
        "--daemonize", "no",
    ]  # fmt: skip
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = RedisServer(directory, host, port, process)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                if server.command("PING") == "+PONG":
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start:\n{server.log()}")
            time.sleep(0.02)
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
