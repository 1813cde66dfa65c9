"""RFC 4733 telephone-event (DTMF over RTP), sans-I/O.

Sending: `dtmf_event_packets()` lists, in order, the packets of one key press; the
session sends one of them per packet time, all with the RTP timestamp of the event
start (plus `timestamp_offset`, non-zero only for segments of very long events).

Receiving: `DtmfReceiver` turns incoming event packets into digits, exactly once
per key press, even when the end packets are lost or repeated.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "DTMF_DIGITS",
    "DtmfDigit",
    "DtmfPacket",
    "DtmfParseError",
    "DtmfReceiver",
    "TelephoneEvent",
    "build_telephone_event",
    "dtmf_event_packets",
    "parse_telephone_event",
]

# Event codes 0-15 (RFC 4733 section 3.2, table 1), indexed by code.
DTMF_DIGITS = "0123456789*#ABCD"
_CODE_OF_DIGIT = {digit: code for code, digit in enumerate(DTMF_DIGITS)}

MAX_DURATION = 0xFFFF  # largest duration one packet (one "segment") can report
END_RETRANSMISSIONS = 3  # RFC 4733 section 2.5.1.4: the final packet is sent 3 times
MIN_DURATION_MS = 40

_EVENT = struct.Struct("!BBH")


class DtmfParseError(ValueError):
    """A telephone-event payload is malformed; the message says why."""


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One RFC 4733 event report (the 4-byte payload)."""

    event: int
    end: bool
    volume: int
    duration: int

    @property
    def digit(self) -> str | None:
        """The DTMF digit for event codes 0-15, else None (other telephony events)."""
        return DTMF_DIGITS[self.event] if self.event < 16 else None


def parse_telephone_event(payload: bytes | bytearray | memoryview) -> TelephoneEvent:
    """Parse the first event report of a telephone-event payload."""
    if len(payload) < 4:
        raise DtmfParseError(
            f"telephone-event payload is {len(payload)} bytes, an event report needs 4"
        )
    event, flags, duration = _EVENT.unpack_from(payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


def build_telephone_event(event: int, end: bool, volume: int, duration: int) -> bytes:
    """The 4-byte payload of one event report (the R bit is always zero)."""
    if not 0 <= event <= 255:
        raise ValueError(f"telephone-event code must be 0-255, got {event}")
    if not 0 <= volume <= 63:
        raise ValueError(f"telephone-event volume must be 0-63 (-dBm0), got {volume}")
    if not 0 <= duration <= MAX_DURATION:
        raise ValueError(f"telephone-event duration must be 0-65535, got {duration}")
    return _EVENT.pack(event, (0x80 if end else 0) | volume, duration)


@dataclass(frozen=True, slots=True)
class DtmfPacket:
    """One packet of an event, in send order (one per packet time).

    The RTP timestamp to stamp is the event start plus `timestamp_offset`.
    """

    payload: bytes
    marker: bool
    end: bool
    timestamp_offset: int


def dtmf_event_packets(
    digit: str,
    *,
    duration_ms: int = 160,
    ptime_ms: int = 20,
    clock_rate: int = 8000,
    volume: int = 10,
) -> list[DtmfPacket]:
    """The packets of one key press, one to send per `ptime_ms`.

    The first packet carries the marker bit; the reported duration grows by one
    packet time per packet; the final duration is sent with the E bit three times.
    Events longer than 0xFFFF timestamp units are cut into segments as RFC 4733
    section 2.5.1.3 says: the segment ends with a duration of 0xFFFF and no E bit,
    and the next one restarts at timestamp + 0xFFFF without the marker bit.
    """
    code = _CODE_OF_DIGIT.get(digit.upper()) if len(digit) == 1 else None
    if code is None:
        raise ValueError(f"not a DTMF digit: {digit!r}; expected one of {DTMF_DIGITS}")
    if duration_ms < MIN_DURATION_MS:
        raise ValueError(f"DTMF duration must be at least {MIN_DURATION_MS} ms, got {duration_ms}")
    if ptime_ms <= 0 or clock_rate <= 0:
        raise ValueError("ptime and clock rate must be positive")
    total = clock_rate * duration_ms // 1000
    step = clock_rate * ptime_ms // 1000
    if not 0 < step <= MAX_DURATION:
        raise ValueError(f"one packet time is {step} timestamp units, must be 1-65535")

    packets: list[DtmfPacket] = []
    segment_start = 0
    elapsed = 0
    reported_in_segment = 0
    while True:
        elapsed = min(elapsed + step, total)
        if elapsed - segment_start > MAX_DURATION:
            if reported_in_segment < MAX_DURATION:
                # Close the full segment first; this packet time reports its end.
                packets.append(
                    DtmfPacket(
                        build_telephone_event(code, False, volume, MAX_DURATION),
                        not packets,
                        False,
                        segment_start,
                    )
                )
                segment_start += MAX_DURATION
                reported_in_segment = 0
                continue
            segment_start += MAX_DURATION
        duration = elapsed - segment_start
        end = elapsed == total
        packet = DtmfPacket(
            build_telephone_event(code, end, volume, duration), not packets, end, segment_start
        )
        packets.append(packet)
        reported_in_segment = duration
        if end:
            packets.extend([DtmfPacket(packet.payload, False, True, segment_start)] * 2)
            return packets


@dataclass(frozen=True, slots=True)
class DtmfDigit:
    """A key press reported by `DtmfReceiver`.

    `duration` is in RTP timestamp units; `end_seen` is False when the end packets
    were all lost and the digit was reported because a later event or audio came.
    """

    digit: str
    timestamp: int
    duration: int
    volume: int
    end_seen: bool


_NO_DIGITS: tuple[DtmfDigit, ...] = ()


def _is_newer(a: int, b: int) -> bool:
    """RTP timestamp a is after b, modulo 2**32 (serial number arithmetic)."""
    return 0 < ((a - b) & 0xFFFFFFFF) < 0x80000000


class DtmfReceiver:
    """Turns received telephone-event packets into key presses, once per press.

    An event is identified by its RTP timestamp. It is reported when its first E
    packet arrives; repeated E packets and stale packets of earlier events are
    ignored. If every E packet is lost, the event is still reported when a packet
    of a newer event arrives, when `audio_resumed()` sees audio past its end, or
    on `flush()`. Non-DTMF events (codes above 15) are ignored.
    """

    def __init__(self, clock_rate: int = 8000, audio_gap_ms: int = 60) -> None:
        # Audio must be this far past the event's reported end before the event is
        # taken as over: senders that keep sending audio during an event race it.
        self._audio_gap = clock_rate * audio_gap_ms // 1000
        self._timestamp: int | None = None  # of the current segment
        self._event = 0
        self._volume = 0
        self._duration = 0  # within the current segment
        self._earlier_segments = 0  # units of completed segments of a long event
        self._event_start = 0
        # An event is in progress and not reported yet: only then can audio complete it
        # (callers skip `audio_resumed` otherwise: it runs for every audio packet).
        self.awaiting_end = False

    def receive(
        self, timestamp: int, payload: bytes | bytearray | memoryview
    ) -> tuple[DtmfDigit, ...]:
        """Feed one telephone-event packet; returns the digits it completes (often none).

        Raises `DtmfParseError` if the payload is malformed.
        """
        report = parse_telephone_event(payload)
        if report.event > 15:
            return _NO_DIGITS
        current = self._timestamp
        if current is not None and timestamp == current:
            if report.duration > self._duration:
                self._duration = report.duration
            if report.end and self.awaiting_end:
                return (self._complete(end_seen=True),)
            return _NO_DIGITS
        if current is not None and not _is_newer(timestamp, current):
            return _NO_DIGITS  # a late packet of an event already handled
        if (
            current is not None
            and self.awaiting_end
            and report.event == self._event
            and (timestamp - current) & 0xFFFFFFFF == MAX_DURATION
        ):
            # Next segment of a long event (RFC 4733 section 2.5.2.3).
            self._earlier_segments += MAX_DURATION
            self._timestamp = timestamp
            self._duration = report.duration
            if report.end:
                return (self._complete(end_seen=True),)
            return _NO_DIGITS
        unfinished = self._complete(end_seen=False) if self.awaiting_end else None
        self._timestamp = timestamp
        self._event_start = timestamp
        self._event = report.event
        self._volume = report.volume
        self._duration = report.duration
        self._earlier_segments = 0
        self.awaiting_end = True
        digits = (unfinished,) if unfinished else _NO_DIGITS
        if report.end:
            digits = (*digits, self._complete(end_seen=True))
        return digits

    def audio_resumed(self, timestamp: int) -> tuple[DtmfDigit, ...]:
        """Tell the receiver an audio packet arrived; may complete an unended event.
        Needed only while `awaiting_end`: a caller may skip it otherwise."""
        if not self.awaiting_end or self._timestamp is None:
            return _NO_DIGITS
        end = (self._timestamp + self._duration + self._audio_gap) & 0xFFFFFFFF
        if _is_newer(timestamp, end):
            return (self._complete(end_seen=False),)
        return _NO_DIGITS

    def flush(self) -> tuple[DtmfDigit, ...]:
        """Report an event still waiting for its end (e.g. when the stream stops)."""
        if not self.awaiting_end or self._timestamp is None:
            return _NO_DIGITS
        return (self._complete(end_seen=False),)

    def _complete(self, end_seen: bool) -> DtmfDigit:
        self.awaiting_end = False
        return DtmfDigit(
            DTMF_DIGITS[self._event],
            self._event_start,
            self._earlier_segments + self._duration,
            self._volume,
            end_seen,
        )
