# -*- test-case-name: tests.test_sip_message -*-
"""SIP requests and responses (RFC 3261 §7, §8.2.6, §20, §25), sans-IO.

Parsing is lazy: :func:`parse_message` only splits the start line and the header lines and
frames the body; header values are parsed when a view (``vias``, ``cseq``, ``from_``...) is
first read, and the result is cached on the (immutable) message.  A parsed message keeps its
original bytes, so ``to_bytes()`` of an untouched message returns them unchanged; every
rewrite returns a new message whose untouched headers keep their raw bytes and positions.

Liberal reading, on purpose (all documented in the tests):

* a datagram whose lines end in bare LF (no CR anywhere in the header block) is accepted and
  still serialises byte-identical; a CRLF header block with a bare CR or LF inside is a 400;
* a datagram whose header block ends without the empty line (data ends in CRLF) is read as
  a message without body;
* ``top_via`` only parses the first via-parm, so a 400 can be routed even when a later Via
  value is malformed; ``received=`` accepts an IPv6 address with or without brackets
  (RFC 5118 §4.5); spaces inside ``<...>`` of a name-addr are ignored (RFC 4475 badaspec).

Extensions beyond the written contract: ``Header`` accepts a str value and refuses CR/LF
(ValueError); ``with_body(b"")`` without a content type also drops Content-Type;
``salvage_error_response(..., to_tag=...)``; ``reason_phrase()``; ``parse_cseq()``;
``Request.with_uri()``; ``NameAddr.without_param/with_uri``; ``Via.param/without_param``.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Callable, Iterable, TypeVar

import attrs
from attrs import field, frozen

from sbc.sip.errors import SipParseError
from sbc.sip.headers import (
    MULTI_VALUE,
    canonical_name,
    first_value,
    header_key,
    is_token,
    replace_keyed,
    split_values,
)
from sbc.sip.uri import URI, _get_param, _replace_param, parse_uri

__all__ = [
    "Header",
    "NameAddr",
    "Via",
    "CSeq",
    "Message",
    "Request",
    "Response",
    "parse_name_addr",
    "parse_via",
    "parse_cseq",
    "parse_message",
    "validate_request",
    "validate_response",
    "make_response",
    "salvage_error_response",
    "REASON_PHRASES",
]

#: RFC 3261 §21 plus the common extension codes.
REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    430: "Flow Failed",
    433: "Anonymity Disallowed",
    436: "Bad Identity-Info",
    437: "Unsupported Certificate",
    438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded",
    469: "Bad Info Package",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    555: "Push Notification Service Not Supported",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
    608: "Rejected",
}

_CLASS_PHRASES = {1: "Trying", 2: "OK", 3: "Redirection", 4: "Client Error", 5: "Server Error", 6: "Global Failure"}


def reason_phrase(status: int) -> str:
    """The standard reason phrase of ``status`` (or a generic one for its class)."""
    return REASON_PHRASES.get(status) or _CLASS_PHRASES.get(status // 100, "Unknown")


# --------------------------------------------------------------------------- low-level grammar

_TOKEN = rb"[A-Za-z0-9\-.!%*_+`'~]+"
_LWS = rb"[ \t]*"
_QUOTED = rb'"(?:[^"\\]|\\[\x00-\xff])*"'
_QUOTED_RE = re.compile(_QUOTED)
# A generic parameter: ; name [ = value ], value a token/host (incl. [v6] and v6 without
# brackets, as RFC 5118 §4.5 needs for received=) or a quoted string.
_PARAM_RE = re.compile(
    _LWS + rb";" + _LWS + rb"(" + _TOKEN + rb")(?:" + _LWS + rb"=" + _LWS
    + rb"(" + _QUOTED + rb"|[A-Za-z0-9\-.!%*_+`'~:\[\]/]+))?"
)
_DISPLAY_TOKENS_RE = re.compile(_LWS + rb"(?:" + _TOKEN + rb"(?:[ \t]+" + _TOKEN + rb")*)?" + _LWS + rb"\Z")
_VIA_RE = re.compile(
    _LWS + rb"(" + _TOKEN + rb")" + _LWS + rb"/" + _LWS + rb"(" + _TOKEN + rb")" + _LWS + rb"/" + _LWS
    + rb"(" + _TOKEN + rb")[ \t]+(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._]+)(?:" + _LWS + rb":" + _LWS
    + rb"([0-9]{1,5}))?"
)
_CSEQ_RE = re.compile(_LWS + rb"([0-9]+)[ \t]+(" + _TOKEN + rb")" + _LWS + rb"\Z")
_DIGITS_RE = re.compile(rb"[ \t]*([0-9]+)[ \t]*\Z")
_VERSION_RE = re.compile(rb"[Ss][Ii][Pp]/[0-9]{1,3}\.[0-9]{1,3}\Z")
_STATUS_RE = re.compile(rb"([Ss][Ii][Pp]/[0-9]{1,3}\.[0-9]{1,3}) ([1-6][0-9][0-9])(?: (.*))?\Z", re.S)
_IP_RECEIVED_RE = re.compile(r"\[?[0-9A-Fa-f:.]+\]?\Z")
_ESCAPED_CHAR_RE = re.compile(rb"\\([\x00-\xff])")
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9_\-.]+\Z|\[[0-9A-Fa-f:.]+\]\Z")
_CALL_ID_BAD_RE = re.compile(rb"[\x00-\x20\x7f]")

_Params = tuple[tuple[str, str | None], ...]


def _parse_params(value: bytes, pos: int) -> _Params:
    """Parse ``*( SEMI generic-param )`` from ``pos`` to the end of ``value``."""
    params = []
    n = len(value)
    match = _PARAM_RE.match
    while pos < n:
        m = match(value, pos)
        if m is None:
            if value[pos:].strip(b" \t"):
                raise SipParseError("malformed header parameters")
            break
        name, val = m.group(1, 2)
        params.append((name.decode("latin-1"), None if val is None else val.decode("latin-1")))
        pos = m.end()
    return tuple(params)


def _format_params(params: _Params) -> bytes:
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params).encode("latin-1")


def _unquote(quoted: bytes) -> str:
    inner = quoted[1:-1]
    if b"\\" in inner:
        inner = _ESCAPED_CHAR_RE.sub(rb"\1", inner)
    return inner.decode("utf-8", "surrogateescape")


def _quote(text: str) -> bytes:
    data = text.encode("utf-8", "surrogateescape")
    return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _to_bytes_value(value: bytes | str) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, bytes):
        value = bytes(value)
    return value


# --------------------------------------------------------------------------- value types


_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization"})


@frozen(repr=False, init=False)
class Header:
    """One header line.  ``raw`` is the line(s) exactly as received, None if built in code or
    received exactly as ``to_bytes()`` writes it (``Name: value``, the usual spelling).

    Built in code, ``value`` may be given as str (UTF-8 encoded); CR and LF are refused
    (ValueError) so that no rewrite can inject header lines.  ``repr()`` hides the value of
    credential headers, so a header logged by accident leaks no digest response.

    ``key`` (the lower-case long form of the name) is worked out once, when the header is
    made: every lookup, filter and copy of a message's headers compares it.
    """

    name: str
    value: bytes
    raw: bytes | None = None
    key: str = field(default="", init=False, eq=False, hash=False)

    def __init__(self, name: str, value: bytes | str, raw: bytes | None = None) -> None:
        data = value if type(value) is bytes else _to_bytes_value(value)
        if b"\r" in data or b"\n" in data:
            raise ValueError("header value must not contain CR or LF")
        _set_name(self, name)
        _set_value(self, data)
        _set_raw(self, raw)
        _set_key(self, header_key(name))

    def __repr__(self) -> str:
        if self.key in _SECRET_HEADERS:
            return f"Header(name={self.name!r}, value=<redacted>)"
        return f"Header(name={self.name!r}, value={self.value!r})"

    def to_bytes(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return self.name.encode("latin-1") + b": " + self.value


# Slot descriptors of the frozen Header: its __init__ and the parser fill instances through
# them (a frozen class refuses plain assignment).
_set_name = Header.__dict__["name"].__set__
_set_value = Header.__dict__["value"].__set__
_set_raw = Header.__dict__["raw"].__set__
_set_key = Header.__dict__["key"].__set__


def preparsed(message: _M, **views: Any) -> _M:
    """``message``, just built, given the parsed views of what it was built from (``from_``,
    ``to``, ``call_id``, ``cseq``, ``top_via``...): the values parsing its own headers would
    give, so that nothing we send is parsed back by the layers below."""
    message._cache.update(views)
    return message


def trusted_header(name: str, key: str, value: bytes) -> Header:
    """A Header from parts already known good: ``name`` canonical, ``key`` its header_key,
    ``value`` bytes without CR or LF (the builders of our own messages, which copy values
    from parsed headers or format them from parsed views)."""
    h = _new(Header)
    _set_name(h, name)
    _set_value(h, value)
    _set_raw(h, None)
    _set_key(h, key)
    return h


@frozen
class NameAddr:
    """name-addr / addr-spec with header parameters (From, To, Contact, Route ...)."""

    display: str | None
    uri: URI
    params: _Params = ()
    bracketed: bool = True

    @property
    def tag(self) -> str | None:
        return _get_param(self.params, "tag")

    def param(self, name: str) -> str | None:
        return _get_param(self.params, name)

    def with_param(self, name: str, value: str | None) -> NameAddr:
        return NameAddr(self.display, self.uri, _replace_param(self.params, name, value), self.bracketed)

    def without_param(self, name: str) -> NameAddr:
        lname = name.lower()
        return NameAddr(self.display, self.uri, tuple(p for p in self.params if p[0].lower() != lname), self.bracketed)

    def with_tag(self, tag: str) -> NameAddr:
        return self.with_param("tag", tag)

    def with_uri(self, uri: URI) -> NameAddr:
        return NameAddr(self.display, uri, self.params, self.bracketed)

    def to_bytes(self) -> bytes:
        uri = self.uri.to_bytes()
        if self.bracketed or self.display is not None or self.params or self.uri.params or self.uri.headers:
            out = b"<" + uri + b">"
            if self.display is not None:
                out = _quote(self.display) + b" " + out
        else:
            out = uri
        return out + _format_params(self.params)


def parse_name_addr(value: bytes) -> NameAddr:
    """Parse ``[display] <uri> *(;param)`` or ``addr-spec *(;param)``.

    Memoised like :func:`~sbc.sip.uri.parse_uri`: To, From and Contact values repeat across a
    dialog's messages and retransmissions, and a NameAddr is an immutable value.
    """
    if type(value) is not bytes:
        value = bytes(value)
    # A tag is new in every dialog, so whole values rarely repeat across calls; the part
    # before a final ``;tag=token`` does (the same trunk user, the same agent URI).  The tag
    # is parsed here and the rest comes from the memo -- the same NameAddr a whole parse gives.
    cut = value.rfind(b";tag=")
    if cut > 0:
        tag = value[cut + 5 :]
        if _TAG_RE.match(tag) is not None:
            base = _parse_name_addr_cached(value[:cut])
            return NameAddr(base.display, base.uri, (*base.params, ("tag", tag.decode("latin-1"))),
                            base.bracketed)
    return _parse_name_addr_cached(value)


_TAG_RE = re.compile(rb"[A-Za-z0-9\-.!%*_+`'~]+\Z")


@functools.lru_cache(maxsize=4096)
def _parse_name_addr_cached(value: bytes) -> NameAddr:
    v = value.strip(b" \t")
    if not v:
        raise SipParseError("empty address")
    display: str | None = None
    if v[0] == 0x22:  # '"'
        m = _QUOTED_RE.match(v)
        if m is None:
            raise SipParseError("unterminated quoted display name")
        display = _unquote(m.group(0))
        lt = m.end()
        while lt < len(v) and v[lt] in (0x20, 0x09):
            lt += 1
        if lt >= len(v) or v[lt] != 0x3C:
            raise SipParseError("display name without <uri>")
    else:
        lt = v.find(b"<")
        if lt >= 0:
            prefix = v[:lt]
            if not _DISPLAY_TOKENS_RE.match(prefix):
                # Not a display name: either an addr-spec with "<" in a parameter, or junk.
                semi = v.find(b";")
                if 0 <= semi < lt:
                    lt = -1
                else:
                    raise SipParseError("bad display name")
            else:
                text = prefix.strip(b" \t")
                display = text.decode("utf-8", "surrogateescape") if text else None
    if lt >= 0:
        gt = v.find(b">", lt)
        if gt < 0:
            raise SipParseError("unterminated <")
        uri = parse_uri(v[lt + 1 : gt].strip(b" \t"))
        return NameAddr(display, uri, _parse_params(v, gt + 1), True)
    semi = v.find(b";")
    spec = v if semi < 0 else v[:semi].rstrip(b" \t")
    if b"?" in spec or b"," in spec:
        raise SipParseError("addr-spec with '?' or ',' must be a name-addr")
    uri = parse_uri(spec)
    return NameAddr(None, uri, _parse_params(v, semi) if semi >= 0 else (), False)


@frozen
class Via:
    """One via-parm.  ``host`` keeps IPv6 brackets."""

    transport: str
    host: str
    port: int | None = None
    params: _Params = ()

    def param(self, name: str) -> str | None:
        return _get_param(self.params, name)

    @property
    def branch(self) -> str | None:
        return _get_param(self.params, "branch")

    @property
    def received(self) -> str | None:
        return _get_param(self.params, "received")

    @property
    def rport(self) -> str | None:
        return _get_param(self.params, "rport")

    @property
    def maddr(self) -> str | None:
        return _get_param(self.params, "maddr")

    @property
    def ttl(self) -> str | None:
        return _get_param(self.params, "ttl")

    def with_param(self, name: str, value: str | None) -> Via:
        return Via(self.transport, self.host, self.port, _replace_param(self.params, name, value))

    def without_param(self, name: str) -> Via:
        lname = name.lower()
        return Via(self.transport, self.host, self.port, tuple(p for p in self.params if p[0].lower() != lname))

    def to_bytes(self) -> bytes:
        hostport = self.host if self.port is None else f"{self.host}:{self.port}"
        return f"SIP/2.0/{self.transport} {hostport}".encode("latin-1") + _format_params(self.params)


def parse_via(value: bytes) -> Via:
    """Parse one via-parm (``SIP/2.0/UDP host:port;branch=...``).

    Memoised around the branch: a peer's via-parms differ only in it, so the rest is parsed
    once (with a stand-in branch) and the branch, checked to be a token, put in its place.
    """
    start = value.find(b";branch=")
    if start > 0:
        cut = start + 8
        end = value.find(b";", cut)
        branch = value[cut:] if end < 0 else value[cut:end]
        if _BRANCH_RE.match(branch) is not None:
            rest = b"" if end < 0 else value[end:]
            base = _parse_via_cached(value[:cut] + _STAND_IN + rest)
            text = branch.decode("latin-1")
            return Via(base.transport, base.host, base.port,
                       tuple((n, text) if v == _STAND_IN_TEXT and n == "branch" else (n, v) for n, v in base.params))
    return _parse_via(value)


_BRANCH_RE = re.compile(rb"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_STAND_IN = b"z9hG4bK.sbc-stand-in"
_STAND_IN_TEXT = _STAND_IN.decode("latin-1")


@functools.lru_cache(maxsize=1024)
def _parse_via_cached(value: bytes) -> Via:
    return _parse_via(value)


def _parse_via(value: bytes) -> Via:
    m = _VIA_RE.match(value)
    if m is None:
        raise SipParseError("malformed Via")
    transport = m.group(3).decode("latin-1").upper()
    host = m.group(4).decode("latin-1")
    port_b = m.group(5)
    port = None
    if port_b is not None:
        port = int(port_b)
        if port > 65535:
            raise SipParseError("Via port out of range")
    params = _parse_params(value, m.end())
    for name, val in params:
        lname = name.lower()
        if lname == "branch":
            if not val or not is_token(val):
                raise SipParseError("bad Via branch")
        elif lname == "received":
            if not val or not _IP_RECEIVED_RE.match(val):
                raise SipParseError("bad Via received")
        elif lname == "rport":
            if val and (not val.isdigit() or len(val) > 5 or int(val) > 65535):
                raise SipParseError("bad Via rport")
        elif lname == "ttl":
            if not val or not val.isdigit() or len(val) > 3 or int(val) > 255:
                raise SipParseError("bad Via ttl")
        elif lname == "maddr":
            if not val or not _HOSTNAME_RE.match(val):
                raise SipParseError("bad Via maddr")
    return Via(transport, host, port, params)


@frozen
class CSeq:
    seq: int
    method: str

    def to_bytes(self) -> bytes:
        return f"{self.seq} {self.method}".encode("latin-1")


def parse_cseq(value: bytes) -> CSeq:
    m = _CSEQ_RE.match(value)
    if m is None:
        raise SipParseError("malformed CSeq")
    digits = m.group(1)
    if len(digits) > 10 or int(digits) > 2**31 - 1:
        raise SipParseError("CSeq number out of range")
    return CSeq(int(digits), m.group(2).decode("latin-1"))


def _parse_uint(value: bytes, what: str, limit: int) -> int:
    m = _DIGITS_RE.match(value)
    if m is None:
        raise SipParseError(f"malformed {what}")
    digits = m.group(1)
    if len(digits) > 12 or int(digits) > limit:
        raise SipParseError(f"{what} out of range")
    return int(digits)


# --------------------------------------------------------------------------- messages

_T = TypeVar("_T")
_M = TypeVar("_M", bound="Message")


_MISSING: Any = object()


def _cached(fn: Callable[[Any], _T]) -> property:
    name = fn.__name__

    def getter(self: Any) -> _T:
        cache = self._cache
        value = cache.get(name, _MISSING)
        if value is not _MISSING:
            return value  # type: ignore[no-any-return]
        value = fn(self)
        cache[name] = value
        return value

    getter.__name__ = name
    getter.__doc__ = fn.__doc__
    return property(getter)


#: Cached views that depend on the Via headers (the rest survive ``with_top_via``).
_VIA_VIEWS = frozenset({"vias", "top_via", "_idx"})


def _headers_converter(value: Iterable[Header]) -> tuple[Header, ...]:
    return value if type(value) is tuple else tuple(value)


def _uri_converter(value: bytes | str | URI) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, URI):
        return value.to_bytes()
    if isinstance(value, str):
        return value.encode("latin-1")
    return bytes(value)


class Message:
    """Behaviour shared by :class:`Request` and :class:`Response` (both frozen attrs classes)."""

    __slots__ = ()

    headers: tuple[Header, ...]
    body: bytes
    version: str
    _raw: bytes | None
    _cache: dict[str, Any]
    is_request: bool

    # ---- header access

    def _index(self) -> dict[str, list[Header]]:
        cache = self._cache
        idx = cache.get("_idx")
        if idx is None:
            idx = {}
            for h in self.headers:
                lst = idx.get(h.key)
                if lst is None:
                    idx[h.key] = [h]
                else:
                    lst.append(h)
            cache["_idx"] = idx
        return idx  # type: ignore[no-any-return]

    def get(self, name: str) -> bytes | None:
        """Value of the first header called ``name`` (case-insensitive, compact forms ok)."""
        lst = self._index().get(header_key(name))
        return lst[0].value if lst else None

    def get_all(self, name: str) -> list[bytes]:
        """Every value, comma-split for list headers, in order."""
        key = header_key(name)
        lst = self._index().get(key)
        if not lst:
            return []
        if key in MULTI_VALUE:
            out: list[bytes] = []
            for h in lst:
                out.extend(split_values(h.value))
            return out
        return [h.value for h in lst]

    def headers_named(self, name: str) -> list[Header]:
        return list(self._index().get(header_key(name), ()))

    def has(self, name: str) -> bool:
        return header_key(name) in self._index()

    # ---- rewrites

    def _with_headers(self: _M, headers: tuple[Header, ...]) -> _M:
        return attrs.evolve(self, headers=headers)  # type: ignore[misc]

    def with_header(self: _M, name: str, value: bytes | str) -> _M:
        """Replace every header called ``name`` by one, at the first one's position."""
        new = Header(canonical_name(name), _to_bytes_value(value))
        return self._with_headers(tuple(replace_keyed(self.headers, header_key(name), new)))

    def without_header(self: _M, name: str) -> _M:
        key = header_key(name)
        if key not in self._index():
            return self
        return self._with_headers(tuple(h for h in self.headers if h.key != key))

    def prepend_header(self: _M, name: str, value: bytes | str) -> _M:
        """Insert before the first header called ``name`` (or before all headers)."""
        key = header_key(name)
        new = Header(canonical_name(name), _to_bytes_value(value))
        headers = self.headers
        pos = 0
        for i, h in enumerate(headers):
            if h.key == key:
                pos = i
                break
        return self._with_headers(headers[:pos] + (new,) + headers[pos:])

    def with_top_via(self: _M, via: Via) -> _M:
        """Replace the first via-parm of the first Via header; every other byte stays as it
        was, and so do the views already parsed from the other headers (a server stamps
        ``received``/``rport`` on every request it takes in, after validating it: nothing
        is parsed twice)."""
        headers = list(self.headers)
        for i, header in enumerate(headers):
            if header.key == "via":
                _, rest = split_first_via(header.value)
                new = Header(header.name, via.to_bytes() + rest)
                headers[i] = new
                break
        else:
            raise SipParseError("missing Via")
        msg = attrs.evolve(self, headers=tuple(headers))  # type: ignore[misc]
        cache = msg._cache
        old = self._cache
        for name, value in old.items():
            if name not in _VIA_VIEWS:
                cache[name] = value
        idx = old.get("_idx")
        if idx is not None:
            idx = dict(idx)
            vias = list(idx["via"])
            vias[0] = new
            idx["via"] = vias
            cache["_idx"] = idx
        cache["top_via"] = via
        parsed = old.get("vias")
        if parsed:
            cache["vias"] = (via, *parsed[1:])
        return msg

    def append_header(self: _M, name: str, value: bytes | str) -> _M:
        new = Header(canonical_name(name), _to_bytes_value(value))
        return self._with_headers(self.headers + (new,))

    def with_body(self: _M, body: bytes, content_type: bytes | str | None = None) -> _M:
        """New body; Content-Length follows it.  ``content_type`` replaces Content-Type;
        with an empty body and no ``content_type`` any Content-Type is removed."""
        msg = self.with_header("Content-Length", str(len(body)).encode())
        if content_type is not None:
            msg = msg.with_header("Content-Type", _to_bytes_value(content_type))
        elif not body:
            msg = msg.without_header("Content-Type")
        return attrs.evolve(msg, body=bytes(body))  # type: ignore[misc]

    # ---- parsed views

    def _single(self, key: str, what: str) -> bytes:
        lst = self._index().get(key)
        if not lst:
            raise SipParseError(f"missing {what}")
        return lst[0].value

    @_cached
    def vias(self) -> tuple[Via, ...]:
        out = []
        for h in self._index().get("via", ()):
            items = split_values(h.value)
            if not items:
                raise SipParseError("empty Via")
            out.extend(parse_via(item) for item in items)
        return tuple(out)

    @_cached
    def top_via(self) -> Via:
        parsed = self._cache.get("vias")
        if parsed:
            return parsed[0]  # type: ignore[no-any-return]
        lst = self._index().get("via")
        if not lst:
            raise SipParseError("missing Via")
        return parse_via(first_value(lst[0].value))

    @_cached
    def cseq(self) -> CSeq:
        return parse_cseq(self._single("cseq", "CSeq"))

    @_cached
    def call_id(self) -> str:
        value = self._single("call-id", "Call-ID")
        if not value or _CALL_ID_BAD_RE.search(value):
            raise SipParseError("malformed Call-ID")
        return value.decode("latin-1")

    @_cached
    def from_(self) -> NameAddr:
        return parse_name_addr(self._single("from", "From"))

    @_cached
    def to(self) -> NameAddr:
        return parse_name_addr(self._single("to", "To"))

    @_cached
    def max_forwards(self) -> int | None:
        value = self.get("max-forwards")
        return None if value is None else _parse_uint(value, "Max-Forwards", 2**32 - 1)

    @_cached
    def content_length(self) -> int | None:
        value = self.get("content-length")
        return None if value is None else _parse_uint(value, "Content-Length", 2**32 - 1)

    @_cached
    def expires(self) -> int | None:
        value = self.get("expires")
        return None if value is None else _parse_uint(value, "Expires", 2**32 - 1)

    def _addresses(self, key: str) -> tuple[NameAddr, ...]:
        out = []
        for h in self._index().get(key, ()):
            out.extend(parse_name_addr(item) for item in split_values(h.value))
        return tuple(out)

    @_cached
    def contact_star(self) -> bool:
        lst = self._index().get("contact", ())
        for h in lst:
            if h.value.strip(b" \t") == b"*":
                if len(lst) > 1:
                    raise SipParseError("Contact: * mixed with other contacts")
                return True
        return False

    @_cached
    def contacts(self) -> tuple[NameAddr, ...]:
        if self.contact_star:
            return ()
        return self._addresses("contact")

    @_cached
    def routes(self) -> tuple[NameAddr, ...]:
        return self._addresses("route")

    @_cached
    def record_routes(self) -> tuple[NameAddr, ...]:
        return self._addresses("record-route")

    # ---- serialisation

    def start_line(self) -> bytes:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        raw = self._raw
        if raw is None:
            parts = [self.start_line()]
            parts += [h.raw if h.raw is not None else h.name.encode("latin-1") + b": " + h.value
                      for h in self.headers]  # Header.to_bytes, inline: every message sent
            parts.append(b"")
            raw = b"\r\n".join(parts) + b"\r\n" + self.body
            object.__setattr__(self, "_raw", raw)
        return raw

    def __bytes__(self) -> bytes:
        return self.to_bytes()


@frozen(repr=False)
class Request(Message):
    method: str
    uri: bytes = field(converter=_uri_converter)
    headers: tuple[Header, ...] = field(default=(), converter=_headers_converter)
    body: bytes = b""
    version: str = "SIP/2.0"
    _raw: bytes | None = field(init=False, default=None, eq=False, repr=False, hash=False)
    _cache: dict[str, Any] = field(init=False, factory=dict, eq=False, repr=False, hash=False)

    is_request = True

    @_cached
    def parsed_uri(self) -> URI:
        return parse_uri(self.uri)

    def with_uri(self, uri: bytes | str | URI) -> Request:
        return attrs.evolve(self, uri=uri)

    def start_line(self) -> bytes:
        return b"%s %s %s" % (self.method.encode("latin-1"), self.uri, self.version.encode("latin-1"))

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri!r} headers={len(self.headers)} body={len(self.body)}>"


@frozen(repr=False)
class Response(Message):
    status: int
    reason: str = ""
    headers: tuple[Header, ...] = field(default=(), converter=_headers_converter)
    body: bytes = b""
    version: str = "SIP/2.0"
    _raw: bytes | None = field(init=False, default=None, eq=False, repr=False, hash=False)
    _cache: dict[str, Any] = field(init=False, factory=dict, eq=False, repr=False, hash=False)

    is_request = False

    def start_line(self) -> bytes:
        return b"%s %d %s" % (
            self.version.encode("latin-1"),
            self.status,
            self.reason.encode("utf-8", "surrogateescape"),
        )

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason!r} headers={len(self.headers)} body={len(self.body)}>"


# --------------------------------------------------------------------------- parsing

_NAME_CACHE: dict[bytes, tuple[str, str, bool]] = {}
_NAME_CACHE_LIMIT = 4096
_new = object.__new__
_set = object.__setattr__


def _name_info(raw_name: bytes) -> tuple[str, str, bool]:
    """(canonical name, key, whether ``raw_name`` is the canonical name exactly)."""
    info = _NAME_CACHE.get(raw_name)
    if info is None:
        name_b = raw_name.rstrip(b" \t")
        if not is_token(name_b):
            raise SipParseError("malformed header name")
        name = canonical_name(name_b.decode("latin-1"))
        info = (name, header_key(name), raw_name == name.encode("latin-1"))
        if len(_NAME_CACHE) < _NAME_CACHE_LIMIT:
            _NAME_CACHE[raw_name] = info
    return info


def without_raw(header: Header) -> Header:
    """``header`` without the received line it keeps for byte-exact forwarding (its value
    was checked when it was made, so no check again)."""
    if header.raw is None:
        return header
    return trusted_header(header.name, header.key, header.value)


def _group_lines(lines: list[bytes], keep_raw: bool, eol: bytes) -> tuple[list[bytes], list[bytes | None]]:
    """Join folded continuation lines: (unfolded lines, raw lines or None)."""
    groups: list[list[bytes]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not groups:
                raise SipParseError("continuation line before the first header")
            groups[-1].append(line)
        else:
            groups.append([line])
    unfolded: list[bytes] = []
    raws: list[bytes | None] = []
    for g in groups:
        if len(g) == 1:
            unfolded.append(g[0])
            raws.append(g[0])
        else:
            unfolded.append(b" ".join([g[0].rstrip(b" \t")] + [p.strip(b" \t") for p in g[1:]]))
            raws.append(eol.join(g) if keep_raw else None)
    return unfolded, raws


def parse_message(data: bytes) -> Request | Response:
    """Parse one complete message (a datagram or a framed stream message).

    Only the structure is checked here; header values are parsed lazily by the views.
    """
    if not isinstance(data, bytes):
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        else:
            raise SipParseError("message must be bytes")
    n = len(data)
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    eol = b"\r\n"
    end = data.find(b"\r\n\r\n", start)
    if end >= 0:
        head_end, body_start = end, end + 4
    else:
        lf = data.find(b"\n\n", start)
        if lf >= 0 and b"\r" not in data[start:lf]:
            eol = b"\n"  # lenient: bare LF line ends
            head_end, body_start = lf, lf + 2
        elif data.endswith(b"\r\n") and n - 2 > start:
            head_end = body_start = n - 2  # datagram whose headers end without an empty line
            body_start = n
        elif data.endswith(b"\n") and b"\r" not in data and n - 1 > start:
            eol = b"\n"
            head_end, body_start = n - 1, n
        else:
            raise SipParseError("header block not terminated")
    head = data[start:head_end]
    lines = head.split(eol)
    if eol == b"\r\n":
        seps = len(lines) - 1
        if head.count(b"\n") != seps or head.count(b"\r") != seps:
            raise SipParseError("bare CR or LF in the header block")
    first = lines[0]
    if first[:4].upper() == b"SIP/":
        m = _STATUS_RE.match(first)
        if m is None:
            raise SipParseError("malformed status line")
        reason_b = m.group(3) or b""
        if b"\r" in reason_b or b"\n" in reason_b:
            raise SipParseError("malformed status line")
        msg: Request | Response = _new(Response)
        _set(msg, "status", int(m.group(2)))
        _set(msg, "reason", reason_b.decode("utf-8", "surrogateescape"))
        _set(msg, "version", m.group(1).decode("latin-1"))
    else:
        parts = first.split(b" ")
        if len(parts) != 3:
            raise SipParseError("malformed request line")
        method_b, uri_b, version_b = parts
        if not is_token(method_b):
            raise SipParseError("malformed method")
        if not uri_b or b"\r" in uri_b or b"\t" in uri_b:
            raise SipParseError("malformed Request-URI")
        if not _VERSION_RE.match(version_b):
            raise SipParseError("malformed SIP version")
        msg = _new(Request)
        _set(msg, "method", method_b.decode("latin-1"))
        _set(msg, "uri", uri_b)
        _set(msg, "version", version_b.decode("latin-1"))

    headers: list[Header] = []
    append = headers.append
    index: dict[str, list[Header]] = {}
    clen: int | None = None
    name_cache = _NAME_CACHE
    del lines[0]
    if lines:
        if eol + b" " in head or eol + b"\t" in head:
            unfolded, raws = _group_lines(lines, eol == b"\r\n", eol)
        else:
            unfolded = raws = lines
        for line, raw in zip(unfolded, raws):
            raw_name, colon, rest = line.partition(b":")
            if not colon or not raw_name:
                raise SipParseError("header line without a colon")
            info = name_cache.get(raw_name)
            if info is None:
                info = _name_info(raw_name)
            value = rest.strip(b" \t")
            if info[2] and raw is line and len(rest) == len(value) + 1 and rest[0] == 0x20:
                raw = None  # exactly "Name: value": to_bytes() gives the same line back
            key = info[1]
            h = _new(Header)
            _set_name(h, info[0])
            _set_value(h, value)
            _set_raw(h, raw)
            _set_key(h, key)
            append(h)
            # The index of the headers by key, built on the way (every message is looked
            # into at once: validation, transaction matching).
            same = index.get(key)
            if same is None:
                index[key] = [h]
            else:
                same.append(h)
            if key == "content-length":
                m2 = _DIGITS_RE.match(value)
                if m2 is None:
                    raise SipParseError("malformed Content-Length")
                digits = m2.group(1)
                this = int(digits) if len(digits) <= 12 else 10**12
                if clen is not None and clen != this:
                    raise SipParseError("conflicting Content-Length headers")
                clen = this
    if clen is None:
        body_end = n
    else:
        body_end = body_start + clen
        if body_end > n:
            raise SipParseError("Content-Length larger than the message")
    if body_start >= n:
        body = b""
    else:
        body = data[body_start:body_end]
    _set(msg, "headers", tuple(headers))
    _set(msg, "body", body)
    _set(msg, "_cache", {"_idx": index})
    if start == 0 and body_end == n:
        _set(msg, "_raw", data)
    else:
        _set(msg, "_raw", data[start:body_end])
    return msg


# --------------------------------------------------------------------------- validation

_UNIQUE_IN_REQUEST = ("to", "from", "call-id", "cseq", "max-forwards", "content-length", "content-type", "expires")


def _validate_common(msg: Message) -> None:
    idx = msg._index()
    for key, what in (("to", "To"), ("from", "From"), ("call-id", "Call-ID"), ("cseq", "CSeq"), ("via", "Via")):
        if key not in idx:
            raise SipParseError(f"missing {what} header")
    for key in _UNIQUE_IN_REQUEST:
        lst = idx.get(key)
        if lst is not None and len(lst) > 1:
            raise SipParseError(f"duplicate {canonical_name(key)} header")
    msg.to
    msg.from_
    msg.call_id
    msg.cseq
    msg.vias
    cl = msg.content_length if "content-length" in idx else None
    if cl is not None and cl != len(msg.body):
        raise SipParseError("Content-Length does not match the body")


def validate_request(req: Request) -> None:
    """Semantic checks a server runs before accepting a request; raises SipParseError."""
    try:
        if req.version.upper() != "SIP/2.0":
            raise SipParseError("SIP version not supported", 505)
        if not is_token(req.method):
            raise SipParseError("malformed method")
        uri = req.parsed_uri
        if uri.scheme in ("sip", "sips") and uri.headers:
            raise SipParseError("headers in Request-URI")
        _validate_common(req)
        if req.cseq.method != req.method:
            raise SipParseError("CSeq method does not match the request method")
        idx = req._index()
        # Optional headers are checked only when present: absent ones cost nothing.
        if "max-forwards" in idx:
            mf = req.max_forwards
            if mf is not None and mf > 255:
                raise SipParseError("Max-Forwards out of range")
        if "expires" in idx:
            req.expires
        if "contact" in idx and not req.contact_star:
            for contact in req.contacts:
                exp = contact.param("expires")
                if exp is not None:
                    _parse_uint(exp.encode("latin-1"), "Contact expires", 2**32 - 1)
        if "route" in idx:
            req.routes
        if "record-route" in idx:
            req.record_routes
    except SipParseError:
        raise
    except (ValueError, TypeError, UnicodeError) as e:  # pragma: no cover - defensive
        raise SipParseError(f"malformed request: {e}") from None


def validate_response(resp: Response) -> None:
    """Checks on a received response; a failure means the response is dropped."""
    try:
        if resp.version.upper() != "SIP/2.0":
            raise SipParseError("SIP version not supported", 505)
        if not 100 <= resp.status <= 699:
            raise SipParseError("status code out of range")
        _validate_common(resp)
    except SipParseError:
        raise
    except (ValueError, TypeError, UnicodeError) as e:  # pragma: no cover - defensive
        raise SipParseError(f"malformed response: {e}") from None


# --------------------------------------------------------------------------- responses


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, bytes] | Header] = (),
    body: bytes = b"",
    top_via: bytes | None = None,
) -> Response:
    """Build a response per RFC 3261 §8.2.6 (Via, From, To, Call-ID, CSeq copied; and
    Record-Route in 101-299 answers to dialog-creating requests, §12.1.1).

    ``top_via`` replaces the first via-parm of the first Via header (a server stamping
    ``received`` and ``rport``); everything else in the Via headers is copied as it was.
    """
    out: list[Header] = []
    idx = request._index()
    vias = idx.get("via", ())
    if top_via is not None and vias:
        first = vias[0]
        rest = split_first_via(first.value)[1]
        out.append(Header(first.name, top_via + rest))
        out.extend(vias[1:])
    else:
        out.extend(vias)
    out.extend(idx.get("from", ()))
    to_headers = idx.get("to", ())
    if to_headers:
        to_h = to_headers[0]
        if to_tag is not None:
            try:
                has_tag = request.to.tag is not None
            except SipParseError:
                has_tag = b";tag=" in to_h.value.lower()
            if not has_tag:
                to_h = Header("To", to_h.value + b";tag=" + to_tag.encode("latin-1"))
        out.append(to_h)
    out.extend(idx.get("call-id", ()))
    out.extend(idx.get("cseq", ()))
    if status == 100:
        out.extend(idx.get("timestamp", ()))
    elif status < 300 and request.method in _DIALOG_CREATING:
        # RFC 3261 §12.1.1: a UAS copies every Record-Route of a dialog-creating request into
        # its 101-299 responses, so the proxies on the path stay on it.
        out.extend(idx.get("record-route", ()))
    for item in headers:
        if type(item) is Header:  # prebuilt (a server's constant headers)
            out.append(item)
        else:
            name, value = item
            out.append(Header(canonical_name(name), value))
    out.append(_CONTENT_LENGTH_0 if not body else Header("Content-Length", str(len(body)).encode()))
    response = Response(status, reason if reason is not None else reason_phrase(status), tuple(out), bytes(body))
    # The views of the copied headers are the request's: the response starts with them
    # instead of parsing its own copies again (the transaction layer reads To, CSeq, Via).
    copy_views(request, response, _COPIED_VIEWS if top_via is not None else _COPIED_VIEWS + ("vias", "top_via"))
    to = request._cache.get("to")
    if to is not None and to_headers:
        response._cache["to"] = to if to_tag is None or to.tag is not None else to.with_tag(to_tag)
    return response


def copy_views(source: Message, target: Message, names: Iterable[str]) -> None:
    """Give ``target`` the views called ``names`` that ``source`` has parsed already (views
    are immutable values): for a message made from another one's headers, unchanged."""
    seen = source._cache
    cache = target._cache
    for name in names:
        if name in seen:
            cache[name] = seen[name]


_COPIED_VIEWS = ("from_", "call_id", "cseq")


_CONTENT_LENGTH_0 = Header("Content-Length", b"0")
_DIALOG_CREATING = frozenset({"INVITE", "SUBSCRIBE", "REFER", "NOTIFY"})


def split_first_via(value: bytes) -> tuple[bytes, bytes]:
    """Split a Via header value into its first via-parm and the rest (from the comma on)."""
    if b'"' not in value:  # the common case: no quoted parameter values, so no quoted commas
        comma = value.find(b",")
        return (value, b"") if comma < 0 else (value[:comma], value[comma:])
    quoted = False
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if c == 0x22:  # "
            quoted = not quoted
        elif c == 0x5C and quoted:  # backslash escape inside quotes
            i += 1
        elif c == 0x2C and not quoted:  # ,
            return value[:i], value[i:]
        i += 1
    return value, b""


_SALVAGE_KEYS = ("via", "from", "to", "call-id", "cseq")
_CTL_RE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


_REQUEST_START_RE = re.compile(rb"[A-Za-z0-9.!%*_+`'~-]+ [^ \r\n]")


def salvage_error_response(data: bytes, status: int, reason: str, *, to_tag: str | None = None) -> bytes | None:
    """Best-effort error response for request bytes that could not be parsed.

    Scans the raw header lines for Via (all), From, To, Call-ID and CSeq (compact forms too).
    A request with no Via at all still gets an answer when its first line looks like a request
    line (a method token, a space, something more): the transport sends it back to the source
    address, which is the only place it could go, so a broken client sees why it failed.
    Returns None for something that looks like a response, or for bytes that do not start
    like a request.  Never raises.
    """
    try:
        data = bytes(data).lstrip(b"\r\n")
        if data[:4].upper() == b"SIP/":
            return None
        end = data.find(b"\r\n\r\n")
        if end < 0:
            end = data.find(b"\n\n")
        head = data if end < 0 else data[:end]
        lines = head.replace(b"\r\n", b"\n").split(b"\n")[1:]
        found: dict[str, list[bytes]] = {}
        current: list[bytes] | None = None
        for line in lines:
            if line[:1] in (b" ", b"\t"):
                if current is not None and current:
                    current[-1] = current[-1] + b" " + line.strip(b" \t")
                continue
            current = None
            name, colon, value = line.partition(b":")
            if not colon:
                continue
            name_s = name.strip(b" \t").decode("latin-1")
            if not name_s:
                continue
            key = header_key(name_s)
            if key in _SALVAGE_KEYS:
                lst = found.setdefault(key, [])
                if key == "via" or not lst:
                    lst.append(value.strip(b" \t"))
                    current = lst
        if not found.get("via") and not _REQUEST_START_RE.match(data):
            return None
        out = [b"SIP/2.0 %d %s" % (int(status), _CTL_RE.sub(b"", reason.encode("utf-8", "replace")))]
        for key in _SALVAGE_KEYS:
            for value in found.get(key, ()):
                value = _CTL_RE.sub(b"", value)
                if key == "to" and to_tag is not None and b";tag=" not in value.lower():
                    value += b";tag=" + to_tag.encode("latin-1", "replace")
                out.append(canonical_name(key).encode() + b": " + value)
        out.append(b"Content-Length: 0")
        return b"\r\n".join(out) + b"\r\n\r\n"
    except Exception:  # noqa: BLE001 - documented to never raise
        return None
