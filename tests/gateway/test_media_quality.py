"""The media quality of a leg and its E-model MOS estimate."""

from __future__ import annotations

import pytest

from gateway.api import EndCause
from gateway.calls.history import call_outcome
from gateway.media.quality import LegQuality, mos_estimate


def test_mos_falls_with_loss_delay_and_jitter():
    clean = mos_estimate(0.0, 0.0, 0.02, "PCMU")
    assert 4.3 <= clean <= 4.45  # G.711's ceiling on the narrowband scale
    lossy = [mos_estimate(loss, 0.0, 0.02, "PCMU") for loss in (0.01, 0.05, 0.2)]
    assert clean > lossy[0] > lossy[1] > lossy[2] >= 1.0
    assert mos_estimate(0.05, 0.0, 0.02, "opus") > lossy[1]  # Opus conceals loss better
    assert mos_estimate(0.0, 0.0, 0.6, "PCMU") < clean - 0.3  # 300 ms one way hurts
    assert mos_estimate(0.0, 0.05, 0.02, "PCMU") < clean
    assert mos_estimate(1.0, 1.0, 5.0, "PCMU") == 1.0


def test_a_leg_keeps_the_worse_direction():
    leg = LegQuality.measure(
        "PCMU",
        sent=500,
        received=480,
        lost_here=20,  # 4 % of what should have reached the gateway
        jitter_here=0.002,
        lost_there=0.01,
        jitter_there=0.015,
        round_trip=0.04,
    )
    assert leg.loss_ratio == pytest.approx(0.04) and leg.jitter_seconds == 0.015
    public = leg.public()
    assert public["loss_percent"] == 4.0 and public["jitter_ms"] == 15.0
    assert public["round_trip_ms"] == 40.0 and public["packets_lost"] == 20
    assert public["mos"] == mos_estimate(0.04, 0.015, 0.04, "PCMU")
    silent = LegQuality.measure("PCMU", sent=0, received=0, lost_here=0, jitter_here=0.0)
    assert silent.mos is None and silent.public()["round_trip_ms"] is None


@pytest.mark.parametrize(
    ("answered", "cause", "outcome"),
    [
        (True, EndCause.OPERATOR_HUNG_UP, "answered"),
        (True, EndCause.FAILED, "answered"),  # it talked, then the media failed
        (False, EndCause.BUSY, "missed"),
        (False, EndCause.NO_ANSWER, "missed"),
        (False, EndCause.DECLINED, "missed"),
        (False, EndCause.VISITOR_HUNG_UP, "abandoned"),
        (False, EndCause.UNREACHABLE, "failed"),
        (False, EndCause.FAILED, "failed"),
        (False, None, "failed"),
    ],
)
def test_outcome_of_a_call(answered, cause, outcome):
    assert call_outcome(answered, cause) == outcome
