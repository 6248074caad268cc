# -*- test-case-name: tests.test_vendor_plugins -*-
"""The vendor quirk plugins in plugins/ (issue 6) against the facts in VENDORS.md.

For every vendor: its plugin recognises its own messages (tests/vendor_messages/) and no other
vendor's, each INVITE from it reaches the canonical form the agent host gets (through
:class:`sbc.quirks.chain.QuirkChain`, as the B2BUA runs it), its requests and responses toward
the PBX carry what the vendor needs, its defaults match VENDORS.md, and its example trunk in
etc/examples/ loads.
"""

from __future__ import annotations

import importlib
import ipaddress
import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from twisted.plugin import IPlugin
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sbc.config import load_config
from sbc.quirks import IVendorQuirk, QuirkContext, SipMessage, VendorDefaults
from sbc.quirks.canonical import build_canonical
from sbc.quirks.chain import PROTECTED, QuirkChain, recognised_by
from sbc.quirks.interface import NAME_RE
from sbc.quirks.loader import discover
from sbc.sip.message import Request, Response
from sbc.sip.parse import parse_datagram

REPO = Path(__file__).resolve().parent.parent
MESSAGES = Path(__file__).resolve().parent / "vendor_messages"
FQDN = "sbc1.example.com"

VENDORS = ("teams", "webex", "ringcentral", "zoom", "twilio", "telnyx", "genesys", "nice", "chime", "connect")
PLUGINS = {name: getattr(importlib.import_module(f"plugins.{name}"), name) for name in VENDORS}

#: Requests a vendor sends to the SBC: fixture -> vendor.
FROM_VENDOR = {
    "teams-INVITE-in-1.txt": "teams",
    "teams-INVITE-in-2.txt": "teams",
    "teams-OPTIONS-in-1.txt": "teams",
    "webex-INVITE-in-1.txt": "webex",
    "ringcentral-INVITE-in-1.txt": "ringcentral",
    "zoom-INVITE-in-1.txt": "zoom",
    "twilio-INVITE-in-1.txt": "twilio",
    "twilio-INVITE-in-2.txt": "twilio",
    "telnyx-INVITE-in-1.txt": "telnyx",
    "genesys-INVITE-in-1.txt": "genesys",
    "nice-INVITE-in-1.txt": "nice",
    "chime-INVITE-1.txt": "chime",
    "chime-INVITE-in-3.txt": "chime",
    "connect-INVITE-in-1.txt": "connect",
}
#: Requests an SBC/PBX sends toward a vendor: no plugin may take them for the vendor's own.
TOWARD_VENDOR = ("teams-INVITE-1.txt", "teams-OPTIONS-1.txt", "chime-INVITE-2.txt")
#: Responses from a vendor.
RESPONSES = {"teams-OPTIONS-2.txt": "teams"}


def load(name: str) -> Request | Response:
    """A fixture: comment lines starting with '#' first, LF line ends on disk."""
    lines = (MESSAGES / name).read_text(encoding="utf-8").split("\n")
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return parse_datagram("\r\n".join(lines).encode("utf-8"))


def view(name: str) -> SipMessage:
    from sbc.quirks import from_sip

    return from_sip(load(name))


def chain(vendor: str, **options: object) -> QuirkChain:
    return QuirkChain([PLUGINS[vendor]], trunk=f"{vendor}-trunk", sbc_fqdn=FQDN, options=options)


def canonical_headers(name: str, vendor: str, **options: object) -> tuple[tuple[str, str], ...]:
    c = chain(vendor, **options)
    request = load(name)
    assert isinstance(request, Request)
    request = c.request_from_pbx(request)
    headers = c.canonical(request).headers()
    notices = c.notices()
    assert notices == [], notices
    return headers


def contract(vendor: str, call_id: str, *rest: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return (("X-SBC-Trunk", f"{vendor}-trunk"), ("X-SBC-Vendor", vendor), ("X-SBC-Original-Call-ID", call_id)) + rest


class FixtureTests(SynchronousTestCase):
    def test_every_fixture_is_listed_and_parses(self) -> None:
        on_disk = {p.name for p in MESSAGES.glob("*.txt")}
        self.assertEqual(on_disk, set(FROM_VENDOR) | set(TOWARD_VENDOR) | set(RESPONSES))
        for name in sorted(on_disk):
            message = load(name)
            length = message.get("Content-Length")
            self.assertEqual(int(length or b"0"), len(message.body), name)

    def test_every_vendor_has_an_invite_from_it(self) -> None:
        invites = {v for n, v in FROM_VENDOR.items() if "-INVITE-" in n}
        self.assertEqual(invites, set(VENDORS))


class InterfaceTests(SynchronousTestCase):
    def test_plugins_provide_the_interfaces(self) -> None:
        for name, quirk in PLUGINS.items():
            self.assertTrue(verifyObject(IVendorQuirk, quirk), name)
            self.assertTrue(IPlugin.providedBy(quirk), name)
            self.assertEqual(quirk.name, name)
            self.assertTrue(NAME_RE.match(quirk.name), name)
            self.assertIsInstance(quirk.defaults, VendorDefaults)
            self.assertTrue(quirk.title and quirk.title.isprintable(), name)

    def test_discovered_by_the_loader(self) -> None:
        found = {q.name: q for q in discover()}
        for name, quirk in PLUGINS.items():
            self.assertIs(found.get(name), quirk, name)

    def test_connect_runs_before_chime(self) -> None:
        order = [q.name for q in discover()]
        self.assertLess(order.index("connect"), order.index("chime"))

    def test_signalling_ranges_are_networks(self) -> None:
        for name, quirk in PLUGINS.items():
            for cidr in quirk.defaults.signalling_ranges:
                ipaddress.ip_network(cidr, strict=True)  # raises on a bad or host-bit range

    def test_every_plugin_lists_unconfirmed_facts(self) -> None:
        # VENDORS.md marks something unconfirmed for every one of these vendors.
        for name, quirk in PLUGINS.items():
            self.assertTrue(quirk.defaults.unconfirmed, name)
            for note in quirk.defaults.unconfirmed:
                self.assertTrue(note and note.isprintable(), (name, note))


class RecognitionTests(SynchronousTestCase):
    def test_each_vendor_recognises_its_own_and_only_its_own(self) -> None:
        quirks = list(PLUGINS.values())
        for name, vendor in FROM_VENDOR.items():
            request = load(name)
            assert isinstance(request, Request)
            self.assertEqual(recognised_by(quirks, request), [vendor], name)

    def test_messages_toward_a_vendor_are_not_taken_for_its_own(self) -> None:
        quirks = list(PLUGINS.values())
        for name in TOWARD_VENDOR:
            request = load(name)
            assert isinstance(request, Request)
            self.assertEqual(recognised_by(quirks, request), [], name)

    def test_teams_server_header_in_a_response(self) -> None:
        self.assertTrue(PLUGINS["teams"].recognise(view("teams-OPTIONS-2.txt")))

    def test_chime_leaves_connect_calls_to_connect(self) -> None:
        message = view("connect-INVITE-in-1.txt")
        self.assertTrue(message.has("X-VoiceConnector-ID"))
        self.assertFalse(PLUGINS["chime"].recognise(message))
        message.remove("X-Amzn-ConnectContactId")
        message.remove("X-Amzn-ConnectInitialContactId")
        self.assertTrue(PLUGINS["connect"].recognise(message))  # SourceArn names Connect
        message.remove("X-Amzn-SourceArn")
        self.assertFalse(PLUGINS["connect"].recognise(message))
        self.assertTrue(PLUGINS["chime"].recognise(message))

    def test_recognised_by_via_address_in_published_ranges(self) -> None:
        for via, vendor in (("52.114.7.24:5061", "teams"), ("52.123.1.1", "teams"), ("54.172.60.2", "twilio"),
                            ("177.71.206.193:5060", "twilio"), ("192.76.120.10:5061", "telnyx"),
                            ("3.80.17.1", "chime"), ("99.77.253.9", "chime")):
            message = SipMessage(method="INVITE", uri="sip:+15550100@192.0.2.1", headers=[
                ("Via", f"SIP/2.0/TLS {via};branch=z9hG4bK1"), ("From", "<sip:+15550199@192.0.2.9>;tag=1"),
                ("To", "<sip:+15550100@192.0.2.1>"), ("Call-ID", "x"), ("CSeq", "1 INVITE")])
            self.assertEqual([n for n, q in PLUGINS.items() if q.recognise(message)], [vendor], via)

    def test_chime_capture_stripped_of_headers_still_chimes(self) -> None:
        message = view("chime-INVITE-1.txt")
        message.remove("X-VoiceConnector-ID")
        message.remove("User-Agent")
        self.assertEqual([n for n, q in PLUGINS.items() if q.recognise(message)], ["chime"])  # Via 3.80.16.13

    def test_bare_message_is_nobodys(self) -> None:
        message = SipMessage(method="INVITE", uri="sip:+15550100@192.0.2.1", headers=[
            ("Via", "SIP/2.0/UDP 192.0.2.9:5060;branch=z9hG4bK1"), ("From", "<sip:a@192.0.2.9>;tag=1"),
            ("To", "<sip:+15550100@192.0.2.1>"), ("Call-ID", "x"), ("CSeq", "1 INVITE")])
        self.assertEqual([n for n, q in PLUGINS.items() if q.recognise(message)], [])


class CanonicalTests(SynchronousTestCase):
    """Each vendor's INVITE in the canonical form (the header contract toward the agent host)."""

    def test_teams(self) -> None:
        self.assertEqual(canonical_headers("teams-INVITE-in-1.txt", "teams"), contract(
            "teams", "7f3c2a9e4b1d4e8fa0c6d5b3e2f1a0b9",
            ("X-SBC-Callee", "+14255550100"),
            ("X-SBC-Caller", "+12065550123"),
            ("P-Asserted-Identity", f"<sip:+12065550123@{FQDN};user=phone>"),
            ("Privacy", "none"),
            ("X-MS-UserLocation", "internal"),
            ("X-MS-MediaPath", "sbc1.contoso.com"),
        ))

    def test_teams_forwarded_anonymous(self) -> None:
        self.assertEqual(canonical_headers("teams-INVITE-in-2.txt", "teams"), contract(
            "teams", "2b9e6c1d0a8f4e7b9c3d5a1f6e8b0c2d",
            ("X-SBC-Callee", "+14255550111"),
            ("P-Asserted-Identity", "<sip:anonymous@anonymous.invalid>"),
            ("Privacy", "id"),
            ("X-SBC-Redirecting", "+14255550100"),
            ("X-MS-UserLocation", "external"),
        ))

    def test_webex_numbers_as_cube_sends_them(self) -> None:
        self.assertEqual(canonical_headers("webex-INVITE-in-1.txt", "webex"), contract(
            "webex", "6E5F4A3B-C2D111EE-8A9B0C1D-2E3F4A5B@198.51.100.20",
            ("X-SBC-Vendor-Call-ID", "1857962395-0303829486-2325384221-0775943771"),
            ("X-SBC-Callee", "14085550155"),
            ("X-SBC-Caller", "14085550199"),
            ("P-Asserted-Identity", f'"Pat Lee" <sip:14085550199@{FQDN}>'),
            ("Privacy", "none"),
            ("X-SBC-Redirecting", "14085550100"),
            ("Cisco-Guid", "1857962395-0303829486-2325384221-0775943771"),
        ))

    def test_webex_with_country_or_plus_option(self) -> None:
        for options in ({"country_code": "1"}, {"plus_e164": True}):
            headers = dict(canonical_headers("webex-INVITE-in-1.txt", "webex", **options))
            self.assertEqual(
                (headers["X-SBC-Callee"], headers["X-SBC-Caller"], headers["X-SBC-Redirecting"]),
                ("+14085550155", "+14085550199", "+14085550100"), options)

    def test_ringcentral(self) -> None:
        self.assertEqual(canonical_headers("ringcentral-INVITE-in-1.txt", "ringcentral"), contract(
            "ringcentral", "5b67d9fc-b0bc-468d-bf0f-d73213da4416",
            ("X-SBC-Callee", "+16505550142"),
            ("X-SBC-Caller", "+14155550177"),
            ("P-Asserted-Identity", f'"Sam Ortiz" <sip:+14155550177@{FQDN};user=phone>'),
            ("Privacy", "none"),
        ))

    def test_zoom(self) -> None:
        self.assertEqual(canonical_headers("zoom-INVITE-in-1.txt", "zoom"), contract(
            "zoom", "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d@162.12.233.59",
            ("X-SBC-Vendor-Call-ID", "0a8c5e7f2b4d6e8f"),
            ("X-SBC-Callee", "+13125550188"),
            ("X-SBC-Caller", "+16465550133"),
            ("P-Asserted-Identity", f'"Jordan Smith" <sip:+16465550133@{FQDN};user=phone>'),
            ("Privacy", "none"),
            ("X-Trace-ID", "0a8c5e7f2b4d6e8f"),
        ))

    def test_twilio_dial_sip(self) -> None:
        self.assertEqual(canonical_headers("twilio-INVITE-in-1.txt", "twilio"), contract(
            "twilio", "5e9a3b1c8d2f4e6a7b0c9d1e2f3a4b5c@0.0.0.0",
            ("X-SBC-Vendor-Call-ID", "CA8f2e4c6a0b1d3e5f7a9c8b6d4e2f0a1c"),
            ("X-SBC-Callee", "+15035550164"),
            ("X-SBC-Caller", "+14155550123"),
            ("P-Asserted-Identity", f"<sip:+14155550123@{FQDN};user=phone>"),
            ("Privacy", "none"),
            ("X-SBC-UUI", "ticket=48213"),
            ("X-Twilio-AccountSid", "AC0123456789abcdef0123456789abcdef"),
            ("X-Twilio-CallSid", "CA8f2e4c6a0b1d3e5f7a9c8b6d4e2f0a1c"),
            ("X-Twilio-VerStat", "TN-Validation-Passed-A"),
            ("x-customer-tier", "gold"),
        ))

    def test_twilio_trunk_lower_case_headers_respelled(self) -> None:
        self.assertEqual(canonical_headers("twilio-INVITE-in-2.txt", "twilio"), contract(
            "twilio", "0f1e2d3c4b5a69788796a5b4c3d2e1f0@0.0.0.0",
            ("X-SBC-Vendor-Call-ID", "CA00112233445566778899aabbccddeeff"),
            ("X-SBC-Callee", "+442079460018"),
            ("X-SBC-Caller", "+13125550101"),
            ("P-Asserted-Identity", f'"+13125550101" <sip:+13125550101@{FQDN};user=phone>'),
            ("Privacy", "none"),
            ("X-Twilio-AccountSid", "AC0123456789abcdef0123456789abcdef"),
            ("X-Twilio-CallSid", "CA00112233445566778899aabbccddeeff"),
        ))

    def test_twilio_respelling_keeps_positions(self) -> None:
        c = chain("twilio")
        before = load("twilio-INVITE-in-2.txt")
        after = c.request_from_pbx(before)  # type: ignore[arg-type]
        self.assertEqual([h.name.lower() for h in after.headers], [h.name.lower() for h in before.headers])
        self.assertIn("X-Twilio-CallSid", [h.name for h in after.headers])
        self.assertEqual(c.notices(), [])

    def test_telnyx(self) -> None:
        self.assertEqual(canonical_headers("telnyx-INVITE-in-1.txt", "telnyx"), contract(
            "telnyx", "324e057d-22e1-4dc7-a292-2f1a582814e9",
            ("X-SBC-Vendor-Call-ID", "6466f69e-1dc8-4e81-980a-f33356672e32"),
            ("X-SBC-Callee", "+18005550136"),
            ("X-SBC-Caller", "+13475550190"),
            ("P-Asserted-Identity", f"<sip:+13475550190@{FQDN};user=phone>"),
            ("Privacy", "none"),
            ("X-call_leg_id", "8e28a724-459b-4a83-8239-c75c66177f7c"),
            ("X-call_session_id", "6466f69e-1dc8-4e81-980a-f33356672e32"),
        ))

    def test_telnyx_without_plus_option(self) -> None:
        headers = dict(canonical_headers("telnyx-INVITE-in-1.txt", "telnyx", plus_e164=False))
        self.assertEqual(headers["X-SBC-Callee"], "18005550136")

    def test_genesys_delayed_offer(self) -> None:
        self.assertEqual(canonical_headers("genesys-INVITE-in-1.txt", "genesys"), contract(
            "genesys", "a2b65897-7410-4f7d-8594-76be4d1f9e96",
            ("X-SBC-Vendor-Call-ID", "083adbcd-f580-41af-83dd-eefbf5f60155"),
            ("X-SBC-Callee", "+18885550172"),
            ("X-SBC-Caller", "+17735550146"),
            ("P-Asserted-Identity", f'"Alex Kim" <sip:+17735550146@{FQDN};user=phone>'),
            ("Privacy", "none"),
            ("x-inin-cnv", "083adbcd-f580-41af-83dd-eefbf5f60155"),
            ("x-inin-crn", "0a1f2e3d4c5b6a79"),
        ))

    def test_nice(self) -> None:
        self.assertEqual(canonical_headers("nice-INVITE-in-1.txt", "nice"), contract(
            "nice", "7d7c4b8a-0c61-4e33-9b5f-51c0f1e2a3b4@198.51.100.90",
            ("X-SBC-Callee", "+16175550119"),
            ("X-SBC-Caller", "+15085550163"),
            ("P-Asserted-Identity", f'"+15085550163" <sip:+15085550163@{FQDN};user=phone>'),
            ("Privacy", "none"),
        ))

    def test_chime_capture(self) -> None:
        self.assertEqual(canonical_headers("chime-INVITE-1.txt", "chime"), contract(
            "chime", "39d6b15a-7688-4263-85ec-8409291a2b21",
            ("X-SBC-Callee", "+16185558387"),
            ("X-SBC-Caller", "+18155558245"),
            ("P-Asserted-Identity", f"<sip:+18155558245@{FQDN};user=phone>"),
            ("Privacy", "none"),
            ("X-VoiceConnector-ID", "dr3rbaar376u5r4ntcnlq4"),
        ))

    def test_chime_sma_leg(self) -> None:
        self.assertEqual(canonical_headers("chime-INVITE-in-3.txt", "chime"), contract(
            "chime", "1f7c3a9e-5b2d-4c8e-9a1f-6d3b5e7c9a2b",
            ("X-SBC-Callee", "+16185558387"),
            ("X-SBC-Caller", "+18155558245"),
            ("P-Asserted-Identity", f"<sip:+18155558245@{FQDN};user=phone>"),
            ("Privacy", "none"),
            ("X-SBC-Redirecting", "+18155550100"),
            ("X-SBC-UUI", "amazon_chime_call_flow"),
            ("X-VoiceConnector-ID", "dr3rbaar376u5r4ntcnlq4"),
            ("X-Amzn-TargetArn", "arn:aws:chime:us-east-1:111122223333:vc/dr3rbaar376u5r4ntcnlq4"),
            ("X-RequestorEmail", "alice@example.com"),
        ))

    def test_chime_app_headers_option(self) -> None:
        names = [n for n, _ in canonical_headers("chime-INVITE-in-3.txt", "chime", pass_app_headers=False)]
        self.assertNotIn("X-RequestorEmail", names)
        self.assertIn("X-Amzn-TargetArn", names)
        self.assertNotIn("X-SMA-Max-Forwards", names)

    def test_connect(self) -> None:
        uui = ('{"contactId":"b3f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d","customerPhoneNumber":"+12065550155",'
               '"initialContactId":"0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a","initiationMethod":"INBOUND",'
               '"queueName":"BasicQueue","systemPhoneNumber":"+18005550199"}')
        self.assertEqual(canonical_headers("connect-INVITE-in-1.txt", "connect"), contract(
            "connect", "9c2e4a6b-8d0f-4b1a-a3c5-e7f9b1d3f5a7",
            ("X-SBC-Vendor-Call-ID", "b3f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d"),
            ("X-SBC-Callee", "+16185558387"),
            ("X-SBC-Caller", "+12065550155"),
            ("P-Asserted-Identity", f"<sip:+12065550155@{FQDN};user=phone>"),
            ("Privacy", "none"),
            ("X-SBC-UUI", uui),
            ("X-VoiceConnector-ID", "dr3rbaar376u5r4ntcnlq4"),
            ("X-Amzn-ConnectContactId", "b3f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d"),
            ("X-Amzn-ConnectInitialContactId", "0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a"),
            ("X-Amzn-SourceAccount", "111122223333"),
            ("X-Amzn-SourceArn",
             "arn:aws:connect:us-east-1:111122223333:instance/4f3e2d1c-0b9a-8f7e-6d5c-4b3a2f1e0d9c"),
            ("X-Amzn-TargetArn", "arn:aws:chime:us-east-1:111122223333:vc/dr3rbaar376u5r4ntcnlq4"),
        ))

    def _connect_call(self, uui: str | None, drop_ids: bool) -> dict[str, str]:
        message = view("connect-INVITE-in-1.txt")
        if drop_ids:
            message.remove("X-Amzn-ConnectContactId")
            message.remove("X-Amzn-ConnectInitialContactId")
        message.remove("User-to-User")
        if uui is not None:
            message.set("User-to-User", uui)
        ctx = QuirkContext("c", "connect", FQDN)
        call = build_canonical(message, ctx)
        PLUGINS["connect"].canonical(call, message, ctx)
        return dict(call.headers())

    def test_connect_passes_attribute_headers_not_sma_hops(self) -> None:
        message = view("connect-INVITE-in-1.txt")
        message.add("x-customer-tier", "gold")
        message.add("X-SMA-Max-Forwards", "9")
        for option, expected in ((True, True), (False, False)):
            ctx = QuirkContext("c", "connect", FQDN, options={"pass_app_headers": option})
            call = build_canonical(message, ctx)
            PLUGINS["connect"].canonical(call, message, ctx)
            names = [n for n, _ in call.headers()]
            self.assertEqual("x-customer-tier" in names, expected)
            self.assertNotIn("X-SMA-Max-Forwards", names)
            self.assertIn("X-Amzn-ConnectContactId", names)

    def test_connect_contact_id_from_uui_json(self) -> None:
        uui = '{"initiationMethod":"TRANSFER", "contactId":"11112222-3333-4444-5555-666677778888"}'
        headers = self._connect_call(uui.encode().hex() + ";encoding=hex", drop_ids=True)
        self.assertEqual(headers["X-SBC-Vendor-Call-ID"], "11112222-3333-4444-5555-666677778888")
        self.assertEqual(headers["X-SBC-UUI"],
                         '{"contactId":"11112222-3333-4444-5555-666677778888","initiationMethod":"TRANSFER"}')

    def test_connect_uui_not_json_left_as_decoded(self) -> None:
        headers = self._connect_call("68656c6c6f;encoding=hex", drop_ids=True)
        self.assertEqual(headers["X-SBC-UUI"], "hello")
        self.assertNotIn("X-SBC-Vendor-Call-ID", headers)
        headers = self._connect_call('{"contactId": ["not", "an id"]}', drop_ids=True)
        self.assertNotIn("X-SBC-Vendor-Call-ID", headers)
        headers = self._connect_call(None, drop_ids=False)
        self.assertEqual(headers["X-SBC-Vendor-Call-ID"], "b3f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d")


def sbc_invite(uri: str = "sip:+18338006777@sip.pstnhub.microsoft.com:5061", contact: str | None = None,
               extra: tuple[tuple[str, str], ...] = ()) -> Request:
    """An INVITE as the SBC's B2BUA would build it toward a PBX (Contact with an IP)."""
    contact = contact or "<sip:+17168712781@203.0.113.10:5060>"
    lines = [
        f"INVITE {uri} SIP/2.0",
        "Via: SIP/2.0/TLS 203.0.113.10:5061;branch=z9hG4bKsbc1",
        "Max-Forwards: 70",
        "From: <sip:+17168712781@sbc1.contoso.com>;tag=1c74",
        "To: <sip:+18338006777@sip.pstnhub.microsoft.com>",
        "Call-ID: 0a1b2c3d4e5f@sbc1.contoso.com",
        "CSeq: 1 INVITE",
        f"Contact: {contact}",
        *(f"{n}: {v}" for n, v in extra),
        "Content-Length: 0",
        "",
        "",
    ]
    request = parse_datagram("\r\n".join(lines).encode())
    assert isinstance(request, Request)
    return request


class TowardTeamsTests(SynchronousTestCase):
    def run_hook(self, request: Request, fqdn: str = "sbc1.contoso.com", **options: object) -> Request:
        c = QuirkChain([PLUGINS["teams"]], trunk="teams", sbc_fqdn=fqdn, options=options)
        out = c.request_to_pbx(request)
        self.assertEqual(c.notices(), [])
        return out

    def test_matches_microsofts_documented_invite(self) -> None:
        reference = load("teams-INVITE-1.txt")
        out = self.run_hook(sbc_invite(), x_ms_sbc="ExampleVendor/ExampleSBC/1.0.0")
        self.assertEqual(out.get("Contact"), reference.get("Contact"))
        self.assertEqual(out.get("X-MS-SBC"), reference.get("X-MS-SBC"))
        self.assertEqual(out.uri, reference.uri)  # user=phone added to the +E.164 Request-URI

    def test_options_ping_matches_the_documented_one(self) -> None:
        # jambonz's OPTIONS toward Teams (2020), which Microsoft answered 200 OK: Contact
        # <sip:FQDN:5061;transport=tls>.  Built without Contact, the plugin adds that one.
        reference = load("teams-OPTIONS-1.txt")
        assert isinstance(reference, Request)
        raw = reference.to_bytes().replace(b"Contact: <sip:sbc.example.com:5061;transport=tls>\r\n", b"")
        request = parse_datagram(raw)
        self.assertIsNone(request.get("Contact"))
        out = self.run_hook(request, fqdn="sbc.example.com")  # type: ignore[arg-type]
        self.assertEqual(out.get("Contact"), reference.get("Contact"))

    def test_srtp_offer_keeps_only_the_80_bit_tag_suite(self) -> None:
        # Teams offers AES_CM_128_HMAC_SHA1_32 first; Microsoft requires _80 in the answer.
        sdp = (b"v=0\r\no=- 1 1 IN IP4 52.112.0.1\r\ns=-\r\nc=IN IP4 52.112.0.1\r\nt=0 0\r\n"
               b"m=audio 5000 RTP/SAVP 0 101\r\n"
               b"a=crypto:0 AES_CM_128_HMAC_SHA1_32 inline:AAAA|2^31\r\n"
               b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:BBBB|2^31\r\n"
               b"a=sendrecv\r\n")
        ctx = QuirkContext("teams", "teams", FQDN)
        out = PLUGINS["teams"].sdp_from_pbx(sdp, ctx)
        self.assertNotIn(b"AES_CM_128_HMAC_SHA1_32", out)
        self.assertIn(b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:BBBB|2^31\r\n", out)
        self.assertIn(b"a=sendrecv\r\n", out)
        only_32 = sdp.replace(b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:BBBB|2^31\r\n", b"")
        self.assertEqual(PLUGINS["teams"].sdp_from_pbx(only_32, ctx), only_32)  # nothing better: unchanged

    def test_default_x_ms_sbc_has_three_parts(self) -> None:
        value = self.run_hook(sbc_invite()).get("X-MS-SBC")
        assert value is not None
        self.assertEqual(len(value.split(b"/")), 3)

    def test_bad_option_values_fall_back_to_defaults(self) -> None:
        from plugins.teams import X_MS_SBC

        for bad in (7, "", "a\tb", None):
            self.assertEqual(self.run_hook(sbc_invite(), x_ms_sbc=bad).get("X-MS-SBC"), X_MS_SBC.encode(), bad)
        out = self.run_hook(sbc_invite(contact="<sip:+1716@203.0.113.10>"), tls_port="5062")
        self.assertEqual(out.get("Contact"), b"<sip:+1716@sbc1.contoso.com:5061;transport=tls>")
        kept = self.run_hook(sbc_invite(extra=(("Replaces", "a;to-tag=1;from-tag=2"),)), allow_replaces="yes")
        self.assertIsNone(kept.get("Replaces"))  # only a TOML true keeps Replaces

    def test_existing_tls_contact_port_kept(self) -> None:
        out = self.run_hook(sbc_invite(contact="<sip:+1716@203.0.113.10:5067;transport=tls>"))
        self.assertEqual(out.get("Contact"), b"<sip:+1716@sbc1.contoso.com:5067;transport=tls>")
        out = self.run_hook(sbc_invite(contact="<sip:+1716@203.0.113.10:5060>"), tls_port=5062)
        self.assertEqual(out.get("Contact"), b"<sip:+1716@sbc1.contoso.com:5062;transport=tls>")

    def test_replaces_removed_unless_allowed(self) -> None:
        extra = (("Replaces", "abc@host;to-tag=1;from-tag=2"), ("Require", "replaces, 100rel"))
        out = self.run_hook(sbc_invite(extra=extra))
        self.assertIsNone(out.get("Replaces"))
        self.assertEqual(out.get("Require"), b"100rel")
        out = self.run_hook(sbc_invite(extra=(("Replaces", "abc@host;to-tag=1;from-tag=2"), ("Require", "replaces"))))
        self.assertIsNone(out.get("Require"))
        kept = self.run_hook(sbc_invite(extra=extra), allow_replaces=True)
        self.assertEqual(kept.get("Replaces"), b"abc@host;to-tag=1;from-tag=2")
        self.assertEqual(kept.get("Require"), b"replaces, 100rel")

    def test_ip_fqdn_leaves_contact(self) -> None:
        out = self.run_hook(sbc_invite(), fqdn="203.0.113.10")
        self.assertEqual(out.get("Contact"), b"<sip:+17168712781@203.0.113.10:5060>")

    def test_options_gets_fqdn_contact(self) -> None:
        request = parse_datagram(b"OPTIONS sip:sip.pstnhub.microsoft.com SIP/2.0\r\n"
                                 b"Via: SIP/2.0/TLS 203.0.113.10;branch=z9hG4bK1\r\n"
                                 b"From: <sip:sbc1.contoso.com>;tag=1\r\nTo: <sip:sip.pstnhub.microsoft.com>\r\n"
                                 b"Call-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        out = self.run_hook(request)  # type: ignore[arg-type]
        self.assertEqual(out.get("Contact"), b"<sip:sbc1.contoso.com:5061;transport=tls>")

    def test_non_phone_uri_untouched(self) -> None:
        out = self.run_hook(sbc_invite(uri="sip:alice@contoso.com"))
        self.assertEqual(out.uri, b"sip:alice@contoso.com")

    def test_answer_to_microsofts_options(self) -> None:
        options = load("teams-OPTIONS-in-1.txt")
        response = parse_datagram(
            b"SIP/2.0 200 OK\r\n"
            + b"".join(h.name.encode() + b": " + h.value + b"\r\n" for h in options.headers
                       if h.name in ("Via", "From", "To", "Call-ID", "CSeq"))
            + b"Contact: <sip:203.0.113.10:5061;transport=tls>\r\nContent-Length: 0\r\n\r\n")
        c = QuirkChain([PLUGINS["teams"]], trunk="teams", sbc_fqdn="sbc1.contoso.com")
        out = c.response_to_pbx(response)  # type: ignore[arg-type]
        self.assertEqual(c.notices(), [])
        self.assertEqual(out.get("Contact"), b"<sip:sbc1.contoso.com:5061;transport=tls>")
        self.assertIsNotNone(out.get("X-MS-SBC"))


    def test_redirect_contact_left_alone(self) -> None:
        response = parse_datagram(b"SIP/2.0 302 Moved Temporarily\r\nVia: SIP/2.0/TLS 52.114.76.76:5061;branch=z9hG4bK1\r\n"
                                  b"From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>;tag=2\r\nCall-ID: r\r\nCSeq: 1 INVITE\r\n"
                                  b"Contact: <sip:+14255550199@198.51.100.7>\r\nContent-Length: 0\r\n\r\n")
        c = QuirkChain([PLUGINS["teams"]], trunk="teams", sbc_fqdn="sbc1.contoso.com")
        out = c.response_to_pbx(response)  # type: ignore[arg-type]
        self.assertEqual(out.get("Contact"), b"<sip:+14255550199@198.51.100.7>")
        self.assertIsNotNone(out.get("X-MS-SBC"))


class TowardOthersTests(SynchronousTestCase):
    def test_twilio_header_rules(self) -> None:
        extra = (("x-app-context", "abc"), ("User-to-User", "00ff;encoding=hex"),
                 ("P-Asserted-Identity", "<sip:+15550100@example.com>"), ("P-Charge-Info", "<sip:+1555@x>"),
                 ("Cisco-Guid", "123-456"), ("P-Called-Party-ID", "<sip:+15550101@example.com>"))
        request = sbc_invite(uri="sip:+15035550164@example.pstn.twilio.com?x-ok=1&Foo=bar", extra=extra)
        c = chain("twilio")
        out = c.request_to_pbx(request)
        self.assertEqual(c.notices(), [])
        names = [h.name for h in out.headers]
        for kept in ("x-app-context", "User-to-User", "P-Asserted-Identity", "P-Called-Party-ID", "Contact", "Via"):
            self.assertIn(kept, names)
        self.assertNotIn("P-Charge-Info", names)
        self.assertNotIn("Cisco-Guid", names)
        self.assertEqual(out.uri, b"sip:+15035550164@example.pstn.twilio.com?x-ok=1")
        loose = chain("twilio", strict_headers=False).request_to_pbx(request)
        self.assertIn("Cisco-Guid", [h.name for h in loose.headers])

    def test_telnyx_auth_options(self) -> None:
        plain = chain("telnyx").request_to_pbx(sbc_invite(uri="sip:+13125550100@sip.telnyx.com"))
        self.assertIsNone(plain.get("X-Telnyx-Token"))
        self.assertIsNone(plain.get("P-Charge-Info"))
        c = chain("telnyx", telnyx_token="tok-123", p_charge_info="+13125550199")
        out = c.request_to_pbx(sbc_invite(uri="sip:+13125550100@sip.telnyx.com"))
        self.assertEqual(c.notices(), [])
        self.assertEqual(out.get("X-Telnyx-Token"), b"tok-123")
        self.assertEqual(out.get("P-Charge-Info"), b"<sip:+13125550199@sip.telnyx.com>")
        bad = chain("telnyx", p_charge_info="5550199", telnyx_token="a\nb").request_to_pbx(
            sbc_invite(uri="sip:+13125550100@sip.telnyx.com"))
        self.assertIsNone(bad.get("P-Charge-Info"))
        self.assertIsNone(bad.get("X-Telnyx-Token"))

    def test_chime_and_connect_e164_toward_the_voice_connector(self) -> None:
        for vendor in ("chime", "connect"):
            request = sbc_invite(uri="sip:18155558245@dr3rbaar376u5r4ntcnlq4.voiceconnector.chime.aws",
                                 extra=(("P-Asserted-Identity", "<sip:16185558387@sbc1.example.com>"),))
            c = chain(vendor)
            out = c.request_to_pbx(request)
            self.assertEqual(c.notices(), [], vendor)
            self.assertEqual(out.uri, b"sip:+18155558245@dr3rbaar376u5r4ntcnlq4.voiceconnector.chime.aws")
            self.assertEqual(out.get("P-Asserted-Identity"), b"<sip:+16185558387@sbc1.example.com>")
            self.assertEqual(out.get("From"), request.get("From"))
            off = chain(vendor, plus_e164=False).request_to_pbx(request)
            self.assertEqual(off.uri, request.uri)

    def test_chime_sample_outbound_invite_unchanged(self) -> None:
        # Asterisk's INVITE toward Chime (AWS sample) is already E.164: nothing to fix.
        request = load("chime-INVITE-2.txt")
        self.assertIs(chain("chime").request_to_pbx(request), request)  # type: ignore[arg-type]


#: What VENDORS.md says, per vendor (the summary table and each section).
EXPECTED_DEFAULTS: dict[str, dict[str, object]] = {
    "teams": dict(transport="tls", mutual_tls=True, srtp="required", dtmf="rfc4733", options_interval=60.0,
                  record_route=True, fqdn_contact=True, allow_replaces=False,
                  signalling_ranges=("52.112.0.0/14", "52.122.0.0/15"), ranges_confirmed=True),
    "webex": dict(transport="tls", dtmf="rfc4733", ranges_confirmed=False, signalling_ranges=()),
    "ringcentral": dict(transport="tls", dtmf="rfc4733", signalling_ranges=(), ranges_confirmed=False),
    "zoom": dict(transport="tls", mutual_tls=True, srtp="required", dtmf="rfc4733", allow_replaces=True,
                 call_id_headers=("X-Trace-ID",)),
    "twilio": dict(srtp="optional", dtmf="rfc4733", call_id_headers=("X-Twilio-CallSid",), ranges_confirmed=False,
                   signalling_ranges=("54.172.60.0/30", "54.244.51.0/30", "54.171.127.192/30",
                                      "35.156.191.128/30", "54.65.63.192/30", "54.169.127.128/30",
                                      "54.252.254.64/30", "177.71.206.192/30")),
    "telnyx": dict(transport="tls", srtp="off", ranges_confirmed=False,
                   call_id_headers=("X-call_session_id", "X-call_leg_id")),
    "genesys": dict(mutual_tls=False, record_route=True, follow_record_route=True, dtmf="rfc4733",
                    call_id_headers=("x-inin-cnv",)),
    "nice": dict(signalling_ranges=(), ranges_confirmed=False),
    "chime": dict(transport="tls", srtp="required", dtmf="rfc4733", follow_record_route=True,
                  signalling_ranges=("3.80.16.0/23", "99.77.253.0/24", "99.77.242.0/24", "99.77.240.0/24"),
                  ranges_confirmed=False),
    "connect": dict(transport="tls", srtp="required", follow_record_route=True, ranges_confirmed=False,
                    call_id_headers=("X-Amzn-ConnectContactId", "X-Amzn-ConnectInitialContactId")),
}

#: Words of VENDORS.md's UNCONFIRMED items that each plugin's notes must mention.
EXPECTED_UNCONFIRMED = {
    "teams": ("SNI", "OPTIONS", "100rel"),
    "webex": ("User-Agent", "5062", "keepalive", "cipher"),
    "ringcentral": ("whole profile",),
    "zoom": ("OPTIONS", "ranges"),
    "twilio": ("mutual TLS", "telephone-event", "OPTIONS"),
    "telnyx": ("mutual TLS", "DTMF"),
    "genesys": ("Termination Identifier", "x-inin", "OPTIONS"),
    "nice": ("whole profile",),
    "chime": ("mutual TLS", "OPTIONS", "ca-central-1"),
    "connect": ("User-to-User", "contact attributes"),
}


class DefaultsTests(SynchronousTestCase):
    def test_defaults_match_vendors_md(self) -> None:
        for vendor, expected in EXPECTED_DEFAULTS.items():
            defaults = PLUGINS[vendor].defaults
            for key, value in expected.items():
                self.assertEqual(getattr(defaults, key), value, f"{vendor}.{key}")

    def test_unconfirmed_notes(self) -> None:
        for vendor, words in EXPECTED_UNCONFIRMED.items():
            text = " ".join(PLUGINS[vendor].defaults.unconfirmed)
            for word in words:
                self.assertIn(word.lower(), text.lower(), vendor)

    def test_ranges_confirmed_only_with_ranges(self) -> None:
        for vendor, quirk in PLUGINS.items():
            if quirk.defaults.ranges_confirmed:
                self.assertTrue(quirk.defaults.signalling_ranges, vendor)

    def test_chime_and_connect_share_the_transport_leg(self) -> None:
        chime, connect = PLUGINS["chime"].defaults, PLUGINS["connect"].defaults
        for key in ("transport", "mutual_tls", "srtp", "dtmf", "options_interval", "follow_record_route",
                    "signalling_ranges"):
            self.assertEqual(getattr(chime, key), getattr(connect, key), key)


MINIMAL = '[sbc]\nfqdn = "sbc.example.com"\n\n[[listen]]\ntransport = "udp"\naddress = "127.0.0.1"\nport = 5060\n\n'


class ExampleConfigTests(SynchronousTestCase):
    def load_example(self, vendor: str):  # type: ignore[no-untyped-def]
        text = (REPO / "etc" / "examples" / f"{vendor}.toml").read_text(encoding="utf-8")
        path = Path(self.mktemp())
        path.write_text(MINIMAL + text, encoding="utf-8")
        return load_config(path)

    def test_each_example_loads_with_its_vendor(self) -> None:
        for vendor in VENDORS:
            config = self.load_example(vendor)
            self.assertEqual([t.vendor for t in config.trunks], [vendor])

    def test_examples_allow_the_published_ranges(self) -> None:
        for vendor, quirk in PLUGINS.items():
            trunk = self.load_example(vendor).trunks[0]
            for cidr in quirk.defaults.signalling_ranges:
                net = ipaddress.ip_network(cidr)
                self.assertTrue(any(net.version == a.version and net.subnet_of(a) for a in trunk.allow),
                                (vendor, cidr))

    def test_examples_follow_the_vendor_srtp_default(self) -> None:
        for vendor, quirk in PLUGINS.items():
            trunk = self.load_example(vendor).trunks[0]
            self.assertEqual(trunk.srtp, quirk.defaults.srtp, vendor)

    def test_examples_warn_to_check_ranges(self) -> None:
        for vendor, quirk in PLUGINS.items():
            if quirk.defaults.signalling_ranges:
                text = (REPO / "etc" / "examples" / f"{vendor}.toml").read_text(encoding="utf-8")
                self.assertIn("CHECK", text, vendor)


#: Callee and vendor call id each vendor's INVITE must reach the agent host with.
AGENT_VIEW = {
    "teams-INVITE-in-1.txt": ("+14255550100", None),
    "teams-INVITE-in-2.txt": ("+14255550111", None),
    "webex-INVITE-in-1.txt": ("14085550155", "1857962395-0303829486-2325384221-0775943771"),
    "ringcentral-INVITE-in-1.txt": ("+16505550142", None),
    "zoom-INVITE-in-1.txt": ("+13125550188", "0a8c5e7f2b4d6e8f"),
    "twilio-INVITE-in-1.txt": ("+15035550164", "CA8f2e4c6a0b1d3e5f7a9c8b6d4e2f0a1c"),
    "twilio-INVITE-in-2.txt": ("+442079460018", "CA00112233445566778899aabbccddeeff"),
    "telnyx-INVITE-in-1.txt": ("+18005550136", "6466f69e-1dc8-4e81-980a-f33356672e32"),
    "genesys-INVITE-in-1.txt": ("+18885550172", "083adbcd-f580-41af-83dd-eefbf5f60155"),
    "nice-INVITE-in-1.txt": ("+16175550119", None),
    "chime-INVITE-1.txt": ("+16185558387", None),
    "chime-INVITE-in-3.txt": ("+16185558387", None),
    "connect-INVITE-in-1.txt": ("+16185558387", "b3f1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d"),
}


class ThroughTheCoreTests(SynchronousTestCase):
    """Each vendor's INVITE through a real B2BUA core (``sbc normalize``), configured with the
    vendor's example trunk: the INVITE toward the agent host is in canonical form."""

    def run_normalize(self, vendor: str, fixture: str) -> str:
        import io

        from sbc.normalize_cmd import main

        config = Path(self.mktemp())
        example = (REPO / "etc" / "examples" / f"{vendor}.toml").read_text(encoding="utf-8")
        config.write_text(MINIMAL.replace("sbc.example.com", FQDN) + example, encoding="utf-8")
        trunk = load_config(config).trunks[0].name
        out, err = io.StringIO(), io.StringIO()
        status = main(["--config", str(config), "--trunk", trunk, str(MESSAGES / fixture)], out, err)
        self.assertEqual((status, err.getvalue()), (0, ""), fixture)
        return out.getvalue()

    def test_every_vendor_invite_reaches_the_agent_host_canonical(self) -> None:
        self.assertEqual(set(AGENT_VIEW), {n for n in FROM_VENDOR if "-INVITE-" in n})
        for fixture, (callee, vendor_call_id) in AGENT_VIEW.items():
            vendor = FROM_VENDOR[fixture]
            text = self.run_normalize(vendor, fixture)
            self.assertNotIn("# notice", text, fixture)
            agent = text.split("# ---- the INVITE toward the agent host\n", 1)[1]
            start, _, rest = agent.partition("\n")
            self.assertTrue(start.startswith(f"INVITE sip:{callee}@10.0.20.5:5090"), (fixture, start))
            headers = dict(line.split(": ", 1) for line in rest.split("\n\n", 1)[0].split("\n") if ": " in line)
            self.assertTrue(headers["To"].startswith(f"<sip:{callee}@"), fixture)
            self.assertEqual(headers["X-SBC-Vendor"], vendor, fixture)
            self.assertEqual(headers["X-SBC-Callee"], callee, fixture)
            self.assertEqual(headers.get("X-SBC-Vendor-Call-ID"), vendor_call_id, fixture)
            self.assertIn(headers["Privacy"], ("none", "id"), fixture)


class DocsTests(SynchronousTestCase):
    def test_vendor_guide_covers_every_plugin(self) -> None:
        text = (REPO / "docs" / "vendors.md").read_text(encoding="utf-8")
        for vendor, quirk in PLUGINS.items():
            self.assertIn(f'vendor = "{vendor}"', text)
            self.assertIn(quirk.title, text)
            for note in quirk.defaults.unconfirmed:
                self.assertIn(note, text, vendor)
            for cidr in quirk.defaults.signalling_ranges:
                self.assertIn(cidr, text, vendor)


# ------------------------------------------------------------------ properties

_NAMES = st.sampled_from([
    "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Record-Route", "User-Agent", "Server",
    "P-Asserted-Identity", "Privacy", "Remote-Party-ID", "Diversion", "History-Info", "User-to-User",
    "Replaces", "Require", "X-MS-UserLocation", "x-twilio-callsid", "X-Twilio-AccountSid", "X-call_leg_id",
    "x-inin-cnv", "X-Trace-ID", "X-VoiceConnector-ID", "X-Amzn-ConnectContactId", "X-Amzn-SourceArn",
    "X-SMA-Max-Forwards", "Cisco-Guid", "P-Charge-Info", "X-Custom",
])
_VALUES = st.one_of(
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    st.sampled_from([
        "<sip:+15550100@192.0.2.1>;tag=1", "<sip:15550100123@host>", "sip:alice@example.com", "<sip:*@x>",
        "Microsoft.PSTNHub.SIPProxy v.1", "VineProx-v2.3", "6869;encoding=hex", '{"contactId":"a-b"}',
        "SIP/2.0/TLS sip.pstnhub.microsoft.com:5061;branch=z9hG4bK1", "<sip:a@[::1]>", "<>", "<sip:",
        "arn:aws:connect:us-east-1:1:instance/x", "replaces, 100rel", "*",
    ]),
)
_URIS = st.sampled_from(["sip:+15550100@192.0.2.1", "sip:15550100123@h?x-a=1&b=2", "tel:+1555", "sip:@", "x",
                         "sip:alice@example.com;user=phone"])
_OPTIONS = st.fixed_dictionaries({}, optional={
    "plus_e164": st.booleans(), "strict_headers": st.booleans(), "allow_replaces": st.booleans(),
    "x_ms_sbc": st.sampled_from(["A/B/1", "", "bad\nvalue", 7]), "tls_port": st.sampled_from([5061, 0, "x", True]),
    "telnyx_token": st.sampled_from(["t", "", None, 3]), "p_charge_info": st.sampled_from(["+15550100", "x", None]),
    "pass_app_headers": st.booleans(),
})


class PropertyTests(SynchronousTestCase):
    @given(headers=st.lists(st.tuples(_NAMES, _VALUES), max_size=12), uri=_URIS, options=_OPTIONS,
           fqdn=st.sampled_from([FQDN, "203.0.113.10", "2001:db8::1", ""]))
    def test_hooks_never_raise_nor_touch_protected_headers(self, headers: list[tuple[str, str]], uri: str,
                                                           options: dict[str, object], fqdn: str) -> None:
        ctx = QuirkContext("t", "x", fqdn, options=options)
        for name, quirk in PLUGINS.items():
            request = SipMessage(method="INVITE", uri=uri, headers=headers)
            self.assertIsInstance(quirk.recognise(request.copy()), bool)
            before = {h: request.get_all(h) for h in PROTECTED}
            quirk.request_from_pbx(request, ctx)
            call = build_canonical(request, ctx)
            quirk.canonical(call, request, ctx)
            call.headers()
            quirk.request_to_pbx(request, ctx)
            self.assertEqual({h: request.get_all(h) for h in PROTECTED}, before, name)
            response = SipMessage(status=200, reason="OK", headers=headers)
            quirk.response_from_pbx(response, ctx)
            quirk.response_to_pbx(response, ctx)
            self.assertEqual({h: response.get_all(h) for h in PROTECTED}, before, name)
            self.assertEqual(quirk.sdp_from_pbx(b"v=0\r\n", ctx), b"v=0\r\n")
            self.assertEqual(quirk.sdp_to_pbx(b"v=0\r\n", ctx), b"v=0\r\n")

    @given(digits=st.text(st.sampled_from("0123456789"), min_size=1, max_size=18))
    def test_plus_is_added_only_to_international_looking_numbers(self, digits: str) -> None:
        headers = [("From", f"<sip:{digits}@192.0.2.9>;tag=1"), ("To", f"<sip:{digits}@192.0.2.1>"),
                   ("Call-ID", "c"), ("CSeq", "1 INVITE")]
        for vendor in ("telnyx", "twilio", "chime"):
            request = SipMessage(method="INVITE", uri=f"sip:{digits}@192.0.2.1", headers=headers)
            ctx = QuirkContext("t", vendor, FQDN)
            call = build_canonical(request, ctx)
            PLUGINS[vendor].canonical(call, request, ctx)
            if 9 <= len(digits) <= 15 and digits[0] != "0":
                self.assertEqual(call.callee, "+" + digits)
            else:
                self.assertEqual(call.callee, digits)
            self.assertTrue(call.callee is None or re.fullmatch(r"\+?[0-9]+", call.callee))
