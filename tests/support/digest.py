"""HTTP Digest for SIP (RFC 3261 section 22, RFC 7616, RFC 8760), computed independently of
the code under test, to check the credentials a UA sends where SIPp cannot: SIPp 3.6.1's
``verifyauth`` reads only ``Authorization`` (not ``Proxy-Authorization``) and knows only MD5.

Supported: MD5, SHA-256, SHA-512-256 and their ``-sess`` forms; qop ``auth``, ``auth-int``
or none (RFC 2069 compatibility).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

__all__ = [
    "DigestError",
    "check_credentials",
    "credentials_value",
    "digest_response",
    "parse_auth_header",
]


class DigestError(ValueError):
    """A challenge or credentials header that cannot be parsed, or an unknown algorithm."""


def _sha512_256(data: bytes) -> str:
    return hashlib.new("sha512_256", data).hexdigest()


_HASHES: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda data: hashlib.md5(data).hexdigest(),
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
    "SHA-512-256": _sha512_256,
}

# auth-param = token "=" ( token / quoted-string ), RFC 7235 section 2.1.
_PARAM = re.compile(
    r'\s*([A-Za-z0-9!#$%&\'*+.^_`|~-]+)\s*=\s*("((?:[^"\\]|\\.)*)"|[^\s,"]*)\s*(?:,|$)'
)


def parse_auth_header(value: str) -> tuple[str, dict[str, str]]:
    """Split ``Digest a=b, c="d"`` into the scheme and its parameters (names lower-cased)."""
    scheme, _, rest = value.strip().partition(" ")
    if not scheme or not rest.strip():
        raise DigestError(f"no scheme and parameters in {value!r}")
    params: dict[str, str] = {}
    position = 0
    rest = rest.strip()
    while position < len(rest):
        match = _PARAM.match(rest, position)
        if match is None or match.end() == position:
            raise DigestError(f"cannot parse parameters at {rest[position:]!r} in {value!r}")
        name = match.group(1).lower()
        quoted = match.group(3)
        params[name] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else match.group(2)
        position = match.end()
    return scheme, params


def digest_response(
    *,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    algorithm: str = "MD5",
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value, in lower-case hex (RFC 7616 section 3.4.1)."""
    name = algorithm.upper()
    sess = name.endswith("-SESS")
    hash_hex = _HASHES.get(name.removesuffix("-SESS"))
    if hash_hex is None:
        raise DigestError(f"unknown digest algorithm {algorithm!r}")

    def h(text: str) -> str:
        return hash_hex(text.encode())

    if qop and (nc is None or cnonce is None):
        raise DigestError("qop needs nc and cnonce")
    ha1 = h(f"{username}:{realm}:{password}")
    if sess:
        if cnonce is None:
            raise DigestError(f"{algorithm} needs a cnonce")
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")
    a2 = f"{method}:{uri}"
    if qop == "auth-int":
        a2 += ":" + hash_hex(body)
    ha2 = h(a2)
    if qop:
        return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return h(f"{ha1}:{nonce}:{ha2}")


def credentials_value(
    challenge: str,
    *,
    username: str,
    password: str,
    method: str,
    uri: str,
    cnonce: str = "0a4f113b",
    nc: int = 1,
) -> str:
    """An ``Authorization``/``Proxy-Authorization`` value answering ``challenge``.

    For tests that must send credentials SIPp cannot compute (SHA-256).
    """
    _, challenge_params = parse_auth_header(challenge)
    algorithm = challenge_params.get("algorithm", "MD5")
    realm = challenge_params["realm"]
    nonce = challenge_params["nonce"]
    qop = "auth" if "qop" in challenge_params else None
    nc_text = f"{nc:08x}"
    response = digest_response(
        username=username,
        realm=realm,
        password=password,
        method=method,
        uri=uri,
        nonce=nonce,
        algorithm=algorithm,
        qop=qop,
        nc=nc_text if qop else None,
        cnonce=cnonce if qop else None,
    )
    fields = [
        f'username="{username}"',
        f'realm="{realm}"',
        f'nonce="{nonce}"',
        f'uri="{uri}"',
        f'response="{response}"',
        f"algorithm={algorithm}",
    ]
    if qop:
        fields += [f"qop={qop}", f"nc={nc_text}", f'cnonce="{cnonce}"']
    if "opaque" in challenge_params:
        fields.append(f'opaque="{challenge_params["opaque"]}"')
    return "Digest " + ", ".join(fields)


def check_credentials(
    credentials: str,
    challenge: str,
    *,
    method: str,
    request_uri: str,
    username: str,
    password: str,
) -> list[str]:
    """What is wrong with ``credentials`` as the answer to ``challenge``; [] if nothing.

    Checks the scheme, that username, realm, nonce, opaque and algorithm are those expected,
    that qop/nc/cnonce are present when the challenge offered qop, that ``uri`` is the
    Request-URI, and the response itself.
    """
    try:
        scheme, given = parse_auth_header(credentials)
        _, asked = parse_auth_header(challenge)
    except DigestError as exc:
        return [str(exc)]
    if scheme.lower() != "digest":
        return [f"scheme {scheme!r}, not Digest"]
    problems = []
    algorithm = asked.get("algorithm", "MD5")
    expected = {
        "username": username,
        "realm": asked.get("realm"),
        "nonce": asked.get("nonce"),
        "opaque": asked.get("opaque"),
        "uri": request_uri,
    }
    for name, want in expected.items():
        if want is not None and given.get(name) != want:
            problems.append(f"{name} is {given.get(name)!r}, expected {want!r}")
    if given.get("algorithm", "MD5").upper() != algorithm.upper():
        problems.append(f"algorithm is {given.get('algorithm', 'MD5 (absent)')}, asked {algorithm}")
    qop = given.get("qop")
    if "qop" in asked:
        offered = [option.strip() for option in asked["qop"].split(",")]
        if qop not in offered:
            problems.append(f"qop is {qop!r}, offered {asked['qop']!r}")
        if not re.fullmatch(r"[0-9a-fA-F]{8}", given.get("nc", "")):
            problems.append(f"nc is {given.get('nc')!r}, expected 8 hex digits")
        if not given.get("cnonce"):
            problems.append("no cnonce")
    if "response" not in given:
        problems.append("no response")
    if problems:
        return problems
    try:
        want_response = digest_response(
            username=username,
            realm=given["realm"],
            password=password,
            method=method,
            uri=given["uri"],
            nonce=given["nonce"],
            algorithm=algorithm,
            qop=qop,
            nc=given.get("nc"),
            cnonce=given.get("cnonce"),
        )
    except DigestError as exc:
        return [str(exc)]
    if given["response"].lower() != want_response:
        return [
            f"response {given['response']} is wrong (password or hash input), expected "
            f"{want_response}"
        ]
    return []
