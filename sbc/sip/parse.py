# -*- test-case-name: tests.test_sip_parse -*-
"""Framing of SIP messages: one datagram, or a TCP/TLS byte stream (RFC 3261 §18.3).

On a stream every message ends after its header block plus Content-Length octets (an
absent Content-Length counts as 0).  CRLF keep-alives (RFC 5626 §3.5.1) are reported as
:class:`KeepAlive` items: a double CRLF is a ping that wants a single CRLF (pong) back; a
lone CRLF is a pong.  A lone CRLF is reported as soon as it is seen (a pong must not wait
for more bytes), so a ping whose four octets arrive split after the first CRLF is seen as
two pongs; real stacks write the ping in one piece.
"""

from __future__ import annotations

import re

from attrs import field, frozen

from sbc.sip.errors import MessageTooLarge, SipParseError
from sbc.sip.message import Request, Response, parse_message

__all__ = ["KeepAlive", "ParseFailure", "StreamFramer", "DatagramParser", "parse_datagram"]


@frozen
class KeepAlive:
    """A CRLF keep-alive: ``pong_required`` for a ping (answer ``b"\\r\\n"``)."""

    pong_required: bool


@frozen
class ParseFailure:
    """A framed message that :func:`parse_message` rejected; the connection can continue."""

    error: SipParseError = field(eq=False)
    data: bytes


StreamItem = Request | Response | KeepAlive | ParseFailure

# Content-Length (or its compact form "l") at the start of a header line.
_CLEN_RE = re.compile(rb"\r\n(?:[Cc][Oo][Nn][Tt][Ee][Nn][Tt]-[Ll][Ee][Nn][Gg][Tt][Hh]|[Ll])[ \t]*:[ \t]*([^\r\n]*)")
_DIGITS_RE = re.compile(rb"([0-9]{1,10})[ \t]*\Z")
_FOLD_RE = re.compile(rb"[ \t]*\r\n[ \t]+")


def parse_datagram(data: bytes) -> Request | Response:
    """One UDP datagram is one message (trailing octets beyond Content-Length ignored)."""
    return parse_message(data)


class DatagramParser:
    """Stateless datagram parser, for symmetry with :class:`StreamFramer`."""

    def parse(self, datagram: bytes) -> Request | Response:
        return parse_message(datagram)


class StreamFramer:
    """Split a byte stream into messages and keep-alives, with a bounded buffer."""

    def __init__(self, max_message: int = 65_535) -> None:
        self._buf = bytearray()
        self._max = max_message
        self._scan_from = 0  # where to resume the search for the header terminator
        self._broken: SipParseError | None = None

    @property
    def buffered(self) -> int:
        """Octets received but not yet framed."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[StreamItem]:
        """Add received octets; return every complete item, in order.

        Raises :class:`MessageTooLarge` or :class:`SipParseError` when framing is impossible;
        the framer is then unusable and the connection must be closed.
        """
        if self._broken is not None:
            raise SipParseError("stream framer already failed: " + self._broken.reason, self._broken.status)
        self._buf += data
        out: list[StreamItem] = []
        try:
            while True:
                item = self._take_one()
                if item is None:
                    break
                out.append(item)
            if len(self._buf) > self._max:
                raise MessageTooLarge(len(self._buf), self._max)
        except SipParseError as e:
            self._broken = e
            # keep (a bounded prefix of) the unframed octets for pending(): the caller may
            # salvage an error response from the head of the offending message
            del self._buf[self._max :]
            raise
        return out

    def pending(self) -> bytes:
        """The octets received but not framed (after an error: at most ``max_message``)."""
        return bytes(self._buf)

    def _take_one(self) -> StreamItem | None:
        buf = self._buf
        if not buf:
            return None
        if buf[0] == 0x0D or buf[0] == 0x0A:
            if buf.startswith(b"\r\n\r\n"):
                del buf[:4]
                self._scan_from = 0
                return KeepAlive(pong_required=True)
            if buf.startswith(b"\r\n"):
                if len(buf) == 3 and buf[2] == 0x0D:
                    return None  # "\r\n\r" : wait for the last octet of a ping
                del buf[:2]
                self._scan_from = 0
                return KeepAlive(pong_required=False)
            if len(buf) == 1 and buf[0] == 0x0D:
                return None
            if buf[0] == 0x0A:
                # stray LFs between messages: ignore them
                del buf[: len(buf) - len(buf.lstrip(b"\n"))]
                self._scan_from = 0
                return self._take_one()
            raise SipParseError("stray carriage return on stream")
        end = buf.find(b"\r\n\r\n", self._scan_from)
        if end < 0:
            self._scan_from = max(0, len(buf) - 3)
            if len(buf) > self._max:
                raise MessageTooLarge(len(buf), self._max)
            return None
        head = bytes(buf[:end])
        if b"\r\n " in head or b"\r\n\t" in head:
            head = _FOLD_RE.sub(b" ", head)
        length: int | None = None
        for m in _CLEN_RE.finditer(head):
            dm = _DIGITS_RE.match(m.group(1).strip(b" \t"))
            if dm is None:
                raise SipParseError("malformed Content-Length on stream")
            value = int(dm.group(1))
            if length is not None and value != length:
                raise SipParseError("conflicting Content-Length on stream")
            length = value
        total = end + 4 + (length or 0)
        if total > self._max:
            raise MessageTooLarge(total, self._max)
        if len(buf) < total:
            self._scan_from = end  # the terminator will be found again at once
            return None
        data = bytes(buf[:total])
        del buf[:total]
        self._scan_from = 0
        try:
            return parse_message(data)
        except SipParseError as e:
            return ParseFailure(e, data)
