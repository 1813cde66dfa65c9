"""The README shows every configuration key, in a block that is itself a valid config."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from gateway.config import DEFAULT_CONFIG, parse_config

README = Path(__file__).resolve().parents[2] / "README.md"
MARKER = "Every key, with its default (the embedded configuration):\n\n```toml\n"


def readme_block() -> str:
    return README.read_text().split(MARKER, 1)[1].split("```", 1)[0]


def keys(table: dict, prefix: str = "") -> set[str]:
    out = set()
    for name, value in table.items():
        if isinstance(value, dict | list) and not value:
            out.add(prefix + name)  # an empty table or list stands for the key
        elif isinstance(value, dict):
            out.add(prefix + name)  # a table is a key too ([sites.widget]: sites.widget)
            out |= keys(value, f"{prefix}{name}.")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                out |= keys(item, f"{prefix}{name}.")
        else:
            out.add(prefix + name)
    return out


def test_readme_config_parses_and_has_every_key():
    block = readme_block()
    parse_config(block, {})
    shown = keys(tomllib.loads(block))
    assert keys(tomllib.loads(DEFAULT_CONFIG)) <= shown
    documented = set(
        re.findall(
            r"`((?:sites|http|sip|media|ice|demo|access|limits|log|storage)[.\w\[\]]*)`",
            (README.parent / "docs" / "configuration.md").read_text(),
        )
    )
    documented = {d.replace("[]", "") for d in documented}
    assert {k for k in documented if "." in k} <= shown
