"""What the gateway's agent and a page get of `ice.servers` (gateway.media.ice_servers),
on a fake clock. coturn itself checks the credentials in tests/e2e/test_turn_relay.py."""

from __future__ import annotations

import base64
import hashlib
import hmac

from gateway.config.schema import IceServer
from gateway.media.ice_servers import IceServers, rest_credential

NOW = 1_700_000_000.5
STUN = IceServer(urls=("stun:stun.example.com",))
STATIC = IceServer(
    urls=("stun:relay.example.com", "turn:relay.example.com?transport=udp"),
    username="gw",
    credential="static-credential",
)
REST = IceServer(urls=("turns:turn.example.com:5349",), secret="shared-secret")


def servers() -> IceServers:
    return IceServers([STUN, STATIC, REST], 600, clock=lambda: NOW)


def test_a_rest_credential_is_the_hmac_sha1_of_its_user_name() -> None:
    username, credential = rest_credential("shared-secret", expires=1700000600, user="abc")
    assert username == "1700000600:abc"
    digest = hmac.new(b"shared-secret", b"1700000600:abc", hashlib.sha1).digest()
    assert base64.b64decode(credential) == digest


def test_a_page_never_gets_a_static_credential_and_gets_its_own_rest_one() -> None:
    first, second = servers().for_page(), servers().for_page()
    assert first[0] == {"urls": ["stun:stun.example.com"]}
    assert first[1] == {"urls": ["stun:relay.example.com"]}  # the static TURN URL withheld
    rest = first[2]
    assert rest["urls"] == ["turns:turn.example.com:5349"]
    expires, _, user = rest["username"].partition(":")
    assert int(expires) == int(NOW + 600) and len(user) == 16
    assert (rest["username"], rest["credential"]) == rest_credential(
        "shared-secret", expires=int(expires), user=user
    )
    assert second[2]["username"] != rest["username"]  # one per connection
    text = repr(first)
    assert "static-credential" not in text and "shared-secret" not in text


def test_the_gateway_uses_static_credentials_and_rest_ones_of_its_own() -> None:
    ours = servers().for_gateway()
    assert ours[0] == {"urls": ["stun:stun.example.com"]}
    assert ours[1]["username"] == "gw" and ours[1]["credential"] == "static-credential"
    assert ours[2]["username"] == f"{int(NOW + 600)}:gateway"
    assert servers().withheld == ["turn:relay.example.com?transport=udp"]


def test_a_static_turn_only_entry_gives_the_page_nothing() -> None:
    static = IceServer(urls=("turn:t.example",), username="u", credential="c")
    assert IceServers([static], 600, clock=lambda: NOW).for_page() == []
