"""SIP digest authentication (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760). Sans-I/O.

The client half answers a 401/407 challenge: ``parse_challenge`` or ``choose_challenge`` reads
the WWW-Authenticate / Proxy-Authenticate values, and ``DigestClient.authorization`` builds the
Authorization / Proxy-Authorization value for the retried request. ``parse_authorization`` and
``verify_authorization`` are the server half, for tests and for a registrar-like peer.

Supported: MD5, MD5-sess, SHA-256, SHA-256-sess, SHA-512-256(-sess) (RFC 8760 names them for
SIP); qop "auth" (preferred) and "auth-int", or no qop at all (RFC 2069 style); ``userhash``.

Stale nonces are the caller's business: a challenge with ``stale=true`` means the credentials
were right but the nonce expired, so a UA retries once with the new challenge without asking
anyone; a second rejection, or ``stale`` false, means the credentials are wrong and the UA gives
up. This module keeps no retry state, only the nonce counts that RFC 7616 asks the client for.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

__all__ = [
    "ALGORITHMS",
    "DigestChallenge",
    "DigestClient",
    "DigestCredentials",
    "DigestError",
    "choose_challenge",
    "parse_authorization",
    "parse_challenge",
    "verify_authorization",
]


class DigestError(ValueError):
    """A challenge or credentials value is malformed, or asks for what we do not support."""


def _hasher(name: str) -> Callable[[bytes], str]:
    def digest(data: bytes) -> str:
        return hashlib.new(name, data).hexdigest()

    return digest


# Canonical algorithm name -> hash function, strongest first (choose_challenge's order).
_BASE_ALGORITHMS: dict[str, Callable[[bytes], str]] = {}
if "sha512_256" in hashlib.algorithms_available:
    _BASE_ALGORITHMS["SHA-512-256"] = _hasher("sha512_256")
_BASE_ALGORITHMS["SHA-256"] = _hasher("sha256")
_BASE_ALGORITHMS["MD5"] = _hasher("md5")

ALGORITHMS: tuple[str, ...] = tuple(
    name for base in _BASE_ALGORITHMS for name in (base, base + "-sess")
)
_CANONICAL_ALGORITHM = {name.lower(): name for name in ALGORITHMS}
# A -sess variant is as strong as its hash; ties go to the server's order.
_STRENGTH = {
    name: -rank for rank, base in enumerate(_BASE_ALGORITHMS) for name in (base, base + "-sess")
}
_QOPS = ("auth", "auth-int")  # in order of preference

_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
_LWS = re.compile(r"[ \t]*(?:\r\n[ \t]+)*[ \t]*")
_NC = re.compile(r"[0-9A-Fa-f]{8}")
_HEX_DIGEST = re.compile(r"[0-9A-Fa-f]{32,128}")
# Anything a quoted-string may not carry unescaped: CTLs other than HTAB.
_BAD_IN_QUOTES = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_NEEDS_ESCAPE = re.compile(r'(["\\])')
_MAX_VALUE = 8192  # a header value longer than this is an attack, not a challenge
_MAX_REMEMBERED_NONCES = 64


@dataclass(frozen=True, slots=True, kw_only=True)
class DigestChallenge:
    """One Digest challenge as a server sent it (values unquoted; ``algorithm`` in its
    canonical spelling, ``qop`` tokens lower-cased)."""

    scheme: str = "Digest"
    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None
    userhash: bool = False

    @property
    def is_session(self) -> bool:
        return self.algorithm.endswith("-sess")


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    username: str
    password: str = field(repr=False)


# --- parsing ----------------------------------------------------------------------------------


def _split_scheme(value: str, what: str) -> tuple[str, str]:
    if not isinstance(value, str):
        raise DigestError(f"{what} must be text, not {type(value).__name__}")
    if len(value) > _MAX_VALUE:
        raise DigestError(f"{what} is {len(value)} characters long (limit {_MAX_VALUE})")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DigestError(f"{what} is not valid UTF-8 text: {exc.reason}") from None
    text = value.strip(" \t")
    match = _TOKEN.match(text)
    if not match:
        raise DigestError(f"{what} does not start with an auth scheme: {value[:40]!r}")
    scheme, rest = match.group(), text[match.end() :]
    if rest and rest[0] not in " \t\r":
        raise DigestError(f"{what}: no whitespace after the scheme {scheme!r}")
    return scheme, rest


def _skip_lws(text: str, pos: int) -> int:
    """Where the linear white space at `pos` (possibly none) ends."""
    match = _LWS.match(text, pos)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _params(text: str, what: str) -> Iterator[tuple[str, str]]:
    """The name=value pairs of a challenge or credentials (names lower-cased, values unquoted).

    Grammar (RFC 3261 §25.1, RFC 7616 §3.3): ``name EQUAL (token / quoted-string)`` separated
    by COMMA, with LWS (including folded lines) allowed around both.
    """
    pos, end = 0, len(text)
    while True:
        pos = _skip_lws(text, pos)
        # Tolerate empty list elements ("a=1,,b=2"), which HTTP's #rule allows.
        while pos < end and text[pos] == ",":
            pos = _skip_lws(text, pos + 1)
        if pos >= end:
            return
        name_match = _TOKEN.match(text, pos)
        if not name_match:
            raise DigestError(f"{what}: expected a parameter name at {text[pos : pos + 20]!r}")
        name = name_match.group().lower()
        pos = _skip_lws(text, name_match.end())
        if pos >= end or text[pos] != "=":
            raise DigestError(f"{what}: parameter {name!r} has no '=value'")
        pos = _skip_lws(text, pos + 1)
        if pos < end and text[pos] == '"':
            value, pos = _quoted_string(text, pos, what, name)
        else:
            value_match = _TOKEN.match(text, pos)
            if not value_match:
                raise DigestError(
                    f"{what}: parameter {name!r} has no value (token or quoted string)"
                )
            value, pos = value_match.group(), value_match.end()
        yield name, value
        pos = _skip_lws(text, pos)
        if pos < end and text[pos] != ",":
            raise DigestError(f"{what}: expected ',' after {name!r}, got {text[pos : pos + 20]!r}")


def _quoted_string(text: str, pos: int, what: str, name: str) -> tuple[str, int]:
    """Unquote the quoted-string at ``text[pos] == '"'``; return it and the index after it."""
    out: list[str] = []
    i, end = pos + 1, len(text)
    while i < end:
        char = text[i]
        if char == '"':
            return "".join(out), i + 1
        if char == "\\":
            if i + 1 >= end or text[i + 1] in "\r\n":
                raise DigestError(f"{what}: parameter {name!r} ends inside an escape")
            out.append(text[i + 1])
            i += 2
            continue
        if char == "\r" and text.startswith("\r\n", i) and text[i + 2 : i + 3] in (" ", "\t"):
            out.append(" ")  # a folded line is one space (RFC 3261 §7.3.1)
            i += 3
            continue
        if _BAD_IN_QUOTES.match(char):
            raise DigestError(f"{what}: control character {char!r} in parameter {name!r}")
        out.append(char)
        i += 1
    raise DigestError(f"{what}: parameter {name!r} has an unterminated quoted string")


def _collect(text: str, what: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for name, value in _params(text, what):
        if name in params:
            raise DigestError(f"{what}: parameter {name!r} appears twice")
        params[name] = value
    return params


def _canonical_algorithm(value: str, what: str) -> str:
    algorithm = _CANONICAL_ALGORITHM.get(value.lower())
    if algorithm is None:
        raise DigestError(f"{what}: unsupported algorithm {value!r} (have {', '.join(ALGORITHMS)})")
    return algorithm


def parse_challenge(value: str) -> DigestChallenge:
    """Parse one WWW-Authenticate or Proxy-Authenticate header value.

    Raises DigestError when it is not a Digest challenge, lacks realm or nonce, or asks only
    for algorithms or qop values this module does not implement. Unknown parameters are
    ignored, as RFC 7616 §3.3 requires.
    """
    what = "challenge"
    scheme, rest = _split_scheme(value, what)
    if scheme.lower() != "digest":
        raise DigestError(f"unsupported authentication scheme {scheme!r} (want Digest)")
    params = _collect(rest, what)
    for required in ("realm", "nonce"):
        if required not in params:
            raise DigestError(f"{what} has no {required}")
    algorithm = _canonical_algorithm(params.get("algorithm", "MD5"), what)
    qop: tuple[str, ...] = ()
    if "qop" in params:
        qop = tuple(q.lower() for q in re.split(r"[ \t]*,[ \t]*", params["qop"].strip()) if q)
        if any(not _TOKEN.fullmatch(q) for q in qop):
            raise DigestError(f"{what}: malformed qop {params['qop']!r}")
        if not any(q in _QOPS for q in qop):
            raise DigestError(f"{what}: unsupported qop {params['qop']!r} (have auth, auth-int)")
    elif algorithm.endswith("-sess"):
        # A -sess HA1 needs a cnonce, and without qop the client may not send one.
        raise DigestError(f"{what}: algorithm {algorithm} needs a qop")
    return DigestChallenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=algorithm,
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
        domain=params.get("domain"),
        userhash=params.get("userhash", "").lower() == "true",
        scheme=scheme,
    )


def choose_challenge(values: Sequence[str]) -> DigestChallenge:
    """Pick the strongest supported challenge among several (RFC 8760 §2.4).

    A server offers one challenge per algorithm, most preferred first; among equally strong
    ones the first wins. Challenges we cannot use (another scheme, an unknown algorithm, a
    malformed value) are skipped; DigestError says why when none is usable.
    """
    best: DigestChallenge | None = None
    reasons: list[str] = []
    for value in values:
        try:
            challenge = parse_challenge(value)
        except DigestError as exc:
            reasons.append(str(exc))
            continue
        if best is None or _STRENGTH[challenge.algorithm] > _STRENGTH[best.algorithm]:
            best = challenge
    if best is None:
        detail = "; ".join(reasons) if reasons else "no challenge given"
        raise DigestError(f"no usable Digest challenge: {detail}")
    return best


def parse_authorization(value: str) -> dict[str, str]:
    """The parameters of a Digest Authorization / Proxy-Authorization value.

    Keys are lower-cased and values unquoted; checks that the fields a response needs are
    there and well formed. Raises DigestError otherwise.
    """
    what = "credentials"
    scheme, rest = _split_scheme(value, what)
    if scheme.lower() != "digest":
        raise DigestError(f"unsupported authentication scheme {scheme!r} (want Digest)")
    params = _collect(rest, what)
    for required in ("username", "realm", "nonce", "uri", "response"):
        if required not in params:
            raise DigestError(f"{what} have no {required}")
    if "qop" in params:
        if params["qop"].lower() not in _QOPS:
            raise DigestError(f"{what}: unsupported qop {params['qop']!r}")
        if "cnonce" not in params or "nc" not in params:
            raise DigestError(f"{what}: qop={params['qop']} needs cnonce and nc")
        if not _NC.fullmatch(params["nc"]):
            raise DigestError(f"{what}: nc must be 8 hex digits, not {params['nc']!r}")
    _canonical_algorithm(params.get("algorithm", "MD5"), what)
    if not _HEX_DIGEST.fullmatch(params["response"]):
        raise DigestError(f"{what}: response is not a hex digest: {params['response'][:80]!r}")
    return params


# --- the computation (RFC 7616 §3.4) -----------------------------------------------------------


def _response(
    algorithm: str,
    *,
    username: str,
    realm: str,
    password: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None,
    nc: str,
    cnonce: str,
    body: bytes,
) -> str:
    session = algorithm.endswith("-sess")
    hash_hex = _BASE_ALGORITHMS[algorithm.removesuffix("-sess")]

    def h(text: str) -> str:
        return hash_hex(text.encode("utf-8"))

    ha1 = h(f"{username}:{realm}:{password}")
    if session:
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")
    a2 = f"{method}:{uri}:{hash_hex(body)}" if qop == "auth-int" else f"{method}:{uri}"
    ha2 = h(a2)
    if qop is None:
        return h(f"{ha1}:{nonce}:{ha2}")  # RFC 2069 compatibility
    return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


def _quote(value: str, name: str) -> str:
    if "\r" in value or "\n" in value:
        raise DigestError(f"{name} cannot carry CR or LF: {value!r}")
    return '"' + _NEEDS_ESCAPE.sub(r"\\\1", value) + '"'


@dataclass
class _NonceState:
    count: int = 0
    session_cnonce: str | None = None


class DigestClient:
    """Answers challenges for one user; keeps a nonce count per nonce (nc increments).

    Each call to ``authorization`` for the same nonce sends the next nc (00000001,
    00000002, ...), so a UA may reuse a nonce for later requests (RFC 7616 §3.4.5). For the
    -sess algorithms the first cnonce is kept for that nonce, so HA1 stays the one the server
    computed. The client remembers the last few nonces only.
    """

    def __init__(
        self,
        credentials: DigestCredentials,
        *,
        cnonce_factory: Callable[[], str] | None = None,
    ) -> None:
        self.credentials = credentials
        self._new_cnonce = cnonce_factory or (lambda: secrets.token_hex(16))
        self._nonces: OrderedDict[str, _NonceState] = OrderedDict()

    def nonce_count(self, nonce: str) -> int:
        """How many responses were computed for this nonce so far."""
        state = self._nonces.get(nonce)
        return state.count if state else 0

    def _state(self, nonce: str) -> _NonceState:
        state = self._nonces.get(nonce)
        if state is None:
            state = self._nonces[nonce] = _NonceState()
            if len(self._nonces) > _MAX_REMEMBERED_NONCES:
                self._nonces.popitem(last=False)
        else:
            self._nonces.move_to_end(nonce)
        return state

    def authorization(
        self,
        challenge: DigestChallenge,
        *,
        method: str,
        uri: str,
        body: bytes = b"",
        cnonce: str | None = None,
    ) -> str:
        """The Authorization (or Proxy-Authorization) header value answering ``challenge``.

        ``uri`` is the Request-URI of the request being authorized, ``body`` its body (used
        only for qop=auth-int).
        """
        algorithm = _canonical_algorithm(challenge.algorithm, "challenge")
        session = algorithm.endswith("-sess")
        qop = next((q for q in _QOPS if q in challenge.qop), None)
        if challenge.qop and qop is None:
            raise DigestError(f"unsupported qop {challenge.qop!r}")
        if qop is None and session:
            raise DigestError(f"algorithm {algorithm} needs a qop")
        username, password = self.credentials.username, self.credentials.password
        nc = cnonce_sent = ""
        if qop is not None:
            state = self._state(challenge.nonce)
            state.count += 1
            nc = f"{state.count:08x}"
            if session:
                if state.session_cnonce is None:
                    state.session_cnonce = cnonce or self._new_cnonce()
                cnonce_sent = cnonce or state.session_cnonce
            else:
                cnonce_sent = cnonce or self._new_cnonce()
        response = _response(
            algorithm,
            username=username,
            realm=challenge.realm,
            password=password,
            nonce=challenge.nonce,
            method=method,
            uri=uri,
            qop=qop,
            nc=nc,
            cnonce=cnonce_sent,
            body=body,
        )
        sent_username = username
        if challenge.userhash:
            sent_username = _BASE_ALGORITHMS[algorithm.removesuffix("-sess")](
                f"{username}:{challenge.realm}".encode()
            )
        parts = [
            f"username={_quote(sent_username, 'username')}",
            f"realm={_quote(challenge.realm, 'realm')}",
            f"nonce={_quote(challenge.nonce, 'nonce')}",
            f"uri={_quote(uri, 'uri')}",
            f'response="{response}"',
            f"algorithm={algorithm}",
        ]
        if qop is not None:
            parts += [f"cnonce={_quote(cnonce_sent, 'cnonce')}", f"qop={qop}", f"nc={nc}"]
        if challenge.opaque is not None:
            parts.append(f"opaque={_quote(challenge.opaque, 'opaque')}")
        if challenge.userhash:
            parts.append("userhash=true")
        return "Digest " + ", ".join(parts)


def verify_authorization(
    value: str,
    *,
    password: str,
    method: str,
    body: bytes = b"",
    username: str | None = None,
    realm: str | None = None,
    nonce: str | None = None,
) -> bool:
    """Whether an Authorization value carries the right digest for ``password``.

    ``username``, ``realm`` and ``nonce``, when given, must also match what the credentials
    name (a server passes the nonce it issued: the digest alone does not prove freshness).
    With ``userhash=true`` the real ``username`` is required. The uri is taken from the
    credentials; the caller checks that it names the Request-URI. Raises DigestError when the
    value is malformed.
    """
    params = parse_authorization(value)
    algorithm = _canonical_algorithm(params.get("algorithm", "MD5"), "credentials")
    if realm is not None and params["realm"] != realm:
        return False
    if nonce is not None and params["nonce"] != nonce:
        return False
    claimed = params["username"]
    if params.get("userhash", "").lower() == "true":
        if username is None:
            return False
        hashed = _BASE_ALGORITHMS[algorithm.removesuffix("-sess")](
            f"{username}:{params['realm']}".encode()
        )
        if not hmac.compare_digest(claimed.lower().encode(), hashed.encode()):
            return False
        claimed = username
    elif username is not None and claimed != username:
        return False
    qop = params["qop"].lower() if "qop" in params else None
    if qop is None and algorithm.endswith("-sess"):
        return False
    expected = _response(
        algorithm,
        username=claimed,
        realm=params["realm"],
        password=password,
        nonce=params["nonce"],
        method=method,
        uri=params["uri"],
        qop=qop,
        nc=params.get("nc", ""),
        cnonce=params.get("cnonce", ""),
        body=body,
    )
    return hmac.compare_digest(expected.encode(), params["response"].lower().encode())
