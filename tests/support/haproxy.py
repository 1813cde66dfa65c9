"""A real HAProxy 2.6 (Debian's `haproxy`) in front of gateway nodes, as docs/deployment.md
configures it: HTTP mode, websockets tunnelled (`timeout tunnel`), `option forwardfor`,
round robin over the nodes with health checks on `/healthz`, a failed connection
redispatched to another node. Started in a temporary directory, in the foreground, as the
`haproxy` user when run as root, and stopped after.

One addition for tests only: every answer says which node served it (`X-Served-By`), and
one thread balances strictly in turn, so a test can tell where its next request will go.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

BINARY = "haproxy"


@dataclass
class Haproxy:
    directory: Path
    listen: tuple[str, int]
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://{self.listen[0]}:{self.listen[1]}"

    def log(self) -> str:
        path = self.directory / "haproxy.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def available() -> bool:
    return shutil.which(BINARY) is not None


def configuration(listen: tuple[str, int], servers: Sequence[tuple[str, str, int]]) -> str:
    """`servers`: (name, host, port) of each node."""
    lines = [
        "global",
        "    nbthread 1",
        "    maxconn 2000",
        "defaults",
        "    mode http",
        "    option forwardfor",
        "    option redispatch",
        "    retries 2",
        "    timeout connect 2s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout tunnel 1h",
        "frontend gateway",
        f"    bind {listen[0]}:{listen[1]}",
        "    default_backend nodes",
        "backend nodes",
        "    balance roundrobin",
        "    option httpchk GET /healthz",
        "    http-check expect string ok",
        "    http-response set-header X-Served-By %s",
    ]
    for name, host, port in servers:
        lines.append(f"    server {name} {host}:{port} check inter 1s fall 2 rise 1")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def haproxy(listen: tuple[str, int], servers: Sequence[tuple[str, str, int]]) -> Iterator[Haproxy]:
    directory = Path(tempfile.mkdtemp(prefix="gateway-test-haproxy-"))
    directory.chmod(0o755)
    config = directory / "haproxy.cfg"
    config.write_text(configuration(listen, servers))
    config.chmod(0o644)
    argv = [BINARY, "-f", str(config), "-db"]
    if os.geteuid() == 0:
        user = "haproxy" if _exists("haproxy") else "nobody"
        argv = ["runuser", "-u", user, "--", *argv]
    with (directory / "haproxy.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    balancer = Haproxy(directory, listen, process)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(listen, timeout=1):
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"haproxy did not start:\n{balancer.log()}")
            time.sleep(0.02)
        yield balancer
    finally:
        balancer.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True
