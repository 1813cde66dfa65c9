"""Where each worker's registrations with the sites' trunks stand (`register = true`): one
row per worker and site, written by the worker on each change, so that the admin page and
`/api/admin/registrations` show those of every worker and node (they share the database).

A worker removes its rows when it stops; rows a dead worker left stay until that worker
starts again (their `changed_at` tells how old they are)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage.tables import registrations


@dataclass(frozen=True)
class RegistrationStatus:
    worker: str  # <node>/worker-<i>
    site: str
    state: str  # registering, registered, failed, unregistering, unregistered
    registrar: str
    changed_at: float
    expires_at: float | None = None  # while registered: when the binding runs out
    detail: str = ""  # why it failed (status and reason), or what happened
    retry_at: float | None = None  # after a failure: when it is tried again

    def public(self) -> dict[str, Any]:
        return asdict(self)


class RegistrationStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def record(self, status: RegistrationStatus) -> None:
        """The newest state of `status.worker`'s registration of `status.site`."""
        where = (registrations.c.worker == status.worker) & (registrations.c.site == status.site)
        async with self._engine.begin() as db:
            await db.execute(delete(registrations).where(where))
            await db.execute(insert(registrations).values(asdict(status)))

    async def all(self, site: str | None = None) -> list[RegistrationStatus]:
        """By site, then worker."""
        query = select(registrations).order_by(registrations.c.site, registrations.c.worker)
        if site is not None:
            query = query.where(registrations.c.site == site)
        async with self._engine.connect() as db:
            rows = (await db.execute(query)).all()
        return [RegistrationStatus(**dict(row._mapping)) for row in rows]

    async def forget_worker(self, worker: str) -> int:
        async with self._engine.begin() as db:
            query = delete(registrations).where(registrations.c.worker == worker)
            return (await db.execute(query)).rowcount
