"""`python -m gateway`: see gateway.process.main."""

import sys

from gateway.process.imports import (
    import_socketio_without_redis,
    import_sqlalchemy_asyncio_without_orm,
)

import_socketio_without_redis()
import_sqlalchemy_asyncio_without_orm()

from gateway.process.main import main  # noqa: E402  (after the line above)

if __name__ == "__main__":
    sys.exit(main())
