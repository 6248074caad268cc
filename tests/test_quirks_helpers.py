# -*- test-case-name: tests.test_quirks_helpers -*-
"""sbc.quirks.helpers: the plugin author's toolkit shared by the vendor plugins."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.quirks import CanonicalCall, QuirkContext, SipMessage
from sbc.quirks.helpers import (
    ADDRESS_HEADERS,
    PLUS_OPTION,
    address_hosts,
    agent_matches,
    flag,
    has_header,
    in_domain,
    is_ip,
    networks,
    pass_headers,
    plus_e164,
    plus_name_addr,
    plus_numbers,
    plus_request_numbers,
    respell,
    text_option,
    via_addresses,
    via_in,
)
from tests.strategies import requests
from tests.test_layering import core_violations

REPO = Path(__file__).resolve().parent.parent
HELPERS = REPO / "sbc" / "quirks" / "helpers.py"


def ctx(**options: object) -> QuirkContext:
    return QuirkContext("t1", "acme", "sbc.example.com", options=options)


def request(*headers: tuple[str, str], uri: str = "sip:bob@example.com") -> SipMessage:
    return SipMessage(method="INVITE", uri=uri, headers=list(headers))


def call() -> CanonicalCall:
    return CanonicalCall("t1", "acme", "abc@pbx")


# Any text a header value may hold (no CR, LF or NUL: SipMessage refuses those).
values = st.text(st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=60)


class RespellTests(SynchronousTestCase):
    def test_spelling_and_places(self) -> None:
        m = request(("x-acme-id", "1"), ("Via", "SIP/2.0/UDP a;branch=z9hG4bK1"), ("X-ACME-ID", "2"),
                    ("x-other", "3"))
        respell(m, ("X-Acme-Id",))
        self.assertEqual(m.headers(), [("X-Acme-Id", "1"), ("Via", "SIP/2.0/UDP a;branch=z9hG4bK1"),
                                       ("X-Acme-Id", "2"), ("x-other", "3")])

    def test_right_spelling_untouched(self) -> None:
        m = request(("X-Acme-Id", "1"), ("x-other", "3"))
        before = m.copy()
        respell(m, ("X-Acme-Id", "X-Acme-Unused"))
        self.assertEqual(m.headers(), before.headers())

    @given(st.lists(st.tuples(st.sampled_from(["x-a", "X-A", "X-b", "x-B", "Subject", "subject"]), values),
                    max_size=8))
    def test_values_and_order_kept(self, headers: list[tuple[str, str]]) -> None:
        m = request(*headers)
        before = m.headers()  # known names (Subject) may already be in their canonical form
        respell(m, ("X-A", "X-B"))
        fixed = {"x-a": "X-A", "x-b": "X-B"}
        self.assertEqual(m.headers(), [(fixed.get(n.lower(), n), v) for n, v in before])
        self.assertEqual([v for _, v in m.headers()], [v for _, v in headers])


class HeaderNameTests(SynchronousTestCase):
    def test_has_header(self) -> None:
        m = request(("x-acme-call", "1"), ("Subject", "s"))
        self.assertTrue(has_header(m, ("X-Acme-*",)))
        self.assertTrue(has_header(m, ("subject",)))
        self.assertFalse(has_header(m, ("X-Acme",)))
        self.assertFalse(has_header(m, ("X-Other-*", "Priority")))
        self.assertFalse(has_header(request(), ()))

    def test_pass_headers(self) -> None:
        m = request(("X-App", "1"), ("X-SMA-Hops", "2"), ("Subject", "s"), ("x-sma-other", "3"), ("x-app2", "4"),
                    ("X-SBC-Trunk", "evil"))
        c = call()
        pass_headers(c, m, ("X-*",), exclude=("X-SMA-*",))
        # X-SBC-* is refused by CanonicalCall itself: nobody outside the SBC sets those
        self.assertEqual(c.extra, [("X-App", "1"), ("x-app2", "4")])
        c = call()
        pass_headers(c, m, ("Subject",))
        self.assertEqual(c.extra, [("Subject", "s")])


class PlusTests(SynchronousTestCase):
    def test_plus_e164(self) -> None:
        for number, expected in [
            ("14155550100", "+14155550100"),
            ("441234567", "+441234567"),             # 9 digits
            ("123456789012345", "+123456789012345"),  # 15 digits
            ("12345678", "12345678"),                 # 8: an extension or national number
            ("1234567890123456", "1234567890123456"),  # 16
            ("0123456789", "0123456789"),             # a national prefix
            ("+14155550100", "+14155550100"),
            ("1415555010a", "1415555010a"),
            ("alice", "alice"),
            ("", ""),
            (None, None),
        ]:
            self.assertEqual(plus_e164(number), expected, number)

    @given(st.one_of(st.none(), st.text(max_size=20), st.from_regex(r"[0-9]{1,17}", fullmatch=True)))
    def test_plus_e164_only_adds_a_plus_once(self, number: str | None) -> None:
        once = plus_e164(number)
        self.assertIn(once, (number, None if number is None else "+" + number))
        self.assertEqual(plus_e164(once), once)

    def test_plus_numbers_and_option(self) -> None:
        for options, default, expected in [
            ({}, True, "+14155550100"),
            ({PLUS_OPTION: False}, True, "14155550100"),
            ({PLUS_OPTION: "false"}, True, "+14155550100"),  # only a boolean counts
            ({}, False, "14155550100"),
            ({PLUS_OPTION: 1}, False, "14155550100"),
            ({PLUS_OPTION: True}, False, "+14155550100"),
        ]:
            c = call()
            c.callee = c.caller = c.redirecting = "14155550100"
            plus_numbers(c, ctx(**options), default=default)
            self.assertEqual((c.callee, c.caller, c.redirecting), (expected,) * 3, (options, default))
        c = call()
        c.callee, c.caller = "alice", None
        plus_numbers(c, ctx())
        self.assertEqual((c.callee, c.caller, c.redirecting), ("alice", None, None))

    def test_plus_name_addr(self) -> None:
        self.assertEqual(plus_name_addr('"Bob" <sip:14155550100@h;user=phone>;tag=1'),
                         '"Bob" <sip:+14155550100@h;user=phone>;tag=1')
        self.assertEqual(plus_name_addr("<sips:14155550100@h>"), "<sips:+14155550100@h>")
        for value in ("<tel:14155550100>", "<sip:+14155550100@h>", "<sip:alice@h>", "<sip:123@h>", "<<garbage",
                      "", '"unterminated <sip:14155550100@h>'):
            self.assertEqual(plus_name_addr(value), value)

    def test_plus_request_numbers(self) -> None:
        m = request(("P-Asserted-Identity", "<sip:14155550100@pbx>, <tel:14155550101>"),
                    uri="sip:14155550102@vc.example.com;transport=tls")
        plus_request_numbers(m, ctx())
        self.assertEqual(m.uri, "sip:+14155550102@vc.example.com;transport=tls")
        self.assertEqual(m.get_all("P-Asserted-Identity"), ["<sip:+14155550100@pbx>", "<tel:14155550101>"])

    def test_plus_request_numbers_leaves_alone(self) -> None:
        for uri in ("tel:14155550100", "sip:alice@h", "not a uri"):
            m = request(("P-Asserted-Identity", "<sip:alice@pbx>"), uri=uri)
            plus_request_numbers(m, ctx())
            self.assertEqual((m.uri, m.headers()), (uri, [("P-Asserted-Identity", "<sip:alice@pbx>")]))
        m = request(("P-Asserted-Identity", "<sip:14155550100@pbx>"), uri="sip:14155550102@h")
        plus_request_numbers(m, ctx(plus_e164=False))
        self.assertEqual((m.uri, m.get("P-Asserted-Identity")), ("sip:14155550102@h", "<sip:14155550100@pbx>"))
        response = SipMessage(status=200, reason="OK")
        plus_request_numbers(response, ctx())
        self.assertEqual(response.headers(), [])


class OptionTests(SynchronousTestCase):
    def test_flag(self) -> None:
        self.assertIs(flag(ctx(), "x", True), True)
        self.assertIs(flag(ctx(), "x", False), False)
        self.assertIs(flag(ctx(x=False), "x", True), False)
        self.assertIs(flag(ctx(x=True), "x", False), True)
        for bad in ("true", "no", 0, 1, None, []):
            self.assertIs(flag(ctx(x=bad), "x", True), True, bad)
            self.assertIs(flag(ctx(x=bad), "x", False), False, bad)

    def test_text_option(self) -> None:
        self.assertEqual(text_option(ctx(x="Acme/1"), "x"), "Acme/1")
        self.assertEqual(text_option(ctx(x="Acme/1"), "x", "d"), "Acme/1")
        for bad in ("", "a\x01b", "a\tb", 5, None, ["a"]):
            self.assertIsNone(text_option(ctx(x=bad), "x"), bad)
            self.assertEqual(text_option(ctx(x=bad), "x", "d"), "d", bad)
        self.assertEqual(text_option(ctx(), "x", "d"), "d")


class OriginTests(SynchronousTestCase):
    def test_is_ip(self) -> None:
        for host in ("192.0.2.1", "::1", "[2001:db8::1]"):
            self.assertTrue(is_ip(host), host)
        for host in ("sbc.example.com", "", "192.0.2", "[sbc]"):
            self.assertFalse(is_ip(host), host)

    def test_networks(self) -> None:
        self.assertEqual(networks(("192.0.2.0/24", "2001:db8::/32")),
                         (ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("2001:db8::/32")))
        self.assertRaises(ValueError, networks, ("192.0.2.1/24",))

    def test_via_addresses(self) -> None:
        m = request(("Via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1;received=198.51.100.7"),
                    ("Via", "SIP/2.0/TLS proxy.example.com;branch=z9hG4bK2, SIP/2.0/UDP [2001:db8::5];branch=z9hG4bK3"),
                    ("Via", "garbage"))
        self.assertEqual(via_addresses(m), [ipaddress.ip_address(a) for a in
                                            ("192.0.2.1", "198.51.100.7", "2001:db8::5")])

    def test_via_in(self) -> None:
        nets = networks(("198.51.100.0/24", "2001:db8::/32"))
        self.assertTrue(via_in(request(("Via", "SIP/2.0/UDP h.example.com;branch=z9hG4bK1;received=198.51.100.7")),
                               nets))
        self.assertTrue(via_in(request(("Via", "SIP/2.0/UDP [2001:db8::5];branch=z9hG4bK1")), iter(nets)))
        self.assertFalse(via_in(request(("Via", "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1")), nets))
        self.assertFalse(via_in(request(("Via", "SIP/2.0/UDP 198.51.100.7;branch=z9hG4bK1")), ()))
        self.assertFalse(via_in(request(), nets))

    def test_address_hosts(self) -> None:
        m = request(("Via", "SIP/2.0/TLS sip.pstnhub.microsoft.com:5061;branch=z9hG4bK1"),
                    ("From", "<sip:+1@A.Example.COM>;tag=1"), ("To", "<sip:b@to.example.net>"),
                    ("Contact", "<sip:192.0.2.1:5060>"), ("Record-Route", "<sip:rr.example.org;lr>"),
                    ("Subject", "see www.example.info"))
        self.assertEqual(list(address_hosts(m)),
                         ["sip.pstnhub.microsoft.com", "A.Example.COM", "rr.example.org"])
        self.assertEqual(list(address_hosts(m, ("To",))), ["to.example.net"])
        self.assertEqual(ADDRESS_HEADERS, ("Via", "From", "Contact", "Record-Route"))

    def test_in_domain(self) -> None:
        self.assertTrue(in_domain("zoom.us", "zoom.us"))
        self.assertTrue(in_domain("SC.Zoom.US", "zoom.us"))
        self.assertFalse(in_domain("notzoom.us", "zoom.us"))
        self.assertFalse(in_domain("zoom.us.evil.com", "zoom.us"))

    def test_agent_matches(self) -> None:
        def acme(value: str) -> bool:
            return value.startswith("Acme")

        self.assertTrue(agent_matches(request(("User-Agent", "Acme/1")), acme))
        self.assertTrue(agent_matches(SipMessage(status=200, reason="OK", headers=[("Server", "Acme/2")]), acme))
        self.assertTrue(agent_matches(request(("User-Agent", "Other"), ("Server", "Acme")), acme))
        self.assertFalse(agent_matches(request(("User-Agent", "Other"), ("Subject", "Acme")), acme))
        self.assertFalse(agent_matches(request(), lambda value: True))


class RobustnessTests(SynchronousTestCase):
    @given(st.lists(st.tuples(st.sampled_from(["Via", "From", "Contact", "Record-Route", "P-Asserted-Identity",
                                               "User-Agent", "X-Acme"]), values), max_size=6),
           st.one_of(st.none(), values))
    def test_any_value_raises_nothing(self, headers: list[tuple[str, str]], uri: str | None) -> None:
        m = request(*headers, uri=uri or "sip:h")
        m.uri = uri
        self.assertIsInstance(via_addresses(m), list)
        self.assertIsInstance(via_in(m, networks(("0.0.0.0/0", "::/0"))), bool)
        self.assertTrue(all(isinstance(h, str) for h in address_hosts(m)))
        self.assertIsInstance(agent_matches(m, lambda value: "acme" in value), bool)
        for _, value in headers:
            self.assertIsInstance(plus_name_addr(value), str)
        before = m.get_all("P-Asserted-Identity")
        plus_request_numbers(m, ctx())
        self.assertEqual(len(m.get_all("P-Asserted-Identity")) if before else 0, len(before))

    @given(requests())
    def test_generated_requests(self, built: object) -> None:
        from sbc.quirks import from_sip

        m = from_sip(built)  # type: ignore[arg-type]
        addresses = via_addresses(m)
        self.assertEqual(via_in(m, networks(("0.0.0.0/0", "::/0"))), bool(addresses))
        plus_request_numbers(m, ctx())
        self.assertNotIn("+" * 2, m.uri or "")


class PurityTests(SynchronousTestCase):
    def test_no_twisted_import(self) -> None:
        self.assertEqual(core_violations(HELPERS.read_text(encoding="utf-8"), "sbc.quirks.helpers"), [])
        code = ("import sys, sbc.quirks.helpers\n"
                "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] == 'twisted')))\n")
        result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
        self.assertEqual((result.returncode, result.stdout.strip()), (0, ""), result.stderr)
