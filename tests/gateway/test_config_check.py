"""`python -m gateway --check FILE`: every problem of a broken file, each named by its whole
key path (a site by its id), with the key or country code probably meant; exit 2. A good
file: exit 0. Nothing is started either way."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gateway.process.main import main

ROOT = Path(__file__).resolve().parents[2]

SITE = """
[[sites]]
id = "{id}"
destination = "sip:desk@127.0.0.1:5080"
"""

# Each broken file of issue 17, and every line its check must print.
BROKEN = {
    "several problems inside hours": (
        SITE.format(id="shop")
        + 'hours = {timezone = "Europe/Londn", mon = "9-5", tue = "18:00-09:00", '
        'wed = "09:00-12:00, 11:00-13:00", sunday = "10:00-12:00", closed = ["25/12/2026"]}\n',
        [
            "sites[\"shop\"].hours.sunday: unknown key; did you mean 'sun'?",
            "sites[\"shop\"].hours.mon: '9-5' is not HH:MM-HH:MM",
            "sites[\"shop\"].hours.tue: '18:00-09:00' ends before it starts",
            'sites["shop"].hours.wed: shifts overlap',
            "sites[\"shop\"].hours.closed[0]: '25/12/2026' is not a date (YYYY-MM-DD)",
            "sites[\"shop\"].hours.timezone: unknown time zone 'Europe/Londn'; "
            "did you mean 'Europe/London'?",
        ],
    ),
    "several problems inside callback": (
        SITE.format(id="shop")
        + 'callback = {dial = "sip:trunk.example", countries = ["GB", "XX"], attemps = 2, '
        'retry_after = -5, whisper = "no"}\n',
        [
            "sites[\"shop\"].callback.attemps: unknown key; did you mean 'attempts'?",
            'sites["shop"].callback.dial: must contain {number}',
            "sites[\"shop\"].callback.countries[1]: 'XX' is not an ISO 3166 country code",
            'sites["shop"].callback.whisper: must be true or false',
            'sites["shop"].callback.retry_after: must be a positive number of seconds',
        ],
    ),
    "several problems inside destinations": (
        '[[sites]]\nid = "shop"\nring = "parallel"\n'
        'destinations = [{uri = "sip:a@pbx.example", user = "a"}, 5, "nope", '
        '{password = "p"}]\n',
        [
            "sites[\"shop\"].destinations[0].user: unknown key; did you mean 'username'?",
            'sites["shop"].destinations[1]: must be a SIP URI or a table with uri',
            "sites[\"shop\"].destinations[2]: not a SIP URI: 'nope'",
            'sites["shop"].destinations[3].uri: required',
        ],
    ),
    "hours without a time zone": (
        SITE.format(id="shop") + 'hours = {mon = "09:00-17:00"}\n',
        ['sites["shop"].hours.timezone: required: the IANA time zone the hours are in'],
    ),
    "the sixth site, named by its id": (
        "".join(SITE.format(id=f"site-{n}") for n in range(5))
        + SITE.format(id="shop")
        + 'ring_timeout = 0\npasword = "x"\ndestinations = ["nope"]\n',
        [
            'sites["shop"].ring_timeout: must be a positive number of seconds',
            "sites[\"shop\"].pasword: unknown key; did you mean 'password'?",
            "sites[\"shop\"].destinations[0]: not a SIP URI: 'nope'",
        ],
    ),
    "near misses: widget keys and country codes": (
        SITE.format(id="shop") + 'callback = {dial = "sip:{number}@trunk.example", '
        'countries = ["UK", "Ireland", "+33"]}\n'
        + '[sites.widget]\ncolor = "#1a5fb4"\nposition = "bottom-right"\nlangauge = "fr"\n',
        [
            "sites[\"shop\"].callback.countries[0]: 'UK' is not an ISO 3166 country code; "
            "did you mean 'GB'?",
            "sites[\"shop\"].callback.countries[1]: 'Ireland' is not an ISO 3166 country "
            "code; did you mean 'IE'?",
            "sites[\"shop\"].callback.countries[2]: '+33' is not an ISO 3166 country code; "
            "did you mean 'FR'?",
            "sites[\"shop\"].widget.color: unknown key; did you mean 'colour'?",
            "sites[\"shop\"].widget.langauge: unknown key; did you mean 'language'?",
        ],
    ),
    "unknown sections and keys elsewhere": (
        '[limits]\nmax_cals = 3\n[htpp]\nlisten = "x"\n' + SITE.format(id="shop"),
        [
            "limits.max_cals: unknown key; did you mean 'max_calls'?",
            "htpp: unknown section; did you mean 'http'?",
        ],
    ),
}


def check(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    """The exit code of `--check path` and the problems it printed, one a line."""
    code = main(["--check", str(path), "--workers", "1"])
    first, *rest = capsys.readouterr().err.splitlines()
    # "FILE: N problems:" then one a line, or "FILE: the problem" when there is one.
    lines = [line.strip() for line in rest] if rest else [first.removeprefix(f"{path}: ")]
    return code, lines


@pytest.mark.parametrize("name", list(BROKEN))
def test_check_lists_every_problem_of_a_broken_file(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, expected = BROKEN[name]
    path = tmp_path / "gateway.toml"
    path.write_text(text, encoding="utf-8")
    code, lines = check(path, capsys)
    assert code == 2
    for problem in expected:
        assert any(line.startswith(problem) for line in lines), (problem, lines)
    assert len(lines) == len(expected), lines


def test_a_site_without_a_usable_id_is_named_by_its_place(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(SITE.format(id="shop") * 2 + SITE.format(id="Bad Id"), encoding="utf-8")
    code, lines = check(path, capsys)
    assert code == 2
    assert sorted(lines) == [
        "sites[1].id: duplicate id 'shop' (also sites[0].id)",
        "sites[2].id: must be 1-40 characters of a-z, 0-9 and '-', not 'Bad Id'",
    ]


def test_check_of_a_good_file_exits_0_and_starts_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        SITE.format(id="shop")
        + 'hours = {timezone = "Europe/Dublin", mon = "09:00-17:00"}\n'
        + 'callback = {dial = "sip:{number}@trunk.example", countries = ["gb", "IE"]}\n',
        encoding="utf-8",
    )
    assert main(["--check", str(path), "--workers", "2"]) == 0
    assert "is valid (1 site(s): shop)" in capsys.readouterr().out


def test_check_as_a_command(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(SITE.format(id="shop") + 'hours = {mon = "09:00-17:00"}\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "--check", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "GATEWAY_SITE_SHOP_RING_TIMEOUT": "soon"},
    )
    assert result.returncode == 2, result
    assert result.stderr.splitlines()[1:] == [
        '  sites["shop"].ring_timeout (from GATEWAY_SITE_SHOP_RING_TIMEOUT): not a number: '
        "'soon'",
        '  sites["shop"].hours.timezone: required: the IANA time zone the hours are in, '
        'e.g. "Europe/London" (without one they would silently be UTC)',
    ]
    assert result.stdout == ""
