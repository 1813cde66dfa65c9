"""Sites that register with their trunk or PBX (`register = true`): one registration per
site on the worker's SIP endpoint, its changes in the log.

The registration itself (REGISTER with digest, refresh before it runs out, retries with a
growing wait) is sip_bridge's (`sip_bridge.registration`); calls of such a site go out
through the registrar from the registered address (`CallManager._settings`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from gateway.api import clipped
from gateway.config import SiteConfig
from sip_bridge import RegistrationChanged, RegistrationSettings, SipEndpoint

logger = logging.getLogger(__name__)

KEY_PREFIX = "site:"


def register_sites(endpoint: SipEndpoint, sites: Iterable[SiteConfig]) -> list[str]:
    """Start the registrations of the sites that ask for one; their keys."""
    keys = []
    for site in sites:
        aor = site.address_of_record
        if aor is None or site.credentials is None:
            continue
        key = KEY_PREFIX + site.id
        endpoint.register(
            key,
            RegistrationSettings(
                aor=str(aor),
                registrar=str(site.registrar),
                credentials=site.credentials,
                expires=site.register_expires,
                proxy=str(site.proxy) if site.proxy else None,
                contact_user=site.from_user or site.username,
            ),
        )
        keys.append(key)
    if keys:
        endpoint.on_registration = log_registration
    return keys


def log_registration(change: RegistrationChanged) -> None:
    """One line per change: registered (for how long), failed (why, and when again)."""
    if change.state == "registered":
        logger.info("registration %s: registered for %s s", change.key, change.expires)
    elif change.state == "failed":
        logger.warning(
            "registration %s failed: %s; trying again in %.0f s",
            change.key,
            clipped(change.detail),
            change.retry_in or 0,
        )
    else:
        logger.info("registration %s: %s", change.key, clipped(change.detail or change.state))
