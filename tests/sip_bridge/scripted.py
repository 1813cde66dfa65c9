"""A scripted far end on the fake wire: it reads what the user agent sent it and answers
with messages the test writes, so each test says exactly what the peer does."""

from __future__ import annotations

from sip_bridge.headers import Headers
from sip_bridge.message import Request, Response, new_response, parse_message
from sip_bridge.uri import parse_uri
from sip_bridge.useragent import UserAgent

from .loop import Wire

OFFER = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 20000 RTP/AVP 0\r\n"
)
ANSWER = OFFER.replace(b"20000", b"30000")


class ScriptedPeer:
    """A peer at `address` that the user agent `ua` talks to."""

    def __init__(self, wire: Wire, ua: UserAgent, address: tuple[str, int]) -> None:
        self.wire = wire
        self.ua = ua
        self.address = address
        self.tag = "far1"
        self.cseq = 0

    @property
    def received(self) -> list[Request | Response]:
        return [parse_message(d) for d in self.wire.captured.get(self.address, [])]

    def requests(self, method: str | None = None) -> list[Request]:
        return [
            m
            for m in self.received
            if isinstance(m, Request) and (method is None or m.method == method)
        ]

    def responses(self, method: str | None = None) -> list[Response]:
        return [
            m
            for m in self.received
            if isinstance(m, Response) and (method is None or m.cseq.method == method)
        ]

    def methods(self) -> list[str]:
        return [m.method if isinstance(m, Request) else f"{m.status}" for m in self.received]

    def last(self, method: str) -> Request:
        return self.requests(method)[-1]

    def respond(
        self,
        request: Request,
        status: int,
        *,
        tag: str | None = "",
        body: bytes = b"",
        headers: tuple[tuple[str, str], ...] = (),
        contact: bool = True,
    ) -> Response:
        """Answer `request` (tag "" uses this peer's tag; None sends no To tag)."""
        response = new_response(request, status, to_tag=self.tag if tag == "" else tag)
        if contact:
            host, port = self.address
            response.headers.add("Contact", f"<sip:op@{host}:{port}>")
        for name, value in headers:
            response.headers.add(name, value)
        if body:
            response.headers.add("Content-Type", "application/sdp")
            response.body = body
        self.wire.inject(self.ua, response.serialize(), self.address)
        return response

    def send_in_dialog(
        self,
        invite: Request,
        method: str,
        *,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
        content_type: str = "application/sdp",
        cseq: int | None = None,
    ) -> Request:
        """A request of ours inside the dialog our answer to `invite` created."""
        self.cseq = cseq if cseq is not None else self.cseq + 1
        host, port = self.address
        h = Headers()
        h.add("Via", f"SIP/2.0/UDP {host}:{port};branch=z9hG4bKfar{method}{self.cseq};rport")
        h.add("Max-Forwards", "70")
        h.add("From", f"<sip:op@{host}:{port}>;tag={self.tag}")
        h.add("To", invite.headers.get("From") or "")
        h.add("Call-ID", invite.call_id)
        h.add("CSeq", f"{self.cseq} {method}")
        h.add("Contact", f"<sip:op@{host}:{port}>")
        for name, value in headers:
            h.add(name, value)
        if body:
            h.add("Content-Type", content_type)
        request = Request(method, parse_uri(str(invite.from_.uri)), h, body)
        self.wire.inject(self.ua, request.serialize(), self.address)
        return request

    def ack(self, invite: Request, cseq: int) -> None:
        """ACK our 2xx to the peer's re-INVITE number `cseq` (its CSeq space is ours)."""
        kept = self.cseq
        self.send_in_dialog(invite, "ACK", cseq=cseq)
        self.cseq = kept
