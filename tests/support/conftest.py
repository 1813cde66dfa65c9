"""Fixtures for the harness self-tests (tests/support/test_harness.py)."""

from tests.support.fixtures import *  # noqa: F403
