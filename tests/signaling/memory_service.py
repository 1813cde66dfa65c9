"""An in-memory `GatewayService` for the signaling tests: records every call request,
answers with a fixed SDP, and lets a test push call states as the gateway would.

It stands in for the gateway's CallManager behind the `call_service` fixture only; the
signaling server, the socket.io client and the sockets in these tests are all real, and so
are the call tokens and challenges (the gateway's own `PageAccess`, on a clock the test
moves).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.access.challenge import ProofOfWork
from gateway.access.pages import PageAccess
from gateway.access.tokens import CallTokens
from gateway.api import (
    NO_DETAILS,
    AccessRefused,
    CallRefused,
    CallState,
    CallUpdate,
    ChatReceipt,
    ChatUpdate,
    CheckGrant,
    EndCause,
    Notify,
    SiteInfo,
    TokenGrant,
    VisitorDetails,
    VoicemailGrant,
    VoicemailUpdate,
)
from tests.gateway.clock import FakeClock

TOKEN_SECRET = b"signaling-tests-token-secret-0123456789"
TOKEN_LIFETIME = 60.0
POW_DIFFICULTY = 8

ANSWER_SDP = (
    "v=0\r\n"
    "o=- 3900000000 3900000000 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=group:BUNDLE 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 0\r\n"
    "c=IN IP4 127.0.0.1\r\n"
    "a=mid:0\r\n"
    "a=sendrecv\r\n"
    "a=rtcp-mux\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=ice-ufrag:test\r\n"
    "a=ice-pwd:testtesttesttesttesttest\r\n"
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\n"
    "a=setup:active\r\n"
)


def page_access(clock: FakeClock) -> PageAccess:
    return PageAccess(
        CallTokens(TOKEN_SECRET, TOKEN_LIFETIME),
        verifiers={"pow": ProofOfWork(TOKEN_SECRET, POW_DIFFICULTY)},
        clock=clock,
    )


class RealTokens:
    """The token half of a test `GatewayService`: the gateway's own `PageAccess` for the
    service's `sites`, each site asking for the challenge `challenges` names (if any)."""

    sites: dict[str, SiteInfo]
    challenges: dict[str, str]
    access: PageAccess

    async def issue_token(
        self, *, site_id: str, origin: str | None, client: str, proof: object
    ) -> TokenGrant:
        return await self.access.issue_token(
            self._site(site_id),
            challenge=self.challenges.get(site_id),
            origin=origin,
            client=client,
            proof=proof,
        )

    async def redeem_token(self, token: object, *, site_id: str, origin: str) -> None:
        await self.access.redeem_token(self._site(site_id), token, origin=origin)

    def _site(self, site_id: str) -> SiteInfo:
        site = self.sites.get(site_id)
        if site is None:
            raise AccessRefused("unknown_site", f"no site {site_id!r}", status=404)
        return site


@dataclass
class InMemoryCallService(RealTokens):
    sites: dict[str, SiteInfo]
    clock: FakeClock = field(default_factory=FakeClock)
    challenges: dict[str, str] = field(default_factory=dict)  # site id -> challenge kind
    access: PageAccess = field(init=False)
    start_delay: float = 0.0  # seconds start_call takes (an answer being built)
    request_delay: float = 0.0  # seconds every other request takes
    refusal: Exception | None = None  # raised by the next start_call
    requests: list[tuple] = field(default_factory=list)  # (method, *arguments) in order
    visitors: list[VisitorDetails] = field(default_factory=list)  # of each start_call
    notifiers: dict[str, Notify] = field(default_factory=dict)  # calls not ended yet
    # Voicemails being left and conversations going on: whom to tell.
    voicemail_notifiers: dict[str, Callable[[VoicemailUpdate], None]] = field(default_factory=dict)
    chat_notifiers: dict[str, Callable[[ChatUpdate], None]] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    _next_id: int = 0

    def __post_init__(self) -> None:
        self.access = page_access(self.clock)

    def site(self, site_id: str) -> SiteInfo | None:
        return self.sites.get(site_id)

    async def start_call(
        self,
        *,
        site_id: str,
        client: str,
        offer_sdp: str,
        notify: Notify,
        visitor: VisitorDetails = NO_DETAILS,
    ) -> tuple[str, str]:
        self._record("start_call", site_id, client, offer_sdp)
        self.visitors.append(visitor)
        if self.refusal is not None:
            refusal, self.refusal = self.refusal, None
            raise refusal
        if site_id not in self.sites:
            raise CallRefused("unknown_site", "no such site")
        notify(CallUpdate(CallState.CONNECTING))
        await asyncio.sleep(self.start_delay)
        self._next_id += 1
        call_id = f"call-{self._next_id}"
        self.notifiers[call_id] = notify
        return call_id, ANSWER_SDP

    async def add_candidate(
        self, call_id: str, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None
    ) -> None:
        await self._request("add_candidate", call_id, candidate, sdp_mid, sdp_mline_index)

    async def hangup(self, call_id: str) -> None:
        await self._request("hangup", call_id)
        self.push(call_id, CallUpdate(CallState.ENDED, EndCause.VISITOR_HUNG_UP))

    async def send_dtmf(self, call_id: str, digits: str) -> None:
        await self._request("send_dtmf", call_id, digits)

    async def set_mute(self, call_id: str, muted: bool) -> None:
        await self._request("set_mute", call_id, muted)

    async def start_check(self, *, site_id: str, client: str, offer_sdp: str) -> CheckGrant:
        self._record("start_check", site_id, client, offer_sdp)
        if self.refusal is not None:
            refusal, self.refusal = self.refusal, None
            raise refusal
        self._next_id += 1
        return CheckGrant(f"check-{self._next_id}", ANSWER_SDP, 15.0)

    async def stop_check(self, check_id: str) -> None:
        self._record("stop_check", check_id)

    async def start_voicemail(
        self,
        *,
        site_id: str,
        client: str,
        offer_sdp: str,
        notify: Callable[[VoicemailUpdate], None],
        visitor: VisitorDetails = NO_DETAILS,
        after_call: str | None = None,
    ) -> VoicemailGrant:
        self._record("start_voicemail", site_id, client, visitor, after_call)
        if self.refusal is not None:
            refusal, self.refusal = self.refusal, None
            raise refusal
        self._next_id += 1
        voicemail_id = f"voicemail-{self._next_id}"
        self.voicemail_notifiers[voicemail_id] = notify
        return VoicemailGrant(voicemail_id, ANSWER_SDP, 120.0)

    async def send_voicemail(self, voicemail_id: str) -> None:
        self._record("send_voicemail", voicemail_id)

    async def chat_send(
        self,
        *,
        site_id: str,
        client: str,
        text: str,
        notify: Callable[[ChatUpdate], None],
        visitor: VisitorDetails = NO_DETAILS,
        conversation_id: str | None = None,
        call_id: str | None = None,
    ) -> ChatReceipt:
        self._record("chat_send", site_id, text, visitor, conversation_id, call_id)
        if self.refusal is not None:
            refusal, self.refusal = self.refusal, None
            raise refusal
        self._next_id += 1
        conversation_id = conversation_id or f"conversation-{self._next_id}"
        self.chat_notifiers[conversation_id] = notify
        return ChatReceipt(conversation_id, f"message-{self._next_id}")

    async def chat_close(self, conversation_id: str) -> None:
        self._record("chat_close", conversation_id)

    # What the gateway would do on its own: states from the SIP leg.
    def push(self, call_id: str, update: CallUpdate) -> None:
        notify = self.notifiers[call_id]
        if update.state is CallState.ENDED:
            del self.notifiers[call_id]
        notify(update)

    def calls_to(self, method: str) -> list[tuple]:
        return [request[1:] for request in self.requests if request[0] == method]

    async def wait_for_request(self, method: str, count: int = 1, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.calls_to(method)) < count:
                self.changed.clear()
                await self.changed.wait()

    async def _request(self, method: str, call_id: str, *arguments: object) -> None:
        if self.request_delay:
            await asyncio.sleep(self.request_delay)
        self._record(method, call_id, *arguments)
        if call_id not in self.notifiers:
            raise ValueError(f"no call {call_id}")

    def _record(self, method: str, *arguments: object) -> None:
        self.requests.append((method, *arguments))
        self.changed.set()
