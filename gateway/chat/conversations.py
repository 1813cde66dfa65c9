"""Click-to-chat: a conversation between a visitor (the widget's **Write to us**) and the
site's operators, over SIP MESSAGE (RFC 3428) to their desk phones.

Each message the visitor writes goes out as a MESSAGE (`text/plain; charset=UTF-8`) from
`chat-<conversation id>@<the gateway's address and this worker's port>`, to:

- the destination that answered before in this conversation (it has the visitor now);
- during a call of the visitor's (`call_id`), the destination that answered the call;
- else every destination of the site that is not down (gateway.health).

An operator's reply is a MESSAGE back to that address (what a phone does when its user
answers): it is matched to the conversation by the `chat-<id>` of its Request-URI, taken
only from the host of one of the site's destinations (or the proxy they are reached
through), cleaned, bounded, and pushed to the widget at once. Replies to a conversation
that is over, or from elsewhere, are refused (404, 403).

When no destination takes a visitor's message (no 2xx), or none replies within the
site's `chat_timeout`, the widget is told (`unanswered`) and offers to leave the message
with a way back (gateway.chat.left). A closed site takes no chat (`closed`).

Bounds, like calls': a conversation starts only as a call may (the visitor's
`calls_per_client_*`), holds at most `max_conversation_messages` messages, each at most
`MAX_MESSAGE_CHARS`; a visitor may send `messages_per_client_minute` (over all workers).
Conversations and their messages are records (gateway.storage.conversations), written off
the visitor's path, kept `retention_days`, listed and deleted in the admin page.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
import secrets
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.access.admission import CallAdmission
from gateway.api import (
    MAX_MESSAGE_CHARS,
    NO_DETAILS,
    CallRefused,
    ChatDelivery,
    ChatReceipt,
    ChatReply,
    ChatState,
    ChatUpdate,
    Clock,
    VisitorDetails,
    clean_message_text,
    clipped,
)
from gateway.calls.history import CallHistory
from gateway.calls.manager import CallManager
from gateway.config import GatewayConfig, SiteConfig
from gateway.sites.routing import SiteDestination
from gateway.storage import ChatMessage, Conversation
from sip_bridge import MessageReceived, SipEndpoint, SipUri, parse_name_address, parse_uri

logger = logging.getLogger(__name__)

USER_PREFIX = "chat-"  # the user part of our From: chat-<conversation id>
SEND_TIMEOUT = 8.0  # seconds a destination has to take a message (2xx)
_CHAT_USER = re.compile(r"chat-([A-Za-z0-9]{16,32})")

Notify = Callable[[ChatUpdate], None]


@dataclass(eq=False)
class _Conversation:
    id: str
    site: SiteConfig
    client: str
    visitor: VisitorDetails
    notify: Notify
    messages: int = 0
    operator: SiteDestination | None = None  # who replied: it gets the next messages
    waiting: str | None = None  # the visitor's message no reply has followed yet
    timer: asyncio.TimerHandle | None = None
    sending: set[asyncio.Task] = field(default_factory=set)


class Conversations:
    """The conversations of one worker. Answers the MESSAGEs its SIP endpoint receives
    (`endpoint.on_message`)."""

    def __init__(
        self,
        config: GatewayConfig,
        endpoint: SipEndpoint,
        calls: CallManager,
        *,
        history: CallHistory | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.config = config
        self.endpoint = endpoint
        self.calls = calls
        self.admission: CallAdmission = calls.admission
        self.history = history
        self.clock = clock
        self.conversations: dict[str, _Conversation] = {}
        endpoint.on_message = self.on_message

    # ------------------------------------------------------------------ the visitor
    async def send(
        self,
        site: SiteConfig,
        client: str,
        text: str,
        notify: Notify,
        *,
        visitor: VisitorDetails = NO_DETAILS,
        conversation_id: str | None = None,
        call_id: str | None = None,
    ) -> ChatReceipt:
        if not site.chat:
            raise CallRefused("chat_off", "this site offers no chat")
        now = self.clock()
        if site.hours is not None and not site.hours.is_open(
            datetime.datetime.fromtimestamp(now, datetime.UTC)
        ):
            raise CallRefused("closed", "We are closed now. Leave a message instead.")
        text = clean_message_text(text, MAX_MESSAGE_CHARS)  # the face did; the contract holds
        conversation = self.conversations.get(conversation_id or "")
        if conversation is not None and conversation.site.id != site.id:
            conversation = None
        if conversation is not None and conversation.messages >= site.max_conversation_messages:
            raise CallRefused(
                "conversation_full",
                "this conversation is long enough; please leave a message instead",
            )
        await self.admission.count_messages(
            site, client, now, per_minute=site.messages_per_client_minute
        )
        if conversation is None:
            # A conversation is started as a call is: within the visitor's call windows.
            await self.admission.count_contact(site, client, now)
            conversation = _Conversation(secrets.token_hex(12), site, client, visitor, notify)
            self.conversations[conversation.id] = conversation
            self._store_start(conversation, now)
            logger.info(
                "conversation %s started: site %s, client %s",
                conversation.id,
                site.id,
                clipped(client, 64),
            )
        else:
            conversation.notify = notify
        conversation.messages += 1
        message_id = secrets.token_hex(8)
        targets = self._targets(conversation, call_id)
        task = asyncio.create_task(self._deliver(conversation, message_id, text, targets, now))
        conversation.sending.add(task)
        task.add_done_callback(conversation.sending.discard)
        return ChatReceipt(conversation.id, message_id)

    def _targets(self, conversation: _Conversation, call_id: str | None) -> list[SiteDestination]:
        site = conversation.site
        if conversation.operator is not None:
            return [conversation.operator]
        call = self.calls.calls.get(call_id) if call_id else None
        answered = call.answered_by if call is not None else None
        if answered is not None:
            for destination in site.destinations:
                if str(destination.uri) == answered:
                    return [destination]
        return list(self.calls.reachable(site))

    async def _deliver(
        self,
        conversation: _Conversation,
        message_id: str,
        text: str,
        targets: list[SiteDestination],
        now: float,
    ) -> None:
        site, visitor = conversation.site, conversation.visitor
        name = visitor.name if site.widget.asks_details else ""
        headers = [("X-Site", site.id)]
        if visitor.page:
            headers.append(("X-Visitor-Page", visitor.page))
        if visitor.source:
            headers.append(("X-Visitor-Source", visitor.source))

        async def one(destination: SiteDestination) -> int | None:
            try:
                result = await self.endpoint.message(
                    str(destination.uri),
                    text,
                    timeout=SEND_TIMEOUT,
                    from_user=f"{USER_PREFIX}{conversation.id}",
                    display_name=name or site.caller_name,
                    proxy=str(destination.proxy) if destination.proxy else None,
                    credentials=destination.credentials,
                    headers=headers,
                )
            except ValueError as exc:
                logger.info("conversation %s: cannot send: %s", conversation.id, clipped(exc))
                return None
            return result.status

        statuses = await asyncio.gather(*(one(d) for d in targets)) if targets else []
        took = [d for d, status in zip(targets, statuses, strict=True) if status and status < 300]
        delivered = bool(took)
        self._store_message(
            conversation,
            ChatMessage(
                now,
                "visitor",
                text,
                ", ".join(str(d.uri) for d in (took or targets)) or None,
                "delivered" if delivered else "failed",
            ),
        )
        if conversation.id not in self.conversations:
            return  # the visitor left meanwhile
        if not delivered:
            logger.info(
                "conversation %s: no destination took the message (%s)",
                conversation.id,
                ", ".join(str(s) for s in statuses) or "none reachable",
            )
            self._tell(
                conversation,
                ChatDelivery(conversation.id, message_id, ChatState.UNANSWERED, "unreachable"),
            )
            return
        self._tell(conversation, ChatDelivery(conversation.id, message_id, ChatState.DELIVERED))
        if conversation.waiting is None:
            conversation.waiting = message_id
            conversation.timer = asyncio.get_running_loop().call_later(
                site.chat_timeout, self._no_reply, conversation.id, message_id
            )

    def _no_reply(self, conversation_id: str, message_id: str) -> None:
        conversation = self.conversations.get(conversation_id)
        if conversation is None or conversation.waiting != message_id:
            return
        conversation.timer = None
        self._tell(
            conversation,
            ChatDelivery(conversation.id, message_id, ChatState.UNANSWERED, "no_reply"),
        )

    async def close(self, conversation_id: str) -> None:
        conversation = self.conversations.pop(conversation_id, None)
        if conversation is None:
            return
        if conversation.timer is not None:
            conversation.timer.cancel()
        if self.history is not None:
            now = self.clock()
            self.history.write(lambda db: db.conversations.ended(conversation_id, now))
        logger.info("conversation %s ended: %d messages", conversation_id, conversation.messages)

    async def close_all(self) -> None:
        for conversation_id in list(self.conversations):
            await self.close(conversation_id)

    # ------------------------------------------------------------------ the operator
    def on_message(self, event: MessageReceived) -> int:
        """A MESSAGE outside dialogs: an operator's reply to a conversation, or nothing
        of ours. Returns the SIP status to answer with."""
        try:
            uri = parse_uri(event.request_uri)
        except ValueError:
            return 404
        match = _CHAT_USER.fullmatch(uri.user or "") if isinstance(uri, SipUri) else None
        conversation = self.conversations.get(match.group(1)) if match else None
        if conversation is None:
            logger.info(
                "MESSAGE from %s:%s for no conversation here (%s)",
                event.source[0],
                event.source[1],
                clipped(event.request_uri, 80),
            )
            return 404
        operator = self._sender(conversation, event)
        if operator is None:
            logger.warning(
                "conversation %s: MESSAGE from %s:%s, not a destination of site %s: refused",
                conversation.id,
                event.source[0],
                event.source[1],
                conversation.site.id,
            )
            return 403
        if conversation.messages >= conversation.site.max_conversation_messages:
            return 403
        text = _operator_text(event.text)
        if text is None:
            return 400
        now = self.clock()
        conversation.messages += 1
        conversation.operator = operator
        conversation.waiting = None
        if conversation.timer is not None:
            conversation.timer.cancel()
            conversation.timer = None
        reply = ChatReply(conversation.id, secrets.token_hex(8), text, now)
        self._tell(conversation, reply)
        self._store_message(
            conversation, ChatMessage(now, "operator", text, str(operator.uri)), operator=operator
        )
        return 200

    def _sender(
        self, conversation: _Conversation, event: MessageReceived
    ) -> SiteDestination | None:
        """The destination of the conversation's site the MESSAGE comes from: from the host
        it is reached at (itself, or its proxy, or the gateway's); when several share that
        host, the one at the very address it came from, else the one its From names."""
        ua = self.endpoint.ua
        gateway_proxy = self.config.sip.outbound_proxy
        hosts = []
        for destination in conversation.site.destinations:
            hop = str(destination.proxy or gateway_proxy or destination.uri)
            if ua.sent_from(hop, event.source):
                hosts.append((destination, hop))
        if len(hosts) <= 1:
            return hosts[0][0] if hosts else None
        for destination, hop in hosts:
            if ua.sent_from(hop, event.source, match_port=True):
                return destination
        try:
            sender = parse_name_address(event.sender).uri
        except ValueError:
            return hosts[0][0]
        if isinstance(sender, SipUri):
            for destination, _ in hosts:
                if (destination.uri.user, destination.uri.host) == (sender.user, sender.host):
                    return destination
        return hosts[0][0]

    # ------------------------------------------------------------------ the rest
    def _tell(self, conversation: _Conversation, update: ChatUpdate) -> None:
        try:
            conversation.notify(update)
        except Exception:  # a page gone away must not break the conversation
            logger.exception("conversation %s: notify failed", conversation.id)

    def _store_start(self, conversation: _Conversation, now: float) -> None:
        if self.history is None:
            return
        visitor = conversation.visitor
        record = Conversation(
            id=conversation.id,
            site=conversation.site.id,
            started_at=now,
            updated_at=now,
            client=conversation.client,
            page=visitor.page,
            visitor_name=visitor.name if conversation.site.widget.asks_details else "",
            visitor_source=visitor.source,
        )
        self.history.write(lambda db: db.conversations.started(record))

    def _store_message(
        self,
        conversation: _Conversation,
        message: ChatMessage,
        *,
        operator: SiteDestination | None = None,
    ) -> None:
        if self.history is None:
            return
        who = str(operator.uri) if operator is not None else None
        self.history.write(
            lambda db: db.conversations.add_message(conversation.id, message, operator=who)
        )


def _operator_text(raw: str) -> str | None:
    """An operator's reply as the visitor will see it: control characters a phone may put
    in dropped (not refused: the operator cannot fix them), then cleaned and bounded as a
    visitor's message is; None when nothing is left."""
    kept = "".join(char for char in raw if char in "\n\r\t" or unicodedata.category(char) != "Cc")
    try:
        return clean_message_text(kept[: 4 * MAX_MESSAGE_CHARS], MAX_MESSAGE_CHARS)
    except ValueError:
        try:
            return clean_message_text(kept[:MAX_MESSAGE_CHARS], MAX_MESSAGE_CHARS)
        except ValueError:
            return None
