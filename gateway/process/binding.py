"""The addresses a gateway binds at start, each named by its configuration key.

A gateway that cannot bind one of them cannot do its work: another process holds the port,
the address is not this host's, or the port is privileged. That is fatal at start, said
once, with the key to change and the address (`StartError`); the supervisor does not
restart a worker that failed so (gateway/process/supervisor.py), since a new one would fail
the same way.

Two checks happen before anything listens:
- the HTTP port is bound once without SO_REUSEPORT (`check_tcp_free`): the workers share
  it with SO_REUSEPORT, and so would any other process of this user that set it too, which
  would then silently take half of the visitors' connections;
- every port of the RTP range is bound once (`check_udp_range`): RTP ports are taken per
  call, so a range that another service uses would otherwise fail calls later, one by one.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

_REASONS = {
    errno.EADDRINUSE: "the port is in use by another process",
    errno.EADDRNOTAVAIL: "the address is not one of this host's",
    errno.EACCES: "permission denied (a port below 1024 needs privileges)",
}


class StartError(Exception):
    """The gateway cannot start: `key` names the setting, `address` what it gave."""

    def __init__(self, key: str, address: str, reason: str) -> None:
        super().__init__(f"{key}: cannot bind {address}: {reason}")
        self.key = key
        self.address = address
        self.reason = reason


def shown_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reason(exc: OSError) -> str:
    # uvloop's create_datagram_endpoint raises an OSError without errno, caused by the
    # socket's own (errno 98 and the like).
    for error in (exc, exc.__cause__, exc.__context__):
        if isinstance(error, OSError) and error.errno in _REASONS:
            return _REASONS[error.errno]
    return exc.strerror or str(exc)


async def bind(key: str, address: tuple[str, int], opening: Awaitable[T]) -> T:
    """`await opening` (something that binds `address`); an OSError becomes StartError."""
    try:
        return await opening
    except OSError as exc:
        raise StartError(key, shown_address(*address), _reason(exc)) from None


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def check_tcp_free(key: str, address: tuple[str, int]) -> None:
    """Raise StartError unless no socket at all is bound to the TCP `address`."""
    host, port = address
    with socket.socket(_family(host), socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR as the server sets it: connections of a previous run in TIME_WAIT
        # do not count; a listening socket, with SO_REUSEPORT or not, does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StartError(key, shown_address(host, port), _reason(exc)) from None


def check_udp_range(key: str, host: str, ports: tuple[int, int]) -> None:
    """Raise StartError unless every UDP port of `ports` (inclusive) can be bound on `host`."""
    low, high = ports
    taken: list[int] = []
    for port in range(low, high + 1):  # one at a time: a range may exceed the fd limit
        with socket.socket(_family(host), socket.SOCK_DGRAM) as sock:
            try:
                sock.bind((host, port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise StartError(key, shown_address(host, port), _reason(exc)) from None
                taken.append(port)
    if taken:
        listed = ", ".join(map(str, taken[:5])) + (", ..." if len(taken) > 5 else "")
        raise StartError(
            key,
            f"{shown_address(host, low)}-{high}",
            f"{len(taken)} of its ports are in use by another process ({listed})",
        )
