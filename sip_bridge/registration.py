"""Registration with a registrar (RFC 3261 §10): a trunk or PBX learns where we are.

One `Registration` per address-of-record: it builds each REGISTER (one Call-ID for all of
them, CSeq counting up, §10.2), reads the answer, and says when to act next: refresh before
the binding runs out, retry after a failure with a growing wait, or nothing. The user agent
sends its requests through its transactions, answers digest challenges with the
registration's credentials, and reports every change as `RegistrationChanged`.

    UNREGISTERED -> REGISTERING -> REGISTERED -> (refresh) REGISTERING -> ...
                          \\-> FAILED (retry after a wait) -> REGISTERING
    any -> UNREGISTERING (Expires: 0) -> STOPPED
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass

from sip_bridge.headers import Headers
from sip_bridge.message import Request, Response
from sip_bridge.uri import SipUri, parse_sip_uri

MIN_EXPIRES = 60  # the shortest binding we ask for, whatever the settings say
MAX_MIN_EXPIRES_RETRIES = 2  # 423s followed in a row


class RegistrationState(enum.Enum):
    UNREGISTERED = "unregistered"
    REGISTERING = "registering"
    REGISTERED = "registered"
    FAILED = "failed"  # waiting to try again
    UNREGISTERING = "unregistering"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class RegistrationSettings:
    aor: str  # address-of-record: sip:user@domain
    registrar: str | None = None  # SIP URI of the registrar; default: the AOR's domain
    credentials: tuple[str, str] | None = None
    expires: int = 3600  # seconds we ask for
    proxy: str | None = None  # outbound proxy for the REGISTER; default: the registrar
    retry_base: float = 30.0  # first wait after a failure; doubles up to retry_max
    retry_max: float = 1800.0
    contact_user: str | None = None  # user part of our Contact; default: the AOR's user


class Registration:
    """One address-of-record kept registered; the user agent drives it."""

    def __init__(self, key: str, settings: RegistrationSettings) -> None:
        self.key = key
        self.settings = settings
        self.aor = parse_sip_uri(settings.aor).without_headers()
        self.registrar = (
            parse_sip_uri(settings.registrar)
            if settings.registrar
            else SipUri(self.aor.scheme, None, None, self.aor.host, self.aor.port)
        )
        self.next_hop = parse_sip_uri(settings.proxy) if settings.proxy else self.registrar
        self.call_id = f"{secrets.token_hex(12)}@reg"
        self.from_tag = secrets.token_hex(6)
        self.cseq = 0
        self.state = RegistrationState.UNREGISTERED
        self.requested = max(settings.expires, MIN_EXPIRES)
        self.granted: int | None = None
        self.next_action: float | None = None  # refresh or retry time
        self.failures = 0
        self.min_expires_retries = 0
        self.last_status: int | None = None
        self.last_detail = ""

    @property
    def contact_user(self) -> str:
        return self.settings.contact_user or self.aor.user or "gateway"

    def build_request(self, via: str, contact: str, *, expires: int) -> Request:
        """The next REGISTER: same Call-ID and From tag as the ones before, CSeq + 1."""
        self.cseq += 1
        headers = Headers()
        headers.add("Via", via)
        if self.next_hop is not self.registrar:
            headers.add("Route", f"<{self.next_hop.with_params(lr=None)}>")
        headers.add("Max-Forwards", "70")
        headers.add("From", f"<{self.aor}>;tag={self.from_tag}")
        headers.add("To", f"<{self.aor}>")
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{self.cseq} REGISTER")
        headers.add("Contact", contact)
        headers.add("Expires", str(expires))
        return Request("REGISTER", self.registrar, headers)

    def granted_expires(self, response: Response, our_contact: SipUri) -> int:
        """The binding time the registrar gave our Contact (§10.2.4): the Contact's expires
        parameter, else the Expires header, else what we asked for."""
        for contact in response.contacts:
            if isinstance(contact.uri, SipUri) and contact.uri.equivalent(our_contact):
                value = contact.param("expires")
                if value and value.isdecimal():
                    return int(value)
        value = response.headers.get("Expires")
        if value and value.strip().isdecimal():
            return int(value.strip())
        return self.requested

    def registered(self, granted: int, now: float) -> None:
        self.state = RegistrationState.REGISTERED
        self.granted = granted
        self.failures = 0
        self.min_expires_retries = 0
        # Refresh halfway through a short binding, five minutes before a long one ends.
        self.next_action = now + max(granted / 2, granted - 300)

    def failed(self, now: float) -> float:
        """Wait before trying again: retry_base, doubling per failure, up to retry_max."""
        self.state = RegistrationState.FAILED
        self.granted = None
        self.failures += 1
        wait = min(self.settings.retry_max, self.settings.retry_base * 2 ** (self.failures - 1))
        self.next_action = now + wait
        return wait
