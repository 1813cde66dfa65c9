"""dnsmasq (Debian ``dnsmasq-base``) as the DNS server of a test: NAPTR, SRV and A records
on 127.0.0.1, nothing forwarded anywhere.

Facts about running it here: ``--keep-in-foreground`` with ``--log-facility=-`` logs to
stderr; ``--no-resolv --no-hosts --conf-file=/dev/null`` keep it to the records given on
its command line; as root it wants ``--user``/``--group`` (it drops privileges otherwise);
``--bind-interfaces --listen-address=127.0.0.1`` binds only loopback, on ``--port``.
Records: ``--naptr-record=<name>,<order>,<preference>,<flags>,<service>,<regexp>,
<replacement>``, ``--srv-host=<_service._proto.name>,<target>,<port>,<priority>,<weight>``,
``--host-record=<name>,<address>``; ``--local-ttl`` is the TTL of all of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .peer_process import PeerProcess, tail
from .ports import free_udp_port

HOST = "127.0.0.1"


class Dnsmasq:
    """One dnsmasq serving `records` (its command-line options, e.g. "--srv-host=...")."""

    def __init__(self, workdir: Path, records: Sequence[str], *, ttl: int = 60) -> None:
        self.workdir = workdir
        self.records = list(records)
        self.ttl = ttl
        self.port = 0
        self._process: PeerProcess | None = None

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self.port)

    def start(self) -> Dnsmasq:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_udp_port()
        argv = [
            "dnsmasq",
            "--keep-in-foreground",
            f"--port={self.port}",
            f"--listen-address={HOST}",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--user=root",
            "--group=root",
            "--log-queries",
            "--log-facility=-",
            f"--local-ttl={self.ttl}",
            *self.records,
        ]
        self._process = PeerProcess("dnsmasq", argv, self.workdir)
        self._process.start()
        self._process.wait_until_bound(self.port, timeout=5.0)
        return self

    def queries(self) -> list[str]:
        """The questions it was asked so far ("NAPTR example.test", ...)."""
        if self._process is None:
            return []
        log = tail(self._process.stderr_path, limit=10**6)
        return [
            line.split("query[", 1)[1].replace("]", "", 1).rsplit(" from ", 1)[0]
            for line in log.splitlines()
            if "query[" in line
        ]

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop(grace=1.0)
