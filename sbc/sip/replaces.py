# -*- test-case-name: tests.test_sip_replaces -*-
"""The Replaces header (RFC 3891 §6.1) and its embedded form in a Refer-To URI (RFC 3515 §2.1).

A Replaces value names a dialog: ``call-id;to-tag=X;from-tag=Y[;early-only]``.  The tags are
seen from the UA that receives the INVITE carrying it: ``to-tag`` is that UA's local tag,
``from-tag`` its remote tag (RFC 3891 §3).

Inside a Refer-To (attended transfer) the header travels as a URI header, percent-escaped::

    Refer-To: <sip:bob@example.com?Replaces=abc%40host%3Bto-tag%3D1%3Bfrom-tag%3D2>

:func:`embedded_replaces` finds and parses it, :func:`with_embedded_replaces` puts another one
in its place (other URI headers and parameters are kept).  Pure: no I/O, no Twisted.
"""

from __future__ import annotations

import re

import attrs
from attrs import frozen

from sbc.sip.errors import SipParseError
from sbc.sip.message import NameAddr, parse_name_addr
from sbc.sip.uri import URI, unescape

__all__ = [
    "Replaces",
    "embedded_replaces",
    "escape_header_value",
    "parse_replaces",
    "with_embedded_replaces",
]

# callid = word [ "@" word ] (RFC 3261 §25.1); word also allows these separators.
_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALLID_RE = re.compile(rf"{_WORD}(?:@{_WORD})?\Z")
_TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+\Z")
# What may stand unescaped in a URI header value (RFC 3261 §25.1: hnv-unreserved / unreserved).
_HVALUE_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()[]/?:+$")


@frozen
class Replaces:
    """One Replaces value.  ``params``: generic parameters other than the tags and
    ``early-only``, kept in order (name, value or None)."""

    call_id: str
    to_tag: str
    from_tag: str
    early_only: bool = False
    params: tuple[tuple[str, str | None], ...] = ()

    def to_text(self) -> str:
        out = [self.call_id, f";to-tag={self.to_tag}", f";from-tag={self.from_tag}"]
        if self.early_only:
            out.append(";early-only")
        out.extend(f";{n}" if v is None else f";{n}={v}" for n, v in self.params)
        return "".join(out)

    def to_bytes(self) -> bytes:
        return self.to_text().encode("latin-1")

    def with_dialog(self, call_id: str, to_tag: str, from_tag: str) -> "Replaces":
        """The same value (``early-only`` and other parameters kept) naming another dialog."""
        return attrs.evolve(self, call_id=call_id, to_tag=to_tag, from_tag=from_tag)


def parse_replaces(value: bytes | str) -> Replaces:
    """Parse a Replaces header value.  Raises :class:`SipParseError` when the Call-ID or a tag
    is missing, repeated or malformed."""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    parts = [p.strip(" \t") for p in text.strip(" \t").split(";")]
    call_id = parts[0]
    if not _CALLID_RE.match(call_id):
        raise SipParseError("bad Call-ID in Replaces")
    tags: dict[str, str] = {}
    early = False
    params: list[tuple[str, str | None]] = []
    for part in parts[1:]:
        name, eq, val = part.partition("=")
        name = name.strip(" \t")
        key = name.lower()
        val = val.strip(" \t")
        if not _TOKEN_RE.match(name):
            raise SipParseError("bad Replaces parameter")
        if key in ("to-tag", "from-tag"):
            if key in tags or not eq or not _TOKEN_RE.match(val):
                raise SipParseError(f"bad {key} in Replaces")
            tags[key] = val
        elif key == "early-only":
            if eq:
                raise SipParseError("early-only takes no value")
            early = True
        else:
            if eq and not val:
                raise SipParseError("bad Replaces parameter value")
            params.append((name, val if eq else None))
    if "to-tag" not in tags or "from-tag" not in tags:
        raise SipParseError("Replaces without to-tag and from-tag")
    return Replaces(call_id, tags["to-tag"], tags["from-tag"], early, tuple(params))


def escape_header_value(text: str) -> str:
    """``text`` percent-escaped for use as a URI header value (``%HH``, upper case)."""
    return "".join(c if c in _HVALUE_SAFE else "".join(f"%{b:02X}" for b in c.encode("latin-1"))
                   for c in text)


def embedded_replaces(refer_to: bytes) -> tuple[NameAddr, Replaces] | None:
    """The Refer-To ``refer_to`` as parsed, with the Replaces embedded in its URI; None when
    its URI carries no Replaces header.  Raises :class:`SipParseError` when the Refer-To or
    the embedded Replaces is malformed, or when there is more than one."""
    addr = parse_name_addr(refer_to)
    found = [v for n, v in addr.uri.headers if n.lower() == "replaces"]
    if not found:
        return None
    if len(found) > 1:
        raise SipParseError("more than one Replaces in Refer-To")
    return addr, parse_replaces(unescape(found[0]))


def with_embedded_replaces(addr: NameAddr, replaces: Replaces, uri: URI | None = None) -> bytes:
    """``addr`` (a parsed Refer-To) with its embedded Replaces set to ``replaces``, at the same
    place among the URI headers; ``uri``: a new URI for it (its own headers are dropped and
    those of ``addr`` other than Replaces kept)."""
    value = escape_header_value(replaces.to_text())
    headers = tuple((n, value) if n.lower() == "replaces" else (n, v) for n, v in addr.uri.headers)
    base = addr.uri if uri is None else uri
    return addr.with_uri(attrs.evolve(base, headers=headers)).to_bytes()
