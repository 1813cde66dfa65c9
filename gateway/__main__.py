"""`python -m gateway`: see gateway.process.main."""

import sys

from gateway.process.imports import import_socketio_without_redis

import_socketio_without_redis()

from gateway.process.main import main  # noqa: E402  (after the line above)

if __name__ == "__main__":
    sys.exit(main())
