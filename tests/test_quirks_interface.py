# -*- test-case-name: tests.test_quirks_interface -*-
"""The quirk plugin interface and the plugin-facing SipMessage (sbc.quirks.interface/message)."""

from __future__ import annotations

import subprocess
import sys

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from sbc.quirks import IVendorQuirk, QuirkBase, QuirkContext, SipMessage, VendorDefaults, from_sip, to_sip
from sbc.quirks.canonical import CanonicalCall
from sbc.quirks.interface import header_matches
from sbc.sip.message import Request, Response, parse_message

from .test_layering import REPO

INVITE = (
    b"INVITE sip:+15551230000@sbc.example.com;user=phone SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1\r\n"
    b"f: \"Alice\" <sip:+15557654321@pbx.example.com>;tag=a1\r\n"
    b"To: <sip:+15551230000@sbc.example.com>\r\n"
    b"Call-ID: c1@pbx\r\n"
    b"CSeq: 1 INVITE\r\n"
    b"Contact: <sip:pbx@192.0.2.1>, <sip:alt@192.0.2.2>\r\n"
    b"X-Folded: one\r\n two\r\n"
    b"X-Utf8: Caf\xc3\xa9 \xff\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Content-Length: 4\r\n"
    b"\r\n"
    b"v=0\n"
)


def invite() -> Request:
    msg = parse_message(INVITE)
    assert isinstance(msg, Request)
    return msg


class SipMessageTests(SynchronousTestCase):
    def test_untouched_round_trip_is_the_same_object(self) -> None:
        msg = invite()
        self.assertIs(to_sip(from_sip(msg)), msg)

    def test_read_access(self) -> None:
        view = from_sip(invite())
        self.assertEqual(view.method, "INVITE")
        self.assertEqual(view.uri, "sip:+15551230000@sbc.example.com;user=phone")
        self.assertIsNone(view.status)
        self.assertEqual(view.get("From"), '"Alice" <sip:+15557654321@pbx.example.com>;tag=a1')
        self.assertEqual(view.get("from"), view.get("f"))
        self.assertEqual(view.get_all("Contact"), ["<sip:pbx@192.0.2.1>", "<sip:alt@192.0.2.2>"])
        self.assertEqual(view.get("X-Folded"), "one two")
        self.assertIsNone(view.get("X-Missing"))
        self.assertEqual(view.get_all("X-Missing"), [])
        self.assertEqual(view.content_type, "application/sdp")
        self.assertTrue(view.is_request)
        self.assertEqual(view.body, b"v=0\n")

    def test_any_byte_survives(self) -> None:
        msg = invite()
        view = from_sip(msg)
        view.set("X-Other", "1")
        out = to_sip(view)
        self.assertEqual(out.get("X-Utf8"), b"Caf\xc3\xa9 \xff")

    def test_changes_keep_untouched_headers_raw(self) -> None:
        msg = invite()
        view = from_sip(msg)
        view.set("X-Folded", "replaced")
        view.add("Record-Route", "<sip:sbc.example.com;lr>")
        view.remove("contact")
        out = to_sip(view)
        self.assertIsNot(out, msg)
        data = out.to_bytes()
        self.assertIn(b"\r\nf: \"Alice\"", data)  # compact form kept raw
        self.assertIn(b"X-Folded: replaced\r\n", data)
        self.assertTrue(data.split(b"\r\n\r\n")[0].endswith(b"Record-Route: <sip:sbc.example.com;lr>"))
        self.assertNotIn(b"Contact", data)
        self.assertEqual(parse_message(data).get("Call-ID"), b"c1@pbx")

    def test_set_keeps_position(self) -> None:
        view = from_sip(invite())
        names = [n for n, _ in view.headers()]
        view.set("To", "<sip:+1@x>")
        self.assertEqual([n for n, _ in view.headers()], names)
        view.set("X-New", "v")
        self.assertEqual(view.headers()[-1], ("X-New", "v"))

    def test_prepend(self) -> None:
        view = from_sip(invite())
        view.prepend("Via", "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK0")
        self.assertEqual(view.get_all("Via")[0], "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK0")
        view.prepend("Record-Route", "<sip:a;lr>")
        self.assertEqual(view.headers()[0], ("Record-Route", "<sip:a;lr>"))

    def test_body_change_sets_content_length(self) -> None:
        view = from_sip(invite())
        view.body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n"
        out = to_sip(view)
        self.assertEqual(out.content_length, len(view.body))
        self.assertEqual(parse_message(out.to_bytes()).body, view.body)

    def test_uri_change(self) -> None:
        view = from_sip(invite())
        view.uri = "sip:+15551230000@agent.example.com"
        out = to_sip(view)
        assert isinstance(out, Request)
        self.assertEqual(out.uri, b"sip:+15551230000@agent.example.com")

    def test_injection_refused(self) -> None:
        view = from_sip(invite())
        for bad in ("a\r\nVia: x", "a\nb", "a\rb", "a\x00"):
            self.assertRaises(ValueError, view.set, "X-A", bad)
            self.assertRaises(ValueError, view.add, "X-A", bad)
        for bad_name in ("", "X A", "X:A", "X\r\n"):
            self.assertRaises(ValueError, view.set, bad_name, "v")
        self.assertRaises(ValueError, view.set, "X-A", 5)  # type: ignore[arg-type]
        view.uri = "sip:a b@c"
        self.assertRaises(ValueError, to_sip, view)

    def test_response(self) -> None:
        resp = Response(180, "Ringing", (), b"")
        view = from_sip(resp)
        self.assertEqual((view.status, view.reason, view.method), (180, "Ringing", None))
        self.assertIs(to_sip(view), resp)
        view.reason = "Ringing Loudly"
        out = to_sip(view)
        assert isinstance(out, Response)
        self.assertEqual(out.reason, "Ringing Loudly")
        view.status = 99
        self.assertRaises(ValueError, to_sip, view)

    def test_build_from_scratch(self) -> None:
        view = SipMessage(method="OPTIONS", uri="sip:pbx.example.com", headers=[("call-id", "x")])
        self.assertEqual(view.headers(), [("Call-ID", "x")])
        out = to_sip(view)
        assert isinstance(out, Request)
        self.assertEqual(out.method, "OPTIONS")
        self.assertRaises(ValueError, SipMessage)
        self.assertRaises(ValueError, SipMessage, method="A", status=200)

    def test_copy_is_independent(self) -> None:
        view = from_sip(invite())
        other = view.copy()
        other.set("X-Copy", "1")
        other.body = b""
        self.assertIsNone(view.get("X-Copy"))
        self.assertEqual(view.body, b"v=0\n")
        self.assertIs(to_sip(view), to_sip(view.copy()))

    def test_to_text(self) -> None:
        text = from_sip(invite()).to_text()
        self.assertTrue(text.startswith("INVITE sip:+15551230000@sbc.example.com;user=phone SIP/2.0\r\n"))
        self.assertIn("\r\nX-Folded: one two\r\n", text)

    @given(st.text(min_size=0, max_size=40))
    def test_set_value_property(self, value: str) -> None:
        """Any str either is refused with ValueError or round-trips through sbc.sip."""
        view = from_sip(invite())
        try:
            view.set("X-Prop", value)
        except ValueError:
            self.assertTrue(any(c in value for c in "\r\n\x00"))
            return
        out = to_sip(view)
        again = from_sip(parse_message(out.to_bytes()))
        self.assertEqual(again.get("X-Prop"), value.strip(" \t"))


class InterfaceTests(SynchronousTestCase):
    def test_quirk_base_provides_interface(self) -> None:
        self.assertTrue(verifyObject(IVendorQuirk, QuirkBase()))

    def test_base_hooks_are_no_ops(self) -> None:
        base = QuirkBase()
        ctx = QuirkContext("t", "base", "sbc.example.com")
        view = from_sip(invite())
        for hook in (base.request_from_pbx, base.request_to_pbx, base.response_from_pbx, base.response_to_pbx):
            self.assertIsNone(hook(view, ctx))
        self.assertEqual(base.sdp_from_pbx(b"v=0", ctx), b"v=0")
        self.assertEqual(base.sdp_to_pbx(b"v=0", ctx), b"v=0")
        self.assertIs(to_sip(view), to_sip(from_sip(view._origin)))  # type: ignore[arg-type]
        self.assertFalse(base.recognise(view))

    def test_base_canonical_uses_defaults(self) -> None:
        class Acme(QuirkBase):
            name = "acme"
            defaults = VendorDefaults(call_id_headers=("X-Acme-Id", "X-Acme-Old"), pass_x_headers=("X-Acme-*",))

        msg = invite().append_header("X-Acme-Old", "old").append_header("X-Acme-Id", " id-1 ")
        msg = msg.append_header("X-Other", "no")
        view = from_sip(msg)
        call = CanonicalCall("t", "acme", "c1@pbx")
        Acme().canonical(call, view, QuirkContext("t", "acme", "sbc"))
        self.assertEqual(call.vendor_call_id, "id-1")
        self.assertEqual(call.extra, [("X-Acme-Old", "old"), ("X-Acme-Id", "id-1")])
        self.assertTrue(Acme().recognise(view))

    def test_defaults_validation(self) -> None:
        self.assertRaises(ValueError, VendorDefaults, transport="sctp")
        self.assertRaises(ValueError, VendorDefaults, srtp="maybe")
        self.assertRaises(ValueError, VendorDefaults, dtmf="inband")
        self.assertRaises(ValueError, VendorDefaults, options_interval=0)
        self.assertRaises(ValueError, VendorDefaults, options_interval=True)
        self.assertEqual(VendorDefaults(call_id_headers="X-A").call_id_headers, ("X-A",))
        self.assertEqual(VendorDefaults(signalling_ranges=["10.0.0.0/8"]).signalling_ranges, ("10.0.0.0/8",))
        d = VendorDefaults()
        self.assertEqual((d.transport, d.srtp, d.dtmf, d.allow_replaces), ("udp", "optional", "rfc4733", True))

    def test_context(self) -> None:
        ctx = QuirkContext("teams-1", "teams", "sbc.example.com", options={"country_code": "1"})
        self.assertEqual(ctx.option("country_code"), "1")
        self.assertIsNone(ctx.option("nope"))
        self.assertEqual(ctx.direction, "inbound")
        self.assertRaises(ValueError, QuirkContext, "t", "v", "f", "sideways")
        hash(ctx)

    def test_header_matches(self) -> None:
        self.assertTrue(header_matches("x-twilio-callsid", ("X-Twilio-*",)))
        self.assertTrue(header_matches("X-Trace-ID", ("x-trace-id",)))
        self.assertFalse(header_matches("X-Trace-IDs", ("X-Trace-ID",)))
        self.assertFalse(header_matches("X-Other", ()))

    def test_quirks_package_imports_no_twisted(self) -> None:
        code = ("import sys, sbc.quirks, sbc.quirks.chain, sbc.quirks.canonical, sbc.policy.normalise\n"
                "print(sorted(m for m in sys.modules if m.split('.')[0] == 'twisted'))")
        result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                                timeout=60)
        self.assertEqual((result.returncode, result.stdout.strip()), (0, "[]"), result.stderr)


_NAMES = st.sampled_from(["X-A", "x-a", "X-B", "Subject", "s", "Contact", "X-Long-Name"])
_VALUES = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x2FF, blacklist_characters=","), min_size=1,
                  max_size=12)
_OPS = st.lists(st.tuples(st.sampled_from(["set", "add", "prepend", "remove"]), _NAMES, _VALUES), max_size=12)


def _key(name: str) -> str:
    return {"s": "subject"}.get(name.lower(), name.lower())


class SipMessageModelTests(SynchronousTestCase):
    @given(_OPS)
    def test_edits_match_a_list_model_through_the_wire(self, ops: list[tuple[str, str, str]]) -> None:
        """set/add/prepend/remove on a view behave like the obvious list operations, and what
        to_sip() serialises parses back to the same header list."""
        view = from_sip(invite())
        model = [(_key(n), v) for n, v in view.headers()]
        for op, name, value in ops:
            key = _key(name)
            getattr(view, op)(*((name,) if op == "remove" else (name, value)))
            if op == "remove":
                model = [(k, v) for k, v in model if k != key]
            elif op == "add":
                model.append((key, value))
            elif op == "prepend":
                at = next((i for i, (k, _) in enumerate(model) if k == key), 0)
                model.insert(at, (key, value))
            else:
                at = next((i for i, (k, _) in enumerate(model) if k == key), None)
                model = [(k, v) for k, v in model if k != key]
                model.insert(len(model) if at is None else at, (key, value))
        self.assertEqual([(_key(n), v) for n, v in view.headers()], model)
        wire = parse_message(to_sip(view).to_bytes())
        self.assertEqual([(_key(n), v) for n, v in from_sip(wire).headers()], model)
