# -*- test-case-name: tests.test_sip_message -*-
"""Tests for sbc.sip.message: parsing, views, rewrites, responses."""

from __future__ import annotations

from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.errors import SipParseError
from sbc.sip.headers import canonical_name, header_key, split_values
from sbc.sip.message import (
    REASON_PHRASES,
    CSeq,
    Header,
    Request,
    Response,
    make_response,
    parse_message,
    parse_name_addr,
    parse_via,
    salvage_error_response,
    validate_request,
    validate_response,
)

INVITE = (
    b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n"
    b"Max-Forwards: 70\r\n"
    b"To: Bob <sip:bob@biloxi.example.com>\r\n"
    b"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"
    b"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n"
    b"CSeq: 314159 INVITE\r\n"
    b"Contact: <sip:alice@pc33.atlanta.example.com>\r\n"
    b"X-Unknown:   keep   THIS  \r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)

VENDOR = Path(__file__).resolve().parents[2] / "shared" / "vendor-messages"


class HeaderNameTests(SynchronousTestCase):
    def test_compact_forms(self) -> None:
        for short, long in [("v", "Via"), ("i", "Call-ID"), ("f", "From"), ("t", "To"), ("m", "Contact"),
                            ("l", "Content-Length"), ("c", "Content-Type"), ("k", "Supported"),
                            ("V", "Via"), ("I", "Call-ID")]:
            self.assertEqual(canonical_name(short), long)

    def test_canonical_spelling(self) -> None:
        self.assertEqual(canonical_name("call-id"), "Call-ID")
        self.assertEqual(canonical_name("CSEQ"), "CSeq")
        self.assertEqual(canonical_name("www-authenticate"), "WWW-Authenticate")
        self.assertEqual(canonical_name("X-Foo-bar"), "X-Foo-bar")
        self.assertEqual(header_key("X-Foo-bar"), "x-foo-bar")
        self.assertEqual(header_key("v"), "via")


class SplitValuesTests(SynchronousTestCase):
    def test_plain(self) -> None:
        self.assertEqual(split_values(b"INVITE, ACK ,BYE"), [b"INVITE", b"ACK", b"BYE"])

    def test_quotes_and_brackets(self) -> None:
        value = b'"Doe, John" <sip:a@b;x=1,2>;q=0.5, <sip:c@d?h=a,b>, "q\\",x" <sip:e@f>'
        self.assertEqual(
            split_values(value),
            [b'"Doe, John" <sip:a@b;x=1,2>;q=0.5', b"<sip:c@d?h=a,b>", b'"q\\",x" <sip:e@f>'],
        )

    def test_empty_item(self) -> None:
        self.assertRaises(SipParseError, split_values, b"a,,b")
        self.assertRaises(SipParseError, split_values, b"a,")
        self.assertRaises(SipParseError, split_values, b'"a, b')
        self.assertEqual(split_values(b"  "), [])


class ParseMessageTests(SynchronousTestCase):
    def test_request_basics(self) -> None:
        m = parse_message(INVITE)
        self.assertIsInstance(m, Request)
        self.assertTrue(m.is_request)
        self.assertEqual(m.method, "INVITE")
        self.assertEqual(m.uri, b"sip:bob@biloxi.example.com")
        self.assertEqual(m.parsed_uri.host, "biloxi.example.com")
        self.assertEqual(m.version, "SIP/2.0")
        self.assertEqual(m.body, b"v=0\n")
        self.assertEqual(m.get("x-unknown"), b"keep   THIS")
        self.assertEqual(m.headers_named("X-UNKNOWN")[0].raw, b"X-Unknown:   keep   THIS  ")
        self.assertEqual(m.to_bytes(), INVITE)
        validate_request(m)

    def test_hot_views(self) -> None:
        m = parse_message(INVITE)
        self.assertEqual(m.top_via.branch, "z9hG4bK776asdhds")
        self.assertEqual(m.top_via.transport, "UDP")
        self.assertEqual(m.cseq, CSeq(314159, "INVITE"))
        self.assertEqual(m.call_id, "a84b4c76e66710@pc33.atlanta.example.com")
        self.assertEqual(m.from_.tag, "1928301774")
        self.assertEqual(m.from_.display, "Alice")
        self.assertIsNone(m.to.tag)
        self.assertEqual(m.max_forwards, 70)
        self.assertEqual(m.content_length, 4)
        self.assertEqual(m.contacts[0].uri.user, "alice")
        self.assertFalse(m.contact_star)

    def test_response(self) -> None:
        data = (b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\nTo: <sip:b@h>;tag=x\r\n"
                b"From: <sip:a@h>;tag=y\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
        m = parse_message(data)
        self.assertIsInstance(m, Response)
        self.assertFalse(m.is_request)
        self.assertEqual((m.status, m.reason), (180, "Ringing"))
        validate_response(m)
        self.assertEqual(m.to_bytes(), data)

    def test_rewrite_keeps_raw(self) -> None:
        m = parse_message(INVITE)
        m2 = m.prepend_header("Via", b"SIP/2.0/UDP sbc.example.com;branch=z9hG4bKnew")
        out = m2.to_bytes()
        self.assertIn(b"\r\nVia: SIP/2.0/UDP sbc.example.com;branch=z9hG4bKnew\r\nVia: SIP/2.0/UDP pc33", out)
        self.assertIn(b"X-Unknown:   keep   THIS  \r\n", out)
        self.assertEqual(m2.top_via.host, "sbc.example.com")
        self.assertEqual(len(m2.vias), 2)
        # the original is unchanged
        self.assertEqual(m.to_bytes(), INVITE)
        self.assertEqual(len(m.vias), 1)

    def test_with_body(self) -> None:
        m = parse_message(INVITE).with_body(b"hello", b"text/plain")
        self.assertEqual(m.get("Content-Length"), b"5")
        self.assertEqual(m.get("Content-Type"), b"text/plain")
        again = parse_message(m.to_bytes())
        self.assertEqual(again.body, b"hello")
        validate_request(again)


class MakeResponseTests(SynchronousTestCase):
    def test_copies(self) -> None:
        req = parse_message(INVITE)
        resp = make_response(req, 180, to_tag="abc")
        self.assertEqual(resp.reason, "Ringing")
        self.assertEqual([h.key for h in resp.headers], ["via", "from", "to", "call-id", "cseq", "content-length"])
        self.assertEqual(resp.to.tag, "abc")
        self.assertEqual(resp.headers[0].raw, req.headers[0].raw)
        again = parse_message(resp.to_bytes())
        validate_response(again)
        self.assertEqual(REASON_PHRASES[404], "Not Found")


class SalvageTests(SynchronousTestCase):
    def test_salvage(self) -> None:
        data = b"INVITE  sip:x SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bKq\r\nf: <sip:a@h>;tag=1\r\nt: <sip:b@h>\r\ni: abc\r\nCSeq: 1 INVITE\r\n\r\n"
        self.assertRaises(SipParseError, parse_message, data)
        out = salvage_error_response(data, 400, "Bad Request")
        assert out is not None
        resp = parse_message(out)
        self.assertEqual(resp.status, 400)
        self.assertEqual(resp.top_via.branch, "z9hG4bKq")
        self.assertEqual(resp.call_id, "abc")
        self.assertIsNone(salvage_error_response(b"SIP/2.0 200 OK\r\n\r\n", 400, "x"))
        self.assertIsNone(salvage_error_response(b"FOO sip:x SIP/2.0\r\nTo: x\r\n\r\n", 400, "x"))
