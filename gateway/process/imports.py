"""What the entry points import first, before the application (standard library only here:
the lean supervisor, gateway.process.watch, calls it too)."""

from __future__ import annotations

import sys


def import_socketio_without_redis() -> None:
    """python-socketio imports redis at import when it is installed, for a Redis client
    manager the gateway does not use (nodes share their state through gateway.process.
    shared): a gateway without `[storage] redis` would pay ~6 MB of every process for it
    (docs/benchmark.md, Memory). With redis hidden while socketio is imported first (a None
    entry in sys.modules makes `import redis` raise ImportError, as when it is not
    installed), socketio leaves that manager out; the gateway imports redis itself when it
    is configured (gateway.storage.redis_server.connect). Nothing is done once either is
    imported."""
    if "socketio" in sys.modules or "redis" in sys.modules:
        return
    sys.modules["redis"] = None  # type: ignore[assignment]
    try:
        import socketio  # noqa: F401
    finally:
        del sys.modules["redis"]
