"""The STUN/TURN servers of `ice.servers`, as the gateway's agent and as a page get them.

A TURN credential that reaches a page is public: anyone who opens the page can read it
and relay through the TURN server. So a page only ever gets short-lived credentials, made
with the TURN REST API scheme that coturn implements (`use-auth-secret`,
`static-auth-secret`; draft-uberti-behave-turn-rest): the user name is
`<expiry>:<id>` (expiry in Unix seconds) and the credential is
base64(HMAC-SHA1(secret, user name)). The TURN server recomputes it from the shared
secret and refuses it once the expiry has passed.

- An entry with `secret`: the gateway's agent and every page connection get their own
  credential, valid `ice.turn_credential_lifetime` seconds.
- An entry with static `username` and `credential`: only the gateway's agent uses them;
  a page gets the entry's `stun:` URLs, if any, and never the credential.
- An entry without credentials (STUN): as it is, to both.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any

from gateway.config.schema import IceServer

Clock = Callable[[], float]
GATEWAY_USER = "gateway"  # the <id> of the gateway agent's own REST credentials


def rest_credential(secret: str, *, expires: int, user: str) -> tuple[str, str]:
    """(user name, credential) of the TURN REST API for `user`, valid until `expires`."""
    username = f"{expires}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode("ascii")


def is_turn(url: str) -> bool:
    return url.lower().startswith(("turn:", "turns:"))


class IceServers:
    """`ice.servers` resolved for one use: `for_gateway()` per call leg, `for_page()` per
    page connection (RTCIceServer-shaped dicts)."""

    def __init__(
        self, servers: Sequence[IceServer], lifetime: float, *, clock: Clock = time.time
    ) -> None:
        self.servers = tuple(servers)
        self.lifetime = lifetime
        self.clock = clock

    @property
    def withheld(self) -> list[str]:
        """The TURN URLs whose static credentials pages never get (for the start's log)."""
        return [
            url
            for server in self.servers
            if server.secret is None and server.credential is not None
            for url in server.urls
            if is_turn(url)
        ]

    def for_gateway(self) -> list[dict[str, Any]]:
        """Every server, with credentials (a secret's made now, for the gateway's agent)."""
        result = []
        for server in self.servers:
            entry: dict[str, Any] = {"urls": list(server.urls)}
            if server.secret is not None:
                entry["username"], entry["credential"] = self._credential(server.secret)
            elif server.credential is not None:
                entry["username"], entry["credential"] = server.username, server.credential
            result.append(entry)
        return result

    def for_page(self) -> list[dict[str, Any]]:
        """What one page connection may know: no static credential, fresh REST ones."""
        result = []
        for server in self.servers:
            if server.secret is not None:
                username, credential = self._credential(server.secret, secrets.token_hex(8))
                result.append(
                    {"urls": list(server.urls), "username": username, "credential": credential}
                )
            elif server.credential is not None:
                stun = [url for url in server.urls if not is_turn(url)]
                if stun:
                    result.append({"urls": stun})
            else:
                result.append({"urls": list(server.urls)})
        return result

    def _credential(self, secret: str, user: str = GATEWAY_USER) -> tuple[str, str]:
        expires = int(self.clock() + self.lifetime)
        return rest_credential(secret, expires=expires, user=user)
