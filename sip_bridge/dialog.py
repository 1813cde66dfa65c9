"""Dialog state (RFC 3261 §12): identifiers, CSeq spaces, route set and remote target."""

from __future__ import annotations

from dataclasses import dataclass, field

from sip_bridge.headers import Headers
from sip_bridge.message import Request, Response
from sip_bridge.uri import SipUri, Uri, parse_name_address


@dataclass
class Dialog:
    call_id: str
    local_tag: str
    remote_tag: str
    local_party: str  # From (UAC) / To (UAS) header value, with our tag
    remote_party: str  # the other one, with the remote tag
    local_seq: int
    remote_seq: int | None
    remote_target: Uri
    route_set: list[str] = field(default_factory=list)  # Route header values, in order
    secure: bool = False
    confirmed: bool = False

    @property
    def id(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def as_uac(cls, invite: Request, response: Response) -> Dialog:
        """The dialog an INVITE we sent creates with a 1xx/2xx carrying a To tag (§12.1.2)."""
        to = response.to
        contacts = response.contacts
        target = contacts[0].uri if contacts else invite.uri
        # Record-Route is reversed for the UAC: the route runs from us to them.
        routes = list(reversed(response.headers.get_list("Record-Route")))
        return cls(
            call_id=invite.call_id,
            local_tag=invite.from_.tag or "",
            remote_tag=to.tag or "",
            local_party=invite.headers.get("From") or "",
            remote_party=response.headers.get("To") or "",
            local_seq=invite.cseq.seq,
            remote_seq=None,
            remote_target=target,
            route_set=routes,
            secure=isinstance(invite.uri, SipUri) and invite.uri.scheme.lower() == "sips",
            confirmed=response.is_success,
        )

    @classmethod
    def as_uas(cls, invite: Request, local_tag: str, local_seq: int) -> Dialog:
        """The dialog we create by answering an INVITE (§12.1.1)."""
        contacts = invite.contacts
        target = contacts[0].uri if contacts else invite.from_.uri
        return cls(
            call_id=invite.call_id,
            local_tag=local_tag,
            remote_tag=invite.from_.tag or "",
            local_party=f"{invite.headers.get('To')};tag={local_tag}",
            remote_party=invite.headers.get("From") or "",
            local_seq=local_seq,
            remote_seq=invite.cseq.seq,
            remote_target=target,
            route_set=invite.headers.get_list("Record-Route"),
        )

    def update_target(self, message: Request | Response) -> None:
        """A target refresh (re-INVITE, UPDATE, or its 2xx) may move the remote target."""
        contacts = message.contacts
        if contacts:
            self.remote_target = contacts[0].uri

    def next_request(
        self, method: str, via: str, *, contact: str | None = None, cseq: int | None = None
    ) -> Request:
        """A request within the dialog (§12.2.1.1), loose or strict routing."""
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        headers = Headers()
        headers.add("Via", via)
        request_uri: Uri = self.remote_target
        routes = list(self.route_set)
        if routes:
            first = parse_name_address(routes[0]).uri
            if isinstance(first, SipUri) and not first.has_param("lr"):
                # Strict router (RFC 2543): it goes in the Request-URI, the target last.
                request_uri = first.without_headers()
                routes = [*routes[1:], f"<{self.remote_target}>"]
        for route in routes:
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        headers.add("From", self.local_party)
        headers.add("To", self.remote_party)
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{cseq} {method}")
        if contact is not None:
            headers.add("Contact", contact)
        return Request(method, request_uri, headers)

    def next_hop(self) -> Uri:
        """Where requests of this dialog go: the first route, or the remote target."""
        if self.route_set:
            return parse_name_address(self.route_set[0]).uri
        return self.remote_target

    def check_remote_seq(self, request: Request) -> bool:
        """True if the request's CSeq is in order (§12.2.2); records it."""
        seq = request.cseq.seq
        if self.remote_seq is not None and seq <= self.remote_seq and request.method != "ACK":
            return False
        if request.method != "ACK":
            self.remote_seq = seq
        return True

    def matches(self, request: Request) -> bool:
        to_tag = request.to.tag
        return to_tag == self.local_tag and request.from_.tag == self.remote_tag
