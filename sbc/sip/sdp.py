# -*- test-case-name: tests.test_sip_sdp -*-
"""SDP (RFC 8866) parsing, parsed views and rewriting for the B2BUA and the media relay.

Sans-IO: bytes in, frozen attrs objects out, bytes back.  No Twisted import.

Model
-----
A `SessionDescription` is a tuple of session-level `SdpLine` objects followed by a tuple of
`MediaSection` objects (each starts with its ``m=`` line).  Every line keeps its raw value
bytes and its own line ending, so an untouched description serialises byte-identical to its
input (CRLF, bare LF, a mix of both, trailing whitespace, a missing final line end, blank
lines and unknown line types all survive).  Parsed views (`rtpmap`, `crypto`, `direction`,
...) are computed on demand from the raw lines and skip entries they cannot understand.
Rewrites return new objects (``attrs.evolve``) and touch only the lines they must.

Errors
------
`parse_sdp` raises only `sbc.sip.errors.SipParseError`:

* status **400** (syntax): empty body, a line that is not ``<letter>=<value>`` (blank lines
  are tolerated), first line not ``v=``, a missing or short ``o=`` line or a non-numeric
  sess-version, an ``m=`` line with fewer than 3 fields or a port / number-of-ports that is
  not a decimal number in range, a ``c=`` line with fewer than 3 fields.
* status **488** (semantic, "Not Acceptable Here" for an offer): ``v=`` other than 0, a
  ``c=`` line whose address family contradicts its addrtype (``IP4`` with an IPv6 literal or
  ``IP6`` with an IPv4 literal), an active stream (port != 0) with no connection address at
  either level, and, in `match_answer`, an answer whose media lines do not match the offer.

Deliberately liberal (real PBXs deviate): missing ``s=``/``t=`` lines, trailing whitespace,
any ``b=`` type (``TIAS``, ``AS``, ``CT``...), lines in any order inside a section (``a=``
before ``c=``), attribute names matched case-insensitively, bracketed IPv6 in ``c=``
(RFC 5118 says unbracketed; brackets are stripped in the parsed view), malformed attribute
values (the views skip them).

Secrets: ``a=crypto`` inline keys, ``k=`` lines and ``a=ice-pwd`` are never shown by
``repr()``/``str()`` of any object of this module.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Collection, Iterable
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Union

import attrs
from attrs import field, frozen

from sbc.sip.errors import SipParseError

__all__ = [
    "Candidate",
    "Codec",
    "Connection",
    "Crypto",
    "Direction",
    "Group",
    "ICE_ATTRIBUTES",
    "MediaSection",
    "Origin",
    "Rtcp",
    "RtpMap",
    "STATIC_PAYLOAD_TYPES",
    "SdpLine",
    "SessionDescription",
    "TelephoneEvent",
    "match_answer",
    "parse_sdp",
    "serialise_sdp",
]

Address = Union[str, IPv4Address, IPv6Address]

CRLF = b"\r\n"

#: Attributes removed by `SessionDescription.without_ice` (RFC 8839 and RFC 8840 trickle).
ICE_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "ice-ufrag",
        "ice-pwd",
        "ice-options",
        "ice-lite",
        "ice-mismatch",
        "ice-pacing",
        "candidate",
        "remote-candidates",
        "end-of-candidates",
    }
)

#: RFC 3551 static payload types: pt -> (encoding, clock rate, channels; None = not given, i.e. 1).
STATIC_PAYLOAD_TYPES: dict[int, tuple[str, int, int | None]] = {
    0: ("PCMU", 8000, None),
    3: ("GSM", 8000, None),
    4: ("G723", 8000, None),
    5: ("DVI4", 8000, None),
    6: ("DVI4", 16000, None),
    7: ("LPC", 8000, None),
    8: ("PCMA", 8000, None),
    9: ("G722", 8000, None),
    10: ("L16", 44100, 2),
    11: ("L16", 44100, None),
    12: ("QCELP", 8000, None),
    13: ("CN", 8000, None),
    14: ("MPA", 90000, None),
    15: ("G728", 8000, None),
    16: ("DVI4", 11025, None),
    17: ("DVI4", 22050, None),
    18: ("G729", 8000, None),
    25: ("CelB", 90000, None),
    26: ("JPEG", 90000, None),
    28: ("nv", 90000, None),
    31: ("H261", 90000, None),
    32: ("MPV", 90000, None),
    33: ("MP2T", 90000, None),
    34: ("H263", 90000, None),
}

_MAX_DIGITS = 64  # guards int() against absurd digit strings (and Python's str->int limit)


def _text(raw: bytes) -> str:
    """Decode a protocol token for a parsed view.  latin-1 never fails and round-trips."""
    return raw.decode("latin-1")


def _number(raw: bytes, limit: int | None = None) -> int | None:
    """A decimal number, or None if ``raw`` is not one (or exceeds ``limit``)."""
    raw = raw.strip()
    if not raw or len(raw) > _MAX_DIGITS or not raw.isdigit():
        return None
    value = int(raw)
    if limit is not None and value > limit:
        return None
    return value


_INLINE_KEY = re.compile(rb"(inline:)[^|\s;]*")


def _redacted(line_type: str, value: bytes) -> bytes:
    """The value of a line with any secret replaced, for repr() and logs."""
    if line_type == "k":
        method, _, _ = value.partition(b":")
        return method + b":<redacted>"
    if line_type == "a":
        lowered = value.lower()
        if lowered.startswith(b"ice-pwd:"):
            return value[: len(b"ice-pwd:")] + b"<redacted>"
        if b"inline:" in lowered or lowered.startswith(b"crypto:"):
            return _INLINE_KEY.sub(rb"\1<redacted>", value)
    return value


# ---------------------------------------------------------------------------------------------
# Lines


@frozen(repr=False)
class SdpLine:
    """One SDP line: ``<type>=<value><eol>``.

    ``type`` is the one-letter line type (``"v"``, ``"m"``, ``"a"``, ...), or ``""`` for a
    blank (whitespace-only) line, whose whitespace is then the ``value``.  ``value`` is kept
    raw (including trailing whitespace).  ``eol`` is ``b"\\r\\n"``, ``b"\\n"`` or ``b""``
    (last line of a body without a final line end).
    """

    type: str
    value: bytes
    eol: bytes = CRLF

    def to_bytes(self) -> bytes:
        return self.raw() + self.eol

    def raw(self) -> bytes:
        """The line without its line end."""
        if not self.type:
            return self.value
        return self.type.encode("latin-1") + b"=" + self.value

    @property
    def attribute_name(self) -> str | None:
        """Lower-cased attribute name of an ``a=`` line, else None."""
        if self.type != "a":
            return None
        name, _, _ = self.value.partition(b":")
        return _text(name.strip()).lower()

    @property
    def attribute_value(self) -> bytes | None:
        """Raw value after ``a=name:`` (None for a flag attribute or a non-``a=`` line)."""
        if self.type != "a":
            return None
        _, colon, value = self.value.partition(b":")
        return value if colon else None

    def __repr__(self) -> str:
        return f"SdpLine({self.type!r}, {_redacted(self.type, self.value)!r}, {self.eol!r})"

    __str__ = __repr__


def _attribute_line(name: str, value: bytes | str | None, eol: bytes) -> SdpLine:
    if isinstance(value, str):
        value = value.encode("utf-8")
    raw_name = name.encode("latin-1")
    if not raw_name or b":" in raw_name or any(ch in b" \t\r\n" for ch in raw_name):
        raise ValueError(f"not an attribute name: {name!r}")
    if value is None:
        return SdpLine("a", raw_name, eol)
    _check_value(value)
    return SdpLine("a", raw_name + b":" + value, eol)


def _check_value(value: bytes) -> None:
    """Programmer input for rewrites must not smuggle extra lines in."""
    if b"\r" in value or b"\n" in value:
        raise ValueError("SDP values must not contain CR or LF")


def _eol_of(lines: Iterable[SdpLine]) -> bytes:
    for line in lines:
        if line.eol:
            return line.eol
    return CRLF


def _address_and_type(address: Address) -> tuple[bytes, bytes]:
    """``(addrtype, address)`` for a c=/o= line: IP6 for an IPv6 literal, else IP4."""
    text = str(address).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]  # RFC 5118 §4.6: never bracketed in SDP
    if not text or any(ch.isspace() for ch in text):
        raise ValueError(f"not a usable connection address: {address!r}")
    try:
        parsed = ip_address(text)
    except ValueError:
        return b"IP4", text.encode("idna") if not text.isascii() else text.encode("ascii")
    if isinstance(parsed, IPv6Address):
        return b"IP6", parsed.compressed.encode("ascii")
    return b"IP4", parsed.compressed.encode("ascii")


# ---------------------------------------------------------------------------------------------
# Parsed views


class Direction(enum.Enum):
    """RFC 3264 §5.1 / RFC 8866 §6.7 media direction attributes."""

    SENDRECV = "sendrecv"
    SENDONLY = "sendonly"
    RECVONLY = "recvonly"
    INACTIVE = "inactive"

    def reversed(self) -> "Direction":
        """The direction an answerer uses in reply (sendonly <-> recvonly)."""
        return _REVERSED[self]


_REVERSED = {
    Direction.SENDRECV: Direction.SENDRECV,
    Direction.SENDONLY: Direction.RECVONLY,
    Direction.RECVONLY: Direction.SENDONLY,
    Direction.INACTIVE: Direction.INACTIVE,
}
_DIRECTION_NAMES = frozenset(d.value for d in Direction)


@frozen
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>``."""

    username: str
    sess_id: str
    sess_version: int
    nettype: str
    addrtype: str
    address: str

    def to_value(self) -> bytes:
        return " ".join(
            [self.username, self.sess_id, str(self.sess_version), self.nettype, self.addrtype,
             self.address]
        ).encode("latin-1")


@frozen
class Connection:
    """``c=<nettype> <addrtype> <address>[/<ttl>][/<count>]`` (RFC 8866 §5.7).

    For ``IP4`` a single suffix is the TTL; for ``IP6`` a single suffix is the address count.
    ``address`` has no brackets (RFC 5118 §4.6).
    """

    nettype: str
    addrtype: str
    address: str
    ttl: int | None = None
    count: int | None = None

    @property
    def ip(self) -> IPv4Address | IPv6Address | None:
        """The address as an ipaddress object, or None for an FQDN."""
        try:
            return ip_address(self.address)
        except ValueError:
            return None

    @property
    def is_hold_address(self) -> bool:
        """True for the RFC 2543 hold address ``0.0.0.0`` (or the IPv6 unspecified ``::``)."""
        ip = self.ip
        return ip is not None and ip.is_unspecified


@frozen
class RtpMap:
    """``a=rtpmap:<payload type> <encoding name>/<clock rate>[/<channels>]``."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None


@frozen
class Codec:
    """One RTP format of an ``m=`` line with its rtpmap (or RFC 3551 static default) and fmtp."""

    payload_type: int
    encoding: str | None
    clock_rate: int | None
    channels: int | None = None
    fmtp: str | None = None


@frozen
class TelephoneEvent:
    """An RFC 4733 ``telephone-event`` payload type and its clock rate."""

    payload_type: int
    clock_rate: int
    events: str | None = None  # the fmtp value, e.g. "0-15"


@frozen
class Rtcp:
    """RFC 3605 ``a=rtcp:<port> [<nettype> <addrtype> <connection-address>]``."""

    port: int
    nettype: str | None = None
    addrtype: str | None = None
    address: str | None = None

    def to_value(self) -> bytes:
        value = str(self.port)
        if self.address is not None:
            value += f" {self.nettype or 'IN'} {self.addrtype or 'IP4'} {self.address}"
        return value.encode("latin-1")


@frozen
class Crypto:
    """RFC 4568 ``a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]``.

    ``key_params`` holds the secret master key and salt (``inline:...``); it is never shown by
    repr()/str().
    """

    tag: int
    suite: str
    key_params: str = field(repr=lambda _: "'<redacted>'")
    session_params: tuple[str, ...] = ()

    def to_value(self) -> bytes:
        parts = [str(self.tag), self.suite, self.key_params, *self.session_params]
        return " ".join(parts).encode("latin-1")

    @property
    def inline_keys(self) -> tuple[str, ...]:
        """The base64 ``key||salt`` of each ``inline:`` key-param (lifetime/MKI stripped)."""
        keys = []
        for param in self.key_params.split(";"):
            method, _, info = param.partition(":")
            if method == "inline":
                keys.append(info.split("|")[0])
        return tuple(keys)


@frozen
class Candidate:
    """RFC 8839 ``a=candidate`` (the extension attributes are kept as name/value pairs)."""

    foundation: str
    component: int
    transport: str
    priority: int
    address: str
    port: int
    type: str
    related_address: str | None = None
    related_port: int | None = None
    extensions: tuple[tuple[str, str], ...] = ()


@frozen
class Group:
    """RFC 5888 ``a=group:<semantics> <mid> ...`` (e.g. ``BUNDLE``)."""

    semantics: str
    mids: tuple[str, ...]


def _parse_connection(value: bytes) -> Connection | None:
    parts = value.split()
    if len(parts) < 3:
        return None
    nettype, addrtype = _text(parts[0]), _text(parts[1])
    pieces = parts[2].split(b"/")
    address = _text(pieces[0])
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    numbers = [_number(p) for p in pieces[1:3]]
    ttl = count = None
    if addrtype.upper() == "IP6":
        count = numbers[0] if numbers else None
    else:
        ttl = numbers[0] if numbers else None
        count = numbers[1] if len(numbers) > 1 else None
    return Connection(nettype, addrtype, address, ttl, count)


def _parse_origin(value: bytes) -> Origin | None:
    parts = value.split()
    if len(parts) < 6:
        return None
    version = _number(parts[2])
    if version is None:
        return None
    return Origin(_text(parts[0]), _text(parts[1]), version, _text(parts[3]), _text(parts[4]),
                  _text(parts[5]))


def _parse_rtpmap(value: bytes) -> RtpMap | None:
    parts = value.split(None, 1)
    if len(parts) != 2:
        return None
    pt = _number(parts[0], 127)
    pieces = parts[1].strip().split(b"/")
    if pt is None or len(pieces) < 2 or not pieces[0]:
        return None
    clock = _number(pieces[1])
    channels = _number(pieces[2]) if len(pieces) > 2 else None
    if clock is None:
        return None
    return RtpMap(pt, _text(pieces[0]), clock, channels)


def _parse_crypto(value: bytes) -> Crypto | None:
    parts = value.split()
    if len(parts) < 3:
        return None
    tag = _number(parts[0], 999_999_999)
    if tag is None:
        return None
    return Crypto(tag, _text(parts[1]), _text(parts[2]), tuple(_text(p) for p in parts[3:]))


def _parse_candidate(value: bytes) -> Candidate | None:
    parts = [_text(p) for p in value.split()]
    if len(parts) < 8 or parts[6].lower() != "typ":
        return None
    component = _number(parts[1].encode("latin-1"))
    priority = _number(parts[3].encode("latin-1"))
    port = _number(parts[5].encode("latin-1"), 65535)
    if component is None or priority is None or port is None:
        return None
    related_address: str | None = None
    related_port: int | None = None
    extensions = []
    rest = parts[8:]
    for name, val in zip(rest[0::2], rest[1::2]):
        if name == "raddr":
            related_address = val
        elif name == "rport":
            related_port = _number(val.encode("latin-1"), 65535)
        else:
            extensions.append((name, val))
    return Candidate(parts[0], component, parts[2], priority, parts[4], port, parts[7],
                     related_address, related_port, tuple(extensions))


# ---------------------------------------------------------------------------------------------
# Shared behaviour of the session part and of media sections


def _attributes(lines: Iterable[SdpLine], name: str) -> tuple[bytes | None, ...]:
    name = name.lower()
    return tuple(l.attribute_value for l in lines if l.attribute_name == name)


def _direction(lines: Iterable[SdpLine]) -> Direction | None:
    for line in lines:
        if line.attribute_name in _DIRECTION_NAMES and line.attribute_value is None:
            return Direction(line.attribute_name)
    return None


def _connection(lines: Iterable[SdpLine]) -> Connection | None:
    for line in lines:
        if line.type == "c":
            return _parse_connection(line.value)
    return None


def _set_attribute(
    lines: tuple[SdpLine, ...], name: str, value: bytes | str | None, first: int
) -> tuple[SdpLine, ...]:
    """Replace every ``a=name`` in ``lines[first:]`` by one line at the first one's place,
    or append it."""
    lowered = name.lower()
    out: list[SdpLine] = []
    placed = False
    for index, line in enumerate(lines):
        if index >= first and line.attribute_name == lowered:
            if not placed:
                out.append(_attribute_line(name, value, line.eol or _eol_of(lines)))
                placed = True
            continue
        out.append(line)
    if not placed:
        out.append(_attribute_line(name, value, _eol_of(lines)))
    return tuple(out)


def _remove(lines: tuple[SdpLine, ...], drop: Callable[[SdpLine], bool]) -> tuple[SdpLine, ...]:
    return tuple(line for line in lines if not drop(line))


def _set_connection(
    lines: tuple[SdpLine, ...], address: Address, before: frozenset[str], first: int
) -> tuple[SdpLine, ...]:
    """Set the (first) c= line of ``lines[first:]``, dropping any other c= lines there;
    insert one before the first line whose type is in ``before`` if there is none."""
    addrtype, addr = _address_and_type(address)
    value = b"IN " + addrtype + b" " + addr
    eol = _eol_of(lines)
    out: list[SdpLine] = []
    placed = False
    for index, line in enumerate(lines):
        if index >= first and line.type == "c":
            if not placed:
                out.append(SdpLine("c", value, line.eol or eol))
                placed = True
            continue
        if not placed and index >= first and line.type in before:
            out.append(SdpLine("c", value, eol))
            placed = True
        out.append(line)
    if not placed:
        out.append(SdpLine("c", value, eol))
    return tuple(out)


def _set_direction(lines: tuple[SdpLine, ...], direction: Direction, first: int) -> tuple[SdpLine, ...]:
    out: list[SdpLine] = []
    placed = False
    eol = _eol_of(lines)
    for index, line in enumerate(lines):
        if index >= first and line.attribute_name in _DIRECTION_NAMES and line.attribute_value is None:
            if not placed:
                out.append(SdpLine("a", direction.value.encode("ascii"), line.eol or eol))
                placed = True
            continue
        out.append(line)
    if not placed:
        out.append(SdpLine("a", direction.value.encode("ascii"), eol))
    return tuple(out)


def _is_ice(line: SdpLine) -> bool:
    return line.attribute_name in ICE_ATTRIBUTES


# ---------------------------------------------------------------------------------------------
# Media sections


@frozen
class MediaSection:
    """An ``m=`` line and the lines that follow it up to the next ``m=`` line.

    ``lines[0]`` is always the ``m=`` line (validated at parse time).
    """

    lines: tuple[SdpLine, ...]

    # -- the m= line ---------------------------------------------------------------------------

    @property
    def _m_fields(self) -> list[bytes]:
        return self.lines[0].value.split()

    @property
    def media(self) -> str:
        """``audio``, ``video``, ``application``, ``image``, ``text``, ``message``..."""
        return _text(self._m_fields[0])

    @property
    def port(self) -> int:
        return int(self._m_fields[1].split(b"/")[0])

    @property
    def port_count(self) -> int | None:
        """The optional ``/<number of ports>`` of the m= line."""
        pieces = self._m_fields[1].split(b"/")
        return int(pieces[1]) if len(pieces) > 1 else None

    @property
    def proto(self) -> str:
        return _text(self._m_fields[2])

    @property
    def formats(self) -> tuple[str, ...]:
        return tuple(_text(f) for f in self._m_fields[3:])

    @property
    def payload_types(self) -> tuple[int, ...]:
        """The numeric formats (RTP payload types) of the m= line, in order."""
        return tuple(pt for pt in (_number(f, 127) for f in self._m_fields[3:]) if pt is not None)

    @property
    def rejected(self) -> bool:
        """Port 0: a rejected or disabled stream (RFC 3264 §6, §8.2)."""
        return self.port == 0

    # -- generic attribute access ---------------------------------------------------------------

    def attributes(self, name: str) -> tuple[bytes | None, ...]:
        """Raw values of every ``a=<name>`` line (None for a flag attribute), in order."""
        return _attributes(self.lines[1:], name)

    def attribute(self, name: str) -> bytes | None:
        """Raw value of the first ``a=<name>`` line (None if absent or a flag)."""
        values = self.attributes(name)
        return values[0] if values else None

    def has_attribute(self, name: str) -> bool:
        return bool(self.attributes(name))

    # -- parsed views ---------------------------------------------------------------------------

    @property
    def connection(self) -> Connection | None:
        """The media-level c= (first one), without falling back to the session level."""
        return _connection(self.lines[1:])

    @property
    def own_direction(self) -> Direction | None:
        """The media-level direction attribute, if any (see `SessionDescription.direction`)."""
        return _direction(self.lines[1:])

    def rtpmap(self) -> dict[int, RtpMap]:
        """Payload type -> rtpmap; malformed lines are skipped; the first one wins."""
        result: dict[int, RtpMap] = {}
        for value in self.attributes("rtpmap"):
            parsed = _parse_rtpmap(value) if value is not None else None
            if parsed is not None and parsed.payload_type not in result:
                result[parsed.payload_type] = parsed
        return result

    def fmtp(self) -> dict[str, str]:
        """Format -> fmtp parameters (decoded, stripped); keys are format strings (``"101"``)."""
        result: dict[str, str] = {}
        for value in self.attributes("fmtp"):
            if value is None:
                continue
            parts = value.strip().split(None, 1)
            if parts and _text(parts[0]) not in result:
                result[_text(parts[0])] = _text(parts[1]).strip() if len(parts) > 1 else ""
        return result

    def codecs(self) -> tuple[Codec, ...]:
        """The RTP formats of the m= line, in order, with rtpmap (or RFC 3551 static) and fmtp."""
        maps = self.rtpmap()
        fmtps = self.fmtp()
        result = []
        for pt in self.payload_types:
            fmtp = fmtps.get(str(pt))
            mapped = maps.get(pt)
            if mapped is not None:
                result.append(Codec(pt, mapped.encoding, mapped.clock_rate, mapped.channels, fmtp))
            elif pt in STATIC_PAYLOAD_TYPES:
                encoding, clock, channels = STATIC_PAYLOAD_TYPES[pt]
                result.append(Codec(pt, encoding, clock, channels, fmtp))
            else:
                result.append(Codec(pt, None, None, None, fmtp))
        return tuple(result)

    def telephone_events(self) -> tuple[TelephoneEvent, ...]:
        """RFC 4733 telephone-event payload types offered on the m= line, in m= order."""
        fmtps = self.fmtp()
        return tuple(
            TelephoneEvent(c.payload_type, c.clock_rate, fmtps.get(str(c.payload_type)))
            for c in self.codecs()
            if c.encoding is not None and c.encoding.lower() == "telephone-event"
            and c.clock_rate is not None
        )

    def telephone_event(self, clock_rate: int | None = None) -> TelephoneEvent | None:
        """The telephone-event entry for ``clock_rate`` (or the first one if None).

        Never assume PT 101: look it up here.  With ``clock_rate`` given (normally the clock
        rate of the audio codec in use, RFC 4733 §2.1) only an entry of that rate matches.
        """
        for event in self.telephone_events():
            if clock_rate is None or event.clock_rate == clock_rate:
                return event
        return None

    @property
    def ptime(self) -> int | None:
        """a=ptime in whole milliseconds (a fractional part is dropped)."""
        value = self.attribute("ptime")
        return _number(value.split(b".")[0]) if value is not None else None

    @property
    def maxptime(self) -> int | None:
        value = self.attribute("maxptime")
        return _number(value.split(b".")[0]) if value is not None else None

    @property
    def rtcp(self) -> Rtcp | None:
        """RFC 3605 a=rtcp (None if absent or malformed)."""
        value = self.attribute("rtcp")
        if value is None:
            return None
        parts = value.split()
        port = _number(parts[0], 65535) if parts else None
        if port is None:
            return None
        if len(parts) >= 4:
            return Rtcp(port, _text(parts[1]), _text(parts[2]), _text(parts[3]).strip("[]"))
        return Rtcp(port)

    @property
    def rtcp_mux(self) -> bool:
        return self.has_attribute("rtcp-mux")

    def crypto(self) -> tuple[Crypto, ...]:
        """RFC 4568 SDES crypto lines, in order (malformed lines skipped)."""
        result = []
        for value in self.attributes("crypto"):
            parsed = _parse_crypto(value) if value is not None else None
            if parsed is not None:
                result.append(parsed)
        return tuple(result)

    @property
    def ice_ufrag(self) -> str | None:
        value = self.attribute("ice-ufrag")
        return _text(value.strip()) if value is not None else None

    @property
    def ice_pwd(self) -> str | None:
        value = self.attribute("ice-pwd")
        return _text(value.strip()) if value is not None else None

    def candidates(self) -> tuple[Candidate, ...]:
        result = []
        for value in self.attributes("candidate"):
            parsed = _parse_candidate(value) if value is not None else None
            if parsed is not None:
                result.append(parsed)
        return tuple(result)

    @property
    def end_of_candidates(self) -> bool:
        return self.has_attribute("end-of-candidates")

    @property
    def has_ice(self) -> bool:
        return any(_is_ice(line) for line in self.lines[1:])

    @property
    def mid(self) -> str | None:
        value = self.attribute("mid")
        return _text(value.strip()) if value is not None else None

    @property
    def fingerprint(self) -> str | None:
        """RFC 8122 a=fingerprint (DTLS-SRTP), raw text."""
        value = self.attribute("fingerprint")
        return _text(value.strip()) if value is not None else None

    # -- rewrites -------------------------------------------------------------------------------

    def with_port(self, port: int, port_count: int | None = None) -> "MediaSection":
        """Set the media port (and optionally the number of ports; else dropped)."""
        if not 0 <= port <= 65535:
            raise ValueError(f"port out of range: {port}")
        fields = self._m_fields
        fields[1] = str(port).encode("ascii") + (
            b"/" + str(port_count).encode("ascii") if port_count is not None else b""
        )
        return self._with_m_fields(fields)

    def rejected_copy(self) -> "MediaSection":
        """This stream rejected/disabled: port 0 (RFC 3264 §6), formats kept."""
        return self.with_port(0)

    def _with_m_fields(self, fields: list[bytes]) -> "MediaSection":
        m = self.lines[0]
        return attrs.evolve(self, lines=(SdpLine("m", b" ".join(fields), m.eol),) + self.lines[1:])

    def with_connection(self, address: Address) -> "MediaSection":
        """Set the media-level c= (IP4/IP6 chosen from the address)."""
        return attrs.evolve(
            self, lines=_set_connection(self.lines, address, frozenset({"b", "k", "a"}), 1)
        )

    def without_connection(self) -> "MediaSection":
        return attrs.evolve(self, lines=self.lines[:1] + _remove(self.lines[1:], lambda l: l.type == "c"))

    def with_attribute(self, name: str, value: bytes | str | None = None) -> "MediaSection":
        """Set ``a=name[:value]``: replaces all existing ``a=name`` lines (at the first one's
        place) or appends it."""
        return attrs.evolve(self, lines=_set_attribute(self.lines, name, value, 1))

    def with_added_attribute(self, name: str, value: bytes | str | None = None) -> "MediaSection":
        """Append ``a=name[:value]`` even if such attributes exist already."""
        return attrs.evolve(self, lines=self.lines + (_attribute_line(name, value, _eol_of(self.lines)),))

    def without_attribute(self, name: str) -> "MediaSection":
        lowered = name.lower()
        return attrs.evolve(self, lines=_remove(self.lines, lambda l: l.attribute_name == lowered))

    def without_ice(self) -> "MediaSection":
        return attrs.evolve(self, lines=_remove(self.lines, _is_ice))

    def with_direction(self, direction: Direction) -> "MediaSection":
        """Set the media-level direction (one attribute; other direction attributes removed)."""
        return attrs.evolve(self, lines=_set_direction(self.lines, direction, 1))

    def with_rtcp(self, port: int, address: Address | None = None) -> "MediaSection":
        """Replace (or add) a=rtcp (RFC 3605) with ``port`` and, optionally, an address."""
        if address is None:
            rtcp = Rtcp(port)
        else:
            addrtype, addr = _address_and_type(address)
            rtcp = Rtcp(port, "IN", _text(addrtype), _text(addr))
        return self.with_attribute("rtcp", rtcp.to_value())

    def without_rtcp(self) -> "MediaSection":
        return self.without_attribute("rtcp")

    def with_formats(self, keep: Collection[int | str]) -> "MediaSection":
        """Keep only the formats in ``keep``, in their m= line order, and drop the
        ``a=rtpmap``/``a=fmtp``/``a=rtcp-fb`` lines of the others.

        Raises ValueError if nothing would remain (reject the stream instead: `rejected_copy`).
        """
        wanted = {str(k) for k in keep}
        fields = self._m_fields
        kept = [f for f in fields[3:] if _text(f) in wanted]
        if not kept:
            raise ValueError("no format left; reject the stream with port 0 instead")
        dropped = {_text(f) for f in fields[3:]} - {_text(f) for f in kept}

        def drop(line: SdpLine) -> bool:
            if line.attribute_name not in ("rtpmap", "fmtp", "rtcp-fb"):
                return False
            value = line.attribute_value or b""
            parts = value.split(None, 1)
            return bool(parts) and _text(parts[0]) in dropped

        section = self._with_m_fields(fields[:3] + kept)
        return attrs.evolve(section, lines=section.lines[:1] + _remove(section.lines[1:], drop))

    def with_crypto(self, crypto: Crypto) -> "MediaSection":
        """Append an a=crypto line (after the existing ones if any)."""
        line = SdpLine("a", b"crypto:" + crypto.to_value(), _eol_of(self.lines))
        _check_value(line.value)
        lines = list(self.lines)
        last = max((i for i, l in enumerate(lines) if l.attribute_name == "crypto"), default=None)
        if last is None:
            lines.append(line)
        else:
            lines.insert(last + 1, line)
        return attrs.evolve(self, lines=tuple(lines))

    def without_crypto(self, tag: int | None = None) -> "MediaSection":
        """Remove every a=crypto line, or only those with ``tag``."""

        def drop(line: SdpLine) -> bool:
            if line.attribute_name != "crypto":
                return False
            if tag is None:
                return True
            parsed = _parse_crypto(line.attribute_value or b"")
            return parsed is not None and parsed.tag == tag

        return attrs.evolve(self, lines=_remove(self.lines, drop))


# ---------------------------------------------------------------------------------------------
# Session descriptions

_SESSION_C_BEFORE = frozenset({"b", "t", "r", "z", "k", "a"})


@frozen
class SessionDescription:
    """A parsed SDP body: session-level lines (``session``) then media sections (``media``)."""

    session: tuple[SdpLine, ...]
    media: tuple[MediaSection, ...] = ()

    # -- bytes ---------------------------------------------------------------------------------

    @classmethod
    def parse(cls, body: bytes) -> "SessionDescription":
        return parse_sdp(body)

    def all_lines(self) -> tuple[SdpLine, ...]:
        lines = list(self.session)
        for section in self.media:
            lines.extend(section.lines)
        return tuple(lines)

    def to_bytes(self) -> bytes:
        """Serialise; a line that lost its line end by no longer being last gets one."""
        lines = self.all_lines()
        default = _eol_of(lines)
        out = []
        last = len(lines) - 1
        for index, line in enumerate(lines):
            out.append(line.raw())
            out.append(line.eol if line.eol or index == last else default)
        return b"".join(out)

    __bytes__ = to_bytes

    # -- session-level views --------------------------------------------------------------------

    @property
    def version(self) -> int | None:
        for line in self.session:
            if line.type == "v":
                return _number(line.value)
        return None

    @property
    def origin(self) -> Origin:
        for line in self.session:
            if line.type == "o":
                parsed = _parse_origin(line.value)
                if parsed is not None:
                    return parsed
        raise SipParseError("SDP without a valid o= line", 400)  # parse_sdp guarantees one

    @property
    def session_name(self) -> bytes | None:
        for line in self.session:
            if line.type == "s":
                return line.value
        return None

    @property
    def connection(self) -> Connection | None:
        """The session-level c= line."""
        return _connection(self.session)

    def bandwidths(self, index: int | None = None) -> tuple[tuple[str, int | None], ...]:
        """``(bwtype, value)`` of the b= lines of the session (or of media ``index``)."""
        lines = self.session if index is None else self.media[index].lines
        result = []
        for line in lines:
            if line.type == "b":
                bwtype, _, value = line.value.partition(b":")
                result.append((_text(bwtype.strip()), _number(value)))
        return tuple(result)

    def attributes(self, name: str) -> tuple[bytes | None, ...]:
        """Raw values of session-level ``a=<name>`` lines."""
        return _attributes(self.session, name)

    def attribute(self, name: str) -> bytes | None:
        values = self.attributes(name)
        return values[0] if values else None

    def has_attribute(self, name: str) -> bool:
        return bool(self.attributes(name))

    @property
    def session_direction(self) -> Direction | None:
        """The session-level direction attribute (the default for media), if any."""
        return _direction(self.session)

    def direction(self, index: int) -> Direction:
        """Effective direction of media ``index``: media level, else session level, else
        sendrecv (RFC 8866 §6.7)."""
        return (
            self.media[index].own_direction or self.session_direction or Direction.SENDRECV
        )

    def connection_for(self, index: int) -> Connection | None:
        """Effective c= of media ``index``: media level, else session level."""
        return self.media[index].connection or self.connection

    def is_media_on_hold(self, index: int) -> bool:
        """True if media ``index`` is active and put on hold by its sender: a=sendonly or
        a=inactive (RFC 3264 §8.4), or the RFC 2543 c=0.0.0.0 style.

        c=0.0.0.0 does not mean hold in a section that carries ICE attributes (session or
        media level): there it is the trickle-ICE "no default candidate yet" placeholder
        (RFC 8839 §4.2.1, RFC 8840)."""
        section = self.media[index]
        if section.rejected:
            return False
        if self.direction(index) in (Direction.SENDONLY, Direction.INACTIVE):
            return True
        connection = self.connection_for(index)
        if connection is None or not connection.is_hold_address:
            return False
        return not (section.has_ice or any(_is_ice(line) for line in self.session))

    @property
    def on_hold(self) -> bool:
        """True if there is at least one active stream and every active stream is on hold."""
        active = [i for i, m in enumerate(self.media) if not m.rejected]
        return bool(active) and all(self.is_media_on_hold(i) for i in active)

    @property
    def ice_lite(self) -> bool:
        return self.has_attribute("ice-lite")

    @property
    def ice_options(self) -> tuple[str, ...]:
        value = self.attribute("ice-options")
        return tuple(_text(v) for v in value.split()) if value is not None else ()

    @property
    def ice_ufrag(self) -> str | None:
        value = self.attribute("ice-ufrag")
        return _text(value.strip()) if value is not None else None

    @property
    def ice_pwd(self) -> str | None:
        value = self.attribute("ice-pwd")
        return _text(value.strip()) if value is not None else None

    @property
    def has_ice(self) -> bool:
        return any(_is_ice(line) for line in self.session) or any(m.has_ice for m in self.media)

    def groups(self) -> tuple[Group, ...]:
        result = []
        for value in self.attributes("group"):
            if value is None:
                continue
            parts = [_text(p) for p in value.split()]
            if parts:
                result.append(Group(parts[0], tuple(parts[1:])))
        return tuple(result)

    def media_by_mid(self, mid: str) -> int | None:
        for index, section in enumerate(self.media):
            if section.mid == mid:
                return index
        return None

    # -- rewrites -------------------------------------------------------------------------------

    def _with_media(self, index: int, section: MediaSection) -> "SessionDescription":
        media = list(self.media)
        media[index] = section
        return attrs.evolve(self, media=tuple(media))

    def _map_media(self, fn: Callable[[MediaSection], MediaSection]) -> "SessionDescription":
        return attrs.evolve(self, media=tuple(fn(m) for m in self.media))

    def with_media(self, index: int, section: MediaSection) -> "SessionDescription":
        """Replace media section ``index``."""
        return self._with_media(index, section)

    def with_session_connection(self, address: Address) -> "SessionDescription":
        """Set (or insert) the session-level c= line."""
        return attrs.evolve(self, session=_set_connection(self.session, address, _SESSION_C_BEFORE, 1))

    def with_media_connection(self, index: int, address: Address) -> "SessionDescription":
        """Set (or insert) the c= line of media ``index``."""
        return self._with_media(index, self.media[index].with_connection(address))

    def with_connection(self, address: Address) -> "SessionDescription":
        """Point everything at ``address``: set the session c= and replace any media-level
        c= lines (none are added)."""
        sd = self.with_session_connection(address)

        def fix(section: MediaSection) -> MediaSection:
            return section.with_connection(address) if section.connection is not None else section

        return sd._map_media(fix)

    def with_origin(self, origin: Origin) -> "SessionDescription":
        lines = list(self.session)
        for index, line in enumerate(lines):
            if line.type == "o":
                lines[index] = SdpLine("o", origin.to_value(), line.eol)
                break
        return attrs.evolve(self, session=tuple(lines))

    def with_origin_address(self, address: Address) -> "SessionDescription":
        """Set the o= unicast address (IP4/IP6 from the address), e.g. for topology hiding."""
        addrtype, addr = _address_and_type(address)
        return self.with_origin(attrs.evolve(self.origin, addrtype=_text(addrtype), address=_text(addr)))

    def bump_version(self) -> "SessionDescription":
        """sess-version + 1 (RFC 3264 §8: a changed SDP in the same session)."""
        origin = self.origin
        return self.with_origin(attrs.evolve(origin, sess_version=origin.sess_version + 1))

    def with_media_port(self, index: int, port: int) -> "SessionDescription":
        return self._with_media(index, self.media[index].with_port(port))

    def with_session_attribute(self, name: str, value: bytes | str | None = None) -> "SessionDescription":
        return attrs.evolve(self, session=_set_attribute(self.session, name, value, 1))

    def without_session_attribute(self, name: str) -> "SessionDescription":
        lowered = name.lower()
        return attrs.evolve(self, session=_remove(self.session, lambda l: l.attribute_name == lowered))

    def with_media_attribute(self, index: int, name: str, value: bytes | str | None = None) -> "SessionDescription":
        return self._with_media(index, self.media[index].with_attribute(name, value))

    def without_attribute(self, name: str) -> "SessionDescription":
        """Remove ``a=name`` everywhere (session level and every media section)."""
        return self.without_session_attribute(name)._map_media(lambda m: m.without_attribute(name))

    def without_ice(self) -> "SessionDescription":
        """Remove every ICE attribute (`ICE_ATTRIBUTES`) at both levels."""
        return attrs.evolve(
            self, session=_remove(self.session, _is_ice), media=tuple(m.without_ice() for m in self.media)
        )

    def with_direction(self, direction: Direction, index: int | None = None) -> "SessionDescription":
        """Set the direction of media ``index``, or (index None) of every media section, in
        which case the session-level direction attributes are removed."""
        if index is not None:
            return self._with_media(index, self.media[index].with_direction(direction))
        session = _remove(
            self.session, lambda l: l.attribute_name in _DIRECTION_NAMES and l.attribute_value is None
        )
        return attrs.evolve(self, session=session, media=tuple(m.with_direction(direction) for m in self.media))

    def with_rtcp(self, index: int, port: int, address: Address | None = None) -> "SessionDescription":
        return self._with_media(index, self.media[index].with_rtcp(port, address))

    def with_formats(self, index: int, keep: Collection[int | str]) -> "SessionDescription":
        return self._with_media(index, self.media[index].with_formats(keep))

    def with_crypto(self, index: int, crypto: Crypto) -> "SessionDescription":
        return self._with_media(index, self.media[index].with_crypto(crypto))

    def without_crypto(self, index: int | None = None, tag: int | None = None) -> "SessionDescription":
        """Remove crypto lines of media ``index`` (or of all media), optionally only ``tag``."""
        if index is not None:
            return self._with_media(index, self.media[index].without_crypto(tag))
        return self._map_media(lambda m: m.without_crypto(tag))


# ---------------------------------------------------------------------------------------------
# Parsing


def _split_lines(body: bytes) -> list[SdpLine]:
    lines = []
    pieces = body.split(b"\n")
    last = len(pieces) - 1
    for number, piece in enumerate(pieces, 1):
        if number - 1 == last:
            if not piece:
                break
            eol = b""
        elif piece.endswith(b"\r"):
            piece, eol = piece[:-1], CRLF
        else:
            eol = b"\n"
        if not piece.strip():
            lines.append(SdpLine("", piece, eol))
            continue
        if len(piece) < 2 or piece[1:2] != b"=" or not piece[:1].isalpha():
            raise SipParseError(f"SDP line {number} is not <type>=<value>", 400)
        lines.append(SdpLine(piece[:1].decode("ascii"), piece[2:], eol))
    return lines


def _check_m_line(value: bytes, number: int) -> None:
    fields = value.split()
    if len(fields) < 3:
        raise SipParseError(f"SDP m= line {number} has fewer than 3 fields", 400)
    port, slash, count = fields[1].partition(b"/")
    if _number(port, 65535) is None:
        raise SipParseError(f"SDP m= line {number}: port is not a number 0-65535", 400)
    if slash and (_number(count, 65535) is None or count == b"0"):
        raise SipParseError(f"SDP m= line {number}: bad number of ports", 400)


def _check_c_line(value: bytes, number: int) -> Connection:
    connection = _parse_connection(value)
    if connection is None:
        raise SipParseError(f"SDP c= line {number} has fewer than 3 fields", 400)
    ip = connection.ip
    kind = connection.addrtype.upper()
    if ip is not None and (
        (kind == "IP4" and isinstance(ip, IPv6Address)) or (kind == "IP6" and isinstance(ip, IPv4Address))
    ):
        raise SipParseError(f"SDP c= line {number}: address does not match {connection.addrtype}", 488)
    return connection


def parse_sdp(body: bytes) -> SessionDescription:
    """Parse an SDP body.  Raises `SipParseError` (400 syntax / 488 semantic, see module doc)."""
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError("SDP bodies are bytes")
    body = bytes(body)
    if not body.strip():
        raise SipParseError("empty SDP body", 400)
    lines = _split_lines(body)

    session: list[SdpLine] = []
    sections: list[list[SdpLine]] = []
    seen_version = False
    origin_ok = False
    session_connection = False
    for number, line in enumerate(lines, 1):
        if not line.type:
            (sections[-1] if sections else session).append(line)
            continue
        if not seen_version:
            if line.type != "v":
                raise SipParseError("SDP does not start with v=", 400)
            if _number(line.value) is None:
                raise SipParseError("SDP v= is not a number", 400)
            if _number(line.value) != 0:
                raise SipParseError("unsupported SDP version", 488)
            seen_version = True
        if line.type == "m":
            _check_m_line(line.value, number)
            sections.append([line])
            continue
        if line.type == "c":
            _check_c_line(line.value, number)
            if not sections:
                session_connection = True
        if line.type == "o" and not sections and not origin_ok:
            if _parse_origin(line.value) is None:
                raise SipParseError("SDP o= line malformed", 400)
            origin_ok = True
        (sections[-1] if sections else session).append(line)

    if not seen_version:
        raise SipParseError("SDP without v= line", 400)
    if not origin_ok:
        raise SipParseError("SDP without o= line", 400)
    media = tuple(MediaSection(tuple(s)) for s in sections)
    if not session_connection:
        for section in media:
            if not section.rejected and section.connection is None:
                raise SipParseError("SDP media stream without a connection address", 488)
    return SessionDescription(tuple(session), media)


def serialise_sdp(sdp: SessionDescription) -> bytes:
    return sdp.to_bytes()


# ---------------------------------------------------------------------------------------------
# Offer/answer (RFC 3264)


def match_answer(
    offer: SessionDescription, answer: SessionDescription
) -> tuple[tuple[MediaSection, MediaSection], ...]:
    """Pair each offer media section with the answer section at the same index.

    RFC 3264 §6: the answer has exactly as many m= lines as the offer, in the same order and
    of the same media types.  Anything else raises `SipParseError` (488).
    """
    if len(offer.media) != len(answer.media):
        raise SipParseError(
            f"answer has {len(answer.media)} media lines, offer has {len(offer.media)}", 488
        )
    pairs = []
    for index, (o, a) in enumerate(zip(offer.media, answer.media)):
        if o.media != a.media:
            raise SipParseError(f"answer media line {index} is {a.media}, offer has {o.media}", 488)
        pairs.append((o, a))
    return tuple(pairs)
