"""Click-to-text when nobody is there: a visitor leaves a written message with a way back
(a phone number or an email address), for a site that takes messages (`chat`, or `"text"`
in its `fallback`). It is stored (gateway.storage.messages), told to the site's owner as
`message.received` (webhooks, mail: gateway.notify) and listed in the admin page.

`POST /api/messages` (gateway.http.messages) hands the body here, with a call token the
route has redeemed. Each field is checked and cleaned as a visitor's details are
(gateway.text), a page of another origin is dropped, and a message counts against the
visitor's call windows (`calls_per_client_*`), as a callback request does.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from gateway.api import (
    MAX_MESSAGE_CHARS,
    Clock,
    MessageRefused,
    clean_message_text,
    clean_page_url,
    clean_source_tag,
    clean_visitor_name,
    clipped,
    origin_of,
)
from gateway.chat.contact import ContactError, parse_contact
from gateway.config import GatewayConfig, SiteConfig
from gateway.notify.publisher import Notifier
from gateway.storage import Database, LeftMessage

logger = logging.getLogger(__name__)

MESSAGE_FIELDS = frozenset({"site", "text", "contact", "name", "page", "source", "conversation"})
_CONVERSATION_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")

# admit(site, client): count the message against the visitor's windows, or raise.
Admit = Callable[[SiteConfig, str], Awaitable[None]]


class LeftMessages:
    def __init__(
        self,
        config: GatewayConfig,
        database: Database | None,
        admit: Admit,
        *,
        page_origins: Iterable[str] = (),
        clock: Clock = time.time,
    ) -> None:
        self.config = config
        self.database = database
        self.admit = admit
        self.page_origins = tuple(page_origins)
        self.clock = clock
        self.notifier: Notifier | None = None  # set when some site has receivers

    async def leave(self, payload: object, *, client: str) -> dict[str, Any]:
        """Validate, limit, store and tell; `{"id", "received_at"}`. Raises
        MessageRefused (or LimitRefused `rate_limited`)."""
        if not isinstance(payload, dict):
            raise MessageRefused("bad_request", "Send a JSON object.")
        extra = set(payload) - MESSAGE_FIELDS
        if extra:
            raise MessageRefused("bad_request", f"Unknown field(s): {sorted(extra)[:5]}.")
        site_id = payload.get("site")
        site = self.config.site(site_id) if isinstance(site_id, str) else None
        if site is None or not site.public_info.takes_messages:
            raise MessageRefused("messages_off", "This site takes no messages.", status=404)
        text = payload.get("text")
        if text is None or (isinstance(text, str) and not text.strip()):
            raise MessageRefused("text_missing", "Write your message.")
        if not isinstance(text, str):
            raise MessageRefused("bad_request", "text must be text.")
        try:
            text = clean_message_text(text, MAX_MESSAGE_CHARS)
        except ValueError as exc:
            raise MessageRefused("text_invalid", f"The message {exc}.") from None
        try:
            contact, kind = parse_contact(payload.get("contact"))
        except ContactError as exc:
            raise MessageRefused(exc.code, str(exc)) from None
        name = self._name(payload.get("name"))
        page = self._page(site, payload.get("page"))
        source = self._source(payload.get("source"))
        conversation = await self._conversation(site, client, payload.get("conversation"))
        await self.admit(site, client)
        message = LeftMessage(
            id=secrets.token_urlsafe(12),
            site=site.id,
            received_at=self.clock(),
            text=text,
            contact=contact,
            contact_kind=kind,
            name=name,
            conversation_id=conversation,
            client=client,
            page=page,
            visitor_source=source,
        )
        if self.database is not None:
            await self.database.messages.add(message)
        if self.notifier is not None:
            self.notifier.message_received(message.public())
        logger.info(
            "message %s left: site %s, client %s, %d characters",
            message.id,
            site.id,
            clipped(client, 64),
            len(text),
        )
        return {"id": message.id, "received_at": message.received_at}

    @staticmethod
    def _name(value: object) -> str:
        if value is None or value == "":
            return ""
        if not isinstance(value, str):
            raise MessageRefused("bad_request", "name must be text.")
        try:
            return clean_visitor_name(value)
        except ValueError as exc:
            raise MessageRefused("name_invalid", f"The name {exc}.") from None

    def _page(self, site: SiteConfig, value: object) -> str:
        """The page it came from, when it is one of the site's (or the gateway's own)."""
        if value is None or value == "":
            return ""
        if not isinstance(value, str):
            raise MessageRefused("bad_request", "page must be a URL.")
        try:
            page = clean_page_url(value)
        except ValueError as exc:
            raise MessageRefused("bad_request", f"page {exc}.") from None
        return page if site.public_info.allows_origin(origin_of(page), self.page_origins) else ""

    @staticmethod
    def _source(value: object) -> str:
        if value is None or value == "":
            return ""
        if not isinstance(value, str):
            raise MessageRefused("bad_request", "source must be text.")
        try:
            return clean_source_tag(value)
        except ValueError as exc:
            raise MessageRefused("bad_request", f"source {exc}.") from None

    async def _conversation(self, site: SiteConfig, client: str, value: object) -> str | None:
        """The chat the message follows: only one of this site and this visitor."""
        if not isinstance(value, str) or not _CONVERSATION_ID.fullmatch(value):
            return None
        if self.database is None:
            return None
        found = await self.database.conversations.get(value)
        if found is None or found.site != site.id or found.client != client:
            return None
        return found.id
