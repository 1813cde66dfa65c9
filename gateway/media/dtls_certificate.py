"""One DTLS certificate and one OpenSSL context per worker, shared by its calls.

aiortc gives every peer connection a certificate of its own (a fresh ECDSA key) and every
DTLS transport an `SSL_CTX` of its own built from it, and OpenSSL keeps each connection's
16 KB+ record buffers for the whole call although DTLS is idle once the SRTP keys are
derived. Measured with 200 DTLS handshakes in a process (OpenSSL 4.0, memory in use after
the handshake): 162 KB per connection with aiortc's defaults, 93 KB with one shared
context and `SSL_MODE_RELEASE_BUFFERS` (buffers allocated while a record is handled, freed
after), plus 17 KB per call of certificate and key no longer made. Servers do the same:
Janus and mediasoup use one DTLS certificate for all their peers; the browser checks the
certificate against the fingerprint in our answer, as before.

The shared context caches no sessions (`SESS_CACHE_OFF`): WebRTC peers do not resume DTLS
sessions, and a cache in a context that lives as long as the worker would grow with every
call. The certificate is replaced a day before it expires (aiortc's are valid 30 days).

This reaches into aiortc 1.16's private parts (pinned in constraints.txt): the peer
connection's certificate list (`_RTCPeerConnection__certificates`) and
`RTCCertificate._create_ssl_context`. `share_certificate` checks both and leaves aiortc's
own certificate in place (returns False) if a version change moved them.
"""

from __future__ import annotations

import datetime
import logging

from aiortc import RTCPeerConnection
from aiortc.rtcdtlstransport import RTCCertificate, SRTPProtectionProfile
from OpenSSL import SSL

__all__ = ["WorkerCertificate", "share_certificate"]

logger = logging.getLogger(__name__)

_CERTIFICATES_ATTRIBUTE = "_RTCPeerConnection__certificates"
RENEW_BEFORE_EXPIRY = datetime.timedelta(days=1)


class WorkerCertificate(RTCCertificate):
    """aiortc's certificate whose OpenSSL context is made once per set of SRTP profiles
    and shared by every DTLS transport using it."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._contexts: dict[tuple[bytes, ...], SSL.Context] = {}

    def _create_ssl_context(self, srtp_profiles: list[SRTPProtectionProfile]) -> SSL.Context:
        key = tuple(p.openssl_profile for p in srtp_profiles)
        context = self._contexts.get(key)
        if context is None:
            context = super()._create_ssl_context(srtp_profiles)
            context.set_mode(SSL.MODE_RELEASE_BUFFERS)
            context.set_session_cache_mode(SSL.SESS_CACHE_OFF)
            self._contexts[key] = context
        return context


_current: WorkerCertificate | None = None
_supported = hasattr(RTCCertificate, "_create_ssl_context")
_warned = False


def worker_certificate(now: datetime.datetime | None = None) -> WorkerCertificate:
    """The worker's certificate: made on first use, renewed a day before it expires."""
    global _current
    now = now or datetime.datetime.now(datetime.UTC)
    if _current is None or _current.expires - now < RENEW_BEFORE_EXPIRY:
        _current = WorkerCertificate.generateCertificate()
    return _current


def share_certificate(pc: RTCPeerConnection) -> bool:
    """Give a new peer connection (no transport yet) the worker's certificate; False if
    this aiortc keeps its certificates elsewhere (the connection keeps its own)."""
    certificates = getattr(pc, _CERTIFICATES_ATTRIBUTE, None)
    if not _supported or not (
        isinstance(certificates, list)
        and len(certificates) == 1
        and isinstance(certificates[0], RTCCertificate)
    ):
        global _warned
        if not _warned:
            _warned = True
            logger.warning("aiortc changed: each call keeps a DTLS certificate of its own")
        return False
    setattr(pc, _CERTIFICATES_ATTRIBUTE, [worker_certificate()])
    return True
