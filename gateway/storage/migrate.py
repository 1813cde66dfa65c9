"""Schema versions: Alembic migrations (`migrations/versions/`), applied when the gateway
starts (the supervisor, before its workers) or by `python -m gateway migrate`.

A callback database of a release before the storage layer (the `callbacks` table without
Alembic's version table) is adopted as version 0001 and brought up from there.

Alembic (with Mako and Pygments, ~12 MB per process) is imported only when a schema has
to change: a database already at the newest version is told by one query of Alembic's
version table, so a running gateway's processes never hold it (docs/benchmark.md, memory).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
LEGACY_VERSION = "0001"  # what a callbacks-only database of an earlier release is
ADVISORY_LOCK = 7_262_001  # PostgreSQL advisory lock key held while migrating


def _config(connection: Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest schema version this code knows: the highest of the revision files'
    numbers (`NNNN_name.py`, each revising the one before; a test checks it is Alembic's
    head)."""
    return max(path.name.split("_", 1)[0] for path in (MIGRATIONS / "versions").glob("*.py"))


def _current(connection: Connection) -> str | None:
    """The schema version recorded in Alembic's table (None: none), read without Alembic."""
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _upgrade(connection: Connection, target: str) -> tuple[str | None, str]:
    if target == "head" and _current(connection) == head():
        current = head()
        return current, current  # nothing to do: no Alembic
    from alembic import command

    if connection.dialect.name == "postgresql":
        # Nodes starting together: one migrates, the others wait and find it done.
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({ADVISORY_LOCK})")
    config = _config(connection)
    before = _current(connection)
    tables = set(inspect(connection).get_table_names())
    if before is None and "callbacks" in tables:
        command.stamp(config, LEGACY_VERSION)
        before = LEGACY_VERSION
    command.upgrade(config, target)
    return before, _current(connection) or ""


async def upgrade(engine: AsyncEngine, target: str = "head") -> tuple[str | None, str]:
    """Bring the schema to `target` (default: the newest); (version before, version after).
    Safe to run from several processes at once: each step runs in one transaction (on
    SQLite an immediate one), so the second finds the work done."""
    async with engine.begin() as connection:
        return await connection.run_sync(_upgrade, target)


async def current_version(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(_current)
