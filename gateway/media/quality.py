"""How good a call's audio was, per leg: packets, loss, jitter, round trip, and an E-model
MOS estimate, from what the gateway measured and what the far end reported over RTCP.

The estimate is the ITU-T G.107 E-model in its usual simplified form: R = 93.2 - Id -
Ie,eff, with Id from the one-way delay (half the round trip, plus a jitter buffer of twice
the jitter, plus one 20 ms frame) and Ie,eff from random packet loss with the codec's loss
robustness (G.113 Appendix I for G.711 with concealment). Wideband codecs are scored on the
narrowband scale (MOS at most 4.4): it ranks calls, it does not grade codecs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Ie (equipment impairment) and Bpl (packet-loss robustness) per codec.
_CODEC_IMPAIRMENT = {
    "pcmu": (0.0, 25.1),
    "pcma": (0.0, 25.1),
    "g722": (0.0, 25.1),
    "opus": (0.0, 30.0),
}
FRAME_MS = 20.0


def mos_estimate(
    loss_ratio: float, jitter_seconds: float, round_trip_seconds: float | None, codec: str
) -> float:
    """E-model MOS (1.0-4.4) for random loss `loss_ratio` (0-1), jitter and round trip."""
    ie, bpl = _CODEC_IMPAIRMENT.get(codec.lower(), (0.0, 25.1))
    delay_ms = (round_trip_seconds or 0.0) * 500 + 2 * jitter_seconds * 1000 + FRAME_MS
    id_ = 0.024 * delay_ms + (0.11 * (delay_ms - 177.3) if delay_ms > 177.3 else 0.0)
    ppl = max(0.0, min(1.0, loss_ratio)) * 100
    ie_eff = ie + (95 - ie) * ppl / (ppl + bpl)
    r = 93.2 - id_ - ie_eff
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return round(1 + 0.035 * r + r * (r - 60) * (100 - r) * 7e-6, 2)


@dataclass(frozen=True, slots=True)
class LegQuality:
    """One leg's media at the end of a call. Loss and jitter are the worse of the two
    directions: what reached the gateway, and what the far end reported receiving."""

    codec: str
    packets_sent: int
    packets_received: int
    packets_lost: int  # of those sent to the gateway
    loss_ratio: float  # 0-1
    jitter_seconds: float
    round_trip_seconds: float | None

    @classmethod
    def measure(
        cls,
        codec: str,
        *,
        sent: int,
        received: int,
        lost_here: int,
        jitter_here: float,
        lost_there: float | None = None,  # ratio the far end reported, 0-1
        jitter_there: float | None = None,
        round_trip: float | None = None,
    ) -> LegQuality:
        expected = received + max(lost_here, 0)
        here = max(lost_here, 0) / expected if expected else 0.0
        return cls(
            codec,
            sent,
            received,
            max(lost_here, 0),
            max(here, lost_there or 0.0),
            max(jitter_here, jitter_there or 0.0),
            round_trip,
        )

    @property
    def mos(self) -> float | None:
        """None when nothing flowed either way."""
        if not self.packets_sent and not self.packets_received:
            return None
        return mos_estimate(
            self.loss_ratio, self.jitter_seconds, self.round_trip_seconds, self.codec
        )

    def public(self) -> dict[str, Any]:
        """The record's fields (docs/admin.md): rounded, times in milliseconds."""
        values = asdict(self)
        return {
            "codec": values["codec"],
            "packets_sent": self.packets_sent,
            "packets_received": self.packets_received,
            "packets_lost": self.packets_lost,
            "loss_percent": round(self.loss_ratio * 100, 2),
            "jitter_ms": round(self.jitter_seconds * 1000, 1),
            "round_trip_ms": (
                round(self.round_trip_seconds * 1000, 1)
                if self.round_trip_seconds is not None
                else None
            ),
            "mos": self.mos,
        }


def sip_leg_quality(rtp: Any, codec: str) -> LegQuality:
    """From a sip_bridge RtpSession: its counters, its reception of the phone's stream and
    the phone's RTCP reports of ours."""
    stats = rtp.stats
    reception = rtp.reception
    clock_rate = rtp.codec.clock_rate if getattr(rtp, "codec", None) is not None else 8000
    return LegQuality.measure(
        codec,
        sent=stats.packets_sent,
        received=stats.packets_received,
        lost_here=reception.cumulative_lost if reception is not None else 0,
        jitter_here=reception.jitter / clock_rate if reception is not None else 0.0,
        lost_there=(
            stats.remote_cumulative_lost / stats.packets_sent
            if stats.remote_cumulative_lost is not None and stats.packets_sent
            else stats.remote_fraction_lost
        ),
        jitter_there=stats.remote_jitter,
        round_trip=stats.round_trip_time,
    )
