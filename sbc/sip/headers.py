# -*- test-case-name: tests.test_sip_message -*-
"""Header names, compact forms and comma-separated header lists (RFC 3261 §7.3, §20).

Everything here works on bytes (values) and str (names); nothing is parsed that the
caller did not ask for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Protocol, TypeVar

from sbc.sip.errors import SipParseError

__all__ = [
    "COMPACT_FORMS",
    "MULTI_VALUE",
    "SINGLE_VALUE",
    "canonical_name",
    "header_key",
    "split_values",
    "first_value",
    "is_token",
    "replace_keyed",
    "TOKEN_CHARS",
]

#: RFC 3261 §7.3.3 and the IANA registry: compact form -> long form.
COMPACT_FORMS: dict[str, str] = {
    "v": "Via",
    "i": "Call-ID",
    "f": "From",
    "t": "To",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "e": "Content-Encoding",
    "k": "Supported",
    "s": "Subject",
    "o": "Event",
    "r": "Refer-To",
    "b": "Referred-By",
    "u": "Allow-Events",
    "x": "Session-Expires",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
    "y": "Identity",
    "n": "Identity-Info",
}

_KNOWN_NAMES = (
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Accept-Resource-Priority",
    "Alert-Info", "Allow", "Allow-Events", "Answer-Mode", "Authentication-Info", "Authorization",
    "Call-ID", "Call-Info", "Contact", "Content-Disposition", "Content-Encoding",
    "Content-ID", "Content-Language", "Content-Length", "Content-Type", "CSeq", "Date",
    "Diversion", "Error-Info", "Event", "Expires", "Flow-Timer", "From", "History-Info",
    "Identity", "Identity-Info", "In-Reply-To", "Join", "Max-Breadth", "Max-Forwards",
    "MIME-Version", "Min-Expires", "Min-SE", "Organization", "P-Asserted-Identity",
    "P-Access-Network-Info", "P-Associated-URI", "P-Called-Party-ID", "P-Charging-Vector",
    "P-Early-Media", "P-Preferred-Identity", "P-Visited-Network-ID", "Path", "Priority",
    "Privacy", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck",
    "Reason", "Record-Route", "Refer-Sub", "Refer-To", "Referred-By", "Reject-Contact",
    "Remote-Party-ID", "Replaces", "Reply-To", "Request-Disposition", "Require",
    "Resource-Priority", "Retry-After", "Route", "RSeq", "Security-Client",
    "Security-Server", "Security-Verify", "Server", "Service-Route", "Session-Expires",
    "Session-ID", "SIP-ETag", "SIP-If-Match", "Subject", "Subscription-State", "Supported",
    "Target-Dialog", "Timestamp", "To", "Unsupported", "User-Agent", "User-to-User", "Via",
    "Warning", "WWW-Authenticate",
)

_CANONICAL: dict[str, str] = {n.lower(): n for n in _KNOWN_NAMES}

#: Keys (lower-case long names) of headers whose value is a comma-separated list.
MULTI_VALUE: frozenset[str] = frozenset(
    {
        "via", "route", "record-route", "contact", "allow", "supported", "require",
        "proxy-require", "unsupported", "accept", "accept-encoding", "accept-language",
        "allow-events", "content-encoding", "content-language", "in-reply-to", "path",
        "service-route", "p-asserted-identity", "p-preferred-identity", "p-associated-uri",
        "history-info", "diversion", "privacy", "alert-info", "call-info", "error-info",
        "accept-contact", "reject-contact", "request-disposition", "reason",
        "security-client", "security-server", "security-verify", "warning",
        "resource-priority", "accept-resource-priority", "p-early-media",
    }
)

#: Keys of headers that may appear at most once (RFC 3261 §20 and §7.3.1).
SINGLE_VALUE: frozenset[str] = frozenset(
    {
        "to", "from", "call-id", "cseq", "max-forwards", "content-length", "content-type",
        "expires", "min-expires", "mime-version", "date", "rack", "rseq", "session-expires",
        "min-se", "refer-to", "referred-by", "event", "subscription-state", "replaces",
        "timestamp", "priority", "retry-after", "organization", "subject", "server",
        "user-agent", "content-disposition", "sip-etag", "sip-if-match",
    }
)

#: RFC 3261 token characters: alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~"
TOKEN_CHARS = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`'~"
)

_KEY_CACHE: dict[str, str] = {}
_CACHE_LIMIT = 2048


_TOKEN_RE_B = re.compile(rb"[A-Za-z0-9\-.!%*_+`'~]+\Z")
_TOKEN_RE_S = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")


def is_token(text: str | bytes) -> bool:
    """True if ``text`` is a non-empty RFC 3261 token."""
    if isinstance(text, bytes):
        return _TOKEN_RE_B.match(text) is not None
    return _TOKEN_RE_S.match(text) is not None


def canonical_name(name: str) -> str:
    """Expand compact forms and give known headers their usual spelling.

    Unknown names are returned exactly as given.
    """
    lower = name.lower()
    if len(lower) == 1:
        long = COMPACT_FORMS.get(lower)
        if long is not None:
            return long
    return _CANONICAL.get(lower, name)


def header_key(name: str) -> str:
    """The case-insensitive lookup key of a header name (compact forms expanded)."""
    key = _KEY_CACHE.get(name)
    if key is None:
        key = canonical_name(name).lower()
        if len(_KEY_CACHE) < _CACHE_LIMIT:
            _KEY_CACHE[name] = key
    return key


# One list item: runs of plain characters, whole quoted strings and whole <...> groups.
_ITEM_RE = re.compile(rb'(?:[^,"<]+|"(?:[^"\\]|\\.)*"|<[^>]*>)*', re.S)


def split_values(value: bytes) -> list[bytes]:
    """Split a header value on commas outside quoted strings and <angle brackets>.

    LWS around each item is stripped.  An empty value gives an empty list; an empty item
    inside a list ("a,,b", "a,") raises :class:`SipParseError`, as does an unterminated
    quoted string or angle bracket.
    """
    value = value.strip(b" \t")
    if not value:
        return []
    if b'"' not in value and b"<" not in value:
        items = [item.strip(b" \t") for item in value.split(b",")]
        for item in items:
            if not item:
                raise SipParseError("empty item in header list")
        return items
    items = []
    pos = 0
    n = len(value)
    match = _ITEM_RE.match
    while True:
        m = match(value, pos)
        assert m is not None  # the pattern matches the empty string
        item = m.group().strip(b" \t")
        if not item:
            raise SipParseError("empty item in header list")
        items.append(item)
        pos = m.end()
        if pos >= n:
            return items
        if value[pos] != 0x2C:
            raise SipParseError("unterminated quoted string or <")
        pos += 1


def first_value(value: bytes) -> bytes:
    """The first item of a comma-separated list, without looking at the others."""
    comma = value.find(b",")
    if comma < 0:
        item = value.strip(b" \t")
        if b'"' in item or b"<" in item:
            m = _ITEM_RE.match(item)
            assert m is not None
            if m.end() != len(item):
                raise SipParseError("unterminated quoted string or <")
    elif b'"' not in value and b"<" not in value:
        item = value[:comma].strip(b" \t")
    else:
        m = _ITEM_RE.match(value)
        assert m is not None
        end = m.end()
        if end < len(value) and value[end] != 0x2C:
            raise SipParseError("unterminated quoted string or <")
        item = m.group().strip(b" \t")
    if not item:
        raise SipParseError("empty item in header list")
    return item


class _Keyed(Protocol):
    @property
    def key(self) -> str: ...


_K = TypeVar("_K", bound=_Keyed)


def replace_keyed(items: Iterable[_K], key: str, new: _K) -> list[_K]:
    """``items`` with every item whose ``key`` is ``key`` replaced by one ``new``, at the
    first such item's position (appended when there is none): replacing a header by name,
    for messages and for the plugins' message view alike."""
    out: list[_K] = []
    placed = False
    for item in items:
        if item.key == key:
            if not placed:
                out.append(new)
                placed = True
        else:
            out.append(item)
    if not placed:
        out.append(new)
    return out
