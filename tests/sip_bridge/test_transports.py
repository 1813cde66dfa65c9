"""Calls over real sockets: UDP, TCP and TLS between two user agents, and an outbound proxy."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sip_bridge.asyncio.endpoint import SipCall, SipEndpoint
from sip_bridge.events import AckReceived, CallAnswered, EndReason
from sip_bridge.useragent import UserAgentConfig

from .sip_call import answered, caller

OFFER = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"


def self_signed(tmp_path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1 and a client context trusting it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_path, key_path)
    client = ssl.create_default_context(cafile=str(cert_path))
    return server, client


async def answering_phone(transport: str, **ssl_options) -> SipEndpoint:
    phone = await SipEndpoint.open(
        UserAgentConfig(
            address=("127.0.0.1", 0), transport=transport, user="operator", accept_incoming=True
        ),
        **ssl_options,
    )

    def on_incoming(call: SipCall) -> None:
        call.ring()
        call.answer(OFFER)

    phone.on_incoming = on_incoming
    return phone


@pytest.mark.parametrize("transport", ["udp", "tcp", "tls"])
async def test_call_between_two_user_agents(transport, tmp_path):
    server_ssl, client_ssl = self_signed(tmp_path) if transport == "tls" else (None, None)
    # Over TLS each side needs a certificate too: in-dialog requests (the phone's BYE) come
    # on a connection the other side opens to our Contact.
    phone = await answering_phone(transport, server_ssl=server_ssl, client_ssl=client_ssl)
    gateway = await SipEndpoint.open(
        UserAgentConfig(address=("127.0.0.1", 0), transport=transport),
        server_ssl=server_ssl,
        client_ssl=client_ssl,
    )
    try:
        host, port = phone.local_address
        scheme = "sips" if transport == "tls" else "sip"
        call = await gateway.invite(
            f"{scheme}:operator@{host}:{port};transport={transport}", sdp=OFFER
        )
        answer = await call.wait_for(CallAnswered, timeout=5)
        assert answer.sdp == OFFER
        (incoming,) = phone.calls.values()
        await incoming.wait_for(AckReceived, timeout=5)
        incoming.hangup()  # the phone ends it: BYE back to us
        ended = await asyncio.wait_for(call.ended, 5)
        assert ended.reason == EndReason.REMOTE_HANGUP
    finally:
        await gateway.close()
        await phone.close()


async def test_outbound_proxy_gets_every_request_with_a_route(sipp_factory):
    proxy = sipp_factory("uas_answer_echo", rtp_echo=True)
    async with caller(outbound_proxy=proxy.uri) as c:
        call = await c.call("sip:operator@pstn.example.invalid")
        await answered(call, c.media)
        call.hangup()
        await asyncio.wait_for(call.ended, 5)
    await proxy.assert_passed_async()
    invite = proxy.messages().split("INVITE sip:operator@pstn.example.invalid SIP/2.0", 1)[1]
    assert f"Route: <sip:operator@127.0.0.1:{proxy.port};lr>" in invite.split("\n\n")[0]
