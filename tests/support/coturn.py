"""coturn (Debian `coturn`) on loopback, with a long-term user or a TURN REST API secret,
and a TURN Allocate probe (aioice's TURN client) to ask it whether a credential works."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import aioice.stun
import aioice.turn

from tests.support.peer_process import PeerProcess
from tests.support.ports import free_port_block, free_udp_port

REALM = "gateway.test"


@dataclass
class Coturn:
    process: PeerProcess
    port: int

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.stop()


def start_coturn(workdir: Path, *, user: tuple[str, str] | None = None, secret: str = "") -> Coturn:
    """coturn with one long-term `user` (name, password), or the REST API `secret`."""
    port = free_udp_port()
    relay = free_port_block(50)
    if secret:
        auth = ["--use-auth-secret", f"--static-auth-secret={secret}"]
    else:
        assert user is not None
        auth = ["--lt-cred-mech", f"--user={user[0]}:{user[1]}"]
    process = PeerProcess(
        "turnserver",
        [
            "turnserver", "-n", "--no-cli", "--no-tls", "--no-dtls",
            "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--allow-loopback-peers",
            f"--listening-port={port}", f"--min-port={relay}", f"--max-port={relay + 49}",
            *auth, f"--realm={REALM}",
            f"--userdb={workdir / 'turndb'}", f"--pidfile={workdir / 'turn.pid'}",
            "--log-file=stdout", "--simple-log",
        ],
        workdir,
    )  # fmt: skip
    process.start()
    process.wait_until_bound(port, timeout=5.0)
    return Coturn(process, port)


async def allocate(server: Coturn, username: str, password: str) -> bool:
    """Whether the server grants a relay allocation with these credentials (a real TURN
    Allocate over UDP); False when it refuses them (401)."""
    try:
        transport, _ = await aioice.turn.create_turn_endpoint(
            asyncio.DatagramProtocol,
            server_addr=("127.0.0.1", server.port),
            username=username,
            password=password,
        )
    except aioice.stun.TransactionFailed as exc:
        if exc.response.error_code == 401:
            return False
        raise
    transport.close()
    return True
