"""`python -m sip_bridge call ...`: see `sip_bridge.asyncio.cli`."""

import sys

from sip_bridge.asyncio.cli import main

sys.exit(main())
