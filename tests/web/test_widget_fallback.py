"""When the widget offers the site's fallbacks (web/widget/fallback.js, run by Node): after
every end in which nobody took the call, never after one that had been answered."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FALLBACK = ROOT / "web" / "widget" / "fallback.js"
ASK_JS = """
const { nobodyAnswered } = await import(process.argv[1]);
const states = JSON.parse(process.argv[2]);
console.log(JSON.stringify(states.map((detail) => nobodyAnswered(detail))));
"""

NOBODY_TOOK_IT = [
    "busy",
    "no_answer",
    "declined",
    "unreachable",
    "phone_system_refused",
    "no_common_codec",
    "redirect_failed",
]
ANSWERED_BEFORE = [
    "operator_hung_up",
    "visitor_hung_up",
    "time_limit",
    "session_expired",
    "transfer_failed",
    "hangup",
    "network",
]


def asked(states: list[dict]) -> list[bool]:
    node = shutil.which("node")
    assert node, "Node.js is needed (scripts/install-system-deps installs it)"
    result = subprocess.run(
        [node, "--input-type=module", "-e", ASK_JS, FALLBACK.as_uri(), json.dumps(states)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return json.loads(result.stdout)


def test_fallbacks_follow_an_end_nobody_answered_and_only_that() -> None:
    ends = [{"phase": "ended", "cause": cause} for cause in NOBODY_TOOK_IT + ANSWERED_BEFORE]
    refusals = [
        {"phase": "ended", "cause": "refused", "code": code}
        for code in ("closed", "busy", "site_busy", "nobody_available", "rate_limited")
    ]
    shown = asked([*ends, *refusals, {"phase": "closed"}, {"phase": "ringing"}])
    assert shown == [True] * len(NOBODY_TOOK_IT) + [False] * len(ANSWERED_BEFORE) + [
        True,
        True,
        True,
        True,
        False,
        True,
        False,
    ]
