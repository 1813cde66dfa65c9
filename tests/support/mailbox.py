"""A real SMTP server (aiosmtpd) on loopback that keeps every mail it accepts, for the
tests of the gateway's notification mails."""

from __future__ import annotations

import asyncio
import email
import email.policy
import time
from dataclasses import dataclass
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from .ports import free_port_block

__all__ = ["Mailbox", "ReceivedMail"]


@dataclass(frozen=True)
class ReceivedMail:
    sender: str
    recipients: tuple[str, ...]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    def part(self, subtype: str) -> str:
        """The text of the text/<subtype> part."""
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None and body.get_content_subtype() == subtype, self.message
        return body.get_content()


class Mailbox:
    """`start()` an SMTP server on 127.0.0.1:`port`; `mails` is what it accepted. With
    `login` = (user, password) it takes mail only after AUTH with them."""

    def __init__(self, *, login: tuple[str, str] | None = None) -> None:
        self.port = free_port_block(1)
        self.mails: list[ReceivedMail] = []
        self.login = login
        options = (
            {"authenticator": self._authenticate, "auth_required": True, "auth_require_tls": False}
            if login
            else {}
        )
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **options)

    def _authenticate(self, server, session, envelope, mechanism, auth_data) -> AuthResult:
        given = (
            (auth_data.login.decode(), auth_data.password.decode())
            if isinstance(auth_data, LoginPassword)
            else None
        )
        return AuthResult(success=given == self.login, handled=False)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> Mailbox:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    async def handle_DATA(self, server, session, envelope) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.mails.append(
            ReceivedMail(envelope.mail_from, tuple(envelope.rcpt_tos), message)  # type: ignore[arg-type]
        )
        return "250 OK"

    async def wait_for(self, count: int = 1, timeout: float = 10.0) -> list[ReceivedMail]:
        deadline = time.monotonic() + timeout
        while len(self.mails) < count:
            assert time.monotonic() < deadline, f"{len(self.mails)} mails, wanted {count}"
            await asyncio.sleep(0.05)
        return list(self.mails)
