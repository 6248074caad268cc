# -*- test-case-name: tests.test_sip_digest -*-
"""SIP digest authentication (RFC 3261 §22, RFC 7616, RFC 8760), sans-IO.

Three parts:

* **Parsing and formatting** of ``WWW-Authenticate`` / ``Proxy-Authenticate`` challenges and
  ``Authorization`` / ``Proxy-Authorization`` credentials.  A header value may carry several
  challenges separated by commas (RFC 7235 §4.1), and a message may carry several headers;
  schemes other than Digest are skipped.  Quoted strings with backslash escapes are
  understood.  Any malformed input raises :class:`~sbc.sip.errors.SipParseError` and nothing
  else.
* **Client side**: :func:`answer_challenge` computes one credentials value;
  :func:`select_challenges` picks, per realm, the strongest challenge we support (local
  policy allowed by RFC 8760 §2.4: SHA-256 over MD5, whatever the order); :class:`NonceCounter`
  keeps the nonce-count per nonce; :func:`authorize` adds the headers to a request.
* **Server side**: :class:`DigestVerifier` issues stateless nonces (issue time + random +
  HMAC-SHA-256 tag) that expire after ``nonce_ttl`` seconds, checks responses with a
  constant-time compare, refuses a nonce-count that is not above the highest one seen for
  its nonce (memory bounded: see :class:`DigestVerifier`), and reports an expired nonce with
  a valid response as *stale* so the challenge carries ``stale=true``.

Algorithms: ``MD5``, ``MD5-sess``, ``SHA-256``, ``SHA-256-sess``; ``qop=auth`` and
``qop=auth-int`` (the body hash); RFC 2069 style answers (no qop) on the client side only.
``userhash`` (RFC 7616 §3.4.4) is honoured by the client; the verifier never offers it.

Nothing here ever puts a password, an HA1 or a digest response in a ``repr``/``str``:
those fields are declared ``repr=False`` or the class hides them.  Time (``now``) is always an
argument and randomness is injectable, so tests are deterministic.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import os
import re
import secrets
from collections import OrderedDict
from typing import Callable, Iterable, Mapping, Union
from urllib.parse import unquote

from attrs import field, frozen

from sbc.sip.errors import SipParseError
from sbc.sip.message import Message, Request

__all__ = [
    "ALGORITHMS",
    "DEFAULT_PREFERENCE",
    "AuthParams",
    "DigestChallenge",
    "DigestCredentials",
    "DigestSecret",
    "ClientCredentials",
    "NonceCounter",
    "Outcome",
    "VerifyResult",
    "DigestVerifier",
    "parse_auth_header",
    "parse_challenges",
    "parse_credentials",
    "challenges_in",
    "credentials_in",
    "format_challenge",
    "format_credentials",
    "select_challenges",
    "answer_challenge",
    "authorize",
    "digest_response",
    "compute_ha1",
]

# --------------------------------------------------------------------------- algorithms

_HASHES: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda data: hashlib.md5(data).hexdigest(),
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
}

#: Canonical algorithm names supported here (upper-case lookup key -> canonical spelling).
ALGORITHMS: dict[str, str] = {
    "MD5": "MD5",
    "MD5-SESS": "MD5-sess",
    "SHA-256": "SHA-256",
    "SHA-256-SESS": "SHA-256-sess",
}

#: Client preference when a realm offers several algorithms: strongest first.
DEFAULT_PREFERENCE: tuple[str, ...] = ("SHA-256", "SHA-256-sess", "MD5", "MD5-sess")


def _canonical_algorithm(name: str) -> str:
    return ALGORITHMS.get(name.upper(), name)


def _base(algorithm: str) -> str:
    """``SHA-256-sess`` -> ``SHA-256``."""
    return algorithm[:-5] if algorithm.endswith("-sess") else algorithm


def _hash_for(algorithm: str) -> Callable[[bytes], str]:
    try:
        return _HASHES[_base(_canonical_algorithm(algorithm))]
    except KeyError:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}") from None


def _b(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


# --------------------------------------------------------------------------- generic grammar

# RFC 7230 tchar (a superset of the RFC 3261 token characters).
_TOKEN_RE = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+")
_OWS_RE = re.compile(r"[ \t]*")
_SEP_RE = re.compile(r"[ \t,]*")  # OWS and empty list elements
_PARAM_RE = re.compile(
    r"([A-Za-z0-9!#$%&'*+\-.^_`|~]+)[ \t]*=[ \t]*"
    r"(?:\"((?:[^\"\\]|\\.)*)\"|([A-Za-z0-9!#$%&'*+\-.^_`|~]+))",
    re.S,
)
_PARAM_START_RE = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`|~]+[ \t]*=")
_TOKEN68_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_ESCAPE_RE = re.compile(r"\\(.)", re.S)
_BAD_CHARS_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_NC_RE = re.compile(r"[0-9A-Fa-f]{8}\Z")
_HEX_RE = re.compile(r"[0-9a-fA-F]+\Z")

#: (lower-case name, value) pairs of one challenge or credentials, in order.
AuthParams = tuple[tuple[str, str], ...]


def _at_item_end(value: str, pos: int) -> bool:
    pos = _OWS_RE.match(value, pos).end()  # type: ignore[union-attr]
    return pos >= len(value) or value[pos] == ","


def parse_auth_header(value: bytes | str) -> list[tuple[str, AuthParams | str]]:
    """Split a challenge/credentials header value into ``(scheme, params-or-token68)`` items.

    ``params`` is a tuple of ``(lower-case name, unescaped value)``; a token68 item
    (``Basic QWxh...``) gives the token68 string instead.  Duplicate parameter names and
    control characters inside values are refused (SipParseError).
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        text = bytes(value).decode("utf-8", "surrogateescape")
    elif isinstance(value, str):
        text = value
    else:
        raise SipParseError("authentication header must be bytes or str")
    n = len(text)
    pos = _SEP_RE.match(text, 0).end()  # type: ignore[union-attr]
    items: list[tuple[str, AuthParams | str]] = []
    while pos < n:
        m = _TOKEN_RE.match(text, pos)
        if m is None:
            raise SipParseError("malformed authentication scheme")
        scheme = m.group()
        pos = m.end()
        if pos < n and text[pos] not in " \t,":
            raise SipParseError("malformed authentication scheme")
        pos = _OWS_RE.match(text, pos).end()  # type: ignore[union-attr]
        params: list[tuple[str, str]] = []
        seen: set[str] = set()
        token68: str | None = None
        while pos < n and text[pos] != ",":
            pm = _PARAM_RE.match(text, pos)
            if pm is not None and _at_item_end(text, pm.end()):
                name = pm.group(1).lower()
                if name in seen:
                    raise SipParseError(f"duplicate auth-param {name!r}")
                seen.add(name)
                quoted = pm.group(2)
                val = _ESCAPE_RE.sub(r"\1", quoted) if quoted is not None else pm.group(3)
                if _BAD_CHARS_RE.search(val):
                    raise SipParseError("control character in auth-param")
                params.append((name, val))
                pos = pm.end()
            elif not params:
                tm = _TOKEN68_RE.match(text, pos)
                if tm is None or not _at_item_end(text, tm.end()):
                    raise SipParseError("malformed auth-param")
                token68 = tm.group()
                pos = _OWS_RE.match(text, tm.end()).end()  # type: ignore[union-attr]
                break
            else:
                raise SipParseError("malformed auth-param")
            # After one param: OWS, then end, or commas followed by a param or a new scheme.
            pos = _OWS_RE.match(text, pos).end()  # type: ignore[union-attr]
            if pos >= n:
                break
            after = _SEP_RE.match(text, pos).end()  # type: ignore[union-attr]
            if after >= n:
                pos = after
                break
            if _PARAM_START_RE.match(text, after):
                pos = after
                continue
            pos = after
            break  # a new challenge starts here
        else:
            pos = _SEP_RE.match(text, pos).end()  # type: ignore[union-attr]
        items.append((scheme, token68 if token68 is not None else tuple(params)))
        if pos < n and text[pos] == ",":
            pos = _SEP_RE.match(text, pos).end()  # type: ignore[union-attr]
    return items


def _quote(text: str) -> str:
    if _BAD_CHARS_RE.search(text):
        raise ValueError("control character in a digest parameter")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check_token(text: str) -> str:
    if not _TOKEN_RE.fullmatch(text):
        raise ValueError(f"not a token: {text!r}")
    return text


# --------------------------------------------------------------------------- challenges


@frozen
class DigestChallenge:
    """One Digest challenge.  ``proxy`` is True when it came from Proxy-Authenticate (407)."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None
    userhash: bool = False
    charset: str | None = None
    proxy: bool = False
    params: AuthParams = field(default=(), eq=False, repr=False)

    @property
    def supported(self) -> bool:
        """True if we can answer it (known algorithm; qop absent or offering auth/auth-int)."""
        if self.algorithm.upper() not in ALGORITHMS:
            return False
        return not self.qop or "auth" in self.qop or "auth-int" in self.qop

    @property
    def response_header(self) -> str:
        """Name of the header that answers this challenge."""
        return "Proxy-Authorization" if self.proxy else "Authorization"

    @property
    def header_name(self) -> str:
        """Name of the header this challenge travels in."""
        return "Proxy-Authenticate" if self.proxy else "WWW-Authenticate"


def _challenge_from(params: AuthParams, proxy: bool) -> DigestChallenge:
    d = dict(params)
    realm = d.get("realm")
    nonce = d.get("nonce")
    if realm is None or nonce is None:
        raise SipParseError("digest challenge without realm or nonce")
    qop_raw = d.get("qop")
    qop = tuple(q.strip().lower() for q in qop_raw.split(",") if q.strip()) if qop_raw else ()
    return DigestChallenge(
        realm=realm,
        nonce=nonce,
        algorithm=_canonical_algorithm(d.get("algorithm", "MD5")),
        qop=qop,
        opaque=d.get("opaque"),
        stale=d.get("stale", "").lower() == "true",
        domain=d.get("domain"),
        userhash=d.get("userhash", "").lower() == "true",
        charset=d.get("charset"),
        proxy=proxy,
        params=params,
    )


def parse_challenges(value: bytes | str, *, proxy: bool = False) -> list[DigestChallenge]:
    """Every Digest challenge in one WWW-/Proxy-Authenticate value; other schemes skipped."""
    out = []
    for scheme, params in parse_auth_header(value):
        if scheme.lower() != "digest":
            continue
        if isinstance(params, str):
            raise SipParseError("digest challenge with a token68")
        out.append(_challenge_from(params, proxy))
    return out


def challenges_in(message: Message, *, strict: bool = True) -> list[DigestChallenge]:
    """All Digest challenges of a response, WWW-Authenticate first, in header order.

    ``strict=False`` skips a header that does not parse instead of raising, so that one
    broken challenge does not hide a good one in another header.
    """
    out: list[DigestChallenge] = []
    for name, proxy in (("WWW-Authenticate", False), ("Proxy-Authenticate", True)):
        for h in message.headers_named(name):
            try:
                out.extend(parse_challenges(h.value, proxy=proxy))
            except SipParseError:
                if strict:
                    raise
    return out


def format_challenge(ch: DigestChallenge) -> bytes:
    """The header value for ``ch`` (realm, nonce, opaque, qop and domain quoted)."""
    parts = [f"realm={_quote(ch.realm)}"]
    if ch.domain is not None:
        parts.append(f"domain={_quote(ch.domain)}")
    parts.append(f"nonce={_quote(ch.nonce)}")
    if ch.opaque is not None:
        parts.append(f"opaque={_quote(ch.opaque)}")
    if ch.stale:
        parts.append("stale=true")
    parts.append(f"algorithm={_check_token(ch.algorithm)}")
    if ch.qop:
        parts.append(f"qop={_quote(','.join(ch.qop))}")
    if ch.charset is not None:
        parts.append(f"charset={_check_token(ch.charset)}")
    if ch.userhash:
        parts.append("userhash=true")
    return _b("Digest " + ", ".join(parts))


# --------------------------------------------------------------------------- credentials


@frozen
class DigestCredentials:
    """One Digest credentials value (Authorization / Proxy-Authorization).

    ``response`` (a hash over the password) is kept out of ``repr``.
    """

    username: str
    realm: str
    nonce: str
    uri: str
    response: str = field(repr=False)
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None
    userhash: bool = False
    proxy: bool = False
    params: AuthParams = field(default=(), eq=False, repr=False)

    @property
    def nc_value(self) -> int | None:
        return None if self.nc is None else int(self.nc, 16)


def _credentials_from(params: AuthParams, proxy: bool) -> DigestCredentials:
    d = dict(params)
    username = d.get("username")
    if username is None and "username*" in d:
        ext = d["username*"]
        charset, sep, rest = ext.partition("'")
        _lang, sep2, encoded = rest.partition("'")
        if not sep or not sep2 or charset.lower() != "utf-8":
            raise SipParseError("malformed username*")
        try:
            username = unquote(encoded, encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            raise SipParseError("malformed username*") from None
    missing = [k for k in ("realm", "nonce", "uri", "response") if k not in d]
    if username is None:
        missing.insert(0, "username")
    if missing:
        raise SipParseError(f"digest credentials without {', '.join(missing)}")
    qop = d.get("qop")
    nc = d.get("nc")
    cnonce = d.get("cnonce")
    if qop is not None:
        qop = qop.lower()
        if nc is None or cnonce is None:
            raise SipParseError("digest credentials with qop but without nc/cnonce")
    if nc is not None and not _NC_RE.match(nc):
        raise SipParseError("malformed nonce-count")
    assert username is not None
    return DigestCredentials(
        username=username,
        realm=d["realm"],
        nonce=d["nonce"],
        uri=d["uri"],
        response=d["response"],
        algorithm=_canonical_algorithm(d.get("algorithm", "MD5")),
        qop=qop,
        nc=nc,
        cnonce=cnonce,
        opaque=d.get("opaque"),
        userhash=d.get("userhash", "").lower() == "true",
        proxy=proxy,
        params=params,
    )


def parse_credentials(value: bytes | str, *, proxy: bool = False) -> list[DigestCredentials]:
    """Every Digest credentials in one Authorization / Proxy-Authorization value."""
    out = []
    for scheme, params in parse_auth_header(value):
        if scheme.lower() != "digest":
            continue
        if isinstance(params, str):
            raise SipParseError("digest credentials with a token68")
        out.append(_credentials_from(params, proxy))
    return out


def credentials_in(message: Message, *, proxy: bool = False) -> list[DigestCredentials]:
    """All Digest credentials in the Authorization (or Proxy-Authorization) headers."""
    out: list[DigestCredentials] = []
    for h in message.headers_named("Proxy-Authorization" if proxy else "Authorization"):
        out.extend(parse_credentials(h.value, proxy=proxy))
    return out


def format_credentials(cr: DigestCredentials) -> bytes:
    """The header value for ``cr`` (qop, nc and algorithm unquoted, as RFC 7616 §3.4 shows)."""
    parts = [
        f"username={_quote(cr.username)}",
        f"realm={_quote(cr.realm)}",
        f"nonce={_quote(cr.nonce)}",
        f"uri={_quote(cr.uri)}",
        f"response={_quote(cr.response)}",
        f"algorithm={_check_token(cr.algorithm)}",
    ]
    if cr.qop is not None:
        parts.append(f"qop={_check_token(cr.qop)}")
        parts.append(f"nc={_check_token(cr.nc or '')}")
        parts.append(f"cnonce={_quote(cr.cnonce or '')}")
    if cr.opaque is not None:
        parts.append(f"opaque={_quote(cr.opaque)}")
    if cr.userhash:
        parts.append("userhash=true")
    return _b("Digest " + ", ".join(parts))


# --------------------------------------------------------------------------- computation


def compute_ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """H(username:realm:password) for the base algorithm of ``algorithm``."""
    return _hash_for(algorithm)(_b(f"{username}:{realm}:{password}"))


def digest_response(
    algorithm: str,
    ha1: str,
    *,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The ``response`` value (RFC 7616 §3.4.1-3.4.3) from a precomputed HA1.

    For a ``-sess`` algorithm ``ha1`` is H(username:realm:password); the session key is
    derived here with ``nonce`` and ``cnonce``.
    """
    algorithm = _canonical_algorithm(algorithm)
    h = _hash_for(algorithm)
    if algorithm.endswith("-sess"):
        ha1 = h(_b(f"{ha1}:{nonce}:{cnonce or ''}"))
    if qop == "auth-int":
        ha2 = h(_b(f"{method}:{uri}:") + h(body).encode("ascii"))
    else:
        ha2 = h(_b(f"{method}:{uri}"))
    if qop:
        return h(_b(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"))
    return h(_b(f"{ha1}:{nonce}:{ha2}"))


# --------------------------------------------------------------------------- client side


@frozen
class ClientCredentials:
    """Our username and password toward one trunk; ``realm`` (if set) restricts answers to it.

    The password never shows in ``repr``/``str``.
    """

    username: str
    password: str = field(repr=False)
    realm: str | None = None


def _default_cnonce() -> str:
    return secrets.token_hex(16)


def answer_challenge(
    challenge: DigestChallenge,
    method: str,
    uri: str,
    username: str,
    password: str,
    *,
    cnonce_source: Callable[[], str],
    nc: int,
    body: bytes = b"",
) -> bytes:
    """The Authorization/Proxy-Authorization value answering ``challenge``.

    qop: ``auth`` when offered, else ``auth-int`` (hashing ``body``), else the RFC 2069 form
    without qop, nc and cnonce.  ``nc`` is the nonce-count to use (1 for a fresh nonce; see
    :class:`NonceCounter`).  Raises ValueError for a challenge we cannot answer.
    """
    if not challenge.supported:
        raise ValueError(f"cannot answer a digest challenge with algorithm {challenge.algorithm!r}")
    if not 0 < nc <= 0xFFFFFFFF:
        raise ValueError("nonce-count out of range")
    qop: str | None = None
    if challenge.qop:
        qop = "auth" if "auth" in challenge.qop else "auth-int"
    algorithm = challenge.algorithm
    h = _hash_for(algorithm)
    cnonce = cnonce_source() if (qop or algorithm.endswith("-sess")) else None
    nc_text = f"{nc:08x}" if qop else None
    ha1 = compute_ha1(algorithm, username, challenge.realm, password)
    response = digest_response(
        algorithm, ha1, nonce=challenge.nonce, method=method, uri=uri, qop=qop, nc=nc_text, cnonce=cnonce, body=body
    )
    sent_user = h(_b(f"{username}:{challenge.realm}")) if challenge.userhash else username
    creds = DigestCredentials(
        username=sent_user,
        realm=challenge.realm,
        nonce=challenge.nonce,
        uri=uri,
        response=response,
        algorithm=algorithm,
        qop=qop,
        nc=nc_text,
        cnonce=cnonce if qop else None,
        opaque=challenge.opaque,
        userhash=challenge.userhash,
    )
    value = format_credentials(creds)
    if cnonce is not None and not qop:
        # -sess without qop (RFC 2617 allowed it): the server needs our cnonce too.
        value += _b(f", cnonce={_quote(cnonce)}")
    return value


def select_challenges(
    challenges: Iterable[DigestChallenge],
    *,
    prefer: tuple[str, ...] = DEFAULT_PREFERENCE,
    realm: str | None = None,
) -> list[DigestChallenge]:
    """One challenge per (header kind, realm): the one whose algorithm ranks first in
    ``prefer`` (ties: the topmost).  Unsupported challenges, algorithms not in ``prefer``
    and, if ``realm`` is given, other realms are dropped.  Order of first appearance kept.

    RFC 8760 §2.4 lets the UAS list its preference and says the UAC SHOULD take the topmost
    supported one *unless local policy dictates otherwise*: our policy is to take the
    strongest (SHA-256 before MD5), which is what the SBC's trunks ask for.
    """
    rank = {a.upper(): i for i, a in enumerate(prefer)}
    best: dict[tuple[bool, str], DigestChallenge] = {}
    order: list[tuple[bool, str]] = []
    for ch in challenges:
        if not ch.supported or ch.algorithm.upper() not in rank:
            continue
        if realm is not None and ch.realm != realm:
            continue
        key = (ch.proxy, ch.realm)
        cur = best.get(key)
        if cur is None:
            order.append(key)
            best[key] = ch
        elif rank[ch.algorithm.upper()] < rank[cur.algorithm.upper()]:
            best[key] = ch
    return [best[k] for k in order]


class NonceCounter:
    """Nonce-count per (realm, nonce) for a client (RFC 7616 §3.4: nc counts the requests sent
    with one nonce).  At most ``limit`` nonces are remembered (the oldest forgotten)."""

    def __init__(self, limit: int = 64) -> None:
        self._counts: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._limit = limit

    def next(self, realm: str, nonce: str) -> int:
        key = (realm, nonce)
        count = self._counts.pop(key, 0) + 1
        self._counts[key] = count
        while len(self._counts) > self._limit:
            self._counts.popitem(last=False)
        return count

    def __repr__(self) -> str:
        return f"<NonceCounter nonces={len(self._counts)}>"


def authorize(
    request: Request,
    challenges: Iterable[DigestChallenge],
    credentials: ClientCredentials,
    *,
    counter: NonceCounter,
    cnonce_source: Callable[[], str] = _default_cnonce,
    prefer: tuple[str, ...] = DEFAULT_PREFERENCE,
) -> Request | None:
    """``request`` with one Authorization/Proxy-Authorization per selected challenge.

    Earlier credentials of the same kind are replaced.  The digest-uri is the Request-URI.
    Returns None when no challenge can be answered (unknown algorithm, other realm...).
    """
    chosen = select_challenges(challenges, prefer=prefer, realm=credentials.realm)
    if not chosen:
        return None
    uri = request.uri.decode("utf-8", "surrogateescape")
    values: dict[str, list[bytes]] = {"Authorization": [], "Proxy-Authorization": []}
    for ch in chosen:
        value = answer_challenge(
            ch,
            request.method,
            uri,
            credentials.username,
            credentials.password,
            cnonce_source=cnonce_source,
            nc=counter.next(ch.realm, ch.nonce),
            body=request.body,
        )
        values[ch.response_header].append(value)
    out = request
    for name, vals in values.items():
        if not vals:
            continue
        out = out.without_header(name)
        for v in vals:
            out = out.append_header(name, v)
    return out


# --------------------------------------------------------------------------- server side


class DigestSecret:
    """What the server knows about one user: a password, or HA1 values per base algorithm
    (``{"MD5": hex, "SHA-256": hex}``) so that no plain password need be stored.

    Never shows its content in ``repr``/``str``.
    """

    __slots__ = ("_password", "_ha1")

    def __init__(self, password: str | None = None, ha1: Mapping[str, str] | None = None) -> None:
        if password is None and not ha1:
            raise ValueError("a DigestSecret needs a password or HA1 values")
        self._password = password
        self._ha1 = {_canonical_algorithm(k).upper(): v.lower() for k, v in (ha1 or {}).items()}

    @classmethod
    def from_password(cls, password: str) -> DigestSecret:
        return cls(password=password)

    @classmethod
    def from_ha1(cls, ha1: Mapping[str, str]) -> DigestSecret:
        return cls(ha1=ha1)

    def ha1(self, algorithm: str, username: str, realm: str) -> str | None:
        """H(username:realm:password) for ``algorithm``'s base hash, or None if unknown."""
        base = _base(_canonical_algorithm(algorithm))
        if self._password is not None:
            return compute_ha1(base, username, realm, self._password)
        return self._ha1.get(base.upper())

    def __repr__(self) -> str:
        return "<DigestSecret (hidden)>"

    __str__ = __repr__


class Outcome(enum.Enum):
    """What :meth:`DigestVerifier.verify` found.  Suggested answers in ``status``."""

    OK = "ok"
    MISSING = "missing"  # no credentials for our realm: challenge
    MALFORMED = "malformed"  # credentials header does not parse: 400
    STALE = "stale"  # right password, expired nonce: challenge with stale=true
    INVALID_NONCE = "invalid-nonce"  # not a nonce of ours (forged, other key, bad format): challenge
    FAILED = "failed"  # unknown user or wrong response: 403
    REPLAYED = "replayed"  # nonce-count not above the highest seen: 403


@frozen
class VerifyResult:
    """Result of a verification.  ``reason`` is safe to log (no secrets, no hashes)."""

    outcome: Outcome
    reason: str
    username: str | None = None
    algorithm: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK

    @property
    def stale(self) -> bool:
        return self.outcome is Outcome.STALE

    @property
    def needs_challenge(self) -> bool:
        """True when the right answer is a fresh 401/407 challenge."""
        return self.outcome in (Outcome.MISSING, Outcome.STALE, Outcome.INVALID_NONCE)

    def status(self, challenge_code: int = 401) -> int | None:
        """Suggested response status: None if OK, the challenge code, 400 or 403."""
        if self.ok:
            return None
        if self.needs_challenge:
            return challenge_code
        if self.outcome is Outcome.MALFORMED:
            return 400
        return 403


CredentialLookup = Callable[[str, str], Union[DigestSecret, str, None]]

_NONCE_MAC_LEN = 16
_NONCE_RAND_LEN = 12
_NONCE_BYTES = 8 + _NONCE_RAND_LEN + _NONCE_MAC_LEN
_MAX_CLOCK_SKEW = 5.0
_MAX_CREDENTIALS_TRIED = 4  # per request: bounds the hashing work one message can cause


class DigestVerifier:
    """Server-side digest for one realm.

    ``credentials(username, realm)`` returns a :class:`DigestSecret` (or a plain password
    string) or None for an unknown user.  ``secret`` keys the HMAC that protects nonces (at
    least 16 bytes; share it between processes that must accept each other's nonces).

    Nonce: base64url(issue time in whole seconds (8 bytes) | random (12 bytes) | first 16
    bytes of HMAC-SHA-256(secret, realm | time | random)).  Nothing is stored when a nonce is
    issued.  A nonce older than ``nonce_ttl`` is *stale*.

    Replay protection: for each nonce used at least once, the highest nonce-count accepted
    and its expiry are kept, so a request must carry an nc above it.  At most ``max_nonces``
    nonces are tracked: expired entries are purged first; if still full, the least recently
    used entry is evicted.  Every untracked nonce issued at or before the time of a purged or
    evicted one is thereafter answered as stale (the client simply retries with a fresh
    nonce), so neither eviction nor a clock stepping back can reopen a replay window.  At most
    four credentials per request are examined.

    Credentials without qop (RFC 2069) are refused: without nc there is no replay protection.
    """

    def __init__(
        self,
        realm: str,
        credentials: CredentialLookup,
        secret: bytes,
        *,
        nonce_ttl: float = 300.0,
        algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
        qop: tuple[str, ...] = ("auth",),
        max_nonces: int = 10_000,
        check_uri: bool = True,
        random_bytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the nonce secret must be at least 16 bytes")
        for a in algorithms:
            if a.upper() not in ALGORITHMS:
                raise ValueError(f"unsupported digest algorithm {a!r}")
        for q in qop:
            if q not in ("auth", "auth-int"):
                raise ValueError(f"unsupported qop {q!r}")
        if nonce_ttl <= 0 or max_nonces < 1:
            raise ValueError("nonce_ttl and max_nonces must be positive")
        self.realm = realm
        self._lookup = credentials
        self._key = bytes(secret)
        self.nonce_ttl = float(nonce_ttl)
        self.algorithms = tuple(_canonical_algorithm(a) for a in algorithms)
        self.qop = tuple(qop)
        self.max_nonces = max_nonces
        self.check_uri = check_uri
        self._random = random_bytes
        # nonce -> (highest nc accepted, issue time); ordered least recently used first.
        self._seen: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._floor: int | None = None  # untracked nonces issued at or before this are stale
        self._next_sweep = float("-inf")

    def __repr__(self) -> str:
        return f"<DigestVerifier realm={self.realm!r} algorithms={self.algorithms!r} tracked={len(self._seen)}>"

    __str__ = __repr__

    # ---- nonces

    def _mac(self, body: bytes) -> bytes:
        msg = b"sbc-digest-nonce\x00" + _b(self.realm) + b"\x00" + body
        return hmac.new(self._key, msg, hashlib.sha256).digest()[:_NONCE_MAC_LEN]

    def make_nonce(self, now: float) -> str:
        """A fresh nonce stamped with ``now``."""
        rand = self._random(_NONCE_RAND_LEN)
        if len(rand) != _NONCE_RAND_LEN:
            raise ValueError("random_bytes returned the wrong length")
        body = int(now).to_bytes(8, "big", signed=False) + rand
        return base64.urlsafe_b64encode(body + self._mac(body)).decode("ascii").rstrip("=")

    def _nonce_time(self, nonce: str) -> int | None:
        """The issue time of a nonce of ours, or None if it is not one (constant-time MAC check)."""
        if len(nonce) != 48:
            return None
        try:
            raw = base64.urlsafe_b64decode(nonce.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            return None
        if len(raw) != _NONCE_BYTES or base64.urlsafe_b64encode(raw).decode("ascii") != nonce:
            return None  # only the canonical spelling: one nonce, one replay-table key
        body, tag = raw[:-_NONCE_MAC_LEN], raw[-_NONCE_MAC_LEN:]
        if not hmac.compare_digest(tag, self._mac(body)):
            return None
        return int.from_bytes(body[:8], "big")

    # ---- challenges

    def challenge(
        self,
        response_code: int = 401,
        algorithms: tuple[str, ...] | None = None,
        *,
        now: float,
        stale: bool = False,
    ) -> list[tuple[str, bytes]]:
        """``(header name, value)`` pairs for a 401 (WWW-Authenticate) or 407
        (Proxy-Authenticate) response, one challenge per algorithm in preference order, all
        sharing one fresh nonce.  Feed them to ``make_response(..., headers=...)``."""
        if response_code not in (401, 407):
            raise ValueError("digest challenges go in 401 or 407 responses")
        algs = self.algorithms if algorithms is None else tuple(_canonical_algorithm(a) for a in algorithms)
        for a in algs:
            if a not in self.algorithms:
                raise ValueError(f"algorithm {a!r} is not enabled on this verifier")
        name = "WWW-Authenticate" if response_code == 401 else "Proxy-Authenticate"
        nonce = self.make_nonce(now)
        return [
            (
                name,
                format_challenge(
                    DigestChallenge(
                        realm=self.realm, nonce=nonce, algorithm=a, qop=self.qop, stale=stale, proxy=response_code == 407
                    )
                ),
            )
            for a in algs
        ]

    # ---- verification

    def verify(self, request: Request, now: float, *, proxy: bool = False) -> VerifyResult:
        """Check the request's (Proxy-)Authorization for our realm.  Never raises on bad input."""
        try:
            found = credentials_in(request, proxy=proxy)
        except SipParseError as e:
            return VerifyResult(Outcome.MALFORMED, f"unparsable credentials: {e.reason}")
        ours = [c for c in found if c.realm == self.realm][:_MAX_CREDENTIALS_TRIED]
        if not ours:
            return VerifyResult(Outcome.MISSING, "no credentials for our realm")
        # Several credentials for one realm (one per offered algorithm, say): try the ones we
        # accept, in order; report the first failure if none is good.
        first: VerifyResult | None = None
        for cr in ours:
            result = self._verify_one(cr, request, now)
            if result.ok:
                return result
            if first is None:
                first = result
        assert first is not None
        return first

    def _verify_one(self, cr: DigestCredentials, request: Request, now: float) -> VerifyResult:
        user = cr.username
        algorithm = cr.algorithm

        def fail(outcome: Outcome, reason: str) -> VerifyResult:
            return VerifyResult(outcome, reason, user, algorithm)

        if algorithm not in self.algorithms:
            return fail(Outcome.FAILED, f"algorithm {algorithm} not accepted")
        if cr.qop is None:
            return fail(Outcome.FAILED, "credentials without qop refused")
        if cr.qop not in self.qop:
            return fail(Outcome.FAILED, f"qop {cr.qop} not offered")
        if cr.userhash:
            return fail(Outcome.FAILED, "userhash not offered")
        assert cr.nc is not None and cr.cnonce is not None
        nc = int(cr.nc, 16)
        if nc == 0:
            return fail(Outcome.FAILED, "nonce-count zero")
        if self.check_uri and cr.uri != request.uri.decode("utf-8", "surrogateescape"):
            return fail(Outcome.FAILED, "digest-uri does not match the Request-URI")
        issued = self._nonce_time(cr.nonce)
        if issued is None or issued > now + _MAX_CLOCK_SKEW:
            return fail(Outcome.INVALID_NONCE, "nonce not issued by us")
        # Response check (constant time), with a dummy secret for unknown users.
        secret = self._lookup(user, self.realm)
        if isinstance(secret, str):
            secret = DigestSecret(password=secret)
        ha1 = secret.ha1(algorithm, user, self.realm) if secret is not None else None
        known = ha1 is not None
        if ha1 is None:
            ha1 = _hash_for(algorithm)(self._random(16))
        expected = digest_response(
            algorithm,
            ha1,
            nonce=cr.nonce,
            method=request.method,
            uri=cr.uri,
            qop=cr.qop,
            nc=cr.nc,
            cnonce=cr.cnonce,
            body=request.body,
        )
        given = _b(cr.response.lower())
        if not hmac.compare_digest(_b(expected), given) or not known:
            return fail(Outcome.FAILED, "unknown user or wrong response")
        if now - issued > self.nonce_ttl:
            return fail(Outcome.STALE, "nonce expired")
        return self._check_count(cr.nonce, issued, nc, now, user, algorithm)

    def _check_count(self, nonce: str, issued: int, nc: int, now: float, user: str, algorithm: str) -> VerifyResult:
        seen = self._seen
        entry = seen.get(nonce)
        if entry is None:
            if self._floor is not None and issued <= self._floor:
                return VerifyResult(Outcome.STALE, "nonce no longer tracked", user, algorithm)
        elif nc <= entry[0]:
            return VerifyResult(Outcome.REPLAYED, f"nonce-count {nc} not above {entry[0]}", user, algorithm)
        seen[nonce] = (nc, issued)
        seen.move_to_end(nonce)
        self._purge(now)
        return VerifyResult(Outcome.OK, "authenticated", user, algorithm)

    def _purge(self, now: float) -> None:
        seen = self._seen
        ttl = self.nonce_ttl
        # Expired entries can be dropped freely: the time check refuses their nonces anyway.
        # A full sweep runs at most every ttl/4 seconds, or when the table is full.
        if now >= self._next_sweep or len(seen) > self.max_nonces:
            self._next_sweep = now + ttl / 4
            for key in [k for k, (_nc, t) in seen.items() if now - t > ttl]:
                _nc, issued = seen.pop(key)
                # Should the clock step back, a purged nonce must not become usable again.
                self._raise_floor(issued)
        while len(seen) > self.max_nonces:
            _key, (_nc, issued) = seen.popitem(last=False)
            self._raise_floor(issued)

    def _raise_floor(self, issued: int) -> None:
        if self._floor is None or issued > self._floor:
            self._floor = issued

    @property
    def tracked(self) -> int:
        """Number of nonces whose nonce-count is being tracked."""
        return len(self._seen)

