"""Re-cutting an audio stream into the packet time the peer asked for (SDP `a=ptime`).

The bridge hands the SIP leg 20 ms frames as they arrive; a peer that asked for 30 ms (or
10, 40, 60) gets packets of that length. For the codecs whose payload is one byte per RTP
tick (G.711, and G.722 at its 8000 Hz RTP clock) that is slicing and joining bytes; nothing
is decoded. A gap in the source's timestamps (a frame lost upstream) ends the packet being
filled early, so the gap stays a gap downstream.
"""

from __future__ import annotations

MIN_PTIME = 10
MAX_PTIME = 60
DEFAULT_PTIME = 20


def packet_time(ptime: int | None) -> int:
    """The packet time to send with: the peer's, in 10 ms steps from 10 to 60 ms; else 20."""
    if ptime is None or not MIN_PTIME <= ptime <= MAX_PTIME or ptime % 10:
        return DEFAULT_PTIME
    return ptime


class Repacketizer:
    """Frames in (payload, RTP timestamp, marker), packets of `packet_ticks` bytes out."""

    __slots__ = ("_buffer", "_marker", "_next", "packet_ticks")

    def __init__(self, packet_ticks: int) -> None:
        if packet_ticks <= 0:
            raise ValueError("a packet must hold at least one tick")
        self.packet_ticks = packet_ticks
        self._buffer = bytearray()
        self._next: int | None = None  # timestamp of the buffer's first byte
        self._marker = False

    def push(
        self, payload: bytes | bytearray | memoryview, timestamp: int, marker: bool = False
    ) -> list[tuple[bytes, int, bool]]:
        out: list[tuple[bytes, int, bool]] = []
        start = self._next
        if start is not None and (start + len(self._buffer)) & 0xFFFFFFFF != timestamp:
            # Not contiguous: send what was gathered as it is, and start afresh.
            if self._buffer:
                out.append((bytes(self._buffer), start, self._marker))
            self._buffer.clear()
            start = None
        if start is None:
            start = timestamp
            self._marker = marker
        self._buffer += payload
        size = self.packet_ticks
        while len(self._buffer) >= size:
            out.append((bytes(self._buffer[:size]), start, self._marker))
            del self._buffer[:size]
            start = (start + size) & 0xFFFFFFFF
            self._marker = False
        self._next = start
        return out
