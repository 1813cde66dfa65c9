"""Who may use the site owner's side.

- The API and `/metrics`: `Authorization: Bearer <key>` with one of `[admin] api_keys`
  (compared in constant time).
- The page: a user of `[[admin.users]]` logs in with name and password (Argon2id, verified
  off the event loop); the session cookie is HttpOnly, SameSite=Strict, Secure when the
  gateway is reached over https, and stored by its hash (gateway.storage.admin). Every
  change is a POST carrying the session's CSRF token; the login form carries a token of its
  own (double submit). Failed logins are counted in the database: past `MAX_FAILURES_CLIENT`
  from one address or `MAX_FAILURES_USER` for one name in `FAILURE_WINDOW`, logins are
  refused (429) without checking the password.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
from collections.abc import Sequence

import argon2
from aiohttp import web

from gateway.api import Clock
from gateway.storage import AdminSession, AdminStore

COOKIE = "gateway_admin"
LOGIN_COOKIE = "gateway_admin_login"
FAILURE_WINDOW = 15 * 60.0
MAX_FAILURES_CLIENT = 5
MAX_FAILURES_USER = 10
MAX_PASSWORD_CHARS = 1024
MIN_PASSWORD_CHARS = 10  # `python -m gateway hash-password` refuses shorter ones

_hasher = argon2.PasswordHasher()  # Argon2id with the library's (RFC 9106) parameters
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))  # unknown users cost the same time


def hash_password(password: str) -> str:
    """An Argon2id PHC string for `[[admin.users]] password_hash`."""
    return _hasher.hash(password)


def bearer_key_valid(request: web.Request, keys: Sequence[str]) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return False
    given_bytes = given.strip().encode()
    # Every key compared, whatever matches: the time says nothing about which.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given_bytes, key.encode())
    return matched


class LoginThrottled(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed logins")
        self.retry_after = retry_after


class Sessions:
    """Logins, sessions and CSRF tokens of the admin page."""

    def __init__(self, store: AdminStore, *, lifetime: float, secure: bool, clock: Clock) -> None:
        self.store = store
        self.lifetime = lifetime
        self.secure = secure
        self.clock = clock

    async def login(self, client: str, name: str, password: str) -> tuple[str, AdminSession] | None:
        """A new session for a right name and password; None when wrong. Raises
        LoginThrottled past the failure limits (before looking at the password)."""
        now = self.clock()
        by_client, by_user = await self.store.failed_logins(client, name, now - FAILURE_WINDOW)
        if by_client >= MAX_FAILURES_CLIENT or by_user >= MAX_FAILURES_USER:
            raise LoginThrottled(int(FAILURE_WINDOW))
        stored = await self.store.password_hash(name) if name else None
        ok = await asyncio.get_running_loop().run_in_executor(
            None, _verify, stored or _DUMMY_HASH, password[:MAX_PASSWORD_CHARS]
        )
        if not ok or stored is None:
            await self.store.login_failed(client, name[:64], now)
            return None
        return await self.store.create_session(name, now, self.lifetime)

    async def session(self, request: web.Request) -> AdminSession | None:
        token = request.cookies.get(COOKIE)
        if not token:
            return None
        return await self.store.session(token, self.clock())

    async def logout(self, request: web.Request) -> None:
        token = request.cookies.get(COOKIE)
        if token:
            await self.store.end_session(token)

    def set_cookie(self, response: web.StreamResponse, token: str) -> None:
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(self.lifetime),
            path="/admin",
            httponly=True,
            secure=self.secure,
            samesite="Strict",
        )

    def set_login_cookie(self, response: web.StreamResponse, token: str) -> None:
        """The login form's CSRF token as a short-lived cookie too (double submit)."""
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            max_age=3600,
            path="/admin",
            httponly=True,
            secure=self.secure,
            samesite="Strict",
        )


def same_token(given: object, expected: str | None) -> bool:
    return (
        isinstance(given, str)
        and expected is not None
        and hmac.compare_digest(given.encode(), expected.encode())
    )


def _verify(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False
