# -*- test-case-name: tests.test_sip_uri -*-
"""Tests for sbc.sip.uri."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.errors import SipParseError
from sbc.sip.uri import URI, parse_uri, unescape


class SipUriTests(SynchronousTestCase):
    def test_full(self) -> None:
        u = parse_uri(b"sips:alice:secret@Atlanta.example.com:5061;transport=TCP;lr;maddr=[2001:db8::1]?subject=project%20x&priority=urgent")
        self.assertEqual(u.scheme, "sips")
        self.assertEqual(u.user, "alice")
        self.assertEqual(u.password, "secret")
        self.assertEqual(u.host, "Atlanta.example.com")
        self.assertEqual(u.port, 5061)
        self.assertEqual(u.params, (("transport", "TCP"), ("lr", None), ("maddr", "[2001:db8::1]")))
        self.assertEqual(u.headers, (("subject", "project%20x"), ("priority", "urgent")))
        self.assertEqual(u.transport, "tcp")
        self.assertEqual(u.param("LR"), "")
        self.assertTrue(u.has_param("Transport"))
        self.assertIsNone(u.param("user"))
        self.assertEqual(parse_uri(u.to_bytes()), u)

    def test_scheme_lowercased(self) -> None:
        u = parse_uri("SIP:bob@h")
        self.assertEqual(u.scheme, "sip")
        self.assertEqual(str(u), "sip:bob@h")

    def test_escapes_kept(self) -> None:
        u = parse_uri(b"sip:sips%3Auser%40example.com@example.net")
        self.assertEqual(u.user, "sips%3Auser%40example.com")
        self.assertEqual(unescape(u.user), "sips:user@example.com")
        self.assertEqual(u.host, "example.net")
        self.assertEqual(parse_uri(b"sip:%75se%72@example.com").user, "%75se%72")
        self.assertEqual(unescape("%00null"), "\x00null")
        self.assertRaises(SipParseError, parse_uri, b"sip:bad%zzescape@h")

    def test_user_with_semicolon(self) -> None:
        u = parse_uri(b"sip:user;par=u%40example.net@example.com")
        self.assertEqual(u.user, "user;par=u%40example.net")
        self.assertEqual(u.host, "example.com")
        self.assertEqual(u.params, ())

    def test_hash_in_user(self) -> None:
        # not allowed unescaped by RFC 3261, but feature codes like *21# are sent that way
        self.assertEqual(parse_uri(b"sip:*21#@pbx.example.com").user, "*21#")

    def test_ipv6(self) -> None:
        u = parse_uri(b"sip:[2001:db8::10]:5070")
        self.assertEqual((u.host, u.port), ("[2001:db8::10]", 5070))
        u = parse_uri(b"sip:[2001:db8::10:5070]")
        self.assertEqual((u.host, u.port), ("[2001:db8::10:5070]", None))
        u = parse_uri(b"sip:user@[::ffff:192.0.2.1];transport=udp")
        self.assertEqual(u.host, "[::ffff:192.0.2.1]")
        self.assertEqual(str(u), "sip:user@[::ffff:192.0.2.1];transport=udp")
        # RFC 5118 §4.2: an unbracketed IPv6 reference is an error
        self.assertRaises(SipParseError, parse_uri, b"sip:2001:db8::10")
        self.assertRaises(SipParseError, parse_uri, b"sip:[2001:db8::10")
        self.assertRaises(SipParseError, parse_uri, b"sip:[2001:db8::10]x")
        self.assertRaises(SipParseError, parse_uri, b"sip:[hello]")

    def test_bad(self) -> None:
        for bad in [b"sip:", b"sip:user@", b"sip:user@host:", b"sip:user@host:99999", b"sip:us er@h",
                    b"sip:h;", b"sip:h;;lr", b"sip:h;a=", b"sip:h?", b"sip:h?a", b"nocolon", b"1x:abc",
                    b"<sip:h>", b"sip:h\x00", b"sip:a@b@c", b"tel:", b"tel:abc!"]:
            with self.assertRaises(SipParseError, msg=bad):
                parse_uri(bad)
        self.assertRaises(SipParseError, parse_uri, 42)  # type: ignore[arg-type]

    def test_rewrites(self) -> None:
        u = parse_uri(b"sip:bob@h;transport=udp")
        self.assertEqual(str(u.with_param("transport", "tls")), "sip:bob@h;transport=tls")
        self.assertEqual(str(u.with_param("lr", None)), "sip:bob@h;transport=udp;lr")
        self.assertEqual(str(u.without_param("TRANSPORT")), "sip:bob@h")
        self.assertEqual(str(u.with_host("2001:db8::2", 5060)), "sip:bob@[2001:db8::2]:5060;transport=udp")
        self.assertEqual(str(u.with_user(None)), "sip:h;transport=udp")
        self.assertEqual(str(u.with_user("+15551234")), "sip:+15551234@h;transport=udp")
        self.assertEqual(u.to_bytes(), b"sip:bob@h;transport=udp")


class TelUriTests(SynchronousTestCase):
    def test_tel(self) -> None:
        u = parse_uri(b"tel:+1-201-555-0123;phone-context=example.com;ext=22")
        self.assertEqual(u.scheme, "tel")
        self.assertEqual(u.user, "+1-201-555-0123")
        self.assertEqual(u.host, "")
        self.assertEqual(u.param("phone-context"), "example.com")
        self.assertEqual(str(u), "tel:+1-201-555-0123;phone-context=example.com;ext=22")
        self.assertEqual(parse_uri(u.to_bytes()), u)


class OpaqueUriTests(SynchronousTestCase):
    def test_other_schemes(self) -> None:
        u = parse_uri(b"nobodyKnowsThisScheme:totally-opaque-content")
        self.assertEqual(u.scheme, "nobodyknowsthisscheme")
        self.assertEqual(u.opaque, "totally-opaque-content")
        self.assertEqual(u.host, "")
        self.assertEqual(parse_uri(b"soap.beep://192.0.2.103:3002").opaque, "//192.0.2.103:3002")
        self.assertEqual(str(parse_uri(b"http://www.example.com")), "http://www.example.com")
        self.assertEqual(URI("urn", opaque="service:sos").to_bytes(), b"urn:service:sos")
        self.assertRaises(SipParseError, parse_uri, b"http://a b")
