# -*- test-case-name: tests.test_quirks_message -*-
"""The plugin-facing SIP message: mutable, plain ``str`` values, converted to and from
:mod:`sbc.sip.message` by the host.

:func:`from_sip` wraps a parsed (or built) :class:`~sbc.sip.message.Request` or
:class:`~sbc.sip.message.Response`; :func:`to_sip` turns the possibly changed message back
into one, keeping every header a plugin did not touch byte for byte (its original
:class:`~sbc.sip.message.Header` object, raw folding included) and returning the original
message itself when nothing changed.  Header values are decoded as UTF-8 with
``surrogateescape``, so any byte survives the round trip.

Names are case-insensitive and compact forms work (``get("f")`` is From).  Setting a value
with CR or LF, or a name that is not a token, raises ``ValueError`` at once, so a plugin
cannot inject header lines.  Changing ``body`` makes :func:`to_sip` set Content-Length.
"""

from __future__ import annotations

from typing import Iterator

from sbc.sip.errors import SipParseError
from sbc.sip.headers import MULTI_VALUE, canonical_name, header_key, is_token, replace_keyed, split_values
from sbc.sip.message import Header, Request, Response

__all__ = ["SipMessage", "from_sip", "to_sip", "decode", "encode"]


def decode(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


def encode(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name or not is_token(name):
        raise ValueError(f"not a header name: {name!r}")
    return name


def _check_value(value: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"header value must be str, not {type(value).__name__}")
    if "\r" in value or "\n" in value or "\x00" in value:
        raise ValueError("header value must not contain CR, LF or NUL")
    return value


class _Entry:
    __slots__ = ("name", "value", "key", "origin")

    def __init__(self, name: str, value: str, origin: Header | None) -> None:
        self.name = name
        self.value = value
        self.key = header_key(name)
        self.origin = origin

    def header(self) -> Header:
        origin = self.origin
        if origin is not None and origin.name == self.name and decode(origin.value) == self.value:
            return origin
        return Header(self.name, encode(self.value))


class SipMessage:
    """A request (``method`` and ``uri`` set) or a response (``status`` and ``reason`` set)."""

    def __init__(
        self,
        *,
        method: str | None = None,
        uri: str | None = None,
        status: int | None = None,
        reason: str | None = None,
        headers: list[tuple[str, str]] | tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
    ) -> None:
        if (method is None) == (status is None):
            raise ValueError("a SipMessage is a request (method) or a response (status)")
        self.method = method
        self.uri = uri
        self.status = status
        self.reason = reason
        self.body = bytes(body)
        self._origin: Request | Response | None = None
        self._entries: list[_Entry] = [
            _Entry(canonical_name(_check_name(n)), _check_value(v), None) for n, v in headers
        ]

    # ---- what it is

    @property
    def is_request(self) -> bool:
        return self.method is not None

    @property
    def content_type(self) -> str | None:
        value = self.get("Content-Type")
        return None if value is None else value.strip()

    # ---- reading

    def get(self, name: str) -> str | None:
        """Value of the first header called ``name``, or None."""
        key = header_key(name)
        for e in self._entries:
            if e.key == key:
                return e.value
        return None

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` in order; list headers (RFC 3261 §7.3: Contact, Diversion,
        P-Asserted-Identity, History-Info ...) are split at their top-level commas (a value
        that cannot be split, an unterminated quote or ``<``, comes back whole)."""
        key = header_key(name)
        out: list[str] = []
        for e in self._entries:
            if e.key == key:
                if key in MULTI_VALUE:
                    try:
                        out.extend(decode(v) for v in split_values(encode(e.value)))
                    except SipParseError:
                        out.append(e.value)
                else:
                    out.append(e.value)
        return out

    def has(self, name: str) -> bool:
        return self.get(name) is not None

    def headers(self) -> list[tuple[str, str]]:
        """Every header line as (name, value), in order (a copy)."""
        return [(e.name, e.value) for e in self._entries]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.headers())

    # ---- changing

    def set(self, name: str, value: str) -> None:
        """Replace every header called ``name`` by one line with ``value``, at the first one's
        position (or at the end)."""
        _check_value(value)
        key = header_key(_check_name(name))
        self._entries = replace_keyed(self._entries, key, _Entry(canonical_name(name), value, None))

    def add(self, name: str, value: str) -> None:
        """Add a header line at the end (after any others)."""
        _check_value(value)
        self._entries.append(_Entry(canonical_name(_check_name(name)), value, None))

    def prepend(self, name: str, value: str) -> None:
        """Add a header line before the first header called ``name`` (or before all headers):
        the place for Record-Route and Route."""
        _check_value(value)
        key = header_key(_check_name(name))
        new = _Entry(canonical_name(name), value, None)
        for i, e in enumerate(self._entries):
            if e.key == key:
                self._entries.insert(i, new)
                return
        self._entries.insert(0, new)

    def remove(self, name: str) -> None:
        """Remove every header called ``name`` (nothing happens when there is none)."""
        key = header_key(name)
        self._entries = [e for e in self._entries if e.key != key]

    # ---- copies

    def copy(self) -> SipMessage:
        other = SipMessage.__new__(SipMessage)
        other.method = self.method
        other.uri = self.uri
        other.status = self.status
        other.reason = self.reason
        other.body = self.body
        other._entries = [_copy_entry(e) for e in self._entries]
        other._origin = self._origin
        return other

    def to_text(self) -> str:
        """The message as text (for ``sbc normalize`` and tests)."""
        if self.method is not None:
            start = f"{self.method} {self.uri} SIP/2.0"
        else:
            start = f"SIP/2.0 {self.status} {self.reason or ''}".rstrip()
        lines = [start] + [f"{n}: {v}" for n, v in self.headers()]
        return "\r\n".join(lines) + "\r\n\r\n" + self.body.decode("utf-8", "replace")

    def __repr__(self) -> str:
        first = f"{self.method} {self.uri}" if self.method is not None else f"{self.status} {self.reason}"
        return f"<SipMessage {first} headers={len(self._entries)} body={len(self.body)}>"


def _copy_entry(e: _Entry) -> _Entry:
    return _Entry(e.name, e.value, e.origin)


def from_sip(message: Request | Response) -> SipMessage:
    """The plugin view of ``message`` (which is not changed)."""
    out = SipMessage.__new__(SipMessage)
    if isinstance(message, Request):
        out.method = message.method
        out.uri = decode(message.uri)
        out.status = None
        out.reason = None
    else:
        out.method = None
        out.uri = None
        out.status = message.status
        out.reason = message.reason
    out.body = message.body
    out._entries = [_Entry(h.name, decode(h.value), h) for h in message.headers]
    out._origin = message
    return out


def to_sip(view: SipMessage, original: Request | Response | None = None) -> Request | Response:
    """The sbc.sip message for ``view``.  ``original`` (default: the message ``view`` was
    made from) supplies the version and is returned as is when nothing changed.

    Raises ValueError when the view cannot be a message (a request without a URI, a status
    out of range, a header value with CR/LF put there behind the API's back)."""
    if original is None:
        original = view._origin
    headers = tuple(e.header() for e in view._entries)
    body = bytes(view.body)
    if original is not None and body != original.body:
        headers = _with_content_length(headers, len(body))
    if view.method is not None:
        if not view.uri or any(c in view.uri for c in " \r\n\t"):
            raise ValueError(f"bad Request-URI: {view.uri!r}")
        if not is_token(view.method):
            raise ValueError(f"bad method: {view.method!r}")
        uri = encode(view.uri)
        if isinstance(original, Request):
            if (original.method == view.method and original.uri == uri and original.body == body
                    and _same(original.headers, headers)):
                return original
            return Request(view.method, uri, headers, body, original.version)
        return Request(view.method, uri, headers, body)
    status = view.status
    if not isinstance(status, int) or not 100 <= status <= 699:
        raise ValueError(f"bad status: {status!r}")
    reason = view.reason or ""
    if "\r" in reason or "\n" in reason:
        raise ValueError("reason phrase must not contain CR or LF")
    if isinstance(original, Response):
        if (original.status == status and original.reason == reason and original.body == body
                and _same(original.headers, headers)):
            return original
        return Response(status, reason, headers, body, original.version)
    return Response(status, reason, headers, body)


def _same(a: tuple[Header, ...], b: tuple[Header, ...]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def _with_content_length(headers: tuple[Header, ...], length: int) -> tuple[Header, ...]:
    new = Header("Content-Length", b"%d" % length)
    out: list[Header] = []
    placed = False
    for h in headers:
        if h.key == "content-length":
            if not placed:
                out.append(new)
                placed = True
        else:
            out.append(h)
    if not placed:
        out.append(new)
    return tuple(out)
