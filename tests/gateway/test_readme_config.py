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


def leaves(table: dict, prefix: str = "") -> dict[str, object]:
    """Every value of a TOML document by its dotted key (a [[sites]] entry's as sites.key)."""
    out: dict[str, object] = {}
    for name, value in table.items():
        if isinstance(value, dict) and value:
            out |= leaves(value, f"{prefix}{name}.")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                out |= leaves(item, f"{prefix}{name}.")
        else:
            out[prefix + name] = value
    return out


SECTIONS = (
    "sites|http|sip|media|ice|demo|access|limits|log|storage|callbacks|admin|email|notifications"
)


def documented_keys() -> set[str]:
    found = re.findall(
        rf"`((?:{SECTIONS})[.\w\[\]]*)`",
        (README.parent / "docs" / "configuration.md").read_text(),
    )
    return {key.replace("[]", "") for key in found}


def test_readme_config_parses_and_has_every_key():
    block = readme_block()
    parse_config(block, {})
    shown = keys(tomllib.loads(block))
    assert keys(tomllib.loads(DEFAULT_CONFIG)) <= shown
    assert {k for k in documented_keys() if "." in k} <= shown


def test_readme_and_docs_give_every_default_as_it_is():
    """The README's block shows each embedded default with its value, and
    docs/configuration.md describes every key (a setting that is not documented does not
    exist)."""
    defaults = leaves(tomllib.loads(DEFAULT_CONFIG))
    shown = leaves(tomllib.loads(readme_block()))
    assert {key: shown.get(key) for key in defaults} == defaults
    assert sorted(set(defaults) - documented_keys()) == []
