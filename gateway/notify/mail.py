"""Mail to a site's owner: what happened, in words, as plain text and HTML.

`MailRenderer` turns a `Notification` into a subject and two bodies from the Jinja2
templates beside this module; the HTML one escapes every value (autoescape), and every
string that came from outside (a visitor's name, reason, page, number; a destination) is
first made one printable, bounded line (`gateway.text.one_line`), so that nothing a visitor
typed can add a header, a line or markup. `MailSender` hands the message to the
`[email]` server with aiosmtplib: TLS from the start for smtps://, else STARTTLS whenever
the server offers it.
"""

from __future__ import annotations

import datetime as dt
import email.utils
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from gateway.config import EmailConfig, GatewayConfig
from gateway.notify.delivery import DeliveryError
from gateway.notify.events import Notification
from gateway.notify.outbox import OutboxEvent
from gateway.text import MAX_MESSAGE_LINES, one_line

TEMPLATES = Path(__file__).with_name("templates")
MAX_FIELD = 200  # characters of one outside value in a mail
MAX_SUBJECT = 150
MAX_BODY_LINE = 1000  # characters of one line of a visitor's message in a mail


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file a mail carries (a voicemail's audio)."""

    filename: str
    data: bytes
    maintype: str
    subtype: str


# What an outbox row's mail attaches: the files its payload's "attach" names, read when
# the mail is sent (a voicemail deleted meanwhile is left out).
Attachments = Callable[[Mapping[str, Any]], list[Attachment]]


@dataclass(frozen=True, slots=True)
class RenderedMail:
    subject: str
    text: str
    html: str


OUTCOME_WORDS = {
    "answered": "answered",
    "missed": "nobody answered",
    "abandoned": "the visitor hung up while it rang",
    "refused": "refused",
    "failed": "failed",
}


class MailRenderer:
    """Subjects and bodies of a site's mails; times in each site's time zone (`timezones`:
    its business hours'), else UTC."""

    def __init__(self, timezones: dict[str, dt.tzinfo] | None = None) -> None:
        self.timezones = timezones or {}
        import jinja2  # only with mail configured: a gateway without never loads it

        environment = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",)),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
        )
        self._text = environment.get_template("mail.txt")
        self._html = environment.get_template("mail.html")

    @classmethod
    def for_config(cls, config: GatewayConfig) -> MailRenderer:
        return cls(
            {site.id: site.hours.timezone for site in config.sites if site.hours is not None}
        )

    def render(self, notification: Notification, event_id: str) -> RenderedMail:
        subject, headline, facts = self._words(notification)
        body: list[str] = []
        if notification.type == "message.received":
            # A visitor's message, line by line (each a printable line of bounded length).
            text = str(notification.data.get("text") or "")
            body = [one_line(line, MAX_BODY_LINE) for line in text.split("\n")]
            body = body[:MAX_MESSAGE_LINES]
        values: dict[str, Any] = {
            "subject": subject,
            "headline": headline,
            "body": body,
            "facts": facts,
            "link": one_line(notification.data.get("admin_url", ""), 500),
            "site": one_line(notification.site, 40),
            "event_type": notification.type,
            "event_id": event_id,
        }
        return RenderedMail(subject, self._text.render(values), self._html.render(values))

    # ------------------------------------------------------------------ words
    def _time(self, site: str, seconds: object) -> str:
        if not isinstance(seconds, int | float):
            return ""
        zone = self.timezones.get(site, dt.UTC)
        moment = dt.datetime.fromtimestamp(seconds, zone)
        name = getattr(zone, "key", None) or "UTC"
        return f"{moment:%Y-%m-%d %H:%M:%S} ({name})"

    def _words(self, n: Notification) -> tuple[str, str, list[tuple[str, str]]]:
        d = n.data
        site = one_line(n.site, 40)
        name = one_line(d.get("visitor_name"), MAX_FIELD)
        facts: list[tuple[str, str]] = []

        def fact(label: str, value: object, limit: int = MAX_FIELD) -> None:
            text = one_line(value, limit) if value not in (None, "") else ""
            if text:
                facts.append((label, text))

        if n.type.startswith("call."):
            who = f" from {name}" if name else ""
            if n.type == "call.missed":
                subject = f"Missed call{who} on {site}"
                headline = f"A visitor called {site} and nobody answered."
                if d.get("outcome") == "abandoned":
                    headline = f"A visitor called {site} and hung up before anyone answered."
            elif n.type == "call.answered":
                subject = f"Call{who} on {site} answered"
                headline = f"A call to {site} was answered."
            else:
                outcome = OUTCOME_WORDS.get(str(d.get("outcome")), str(d.get("outcome", "")))
                subject = f"Call{who} on {site} ended: {outcome}"
                headline = f"A call to {site} ended: {outcome}."
            fact("Visitor", name)
            fact("Number", d.get("number"))
            fact("Page", d.get("page"), 500)
            fact("Reason", d.get("visitor_reason"))
            fact("Came from", d.get("visitor_source"), 80)
            fact("Started", self._time(n.site, d.get("started_at")))
            if isinstance(d.get("ring_seconds"), int | float):
                fact("Waited", f"{d['ring_seconds']:.0f} s")
            if isinstance(d.get("talk_seconds"), int | float):
                fact("Talked", f"{d['talk_seconds']:.0f} s")
            fact("Answered by", d.get("destination"))
            fact("Ended because", str(d.get("end_cause") or "").replace("_", " "))
            fact("Call id", d.get("id"), 80)
        elif n.type.startswith("callback."):
            number = one_line(d.get("number"), 40)
            if n.type == "callback.requested":
                subject = f"Callback requested on {site}: {number}"
                headline = f"A visitor of {site} asked to be called back."
                fact("Due", self._time(n.site, d.get("due_at")))
            else:
                status = one_line(d.get("status"), 20)
                subject = f"Callback to {number} on {site}: {status}"
                headline = f"A callback of {site} ended: {status}."
                fact("Why", d.get("detail"))
                fact("Attempts", d.get("attempts"), 10)
            fact("Visitor", name)
            fact("Number", number)
            fact("Page", d.get("page"), 500)
            fact("Reason", d.get("visitor_reason"))
            fact("Requested", self._time(n.site, d.get("created_at")))
            fact("Callback id", d.get("id"), 80)
        elif n.type == "voicemail.received":
            who = f" from {name}" if name else ""
            seconds = d.get("seconds") if isinstance(d.get("seconds"), int | float) else 0
            subject = f"Voicemail{who} on {site} ({seconds:.0f} s)"
            headline = f"A visitor of {site} left a voice message: it is attached."
            fact("Visitor", name)
            fact("Length", f"{seconds:.0f} s", 20)
            fact("Page", d.get("page"), 500)
            fact("Came from", d.get("visitor_source"), 80)
            fact("Received", self._time(n.site, d.get("received_at")))
            fact("Download", d.get("download_url"), 500)
            fact("Voicemail id", d.get("id"), 80)
        elif n.type == "message.received":
            name = one_line(d.get("name"), MAX_FIELD)
            contact = one_line(d.get("contact"), MAX_FIELD)
            subject = f"Message from {name or contact} on {site}"
            headline = f"A visitor of {site} left a message:"
            fact("Name", name)
            fact("Phone" if d.get("contact_kind") == "phone" else "Email", contact)
            fact("Page", d.get("page"), 500)
            fact("Came from", d.get("visitor_source"), 80)
            fact("Received", self._time(n.site, d.get("received_at")))
            fact("Message id", d.get("id"), 80)
        else:
            destination = one_line(d.get("destination"), MAX_FIELD)
            if n.type == "destination.down":
                subject = f"{site}: {destination} is not answering"
                headline = (
                    f"{destination} has not answered the gateway's checks: calls to {site} "
                    "no longer ring it."
                )
                fact("Down since", self._time(n.site, d.get("since")))
            else:
                subject = f"{site}: {destination} answers again"
                headline = f"{destination} answers again: calls to {site} ring it."
                fact("Up since", self._time(n.site, d.get("since")))
            fact("Destination", destination)
            if d.get("last_status") is not None:
                fact("Last answer", f"SIP {d['last_status']}", 20)
        return one_line(subject, MAX_SUBJECT), headline, facts


class MailSender:
    """Sends the mail of an outbox row through the `[email]` server."""

    channel = "email"

    def __init__(
        self,
        email: EmailConfig,
        renderer: MailRenderer,
        *,
        timeout: float = 30.0,
        attachments: Attachments | None = None,
    ) -> None:
        if email.server is None or email.sender is None:
            raise ValueError("mail needs [email] smtp_url and from")
        self.email = email
        self.renderer = renderer
        self.timeout = timeout
        self.attachments = attachments

    def message(self, event: OutboxEvent) -> EmailMessage:
        recipients = [str(address) for address in event.payload.get("to", [])]
        if not recipients:
            raise DeliveryError("no recipients", permanent=True)
        notification = Notification.from_body(event.site, event.payload["event"])
        mail = self.renderer.render(notification, event.id)
        message = EmailMessage()
        message["From"] = self.email.sender
        message["To"] = ", ".join(recipients)
        message["Subject"] = mail.subject
        message["Date"] = email.utils.formatdate(notification.occurred_at, localtime=False)
        # The same id on every attempt: a mail that got through twice reads as one.
        domain = str(self.email.sender).rpartition("@")[2]
        message["Message-ID"] = f"<{event.id}@{domain}>"
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(mail.text)
        message.add_alternative(mail.html, subtype="html")
        attach = event.payload.get("attach")
        if attach and self.attachments is not None:
            for item in self.attachments(attach):
                message.add_attachment(
                    item.data,
                    maintype=item.maintype,
                    subtype=item.subtype,
                    filename=item.filename,
                )
        return message

    async def deliver(self, event: OutboxEvent) -> None:
        server = self.email.server
        assert server is not None
        message = self.message(event)
        import aiosmtplib  # only once there is mail to send

        try:
            await aiosmtplib.send(
                message,
                hostname=server.host,
                port=server.port,
                use_tls=server.implicit_tls,
                start_tls=None if not server.implicit_tls else False,
                username=server.username,
                password=server.password,
                timeout=self.timeout,
            )
        except aiosmtplib.SMTPResponseException as exc:
            # Even a refused recipient is tried again: the server's owner may fix it.
            raise DeliveryError(
                f"SMTP {server.host}:{server.port}: {exc.code} {one_line(exc.message, 120)}"
            ) from None
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP {server.host}:{server.port}: {type(exc).__name__}") from None
