"""`python -m sip_bridge call ...`: see `sip_bridge.cli`."""

import sys

from .cli import main

sys.exit(main())
