"""Telling a site's owner what happened: signed webhooks and mails, sent from an outbox.

- `events`: the events (`call.answered`, `call.ended`, `call.missed`, `callback.requested`,
  `callback.ended`, `destination.down`, `destination.up`) as frozen `Notification`s, and
  their JSON (docs/admin.md);
- `outbox`: the `Outbox` protocol the gateway's database implements (gateway.storage);
- `publisher`: `Notifier`, what producers call: it stores one outbox row per receiver
  (each webhook, the site's mail recipients);
- `webhooks`: `WebhookSender`, a POST signed as the Standard Webhooks specification says;
- `mail`: `MailSender` and `MailRenderer` (plain text + HTML from Jinja2 templates);
- `delivery`: `DeliveryLoop`, at least once, with backoff (`RetryPolicy`) for 24 hours.
"""
