# -*- test-case-name: tests.test_sip_replaces -*-
"""The Replaces header (RFC 3891) and its embedded form in Refer-To (sbc.sip.replaces)."""

from __future__ import annotations

from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.errors import SipParseError
from sbc.sip.message import parse_name_addr
from sbc.sip.replaces import Replaces, embedded_replaces, escape_header_value, parse_replaces, with_embedded_replaces
from sbc.sip.uri import parse_uri, unescape

from .strategies import tokens

call_ids = st.tuples(tokens, st.one_of(st.none(), tokens)).map(lambda t: t[0] if t[1] is None else f"{t[0]}@{t[1]}")
generic = st.lists(st.tuples(tokens.filter(lambda t: t.lower() not in ("to-tag", "from-tag", "early-only")),
                             st.one_of(st.none(), tokens)), max_size=2).map(tuple)
replaces_values = st.builds(Replaces, call_ids, tokens, tokens, st.booleans(), generic)


class ParseTests(SynchronousTestCase):
    def test_rfc_3891_example(self) -> None:
        r = parse_replaces(b"98732@sip.example.com;from-tag=r33th4x0r;to-tag=ff87ff")
        self.assertEqual(r, Replaces("98732@sip.example.com", "ff87ff", "r33th4x0r"))
        self.assertEqual(r.to_bytes(), b"98732@sip.example.com;to-tag=ff87ff;from-tag=r33th4x0r")

    def test_early_only_and_generic_parameters_kept(self) -> None:
        r = parse_replaces(" a@b ; to-tag = 1 ;EARLY-ONLY; from-tag=2;x;y=z ")
        self.assertEqual(r, Replaces("a@b", "1", "2", True, (("x", None), ("y", "z"))))
        self.assertEqual(r.to_text(), "a@b;to-tag=1;from-tag=2;early-only;x;y=z")
        self.assertEqual(r.with_dialog("c", "3", "4").to_text(), "c;to-tag=3;from-tag=4;early-only;x;y=z")

    def test_malformed(self) -> None:
        for bad in ("", ";to-tag=1;from-tag=2", "a b;to-tag=1;from-tag=2", "a;to-tag=1", "a;from-tag=2",
                    "a;to-tag=1;to-tag=1;from-tag=2", "a;to-tag=;from-tag=2", "a;to-tag=1;from-tag=2;early-only=1",
                    "a;to-tag=1;from-tag=2;x=", "a;to-tag=1;from-tag=2;;", "a@@b;to-tag=1;from-tag=2"):
            self.assertRaises(SipParseError, parse_replaces, bad)

    @given(replaces_values)
    def test_round_trip(self, value: Replaces) -> None:
        self.assertEqual(parse_replaces(value.to_bytes()), value)

    @given(st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=30))
    def test_escape_is_undone_by_unescape_and_fits_a_uri_header(self, text: str) -> None:
        escaped = escape_header_value(text)
        self.assertEqual(unescape(escaped), text)
        self.assertEqual(parse_uri(f"sip:x@h?Replaces={escaped}").headers, (("Replaces", escaped),))
        self.assertNotIn(";", escaped)
        self.assertNotIn("@", escaped)


class EmbeddedTests(SynchronousTestCase):
    def test_none_without_replaces(self) -> None:
        self.assertIsNone(embedded_replaces(b"<sip:bob@example.com?Require=replaces>"))
        self.assertIsNone(embedded_replaces(b"sip:bob@example.com"))

    def test_found_and_replaced_in_place(self) -> None:
        value = b'"Bob" <sip:bob@example.com;user=phone?a=1&replaces=c%40h%3Bto-tag%3D1%3Bfrom-tag%3D2&b=2>;p=1'
        found = embedded_replaces(value)
        assert found is not None
        addr, r = found
        self.assertEqual(r, Replaces("c@h", "1", "2"))
        out = with_embedded_replaces(addr, r.with_dialog("n@10.0.0.5", "x", "y"))
        self.assertEqual(out, b'"Bob" <sip:bob@example.com;user=phone?a=1&replaces=n%4010.0.0.5%3Bto-tag%3Dx'
                              b'%3Bfrom-tag%3Dy&b=2>;p=1')
        moved = with_embedded_replaces(addr, r, parse_uri("sip:alice@10.0.0.5:5060;transport=tcp"))
        self.assertEqual(moved, b'"Bob" <sip:alice@10.0.0.5:5060;transport=tcp?a=1&replaces=c%40h%3Bto-tag%3D1'
                                b'%3Bfrom-tag%3D2&b=2>;p=1')

    def test_malformed(self) -> None:
        for bad in (b"<sip:x@h?Replaces=a%3Bto-tag%3D1>", b"<sip:x@h?Replaces=a%3Bto-tag%3D1%3Bfrom-tag%3D2"
                    b"&Replaces=a%3Bto-tag%3D1%3Bfrom-tag%3D2>", b"<sip:@?Replaces=x>", b"<"):
            self.assertRaises(SipParseError, embedded_replaces, bad)

    @given(replaces_values)
    def test_round_trip_through_a_refer_to(self, value: Replaces) -> None:
        addr = parse_name_addr(b"<sip:bob@example.com?Replaces=x%3Bto-tag%3D1%3Bfrom-tag%3D2>")
        out = embedded_replaces(with_embedded_replaces(addr, value))
        assert out is not None
        self.assertEqual(out[1], value)
