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


# What sqlalchemy.ext.asyncio's own __init__ takes from these two modules: the asyncio
# engine and its results, all the gateway uses (gateway.storage runs on SQLAlchemy Core).
_ASYNCIO_CORE = {
    "sqlalchemy.ext.asyncio.engine": (
        "AsyncConnection",
        "AsyncEngine",
        "AsyncTransaction",
        "async_engine_from_config",
        "create_async_engine",
        "create_async_pool_from_url",
    ),
    "sqlalchemy.ext.asyncio.result": (
        "AsyncMappingResult",
        "AsyncResult",
        "AsyncScalarResult",
        "AsyncTupleResult",
    ),
}


def import_sqlalchemy_asyncio_without_orm() -> None:
    """sqlalchemy.ext.asyncio's __init__ imports its ORM session (and with it
    sqlalchemy.orm: ~6.5 MB of every gateway process, docs/benchmark.md, Memory) next to
    the asyncio engine, the only part the gateway uses. This makes `sqlalchemy.ext.asyncio`
    the package with the engine's and results' names only (what its __init__ takes from
    them, and the greenlet set-up it does); the first name asked of it that is not one of
    those runs the package's own __init__ in it, so any other user of the package gets
    all of it, then with the ORM. Nothing is done once it is imported, or without
    SQLAlchemy."""
    name = "sqlalchemy.ext.asyncio"
    if name in sys.modules:
        return
    import importlib
    import importlib.util
    from importlib.machinery import PathFinder

    try:
        spec = importlib.util.find_spec(name)
    except ImportError:
        return
    if spec is None or spec.loader is None:
        return
    loader = spec.loader
    package = importlib.util.module_from_spec(spec)

    def whole_package(attribute: str) -> object:
        """The rest of the package, on first demand: its own __init__, run in it. A
        submodule's name is not asked for (`from . import exc` tries the attribute first,
        then imports the submodule)."""
        if attribute.startswith("__") or PathFinder.find_spec(attribute, package.__path__):
            raise AttributeError(attribute)
        del vars(package)["__getattr__"]
        loader.exec_module(package)
        return getattr(package, attribute)

    vars(package)["__getattr__"] = whole_package  # PEP 562: a module's own
    sys.modules[name] = package
    try:
        for module_name, names in _ASYNCIO_CORE.items():
            module = importlib.import_module(module_name)
            for attribute in names:
                if hasattr(module, attribute):
                    setattr(package, attribute, getattr(module, attribute))
        from sqlalchemy.util import concurrency

        concurrency._concurrency_shim._initialize()
    except Exception:  # another SQLAlchemy than the pinned one: the plain import, later
        del sys.modules[name]
        return
    import sqlalchemy.ext

    vars(sqlalchemy.ext)["asyncio"] = package  # as the import system does
