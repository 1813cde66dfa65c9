"""The widget's judgement of a call's connection (web/widget/quality.js), fed measurements
one after another as its watch would once a second (Node runs the module; no clock):
weak only after several weak ones in a row, good again only after more good ones under
lower thresholds, so that a connection at the edge does not make the warning blink."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUALITY = ROOT / "web" / "widget" / "quality.js"
JUDGE_JS = """
const { QualityJudge, between } = await import(process.argv[1]);
const cases = JSON.parse(process.argv[2]);
const out = {};
for (const [name, samples] of Object.entries(cases)) {
  const judge = new QualityJudge();
  out[name] = samples.map((sample) => [judge.add(sample), judge.reason]);
}
out.between = between(
  {received: 100, lost: 0, sent: 100},
  {received: 180, lost: 20, sent: 200, jitter: 0.01, remoteLoss: 0.03, remoteJitter: 0.02,
   rtt: 0.05, rttFrom: 'rtcp'},
);
console.log(JSON.stringify(out));
"""

CLEAN = {"loss": 0.0, "jitter": 0.005, "rtt": 0.04}
LOSSY = {"loss": 0.12, "jitter": 0.005, "rtt": 0.04}
EDGE = {"loss": 0.03, "jitter": 0.005, "rtt": 0.04}  # between the two thresholds
LATE = {"loss": 0.0, "jitter": 0.005, "rtt": 0.8}
JITTERY = {"loss": 0.0, "jitter": 0.09, "rtt": None}


def judged(cases: dict[str, list[dict]]) -> dict:
    node = shutil.which("node")
    assert node, "Node.js is needed (scripts/install-system-deps installs it)"
    result = subprocess.run(
        [node, "--input-type=module", "-e", JUDGE_JS, QUALITY.as_uri(), json.dumps(cases)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def verdicts() -> dict:
    return judged(
        {
            "steady loss": [CLEAN, LOSSY, LOSSY, LOSSY, LOSSY, CLEAN, CLEAN, CLEAN, CLEAN, CLEAN],
            "a blip": [LOSSY, LOSSY, CLEAN, LOSSY, LOSSY, CLEAN],
            "at the edge": [LOSSY, LOSSY, LOSSY, EDGE, EDGE, EDGE, EDGE, EDGE, EDGE],
            "slow recovery": [LOSSY] * 3 + [CLEAN] * 4 + [LOSSY] + [CLEAN] * 5,
            "late": [LATE] * 3,
            "jittery": [JITTERY] * 3,
        }
    )


def weak(verdicts: dict, name: str) -> list[bool]:
    return [is_weak for is_weak, _ in verdicts[name]]


def test_weak_after_three_weak_measurements_and_good_after_five_good_ones(verdicts) -> None:
    assert weak(verdicts, "steady loss") == [False, False, False, True, True] + [True] * 4 + [False]
    assert verdicts["steady loss"][3] == [True, "loss"]
    assert verdicts["steady loss"][-1] == [False, ""]


def test_a_blip_is_no_warning(verdicts) -> None:
    assert not any(weak(verdicts, "a blip"))


def test_between_the_thresholds_the_verdict_holds(verdicts) -> None:
    assert weak(verdicts, "at the edge") == [False, False, True] + [True] * 6


def test_one_bad_measurement_restarts_the_recovery(verdicts) -> None:
    assert weak(verdicts, "slow recovery") == [False, False, True] + [True] * 9 + [False]


def test_round_trip_and_jitter_count_too(verdicts) -> None:
    assert verdicts["late"][-1] == [True, "rtt"]
    assert verdicts["jittery"][-1] == [True, "jitter"]


def test_a_measurement_takes_the_worse_direction(verdicts) -> None:
    # Here: 20 of 100 packets lost; there (the gateway's report): 3%.
    assert verdicts["between"] == {"loss": 0.2, "jitter": 0.02, "rtt": 0.05, "rttFrom": "rtcp"}
