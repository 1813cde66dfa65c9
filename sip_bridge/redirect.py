"""Redirects (RFC 3261 §8.1.3.4): the targets of a 3xx response, in the order to try them.

A 3xx lists Contact URIs, each with an optional `q` (0 to 1, higher first; equal q keep
the order they came in). The user agent tries them one after another with a new INVITE,
only those its owner's policy allows, at most `max_redirects` 3xx deep.
"""

from __future__ import annotations

from collections.abc import Callable

from sip_bridge.errors import SipParseError
from sip_bridge.message import Response
from sip_bridge.uri import SipUri

# A policy says whether we may call a redirect target (the owner's rules: toll fraud).
RedirectPolicy = Callable[[SipUri], bool]
MAX_TARGETS_PER_RESPONSE = 8  # a 3xx listing more is trimmed: each one is a call attempt


def redirect_targets(response: Response) -> list[SipUri]:
    """The SIP URIs of a 3xx's Contacts, highest q first, without their URI headers."""
    try:
        contacts = response.contacts
    except SipParseError:
        return []
    ranked: list[tuple[float, int, SipUri]] = []
    for position, contact in enumerate(contacts):
        uri = contact.uri
        if not isinstance(uri, SipUri):
            continue
        ranked.append((-_q_value(contact.param("q")), position, uri.without_headers()))
    ranked.sort(key=lambda item: (item[0], item[1]))
    return [uri for _, _, uri in ranked[:MAX_TARGETS_PER_RESPONSE]]


def _q_value(text: str | None) -> float:
    if not text:
        return 1.0
    try:
        value = float(text)
    except ValueError:
        return 0.0
    return value if 0.0 <= value <= 1.0 else 0.0
