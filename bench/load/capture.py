"""What crosses loopback between the visitors and a server, by kind, per call-second.

A packet socket (AF_PACKET, root: the benchmark runs in its own network namespace) sees
every UDP datagram on `lo`. Each is sorted by RFC 7983's first byte (STUN, DTLS, RTP,
RTCP) and by direction (towards the measured server's processes or from them: sockets are
matched to processes through /proc). RTP headers are in the clear under SRTP, so their
header extensions, sizes and timing are visible; of SRTCP only the first packet type.

It answers the questions the cross-check asks of a load generator: does it send what a
browser sends (RTCP and STUN at the same rate, the same RTP header extensions and sizes),
and do its calls' packets arrive on their own clocks rather than all in one burst.

  with Capture(server_pids) as capture:   # a thread reads the socket
      ...
  summary = capture.summary(calls)
"""

from __future__ import annotations

import itertools
import math
import os
import socket
import struct
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4  # sll_pkttype of our own copy of a sent packet: each datagram once
_IP = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")
_RTP = struct.Struct("!BBHII")
BURST_GAP = 50e-6  # packets of different calls closer than this arrived in one burst


def kind_of(payload: bytes) -> str:
    """RFC 7983 demultiplexing, plus the STUN method/class and the RTCP packet type."""
    if not payload:
        return "empty"
    first = payload[0]
    if first < 4:
        if len(payload) < 2:
            return "stun"
        message_type = (payload[0] << 8) | payload[1]
        return {0x0001: "stun-request", 0x0101: "stun-response", 0x0011: "stun-indication"}.get(
            message_type, "stun-other"
        )
    if 19 < first < 64:
        return "dtls"
    if 127 < first < 192 and len(payload) > 1:
        second = payload[1]
        if 191 < second < 224:
            return f"rtcp-{second}"
        return "rtp"
    return "other"


def socket_owners() -> dict[int, int]:
    """Local UDP port -> PID of the process holding the socket (IPv4, this namespace)."""
    inode_port: dict[str, int] = {}
    for line in Path("/proc/net/udp").read_text().splitlines()[1:]:
        fields = line.split()
        port = int(fields[1].rsplit(":", 1)[1], 16)
        inode_port[fields[9]] = port
    owners: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list((entry / "fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                port = inode_port.get(target[8:-1])
                if port is not None:
                    owners[port] = int(entry.name)
    return owners


class Capture:
    """Records the UDP datagrams on lo in a thread; `summary()` after `stop()`."""

    def __init__(
        self, server_pids: list[int], *, ignore_pids: list[int] = (), limit: int = 2_000_000
    ) -> None:
        self.server_pids = set(server_pids)
        self.ignore_pids = set(ignore_pids)  # the operator: the server's SIP leg is not counted
        self.limit = limit
        # (time, src port, dst port, kind, size, RTP ssrc, RTP header extension ids)
        self.packets: list[tuple[float, int, int, str, int, int, tuple[int, ...]]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started = 0.0
        self.stopped = 0.0
        self.owners: dict[int, int] = {}

    def __enter__(self) -> Capture:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._socket = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._socket.bind(("lo", 0))
        self._socket.settimeout(0.2)
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        # Sockets are matched to processes while they are still open.
        self.owners = socket_owners()
        self.stopped = time.monotonic()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._socket.close()

    def _run(self) -> None:
        receive = self._socket.recvfrom
        packets = self.packets
        while not self._stop.is_set() and len(packets) < self.limit:
            try:
                frame, address = receive(65535)
            except TimeoutError:
                continue
            now = time.monotonic()
            if address[2] == PACKET_OUTGOING or len(frame) < 42:
                continue
            # Loopback frames carry a 14-byte Ethernet header of zeros.
            if frame[12:14] != b"\x08\x00":
                continue
            version_ihl, _, _, _, _, _, protocol, _, _, _ = _IP.unpack_from(frame, 14)
            if protocol != 17:
                continue
            offset = 14 + 4 * (version_ihl & 0x0F)
            source, destination, _, _ = _UDP.unpack_from(frame, offset)
            payload = frame[offset + 8 :]
            kind = kind_of(payload)
            ssrc = 0
            extensions: tuple[int, ...] = ()
            if kind == "rtp" and len(payload) >= 12:
                first, _, _, _, ssrc = _RTP.unpack_from(payload)
                extensions = _extension_ids(payload, first)
            packets.append((now, source, destination, kind, len(payload), ssrc, extensions))

    # ------------------------------------------------------------------ results
    def summary(self, calls: int, *, window: tuple[float, float] | None = None) -> dict:
        """Per direction ("to server", "from server") and kind: packets and bytes per
        call-second, plus what the RTP towards the server looks like."""
        start, end = window or (self.started, self.stopped)
        seconds = max(end - start, 1e-9)
        server_ports = {port for port, pid in self.owners.items() if pid in self.server_pids}
        ignored = {port for port, pid in self.owners.items() if pid in self.ignore_pids}
        counts: dict[str, Counter[str]] = defaultdict(Counter)
        sizes: dict[str, Counter[str]] = defaultdict(Counter)
        extension_sets: Counter[tuple[int, ...]] = Counter()
        arrivals: dict[int, list[float]] = defaultdict(list)
        for when, source, destination, kind, size, ssrc, extensions in self.packets:
            if not start <= when <= end or source in ignored or destination in ignored:
                continue
            if destination in server_ports and source not in server_ports:
                direction = "to server"
            elif source in server_ports and destination not in server_ports:
                direction = "from server"
            else:
                continue  # the server's own legs (SIP side) or strangers
            counts[direction][kind] += 1
            sizes[direction][kind] += size
            if direction == "to server" and kind == "rtp":
                extension_sets[extensions] += 1
                arrivals[ssrc].append(when)
        rates = {
            direction: {
                kind: {
                    "per_call_s": round(n / calls / seconds, 3),
                    "mean_bytes": round(sizes[direction][kind] / n, 1),
                }
                for kind, n in sorted(counter.items())
            }
            for direction, counter in counts.items()
        }
        return {
            "calls": calls,
            "seconds": round(seconds, 2),
            "rates": rates,
            "rtp_to_server": _timing(arrivals)
            | {
                "extension_ids": {
                    ",".join(map(str, ids)) or "none": n for ids, n in extension_sets.items()
                }
            },
        }


def _extension_ids(payload: bytes, first: int) -> tuple[int, ...]:
    """The ids of an RTP packet's RFC 8285 header extension elements (one- or two-byte)."""
    if not first & 0x10:
        return ()
    offset = 12 + 4 * (first & 0x0F)
    if offset + 4 > len(payload):
        return ()
    profile, words = struct.unpack_from("!HH", payload, offset)
    data = payload[offset + 4 : offset + 4 + 4 * words]
    ids = []
    i = 0
    if profile == 0xBEDE:
        while i < len(data):
            if data[i] == 0:
                i += 1
                continue
            element, length = data[i] >> 4, (data[i] & 0x0F) + 1
            if element == 15:
                break
            ids.append(element)
            i += 1 + length
    elif profile & 0xFFF0 == 0x1000:
        while i + 1 < len(data):
            if data[i] == 0:
                i += 1
                continue
            ids.append(data[i])
            i += 2 + data[i + 1]
    return tuple(ids)


def _timing(arrivals: dict[int, list[float]]) -> dict:
    """How each call's packets are spaced, and how the calls' packets fall together.

    `interval_jitter_ms`: the mean deviation of a stream's packet intervals from 20 ms.
    `burst_pct`: of the packets, those arriving within 50 us of a packet of another call
    (near 100 when one clock sends every call's frame in one tick; small when each call
    keeps its own phase). `phases_ms`: where in the 20 ms each stream's packets arrive."""
    origin = min((times[0] for times in arrivals.values() if times), default=0.0)
    deviations = []
    for times in arrivals.values():
        deviations += [abs(b - a - 0.02) for a, b in itertools.pairwise(times)]
    merged = sorted((t, ssrc) for ssrc, times in arrivals.items() for t in times)
    bursty = 0
    for i, (when, ssrc) in enumerate(merged):
        near = (i > 0 and merged[i - 1][1] != ssrc and when - merged[i - 1][0] < BURST_GAP) or (
            i + 1 < len(merged) and merged[i + 1][1] != ssrc and merged[i + 1][0] - when < BURST_GAP
        )
        bursty += near
    phases = []
    for times in arrivals.values():
        # The circular mean of the arrival times modulo 20 ms: where the stream's packets
        # fall in the period (two calls sent in one tick have the same phase).
        angles = [2 * math.pi * ((t - origin) % 0.02) / 0.02 for t in times]
        x = sum(math.cos(a) for a in angles)
        y = sum(math.sin(a) for a in angles)
        phases.append(round((math.atan2(y, x) % (2 * math.pi)) / (2 * math.pi) * 20, 2))
    return {
        "streams": len(arrivals),
        "phases_ms": sorted(phases),
        "interval_jitter_ms": round(sum(deviations) / len(deviations) * 1000, 3)
        if deviations
        else None,
        "burst_pct": round(bursty / len(merged) * 100, 1) if merged else None,
    }
