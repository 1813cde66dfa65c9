"""The widget's words: every language has every key of English (and the same `{names}` in
each text), the languages the widget ships are the ones the gateway accepts, and every
refusal code the gateway can send has words.

The language files are ES modules (web/widget/lang/): Node imports them, as a browser
would, and hands them over as JSON.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.api import CallState, EndCause
from gateway.sites.widget import LANGUAGES
from signaling.errors import ErrorCode

ROOT = Path(__file__).resolve().parents[2]
WIDGET = ROOT / "web" / "widget"
LOAD_JS = """
const widget = process.argv[1];
const words = await import(`${widget}/words.js`);
const languages = {};
for (const code of words.LANGUAGE_CODES) {
  languages[code] = (await import(`${widget}/lang/${code}.js`)).default;
}
console.log(JSON.stringify({codes: words.LANGUAGE_CODES, languages}));
"""
PLACEHOLDER = re.compile(r"\{(\w+)\}")
CODE = re.compile(r"[a-z]+(?:_[a-z]+)+|[a-z]+")
# The exception types whose string arguments are refusal codes sent to pages.
REFUSALS = re.compile(r".*Refused$|Refusal|BadRequest|SignalingError|PayloadError")


@pytest.fixture(scope="module")
def widget_words() -> dict:
    node = shutil.which("node")
    assert node, "Node.js is needed (scripts/install-system-deps installs it)"
    result = subprocess.run(
        [node, "--input-type=module", "-e", LOAD_JS, WIDGET.as_uri()],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return json.loads(result.stdout)


def leaves(tree: object, path: str = "") -> dict[str, str]:
    """`{"callback.refusals.closed": text, "problems.no-mic.0": text, ...}`."""
    if isinstance(tree, dict):
        found: dict[str, str] = {}
        for key, value in tree.items():
            found.update(leaves(value, f"{path}.{key}" if path else key))
        return found
    if isinstance(tree, list):
        found = {}
        for index, value in enumerate(tree):
            found.update(leaves(value, f"{path}.{index}"))
        return found
    assert isinstance(tree, str), f"{path}: {tree!r} is not text"
    return {path: tree}


def test_every_language_has_every_key_with_the_same_placeholders(widget_words: dict) -> None:
    english = leaves(widget_words["languages"]["en"])
    problems = []
    for code, words in widget_words["languages"].items():
        found = leaves(words)
        problems += [f"{code}: missing {key}" for key in english.keys() - found.keys()]
        problems += [f"{code}: unknown {key}" for key in found.keys() - english.keys()]
        for key in english.keys() & found.keys():
            if not found[key].strip():
                problems.append(f"{code}: {key} is empty")
            wanted, got = (
                set(PLACEHOLDER.findall(english[key])),
                set(PLACEHOLDER.findall(found[key])),
            )
            if wanted != got:
                problems.append(f"{code}: {key} has {sorted(got)}, English {sorted(wanted)}")
    assert not problems, "\n".join(problems)
    assert len(english) > 100  # the whole tree was read, not an empty object


def test_the_widget_speaks_the_languages_the_gateway_accepts(widget_words: dict) -> None:
    files = sorted(path.stem for path in (WIDGET / "lang").glob("*.js"))
    assert sorted(widget_words["codes"]) == sorted(LANGUAGES) == files
    assert {"en", "fr", "de", "es", "it", "nl", "pt", "pl"} <= set(LANGUAGES)


def gateway_refusal_codes() -> set[str]:
    """Every code the gateway and its signaling may refuse something with: the string
    arguments (and `code=`) that look like codes of the refusal family's constructors
    (`...Refused(...)`, `BadRequest(...)`, `SignalingError(...)`), `{"code": "..."}`
    literals, and the signaling's `ErrorCode`s."""
    codes = {str(code) for code in ErrorCode}
    for package in ("gateway", "signaling"):
        for path in (ROOT / package).rglob("*.py"):
            if path.is_relative_to(ROOT / "gateway" / "admin"):
                continue  # the site owner's API and page: their refusals never reach a visitor
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Call):
                    func = node.func
                    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                    if REFUSALS.fullmatch(name):
                        arguments = [
                            *node.args,
                            *(k.value for k in node.keywords if k.arg == "code"),
                        ]
                        codes |= {
                            arg.value
                            for arg in arguments
                            if isinstance(arg, ast.Constant)
                            and isinstance(arg.value, str)
                            and CODE.fullmatch(arg.value)
                        }
                elif isinstance(node, ast.Dict):
                    for key, value in zip(node.keys, node.values, strict=True):
                        if (
                            isinstance(key, ast.Constant)
                            and key.value == "code"
                            and isinstance(value, ast.Constant)
                            and isinstance(value.value, str)
                        ):
                            codes.add(value.value)
    return codes


def test_every_refusal_of_the_gateway_has_words(widget_words: dict) -> None:
    codes = gateway_refusal_codes()
    # The scan finds the families of every layer (calls, limits, tokens, callbacks).
    assert {"rate_limited", "origin_refused", "number_invalid", "bad_payload"} <= codes
    english = widget_words["languages"]["en"]
    known = set(english["refusals"]) | set(english["callback"]["refusals"])
    assert sorted(codes - known) == []


def test_every_end_cause_and_call_state_the_gateway_sends_has_words(widget_words: dict) -> None:
    english = widget_words["languages"]["en"]
    assert sorted(str(cause) for cause in EndCause if str(cause) not in english["causes"]) == []
    # Each state but the end is a phase of the widget's session, and each phase has words.
    session = (WIDGET / "session.js").read_text()
    mapped = re.search(r"GATEWAY_STATES = \{(.*?)\};", session, re.S)
    assert mapped is not None
    phases = dict(re.findall(r"(\w+): '([\w-]+)'", mapped.group(1)))
    assert sorted(str(s) for s in CallState if s is not CallState.ENDED) == sorted(phases)
    panel = (WIDGET / "call-panel.js").read_text()
    assert all(f"case '{phase}':" in panel for phase in phases.values())
    assert {"transferring", "transferringHelp", "causeWithReason"} <= english.keys()
