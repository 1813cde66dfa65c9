"""The admin page's users, sessions and login attempts.

Users come from the configuration (`[[admin.users]]`) and are written here at start
(`set_users`), so every worker and node checks passwords against the same rows. A session
is stored by the SHA-256 of its cookie's token (a stolen database gives no usable cookie),
with its CSRF token and expiry. Login attempts are rows, so the rate limit holds across
workers and nodes.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.storage.tables import admin_sessions, admin_users, login_attempts


@dataclass(frozen=True)
class AdminSession:
    user: str
    csrf_token: str
    expires_at: float


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AdminStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def set_users(self, users: Iterable[tuple[str, str]]) -> None:
        """The users are exactly these (name, Argon2id PHC hash); sessions of users no
        longer listed are ended."""
        users = list(users)
        names = [name for name, _ in users]
        async with self._engine.begin() as db:
            await db.execute(delete(admin_users))
            if users:
                await db.execute(
                    insert(admin_users),
                    [{"name": name, "password_hash": hash_} for name, hash_ in users],
                )
            await db.execute(delete(admin_sessions).where(admin_sessions.c.user_name.not_in(names)))

    async def password_hash(self, name: str) -> str | None:
        async with self._engine.connect() as db:
            return (
                await db.execute(
                    select(admin_users.c.password_hash).where(admin_users.c.name == name)
                )
            ).scalar_one_or_none()

    async def create_session(
        self, user: str, now: float, lifetime: float
    ) -> tuple[str, AdminSession]:
        """A new session: (the cookie's token, the session)."""
        token = secrets.token_urlsafe(32)
        session = AdminSession(user, secrets.token_urlsafe(32), now + lifetime)
        async with self._engine.begin() as db:
            await db.execute(delete(admin_sessions).where(admin_sessions.c.expires_at <= now))
            await db.execute(
                insert(admin_sessions).values(
                    id=_key(token),
                    user_name=user,
                    csrf_token=session.csrf_token,
                    created_at=now,
                    expires_at=session.expires_at,
                )
            )
        return token, session

    async def session(self, token: str, now: float) -> AdminSession | None:
        async with self._engine.connect() as db:
            row = (
                await db.execute(
                    select(admin_sessions).where(
                        (admin_sessions.c.id == _key(token)) & (admin_sessions.c.expires_at > now)
                    )
                )
            ).first()
        return None if row is None else AdminSession(row.user_name, row.csrf_token, row.expires_at)

    async def end_session(self, token: str) -> None:
        async with self._engine.begin() as db:
            await db.execute(delete(admin_sessions).where(admin_sessions.c.id == _key(token)))

    async def login_failed(self, client: str, user: str, now: float) -> None:
        async with self._engine.begin() as db:
            await db.execute(insert(login_attempts).values(client=client, user_name=user, at=now))

    async def failed_logins(self, client: str, user: str, since: float) -> tuple[int, int]:
        """Failed logins since `since`: (from this client, for this user name)."""
        recent = login_attempts.c.at >= since
        async with self._engine.connect() as db:
            by_client = (
                await db.execute(
                    select(func.count()).where(recent & (login_attempts.c.client == client))
                )
            ).scalar_one()
            by_user = (
                await db.execute(
                    select(func.count()).where(recent & (login_attempts.c.user_name == user))
                )
            ).scalar_one()
        return int(by_client), int(by_user)

    async def forget_attempts(self, before: float) -> None:
        async with self._engine.begin() as db:
            await db.execute(delete(login_attempts).where(login_attempts.c.at < before))
