"""The notification side of a running gateway: the outbox, the `Notifier` producers call,
and the delivery loop with its webhook and mail senders.

Present only when some site has a webhook or mail recipients (nothing is opened otherwise).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.config import GatewayConfig
from gateway.notify.delivery import DeliveryLoop, Outcome, RetryPolicy, Sender
from gateway.notify.mail import Attachments, MailRenderer, MailSender
from gateway.notify.outbox import Outbox
from gateway.notify.publisher import Notifier
from gateway.notify.webhooks import WebhookSender


def wanted(config: GatewayConfig) -> bool:
    """Whether any site has a receiver for its events."""
    return any(site.webhooks or site.notify_email for site in config.sites)


class Notifications:
    def __init__(
        self,
        config: GatewayConfig,
        outbox: Outbox,
        *,
        clock: Callable[[], float] = time.time,
        on_outcome: Outcome | None = None,
        attachments: Attachments | None = None,
    ) -> None:
        self.config = config
        self.outbox = outbox
        self.webhooks = WebhookSender(config, clock=clock)
        senders: dict[str, Sender] = {"webhook": self.webhooks}
        if config.email.server is not None:
            senders["email"] = MailSender(
                config.email, MailRenderer.for_config(config), attachments=attachments
            )
        self.loop = DeliveryLoop(
            outbox,
            senders,
            policy=RetryPolicy(backoff=config.notifications.retry_backoff),
            clock=clock,
            on_outcome=on_outcome,
        )
        self.notifier = Notifier(config, outbox, clock=clock, on_enqueued=self.loop.wake)

    @classmethod
    async def start(
        cls,
        config: GatewayConfig,
        *,
        outbox: Outbox,
        clock: Callable[[], float] = time.time,
        on_outcome: Outcome | None = None,
        attachments: Attachments | None = None,
    ) -> Notifications | None:
        """None when no site wants notifications. `outbox`: the gateway's database's;
        `attachments`: the files mails attach (voicemails)."""
        if not wanted(config):
            return None
        service = cls(config, outbox, clock=clock, on_outcome=on_outcome, attachments=attachments)
        service.loop.start()
        return service

    async def stop(self) -> None:
        """Store what producers published, stop delivering (rows in flight stay leased and
        are taken up again after the lease), close the senders."""
        await self.notifier.drain()
        await self.loop.stop()
        await self.webhooks.close()
