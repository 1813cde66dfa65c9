"""`python -m gateway`: see gateway.process.main."""

import sys

from gateway.process.main import main

if __name__ == "__main__":
    sys.exit(main())
