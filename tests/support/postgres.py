"""A real PostgreSQL 15 (Debian's `postgresql`) for the storage tests: one server per test
session, started on a free loopback port in a temporary directory and stopped after, and a
fresh database per test. initdb refuses to run as root: as root the server runs as the
`postgres` user, in a directory it owns."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .ports import free_udp_port

BIN = Path("/usr/lib/postgresql/15/bin")
USER = "gw"


@dataclass
class PostgresServer:
    directory: Path
    port: int
    run_as: str | None  # the system user the server runs as (root cannot)

    def _command(self, *argv: str) -> list[str]:
        if self.run_as is None:
            return list(argv)
        return ["runuser", "-u", self.run_as, "--", *argv]

    def create_database(self, name: str) -> str:
        """A new, empty database; its URL for `[storage] database`."""
        subprocess.run(
            self._command(
                str(BIN / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, name
            ),
            check=True,
            capture_output=True,
        )
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run(
            self._command(
                str(BIN / "pg_ctl"), "-D", str(self.directory / "data"), "stop", "-m", "fast"
            ),
            capture_output=True,
        )


def available() -> bool:
    return (BIN / "initdb").exists()


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    run_as = "postgres" if os.geteuid() == 0 else None
    directory = Path(tempfile.mkdtemp(prefix="gateway-test-pg-"))
    directory.chmod(0o755)
    if run_as is not None:
        entry = pwd.getpwnam(run_as)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    server = PostgresServer(directory, free_udp_port(), run_as)
    data = directory / "data"
    try:
        subprocess.run(
            server._command(str(BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", USER),
            check=True,
            capture_output=True,
        )
        options = f"-k {directory} -c listen_addresses=127.0.0.1 -p {server.port} -c fsync=off"
        subprocess.run(
            server._command(
                str(BIN / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(data / "server.log"),
                "-w",
                "start",
            ),
            check=True,
            capture_output=True,
        )
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)
