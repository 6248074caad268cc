# -*- test-case-name: tests.test_sip_parse -*-
"""Tests for sbc.sip.parse: datagram parsing and stream framing."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.errors import MessageTooLarge, SipParseError
from sbc.sip.message import Request, Response
from sbc.sip.parse import DatagramParser, KeepAlive, ParseFailure, StreamFramer, parse_datagram


def _msg(body: bytes = b"", cseq: int = 1, clen: bytes | None = None) -> bytes:
    length = str(len(body)).encode() if clen is None else clen
    return (
        b"OPTIONS sip:a@example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/TCP h.example.com;branch=z9hG4bK%d\r\n"
        b"To: <sip:a@example.com>\r\nFrom: <sip:b@example.com>;tag=1\r\nCall-ID: c%d\r\n"
        b"CSeq: %d OPTIONS\r\nContent-Length: %s\r\n\r\n" % (cseq, cseq, cseq, length)
    ) + body


class StreamFramerTests(SynchronousTestCase):
    def test_two_messages_one_chunk(self) -> None:
        f = StreamFramer()
        data = _msg(b"hello", 1) + _msg(b"", 2)
        items = f.feed(data)
        self.assertEqual(len(items), 2)
        self.assertIsInstance(items[0], Request)
        assert isinstance(items[0], Request) and isinstance(items[1], Request)
        self.assertEqual(items[0].body, b"hello")
        self.assertEqual(items[1].cseq.seq, 2)
        self.assertEqual(items[0].to_bytes() + items[1].to_bytes(), data)
        self.assertEqual(f.buffered, 0)

    def test_byte_by_byte(self) -> None:
        f = StreamFramer()
        data = _msg(b"a\r\n\r\nb", 7)
        out = []
        for i in range(len(data)):
            out.extend(f.feed(data[i : i + 1]))
        self.assertEqual(len(out), 1)
        assert isinstance(out[0], Request)
        self.assertEqual(out[0].body, b"a\r\n\r\nb")

    def test_missing_content_length_is_zero(self) -> None:
        data = b"OPTIONS sip:a@h SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\r\nSIP/2.0 200 OK\r\nl: 0\r\n\r\n"
        items = StreamFramer().feed(data)
        self.assertEqual([type(i) for i in items], [Request, Response])
        self.assertEqual(items[0].body, b"")  # type: ignore[union-attr]

    def test_keepalives(self) -> None:
        f = StreamFramer()
        items = f.feed(b"\r\n\r\n" + _msg() + b"\r\n")
        self.assertEqual(items[0], KeepAlive(pong_required=True))
        self.assertIsInstance(items[1], Request)
        self.assertEqual(items[2], KeepAlive(pong_required=False))
        self.assertEqual(f.feed(b"\r\n\r"), [])
        self.assertEqual(f.feed(b"\n"), [KeepAlive(pong_required=True)])

    def test_waits_for_body(self) -> None:
        f = StreamFramer()
        data = _msg(b"0123456789")
        self.assertEqual(f.feed(data[:-3]), [])
        items = f.feed(data[-3:])
        self.assertEqual(len(items), 1)

    def test_too_large_declared(self) -> None:
        f = StreamFramer(max_message=1000)
        self.assertRaises(MessageTooLarge, f.feed, _msg(clen=b"5000"))
        # the framer is dead afterwards
        self.assertRaises(SipParseError, f.feed, _msg())

    def test_too_large_unterminated(self) -> None:
        f = StreamFramer(max_message=1000)
        f.feed(b"OPTIONS sip:a@h SIP/2.0\r\n")
        with self.assertRaises(MessageTooLarge) as cm:
            for _ in range(100):
                f.feed(b"X-Filler: " + b"x" * 50 + b"\r\n")
        self.assertEqual(cm.exception.status, 513)
        self.assertLessEqual(f.buffered, 1000)

    def test_negative_content_length(self) -> None:
        self.assertRaises(SipParseError, StreamFramer().feed, _msg(clen=b"-5"))

    def test_conflicting_content_length(self) -> None:
        data = _msg().replace(b"Content-Length: 0\r\n", b"Content-Length: 0\r\nl: 3\r\n") + b"abc"
        self.assertRaises(SipParseError, StreamFramer().feed, data)

    def test_parse_failure_keeps_connection(self) -> None:
        f = StreamFramer()
        bad = b"INVITE  sip:a@h SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 2\r\n\r\nab"
        items = f.feed(bad + _msg())
        self.assertIsInstance(items[0], ParseFailure)
        assert isinstance(items[0], ParseFailure)
        self.assertEqual(items[0].data, bad)
        self.assertEqual(items[0].error.status, 400)
        self.assertIsInstance(items[1], Request)

    def test_folded_content_length(self) -> None:
        data = _msg(b"xyz").replace(b"Content-Length: 3", b"Content-Length:\r\n 3")
        items = StreamFramer().feed(data + _msg())
        self.assertEqual(len(items), 2)
        self.assertEqual(items[0].body, b"xyz")  # type: ignore[union-attr]

    def test_stray_lf_ignored(self) -> None:
        items = StreamFramer().feed(b"\n\n" + _msg())
        self.assertEqual(len(items), 1)
        self.assertIsInstance(items[0], Request)


class DatagramTests(SynchronousTestCase):
    def test_datagram(self) -> None:
        m = parse_datagram(_msg(b"abc") + b"trailing junk")
        self.assertEqual(m.body, b"abc")
        self.assertEqual(DatagramParser().parse(_msg()).method, "OPTIONS")  # type: ignore[union-attr]
        self.assertRaises(SipParseError, parse_datagram, _msg(clen=b"10"))


class PendingTests(SynchronousTestCase):
    def test_pending_after_error(self) -> None:
        f = StreamFramer(max_message=300)
        data = _msg(b"x" * 400)
        self.assertRaises(MessageTooLarge, f.feed, data)
        self.assertEqual(f.pending(), data[:300])
        self.assertEqual(f.buffered, 300)

    def test_pending_partial(self) -> None:
        f = StreamFramer()
        self.assertEqual(f.feed(b"OPTIONS sip:a"), [])
        self.assertEqual(f.pending(), b"OPTIONS sip:a")
