"""The `[email]` section: the SMTP server that a site's notification mails go through."""

from __future__ import annotations

from dataclasses import dataclass, field, replace


@dataclass(frozen=True, slots=True)
class SmtpServer:
    """Where mail is handed over (`[email] smtp_url`); the password is never in a repr."""

    host: str
    port: int
    implicit_tls: bool  # smtps://: TLS from the first byte; smtp://: STARTTLS when offered
    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class EmailConfig:
    """`server` None: no mail is sent (a site's `notify_email` then is a configuration
    error). `sender` is `[email] from`."""

    server: SmtpServer | None
    sender: str | None

    @classmethod
    def build(
        cls,
        server: SmtpServer | None,
        sender: str | None,
        username: str | None,
        password: str | None,
    ) -> EmailConfig:
        """`[email] username`/`password` (e.g. from the environment) over the URL's."""
        if server is not None and (username or password):
            server = replace(
                server,
                username=username or server.username,
                password=password or server.password,
            )
        return cls(server, sender)
