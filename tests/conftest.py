"""Fixtures shared by every test: the real peers (SIPp, baresip) from tests/support."""

from tests.support.fixtures import *  # noqa: F403
