"""The fake wire and the calling user agent most sans-I/O tests start from (a test module
that needs another set-up defines its own fixture of the same name)."""

from __future__ import annotations

import pytest

from sip_bridge.useragent import UserAgent, UserAgentConfig

from .loop import CALLER, PEER, Wire
from .scripted import ScriptedPeer


@pytest.fixture
def wire() -> Wire:
    return Wire()


@pytest.fixture
def caller(wire: Wire) -> UserAgent:
    return wire.add(UserAgent(UserAgentConfig(address=CALLER)))


@pytest.fixture
def peer(wire: Wire, caller: UserAgent) -> ScriptedPeer:
    """A scripted far end at PEER that the test writes each message of."""
    return ScriptedPeer(wire, caller, PEER)
