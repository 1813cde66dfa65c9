"""Fixtures shared by every test: the real peers (SIPp, baresip) from tests/support; the
property tests' settings.

Hypothesis runs derandomized by default: the same examples on every run, so a suite passes
or fails for what the code does, not for the draw (nor for a deadline missed on a busy
machine: no deadlines). `HYPOTHESIS_PROFILE=explore` draws new examples, more of them, to
look for bugs; a failing one is then pinned with `@example`."""

import os

from hypothesis import settings

from tests.support.fixtures import *  # noqa: F403

settings.register_profile("default", deadline=None, derandomize=True, print_blob=True)
settings.register_profile("explore", deadline=None, max_examples=1000, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
