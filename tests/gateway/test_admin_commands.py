"""`python -m gateway hash-password` and `python -m gateway migrate`, and the settings of
the site owner's side: admin users and keys checked, the old callbacks key named."""

from __future__ import annotations

import io
import sys

import argon2
import pytest

from gateway.config import ConfigError, parse_config
from gateway.process.main import main
from gateway.storage import migrate

SITE = '[[sites]]\nid = "shop"\ndestination = "sip:desk@pbx.example.com"\n'


@pytest.fixture
def gateway_command(monkeypatch, capsys):
    """`python -m gateway ARGS` in this process (its entry point), with `stdin`."""

    def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_hash_password_makes_an_argon2id_hash_the_config_takes(gateway_command):
    code, out, err = gateway_command("hash-password", stdin="correct horse battery\n")
    assert code == 0, err
    hashed = out.strip()
    assert hashed.startswith("$argon2id$")
    assert argon2.PasswordHasher().verify(hashed, "correct horse battery")
    config = parse_config(f'[[admin.users]]\nname = "ann"\npassword_hash = "{hashed}"\n' + SITE)
    assert config.admin.users == (("ann", hashed),)
    assert hashed not in repr(config.admin)  # secrets never in a repr
    code, _, err = gateway_command("hash-password", stdin="short\n")
    assert code == 1 and "at least 10 characters" in err


def test_migrate_brings_an_empty_database_up_once(gateway_command, tmp_path):
    # The working directory is the test's own (tests/support/fixtures.py).
    code, out, err = gateway_command("migrate")
    assert code == 0, err
    assert f"sqlite:///var/gateway.db: schema empty -> {migrate.head()}" in out
    assert (tmp_path / "var" / "gateway.db").stat().st_mode & 0o077 == 0  # private
    assert "the newest: nothing to do" in gateway_command("migrate")[1]
    bad = tmp_path / "bad.toml"
    bad.write_text('[storage]\ndatabase = "postgresql://gw:secret@127.0.0.1:9/x"\n')
    code, _, err = gateway_command("migrate", "--config", str(bad))
    assert code == 1 and "cannot migrate" in err and "secret" not in err


@pytest.mark.parametrize(
    ("toml", "env", "expected"),
    [
        ('[callbacks]\ndatabase = "var/cb.db"\n', {}, "callbacks.database: moved: use [storage]"),
        ("", {"GATEWAY_CALLBACKS_DATABASE": "x.db"}, "GATEWAY_CALLBACKS_DATABASE: moved"),
        ('[storage]\ndatabase = "mysql://db/x"\n', {}, "storage.database: expected"),
        ('[admin]\napi_keys = ["short"]\n', {}, "admin.api_keys[0]: an API key is at least 24"),
        (
            '[[admin.users]]\nname = "ann"\npassword_hash = "plain"\n',
            {},
            "admin.users[0]: password_hash: an Argon2id hash",
        ),
        (
            '[[admin.users]]\nname = "ann"\npassword_hash = "$argon2id$v=19$junk"\n',
            {},
            "not a valid Argon2id hash",
        ),
        ('[admin]\nmetrics_listen = "nowhere"\n', {}, "admin.metrics_listen"),
        (SITE + "retention_days = 0\n", {}, "retention_days: must be at least 1"),
    ],
)
def test_bad_owner_settings_are_named(toml, env, expected):
    with pytest.raises(ConfigError) as refused:
        parse_config(toml + ("" if "[[sites]]" in toml else SITE), env)
    assert expected in str(refused.value)


def test_api_keys_from_the_environment_stay_secret():
    key = "an-api-key-from-the-environment-0123"
    config = parse_config(SITE, {"GATEWAY_ADMIN_API_KEYS": f"{key},{key}x"})
    assert config.admin.api_keys == (key, key + "x")
    assert key not in repr(config)
