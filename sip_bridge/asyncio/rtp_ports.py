"""Binding the RTP/RTCP socket pair of one media stream within a port range."""

from __future__ import annotations

import errno
import socket

__all__ = ["RtpPortsExhaustedError", "bind_port_pair"]


class RtpPortsExhaustedError(OSError):
    """Every even/odd port pair of the configured RTP range is in use."""


# Where the next search starts, per (host, range): successive calls spread over
# the range instead of reusing the port a call just released, so stray packets of
# a finished call cannot land in a new one.
_next_port: dict[tuple[str, int, int], int] = {}


def _family_of(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def bind_port_pair(host: str, port_range: tuple[int, int]) -> tuple[socket.socket, socket.socket]:
    """Bind two non-blocking UDP sockets on ports (p, p + 1), p even, within the range.

    RFC 3550 section 11: RTP on an even port and RTCP on the next odd one. The
    range is inclusive at both ends. Raises `RtpPortsExhaustedError` when no pair
    is free.
    """
    low, high = port_range
    first = low + (low % 2)
    if first + 1 > high:
        raise ValueError(f"RTP port range {low}-{high} holds no even/odd pair")
    pairs = (high - first + 1) // 2
    key = (host, low, high)
    start = _next_port.get(key, first)
    family = _family_of(host)
    for i in range(pairs):
        port = first + ((start - first) // 2 + i) % pairs * 2
        rtp = socket.socket(family, socket.SOCK_DGRAM)
        rtcp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            rtp.bind((host, port))
            rtcp.bind((host, port + 1))
        except OSError as exc:
            rtp.close()
            rtcp.close()
            if exc.errno == errno.EADDRINUSE:
                continue
            raise  # e.g. the host is not a local address: no other port will do

        rtp.setblocking(False)
        rtcp.setblocking(False)
        _next_port[key] = port + 2 if port + 2 + 1 <= high else first
        return rtp, rtcp
    raise RtpPortsExhaustedError(
        f"no free RTP/RTCP port pair on {host} in {low}-{high} ({pairs} pairs all in use)"
    )
