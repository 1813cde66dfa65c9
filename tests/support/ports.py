"""Free loopback ports for real peers started in parallel.

Ports come from a range below Linux's ephemeral range (32768-60999 by default), so that no
socket bound to port 0 by the code under test can take a port a peer is about to be given.
A process-wide counter walks the range, so one test process never hands out a port twice,
and its starting point depends on the process id, so that parallel test processes (e.g.
pytest-xdist workers) start in different places. Every port handed out is also checked free
by binding it (UDP and TCP, on 127.0.0.1) just before it is returned.

Peers need blocks of consecutive ports, so allocation is by block:
- SIPp: SIP port, ``-mp`` media port and media port + 2 (``-rtp_echo`` echoes on both;
  ``rtp_stream`` sends from the media port itself), and the ``-cp`` control port.
- baresip: ``sip_listen`` port P also binds TCP P+1 (and TLS would take P+2), and the RTP
  range for its calls.
"""

from __future__ import annotations

import errno
import os
import socket
import threading

__all__ = [
    "PORT_RANGE",
    "PortsExhaustedError",
    "free_port_block",
    "free_rtp_port_pair",
    "free_udp_port",
]

PORT_RANGE = range(20000, 32000)


class PortsExhaustedError(RuntimeError):
    """No free block of ports of the wanted size was found in ``PORT_RANGE``."""


_lock = threading.Lock()
# Spread parallel processes over the range; 211 is a prime so that consecutive pids differ.
_next_port = PORT_RANGE.start + (os.getpid() * 211) % len(PORT_RANGE)


def _is_free(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError as exc:
                if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                    return False
                raise
    return True


def free_port_block(size: int = 1, *, align: int = 2) -> int:
    """The first port of ``size`` consecutive free ports (UDP and TCP), aligned to ``align``.

    The ports after the block stay unused until the counter wraps: the next call starts
    past it, plus a gap of two, for peers that bind one more port than they say.
    """
    global _next_port
    if size < 1 or size > 100:
        raise ValueError(f"block size {size} is not in 1..100")
    with _lock:
        for _ in range(len(PORT_RANGE) // max(align, 1)):
            start = _next_port + (-_next_port % align)
            if start + size > PORT_RANGE.stop:
                start = PORT_RANGE.start
            _next_port = start + size + 2
            if all(_is_free(port) for port in range(start, start + size)):
                return start
    raise PortsExhaustedError(f"no {size} consecutive free ports in {PORT_RANGE}")


def free_udp_port() -> int:
    """One free port (checked free for both UDP and TCP)."""
    return free_port_block(1, align=1)


def free_rtp_port_pair() -> int:
    """An even port P with P and P+1 free: RTP and RTCP (RFC 3550 section 11)."""
    return free_port_block(2, align=2)
