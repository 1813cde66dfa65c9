"""Digest authentication: RFC vectors, the client's nonce counting, parsing, and real SIPp.

The SIPp tests send plain UDP on 127.0.0.1; run them inside scripts/in-loopback-netns.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import socket
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sip_bridge.digest import (
    ALGORITHMS,
    DigestChallenge,
    DigestClient,
    DigestCredentials,
    DigestError,
    choose_challenge,
    parse_authorization,
    parse_challenge,
    verify_authorization,
)
from tests.support.sipp import Sipp

# RFC 7616 §3.9.1 (password with a lower-case "of", RFC 7616 erratum 4495).
RFC7616_NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
RFC7616_OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
RFC7616_CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
MUFASA_7616 = DigestCredentials("Mufasa", "Circle of Life")


def rfc7616_challenge(algorithm: str) -> str:
    return (
        'Digest realm="http-auth@example.org", qop="auth, auth-int", '
        f'algorithm={algorithm}, nonce="{RFC7616_NONCE}", opaque="{RFC7616_OPAQUE}"'
    )


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


# --- RFC test vectors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "response"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_example(algorithm: str, response: str) -> None:
    challenge = parse_challenge(rfc7616_challenge(algorithm))
    assert challenge == DigestChallenge(
        realm="http-auth@example.org",
        nonce=RFC7616_NONCE,
        algorithm=algorithm,
        qop=("auth", "auth-int"),
        opaque=RFC7616_OPAQUE,
    )
    client = DigestClient(MUFASA_7616)
    value = client.authorization(
        challenge, method="GET", uri="/dir/index.html", cnonce=RFC7616_CNONCE
    )
    params = parse_authorization(value)
    assert params == {
        "username": "Mufasa",
        "realm": "http-auth@example.org",
        "nonce": RFC7616_NONCE,
        "uri": "/dir/index.html",
        "response": response,
        "algorithm": algorithm,
        "cnonce": RFC7616_CNONCE,
        "qop": "auth",  # both offered: auth is preferred
        "nc": "00000001",
        "opaque": RFC7616_OPAQUE,
    }
    assert verify_authorization(value, password="Circle of Life", method="GET")
    assert not verify_authorization(value, password="Circle Of Life", method="GET")


def test_rfc2617_example() -> None:
    challenge = parse_challenge(
        'Digest realm="testrealm@host.com", qop="auth,auth-int", '
        'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    client = DigestClient(DigestCredentials("Mufasa", "Circle Of Life"))
    value = client.authorization(challenge, method="GET", uri="/dir/index.html", cnonce="0a4f113b")
    params = parse_authorization(value)
    assert params["response"] == "6629fae49393a05397450978507c4ef1"
    assert (params["qop"], params["nc"], params["cnonce"]) == ("auth", "00000001", "0a4f113b")
    assert params["opaque"] == "5ccc069c403ebaf9f0171e9517f40e41"


def test_rfc2069_style_challenge_without_qop() -> None:
    # RFC 2069 §2.4's example; its printed response is wrong, this is the corrected value.
    challenge = parse_challenge(
        'Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", '
        'opaque="5ccc069c403ebaf9f0171e9517f40e41"'
    )
    assert challenge.qop == ()
    client = DigestClient(DigestCredentials("Mufasa", "CircleOfLife"))
    value = client.authorization(challenge, method="GET", uri="/dir/index.html")
    params = parse_authorization(value)
    assert params["response"] == "1949323746fe6a43ef61f9606e7febea"
    # Without qop the client must not send cnonce or nc (RFC 2617 §3.2.2).
    assert not {"qop", "nc", "cnonce"} & params.keys()
    assert verify_authorization(value, password="CircleOfLife", method="GET")


# --- the client -----------------------------------------------------------------------------


def test_nonce_count_increments_per_nonce() -> None:
    client = DigestClient(DigestCredentials("alice", "secret"))
    first = parse_challenge('Digest realm="r", nonce="n1", qop="auth"')
    second = parse_challenge('Digest realm="r", nonce="n2", qop="auth"')

    def nc_and_cnonce(challenge: DigestChallenge) -> tuple[str, str]:
        params = parse_authorization(
            client.authorization(challenge, method="REGISTER", uri="sip:example.com")
        )
        assert verify_authorization(
            client.authorization(challenge, method="REGISTER", uri="sip:example.com"),
            password="secret",
            method="REGISTER",
        )
        return params["nc"], params["cnonce"]

    nc1, cnonce1 = nc_and_cnonce(first)
    nc3, cnonce3 = nc_and_cnonce(first)
    assert (nc1, nc3) == ("00000001", "00000003")
    assert nc_and_cnonce(second)[0] == "00000001"
    assert client.nonce_count("n1") == 4 and client.nonce_count("n2") == 2
    # A fresh random cnonce each time (secrets, 128 bits).
    assert cnonce1 != cnonce3 and re.fullmatch(r"[0-9a-f]{32}", cnonce1)


def test_nc_is_eight_hex_digits_past_nine() -> None:
    client = DigestClient(DigestCredentials("alice", "secret"))
    challenge = parse_challenge('Digest realm="r", nonce="n", qop="auth"')
    values = [client.authorization(challenge, method="BYE", uri="sip:b@h") for _ in range(17)]
    assert [parse_authorization(v)["nc"] for v in values[9:11]] == ["0000000a", "0000000b"]
    assert parse_authorization(values[-1])["nc"] == "00000011"


@pytest.mark.parametrize("algorithm", [a for a in ALGORITHMS if a.endswith("-sess")])
def test_session_algorithms_keep_their_first_cnonce(algorithm: str) -> None:
    challenge = parse_challenge(f'Digest realm="r", nonce="n", qop="auth", algorithm={algorithm}')
    client = DigestClient(DigestCredentials("alice", "secret"))
    first = parse_authorization(client.authorization(challenge, method="INVITE", uri="sip:b@h"))
    second = parse_authorization(client.authorization(challenge, method="INVITE", uri="sip:b@h"))
    assert first["cnonce"] == second["cnonce"]
    assert (first["nc"], second["nc"]) == ("00000001", "00000002")
    if algorithm == "MD5-sess":  # RFC 2617 §3.2.2.2 by hand
        ha1 = md5(f"{md5('alice:r:secret')}:n:{first['cnonce']}")
        expected = md5(f"{ha1}:n:00000001:{first['cnonce']}:auth:{md5('INVITE:sip:b@h')}")
        assert first["response"] == expected


def test_auth_int_covers_the_body() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", qop="auth-int"')
    client = DigestClient(DigestCredentials("alice", "secret"))
    body = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"
    value = client.authorization(challenge, method="INVITE", uri="sip:b@h", body=body, cnonce="c")
    params = parse_authorization(value)
    assert params["qop"] == "auth-int"
    ha2 = md5(f"INVITE:sip:b@h:{hashlib.md5(body).hexdigest()}")
    assert params["response"] == md5(f"{md5('alice:r:secret')}:n:00000001:c:auth-int:{ha2}")
    assert verify_authorization(value, password="secret", method="INVITE", body=body)
    assert not verify_authorization(value, password="secret", method="INVITE", body=body + b" ")


def test_userhash_sends_the_hashed_username() -> None:
    challenge = parse_challenge(
        'Digest realm="api@example.org", nonce="n", qop="auth", algorithm=SHA-256, userhash=true'
    )
    client = DigestClient(DigestCredentials("J\u00e4s\u00f8n Doe", "Secret, or not?"))
    value = client.authorization(challenge, method="GET", uri="/doe.json")
    params = parse_authorization(value)
    expected = hashlib.sha256("J\u00e4s\u00f8n Doe:api@example.org".encode()).hexdigest()
    assert params["username"] == expected and params["userhash"] == "true"
    kwargs = {"password": "Secret, or not?", "method": "GET"}
    assert verify_authorization(value, username="J\u00e4s\u00f8n Doe", **kwargs)
    assert not verify_authorization(value, username="Jason Doe", **kwargs)
    assert not verify_authorization(value, **kwargs)  # the real name is needed


def test_quoted_values_are_unescaped_and_escaped_again() -> None:
    challenge = parse_challenge(r'Digest realm="a \"quoted\" \\realm", nonce="n\,1", qop=auth')
    assert challenge.realm == 'a "quoted" \\realm'
    assert challenge.nonce == "n,1"
    client = DigestClient(DigestCredentials('bob "the" \\builder', "pw"))
    value = client.authorization(challenge, method="REGISTER", uri="sip:example.com")
    assert r'username="bob \"the\" \\builder"' in value
    assert r'realm="a \"quoted\" \\realm"' in value
    params = parse_authorization(value)
    assert params["username"] == 'bob "the" \\builder'
    assert params["realm"] == challenge.realm
    assert verify_authorization(value, password="pw", method="REGISTER", realm=challenge.realm)


def test_values_with_line_breaks_cannot_be_sent() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n"')
    client = DigestClient(DigestCredentials("alice", "secret"))
    with pytest.raises(DigestError, match="CR or LF"):
        client.authorization(challenge, method="INVITE", uri="sip:b@h\r\nX-Evil: 1")


# --- parsing the challenge ------------------------------------------------------------------


def test_names_and_algorithm_are_case_insensitive_unknown_parameters_ignored() -> None:
    challenge = parse_challenge(
        'digest REALM="r", Nonce="n", ALGORITHM=sha-256-SESS, QOP="Auth, x-new", '
        'charset=UTF-8, future-param="whatever", Stale=TRUE, DOMAIN="sip:a sip:b"'
    )
    assert challenge.scheme == "digest"
    assert challenge.algorithm == "SHA-256-sess"
    assert challenge.qop == ("auth", "x-new")
    assert challenge.stale is True
    assert challenge.domain == "sip:a sip:b"
    assert challenge.userhash is False


def test_folded_lines_and_quoted_algorithm() -> None:
    challenge = parse_challenge(
        'Digest realm="biloxi.com",\r\n  nonce="a84b\r\n c76e",\r\n\tqop = "auth" ,algorithm="MD5"'
    )
    assert (challenge.realm, challenge.nonce, challenge.qop) == (
        "biloxi.com",
        "a84b c76e",
        ("auth",),
    )
    assert challenge.algorithm == "MD5"


@pytest.mark.parametrize(
    ("stale", "expected"), [("stale=true", True), ("stale=FALSE", False), ("stale=maybe", False)]
)
def test_stale(stale: str, expected: bool) -> None:
    assert parse_challenge(f'Digest realm="r", nonce="n", {stale}').stale is expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('Basic realm="r"', "unsupported authentication scheme 'Basic'"),
        ('Digest nonce="n"', "no realm"),
        ('Digest realm="r"', "no nonce"),
        ('Digest realm="r", nonce="n", algorithm=SHA-1', "unsupported algorithm 'SHA-1'"),
        ('Digest realm="r", nonce="n", qop="auth-conf"', "unsupported qop"),
        ('Digest realm="r", nonce="n", algorithm=MD5-sess', "needs a qop"),
        ('Digest realm="r", realm="s", nonce="n"', "'realm' appears twice"),
        ('Digest realm="r, nonce=n', "unterminated quoted string"),
        ('Digest realm="r" nonce="n"', "expected ','"),
        ('Digest realm, nonce="n"', "has no '=value'"),
        ('Digest realm=, nonce="n"', "has no value"),
        ('Digest realm="r\nx", nonce="n"', "control character"),
        ('Digest realm="r", nonce="n\\', "ends inside an escape"),
        ('Digest realm="r", nonce="n", qop="a b"', "malformed qop"),
        ("Digest=", "no whitespace after the scheme"),
        ("", "does not start with an auth scheme"),
        ('Digest realm="\udcff", nonce="n"', "not valid UTF-8"),
        ("Digest " + "x" * 9000, "characters long"),
    ],
)
def test_malformed_or_unsupported_challenges(value: str, message: str) -> None:
    with pytest.raises(DigestError, match=re.escape(message)):
        parse_challenge(value)


def test_choose_challenge_prefers_the_strongest() -> None:
    md5_ = 'Digest realm="r", nonce="1", qop="auth", algorithm=MD5'
    sha = 'Digest realm="r", nonce="2", qop="auth", algorithm=SHA-256'
    sha_sess = 'Digest realm="r", nonce="3", qop="auth", algorithm=SHA-256-sess'
    assert choose_challenge([sha, md5_]).nonce == "2"
    assert choose_challenge([md5_, sha]).nonce == "2"
    assert choose_challenge([sha, sha_sess]).nonce == "2"  # equal strength: server's order
    assert choose_challenge([sha_sess, sha]).nonce == "3"
    usable = choose_challenge(['Basic realm="r"', 'Digest realm="r", nonce="4", algorithm=X', md5_])
    assert usable.nonce == "1"
    if "SHA-512-256" in ALGORITHMS:
        strongest = 'Digest realm="r", nonce="5", qop="auth", algorithm=SHA-512-256'
        assert choose_challenge([md5_, sha, strongest]).nonce == "5"


def test_choose_challenge_says_why_none_is_usable() -> None:
    with pytest.raises(DigestError, match=r"no usable Digest challenge: .*Basic.*SHA-1"):
        choose_challenge(['Basic realm="r"', 'Digest realm="r", nonce="n", algorithm=SHA-1'])
    with pytest.raises(DigestError, match="no challenge given"):
        choose_challenge([])


# --- the server side ------------------------------------------------------------------------


def test_verify_checks_expected_realm_nonce_and_username() -> None:
    challenge = parse_challenge('Digest realm="r", nonce="n", qop="auth"')
    value = DigestClient(DigestCredentials("alice", "pw")).authorization(
        challenge, method="OPTIONS", uri="sip:h"
    )
    check = {"password": "pw", "method": "OPTIONS"}
    assert verify_authorization(value, realm="r", nonce="n", username="alice", **check)
    assert not verify_authorization(value, realm="other", **check)
    assert not verify_authorization(value, nonce="stale-one", **check)
    assert not verify_authorization(value, username="bob", **check)
    assert not verify_authorization(value, password="pw", method="INVITE")  # method is covered


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("Basic dXNlcjpwYXNz", "unsupported authentication scheme"),
        ('Digest username="a", realm="r", nonce="n", uri="u"', "no response"),
        ('Digest username="a", realm="r", nonce="n", uri="u", response="0a", qop=auth', "cnonce"),
        (
            'Digest username="a", realm="r", nonce="n", uri="u", response="0a", qop=auth, '
            'cnonce="c", nc=1',
            "8 hex digits",
        ),
        ('Digest username="a", realm="r", nonce="n", uri="u", response="zz"', "hex digest"),
        (
            'Digest username="a", realm="r", nonce="n", uri="u", response="'
            + "0" * 32
            + '", algorithm=RC4',
            "unsupported algorithm",
        ),
    ],
)
def test_malformed_credentials(value: str, message: str) -> None:
    with pytest.raises(DigestError, match=message):
        parse_authorization(value)
    with pytest.raises(DigestError):
        verify_authorization(value, password="pw", method="INVITE")


# --- fuzzing --------------------------------------------------------------------------------

_pieces = st.sampled_from(
    ["Digest", "digest ", " ", ",", "=", '"', "\\", "realm", "nonce", "qop", "algorithm",
     "auth", "auth-int", "MD5", "SHA-256-sess", "stale", "true", "\r\n ", "\t", "é", "\x00"]
)  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=200), st.lists(_pieces, max_size=40).map("".join)))
def test_parse_challenge_raises_only_digest_error(text: str) -> None:
    try:
        challenge = parse_challenge(text)
    except DigestError:
        return
    # Anything accepted can be answered.
    client = DigestClient(DigestCredentials("u", "p"))
    assert client.authorization(challenge, method="INVITE", uri="sip:x").startswith("Digest ")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.lists(_pieces, max_size=40).map("".join)))
def test_parse_and_verify_authorization_raise_only_digest_error(text: str) -> None:
    for call in (
        lambda: parse_authorization("Digest " + text),
        lambda: verify_authorization(text, password="p", method="INVITE"),
    ):
        with contextlib.suppress(DigestError):
            call()


_printable = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r\n"), max_size=30
)


@settings(max_examples=200, deadline=None)
@given(
    username=_printable,
    password=_printable,
    realm=_printable,
    uri=_printable,
    algorithm=st.sampled_from(ALGORITHMS),
    qop=st.sampled_from(['qop="auth"', 'qop="auth-int"', 'qop="auth,auth-int"', ""]),
    body=st.binary(max_size=40),
)
def test_round_trip_through_header_text(
    username: str, password: str, realm: str, uri: str, algorithm: str, qop: str, body: bytes
) -> None:
    if not qop and algorithm.endswith("-sess"):
        qop = 'qop="auth"'
    escaped_realm = realm.replace("\\", "\\\\").replace('"', '\\"')
    challenge = parse_challenge(
        f'Digest realm="{escaped_realm}", nonce="abc", algorithm={algorithm}, {qop}'.rstrip(", ")
    )
    assert challenge.realm == realm
    value = DigestClient(DigestCredentials(username, password)).authorization(
        challenge, method="MESSAGE", uri=uri, body=body
    )
    params = parse_authorization(value)
    assert (params["username"], params["realm"], params["uri"]) == (username, realm, uri)
    assert verify_authorization(value, password=password, method="MESSAGE", body=body)
    assert not verify_authorization(value, password=password + "x", method="MESSAGE", body=body)


# --- against a real peer: SIPp 3.6.1 (MD5, qop=auth) ------------------------------------------

REGISTER = (
    "REGISTER sip:127.0.0.1:{sipp_port} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:{our_port};branch=z9hG4bK-{branch};rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:alice@sipp.test>;tag=digest-test\r\n"
    "To: <sip:alice@sipp.test>\r\n"
    "Call-ID: digest-{call_id}@127.0.0.1\r\n"
    "CSeq: {cseq} REGISTER\r\n"
    "Contact: <sip:alice@127.0.0.1:{our_port}>\r\n"
    "{authorization}"
    "Content-Length: 0\r\n\r\n"
)

# SIPp challenges a REGISTER, then checks the retry with its own digest code (verifyauth).
SIPP_REGISTRAR = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="digest_registrar">
  <recv request="REGISTER"/>
  <send><![CDATA[
SIP/2.0 401 Unauthorized
[last_Via:]
[last_From:]
[last_To:];tag=sipp-reg
[last_Call-ID:]
[last_CSeq:]
WWW-Authenticate: Digest realm="[realm]", nonce="a2dbe7fb", opaque="op-41", qop="auth"
Content-Length: 0

]]></send>
  <recv request="REGISTER">
    <action>
      <verifyauth assign_to="auth_valid" username="[user]" password="[pass]"/>
    </action>
  </recv>
  <nop hide="true" test="auth_valid" next="good"/>
  <send><![CDATA[
SIP/2.0 403 Forbidden
[last_Via:]
[last_From:]
[last_To:];tag=sipp-reg
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <nop><action><error message="verifyauth rejected the digest"/></action></nop>
  <label id="good"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=sipp-reg
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"""

# SIPp registers, answers our 401 with its own digest code ([authentication]), wants a 200.
SIPP_CLIENT = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="digest_client">
  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
Max-Forwards: 70
From: <sip:[user]@[realm]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[user]@[realm]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:[user]@[local_ip]:[local_port]>
Content-Length: 0

]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
Max-Forwards: 70
From: <sip:[user]@[realm]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[user]@[realm]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:[user]@[local_ip]:[local_port]>
[authentication]
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"""


def _header(message: str, name: str) -> str:
    match = re.search(rf"(?im)^{name}[ \t]*:[ \t]*(.*)$", message)
    assert match, f"no {name} in\n{message}"
    return match.group(1).rstrip("\r")


def _status(message: str) -> int:
    return int(message.split(" ", 2)[1])


@pytest.fixture
def udp_socket():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)
    yield sock
    sock.close()


def test_sipp_accepts_our_digest(tmp_path: Path, udp_socket: socket.socket) -> None:
    scenario = tmp_path / "digest_registrar.xml"
    scenario.write_text(SIPP_REGISTRAR)
    with Sipp(scenario, tmp_path / "sipp", timeout=15.0) as sipp:
        our_port = udp_socket.getsockname()[1]
        fields = {"sipp_port": sipp.port, "our_port": our_port, "call_id": our_port}
        udp_socket.sendto(
            REGISTER.format(**fields, branch=1, cseq=1, authorization="").encode(), sipp.address
        )
        reply = udp_socket.recv(65535).decode()
        assert _status(reply) == 401
        challenge = choose_challenge([_header(reply, "WWW-Authenticate")])
        assert (challenge.realm, challenge.qop, challenge.opaque) == (
            "sipp.test",
            ("auth",),
            "op-41",
        )

        client = DigestClient(DigestCredentials("alice", "secret"))
        uri = f"sip:127.0.0.1:{sipp.port}"
        authorization = client.authorization(challenge, method="REGISTER", uri=uri)
        udp_socket.sendto(
            REGISTER.format(
                **fields, branch=2, cseq=2, authorization=f"Authorization: {authorization}\r\n"
            ).encode(),
            sipp.address,
        )
        assert _status(udp_socket.recv(65535).decode()) == 200
        sipp.assert_passed()


def test_our_verifier_accepts_sipps_digest(tmp_path: Path, udp_socket: socket.socket) -> None:
    scenario = tmp_path / "digest_client.xml"
    scenario.write_text(SIPP_CLIENT)
    our_address = udp_socket.getsockname()
    nonce = "0cc175b9c0f1b6a831c399e269772661"
    credentials = ["-au", "alice", "-ap", "secret"]  # what [authentication] answers with
    with Sipp(
        scenario, tmp_path / "sipp", remote=our_address, timeout=15.0, extra_args=credentials
    ) as sipp:
        first, peer = udp_socket.recvfrom(65535)
        request = first.decode()
        assert request.startswith("REGISTER ") and "Authorization" not in request
        response_head = "\r\n".join(
            f"{name}: {_header(request, name)}" for name in ("Via", "From", "To", "Call-ID", "CSeq")
        )
        udp_socket.sendto(
            (
                f"SIP/2.0 401 Unauthorized\r\n{response_head}\r\n"
                f'WWW-Authenticate: Digest realm="sipp.test", nonce="{nonce}", qop="auth", '
                'algorithm=MD5, opaque="xyz"\r\nContent-Length: 0\r\n\r\n'
            ).encode(),
            peer,
        )
        retry = udp_socket.recv(65535).decode()
        authorization = _header(retry, "Authorization")
        request_uri = retry.split(" ", 2)[1]
        assert parse_authorization(authorization)["uri"] == request_uri
        assert verify_authorization(
            authorization, password="secret", method="REGISTER", username="alice", nonce=nonce
        )
        assert not verify_authorization(authorization, password="wrong", method="REGISTER")
        response_head = "\r\n".join(
            f"{name}: {_header(retry, name)}" for name in ("Via", "From", "To", "Call-ID", "CSeq")
        )
        udp_socket.sendto(
            f"SIP/2.0 200 OK\r\n{response_head}\r\nContent-Length: 0\r\n\r\n".encode(), peer
        )
        sipp.assert_passed()
