# -*- test-case-name: tests.test_sip_uri -*-
"""SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966; IPv6 references per RFC 5118).

Text is decoded as latin-1 so that every byte survives a round trip; %-escapes are kept as
they were written (``user`` is still escaped).  Other schemes are kept opaque.
"""

from __future__ import annotations

import functools

import re

import attrs
from attrs import field, frozen

from sbc.sip.errors import SipParseError

__all__ = ["URI", "parse_uri", "unescape"]

_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*\Z")
# Characters that may never appear in a URI as written in a message.
_FORBIDDEN_RE = re.compile(r'[\x00-\x20\x7f<>"]')
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_\-.]*[A-Za-z0-9_\-])?\.?\Z")
_IPV6_RE = re.compile(r"\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\]\Z")
_PORT_RE = re.compile(r"[0-9]{1,5}\Z")
_ESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})")
_BAD_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_PARAM_NAME_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()%\[\]/:&+$]+\Z")
_PARAM_VALUE_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()%\[\]/:&+$]*\Z")
_HEADER_PART_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()%\[\]/?:+$]*\Z")
_USER_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()%&=+$,;?/#]+\Z")  # "#" is not RFC 3261 but common (*21#)
_PASSWORD_RE = re.compile(r"[A-Za-z0-9\-_.!~*'()%&=+$,]*\Z")
_TEL_NUMBER_RE = re.compile(r"[0-9A-Fa-f*#+\-.()pPwW]+\Z")


def unescape(text: str) -> str:
    """Resolve %HH escapes (latin-1), e.g. for comparing user parts."""
    if "%" not in text:
        return text
    return _ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), text)


def _check_host(host: str) -> None:
    if not host:
        raise SipParseError("empty host in URI")
    if host[0] == "[":
        if not _IPV6_RE.match(host):
            raise SipParseError("bad IPv6 reference in URI")
    elif not _HOSTNAME_RE.match(host):
        raise SipParseError("bad host in URI")


def _parse_port(text: str) -> int:
    if not _PORT_RE.match(text):
        raise SipParseError("bad port in URI")
    port = int(text)
    if port > 65535:
        raise SipParseError("port out of range in URI")
    return port


def split_hostport(text: str) -> tuple[str, int | None]:
    """``host[:port]`` with IPv6 references kept bracketed; raises on bad syntax."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError("unterminated IPv6 reference")
        host = text[: end + 1]
        rest = text[end + 1 :]
        if rest:
            if rest[0] != ":":
                raise SipParseError("junk after IPv6 reference")
            port: int | None = _parse_port(rest[1:])
        else:
            port = None
    else:
        host, sep, port_text = text.partition(":")
        port = _parse_port(port_text) if sep else None
    _check_host(host)
    return host, port


def _parse_params(text: str) -> tuple[tuple[str, str | None], ...]:
    params = []
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if not _PARAM_NAME_RE.match(name):
            raise SipParseError("bad URI parameter")
        if eq:
            if not value or not _PARAM_VALUE_RE.match(value):
                raise SipParseError("bad URI parameter value")
            params.append((name, value))
        else:
            params.append((name, None))
    return tuple(params)


def _parse_headers(text: str) -> tuple[tuple[str, str], ...]:
    headers = []
    for item in text.split("&"):
        name, eq, value = item.partition("=")
        if not name or not eq or not _HEADER_PART_RE.match(name) or not _HEADER_PART_RE.match(value):
            raise SipParseError("bad URI header")
        headers.append((name, value))
    return tuple(headers)


def _format_params(params: tuple[tuple[str, str | None], ...]) -> str:
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)


def _replace_param(
    params: tuple[tuple[str, str | None], ...], name: str, value: str | None
) -> tuple[tuple[str, str | None], ...]:
    lname = name.lower()
    out: list[tuple[str, str | None]] = []
    done = False
    for n, v in params:
        if n.lower() == lname:
            if not done:
                out.append((n, value))
                done = True
        else:
            out.append((n, v))
    if not done:
        out.append((name, value))
    return tuple(out)


def _get_param(params: tuple[tuple[str, str | None], ...], name: str) -> str | None:
    lname = name.lower()
    for n, v in params:
        if n.lower() == lname:
            return "" if v is None else v
    return None


@frozen
class URI:
    """A parsed URI.  ``host`` keeps IPv6 brackets; ``user`` stays %-escaped."""

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    opaque: str | None = None
    #: The bytes of this (immutable) URI, made by the first to_bytes(): the URIs of a trunk's
    #: targets, peers and memoised parses are written into message after message.
    _bytes: bytes | None = field(init=False, default=None, eq=False, hash=False, repr=False)

    def param(self, name: str) -> str | None:
        """Value of a URI parameter (case-insensitive name); "" if present without value."""
        return _get_param(self.params, name)

    def has_param(self, name: str) -> bool:
        lname = name.lower()
        return any(n.lower() == lname for n, _ in self.params)

    def with_param(self, name: str, value: str | None) -> URI:
        return attrs.evolve(self, params=_replace_param(self.params, name, value))

    def without_param(self, name: str) -> URI:
        lname = name.lower()
        return attrs.evolve(self, params=tuple(p for p in self.params if p[0].lower() != lname))

    def with_host(self, host: str, port: int | None = None) -> URI:
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return attrs.evolve(self, host=host, port=port)

    def with_user(self, user: str | None) -> URI:
        return attrs.evolve(self, user=user)

    @property
    def transport(self) -> str | None:
        value = self.param("transport")
        return value.lower() if value else None

    @property
    def is_sip(self) -> bool:
        return self.scheme in ("sip", "sips")

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        if self.scheme == "tel":
            return f"tel:{self.user or ''}{_format_params(self.params)}"
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(self.host)
        if self.port is not None:
            out.append(f":{self.port}")
        out.append(_format_params(self.params))
        if self.headers:
            out.append("?" + "&".join(f"{n}={v}" for n, v in self.headers))
        return "".join(out)

    def to_bytes(self) -> bytes:
        data = self._bytes
        if data is None:
            data = str(self).encode("latin-1")
            object.__setattr__(self, "_bytes", data)
        return data


def parse_uri(data: bytes | str) -> URI:
    """Parse a sip:, sips:, tel: or other absolute URI.  Raises :class:`SipParseError`.

    Results are memoised (URIs are immutable values): the same Request-URIs, To URIs and
    peer URIs recur in nearly every message of a trunk, and its retransmissions.
    """
    if type(data) is bytes or type(data) is str:
        return _parse_uri_cached(data)
    raise SipParseError("URI must be bytes or str")


@functools.lru_cache(maxsize=4096)
def _parse_uri_cached(data: bytes | str) -> URI:
    if isinstance(data, bytes):
        text = data.decode("latin-1")
    elif isinstance(data, str):
        text = data
    else:
        raise SipParseError("URI must be bytes or str")
    scheme, colon, rest = text.partition(":")
    if not colon or not _SCHEME_RE.match(scheme):
        raise SipParseError("URI without a scheme")
    if _FORBIDDEN_RE.search(rest):
        raise SipParseError("illegal character in URI")
    if not rest:
        raise SipParseError("empty URI")
    scheme = scheme.lower()
    if scheme in ("sip", "sips"):
        return _parse_sip(scheme, rest)
    if scheme == "tel":
        number, _, params = rest.partition(";")
        if not _TEL_NUMBER_RE.match(number):
            raise SipParseError("bad tel number")
        return URI("tel", user=number, params=_parse_params(params) if params else ())
    return URI(scheme, opaque=rest)


def _parse_sip(scheme: str, rest: str) -> URI:
    if _BAD_ESCAPE_RE.search(rest):
        raise SipParseError("bad %-escape in URI")
    user = password = None
    at = rest.find("@")
    if at >= 0:
        userinfo = rest[:at]
        rest = rest[at + 1 :]
        user, colon, pw = userinfo.partition(":")
        if not _USER_RE.match(user):
            raise SipParseError("bad user part in URI")
        if colon:
            if not _PASSWORD_RE.match(pw):
                raise SipParseError("bad password in URI")
            password = pw
    hdrs: tuple[tuple[str, str], ...] = ()
    qmark = rest.find("?")
    if qmark >= 0:
        hdrs = _parse_headers(rest[qmark + 1 :])
        rest = rest[:qmark]
    params: tuple[tuple[str, str | None], ...] = ()
    semi = rest.find(";")
    if semi >= 0:
        params = _parse_params(rest[semi + 1 :])
        rest = rest[:semi]
    host, port = split_hostport(rest)
    return URI(scheme, user, password, host, port, params, hdrs)
