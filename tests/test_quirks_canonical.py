# -*- test-case-name: tests.test_quirks_canonical -*-
"""The canonical call (sbc.quirks.canonical) and E.164 numbers (sbc.policy.normalise)."""

from __future__ import annotations

import binascii

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.policy.normalise import canonical_number, to_e164
from sbc.quirks import CONTRACT_HEADERS, CanonicalCall, QuirkContext, SipMessage
from sbc.quirks.canonical import (
    ANONYMOUS_PAI,
    build_canonical,
    caller_identity,
    decode_uui,
    redirecting_number,
)


def req(uri: str = "sip:+15551230000@sbc.example.com", *headers: tuple[str, str]) -> SipMessage:
    base = [("From", "<sip:+15557654321@pbx.example.com>;tag=1"), ("To", "<sip:+15551230000@sbc.example.com>"),
            ("Call-ID", "abc@pbx")]
    names = {h[0].lower() for h in headers}
    return SipMessage(method="INVITE", uri=uri,
                      headers=[h for h in base if h[0].lower() not in names] + list(headers))


class E164Tests(SynchronousTestCase):
    def test_global_numbers(self) -> None:
        for text in ("+17168712781", "+1 (716) 871-2781", "+1.716.871.2781", "tel:+17168712781",
                     "+1-716-871-2781;npdi", " +17168712781 "):
            self.assertEqual(to_e164(text), "+17168712781", text)

    def test_without_country_only_unambiguous(self) -> None:
        for text in ("7168712781", "17168712781", "0017168712781", "07700900123"):
            self.assertIsNone(to_e164(text), text)

    def test_phone_context(self) -> None:
        self.assertEqual(to_e164("8712781;phone-context=+1-716"), "+17168712781")
        self.assertIsNone(to_e164("8712781;phone-context=example.com"))

    def test_nanp(self) -> None:
        self.assertEqual(to_e164("7168712781", "1"), "+17168712781")
        self.assertEqual(to_e164("17168712781", "1"), "+17168712781")
        self.assertEqual(to_e164("011442079460000", "1"), "+442079460000")
        self.assertIsNone(to_e164("1168712781", "1"))  # NPA cannot start with 1
        self.assertIsNone(to_e164("8712781", "1"))  # 7-digit local

    def test_other_countries(self) -> None:
        self.assertEqual(to_e164("07700900123", "44"), "+447700900123")
        self.assertEqual(to_e164("0017168712781", "44"), "+17168712781")
        self.assertEqual(to_e164("00017168712781", "44", "000"), "+17168712781")
        self.assertIsNone(to_e164("1234", "44"))

    def test_not_numbers(self) -> None:
        for text in ("alice", "*72", "#31#7168712781", "", "+", "+0123456789", "+1234567890123456",
                     "1001", "+12 34", "sip:+1"):
            self.assertIsNone(to_e164(text, "1"), text)
        self.assertIsNone(to_e164(None))
        self.assertIsNone(to_e164("1" * 300, "1"))
        self.assertIsNone(to_e164("7168712781", "abc"))

    def test_canonical_number(self) -> None:
        self.assertEqual(canonical_number("alice"), "alice")
        self.assertEqual(canonical_number("+1 716 871 2781"), "+17168712781")
        self.assertIsNone(canonical_number(None))

    @given(st.text(max_size=30), st.sampled_from([None, "1", "44", "x"]))
    def test_never_raises_and_is_e164(self, text: str, cc: str | None) -> None:
        out = to_e164(text, cc)
        if out is not None:
            self.assertRegex(out, r"\A\+[1-9][0-9]{6,14}\Z")
            self.assertEqual(to_e164(out), out)  # idempotent


class IdentityTests(SynchronousTestCase):
    def test_pai_wins(self) -> None:
        m = req("sip:x@y", ("P-Asserted-Identity", '"Bob" <sip:+15550001111@carrier>'),
                ("Remote-Party-ID", "<sip:+15552223333@carrier>;party=calling"))
        self.assertEqual(caller_identity(m), ("+15550001111", "Bob", False))

    def test_pai_prefers_tel_and_keeps_name(self) -> None:
        m = req("sip:x@y", ("P-Asserted-Identity", '"Bob" <sip:bob@carrier>, <tel:+15550001111>'))
        self.assertEqual(caller_identity(m), ("+15550001111", "Bob", False))

    def test_rpid(self) -> None:
        m = req("sip:x@y", ("Remote-Party-ID", '"Called" <sip:+15559999999@c>;party=called'),
                ("Remote-Party-ID", '"Carol" <sip:7168712781@c>;party=calling;screen=yes;privacy=off'))
        self.assertEqual(caller_identity(m, "1"), ("+17168712781", "Carol", False))

    def test_rpid_privacy(self) -> None:
        full = req("sip:x@y", ("Remote-Party-ID", '"Carol" <sip:+17168712781@c>;privacy=full'))
        self.assertEqual(caller_identity(full), (None, None, True))
        name = req("sip:x@y", ("Remote-Party-ID", '"Carol" <sip:+17168712781@c>;privacy=name'))
        self.assertEqual(caller_identity(name), ("+17168712781", None, False))

    def test_from_fallback(self) -> None:
        m = req("sip:x@y", ("From", '"Dave" <sip:%2B15551112222@pbx>;tag=9'))
        self.assertEqual(caller_identity(m), ("+15551112222", "Dave", False))

    def test_privacy_header(self) -> None:
        for value in ("id", "user", "header", "id;critical", "ID"):
            m = req("sip:x@y", ("P-Asserted-Identity", '"Bob" <sip:+15550001111@carrier>'), ("Privacy", value))
            self.assertEqual(caller_identity(m), (None, None, True), value)
        for value in ("none", "session"):
            m = req("sip:x@y", ("P-Asserted-Identity", "<sip:+15550001111@carrier>"), ("Privacy", value))
            self.assertFalse(caller_identity(m)[2], value)

    def test_anonymous_from(self) -> None:
        for frm in ('"Anonymous" <sip:anonymous@anonymous.invalid>;tag=1', "<sip:Restricted@pbx>;tag=1",
                    "<sip:+15551112222@anonymous.invalid>;tag=1"):
            self.assertEqual(caller_identity(req("sip:x@y", ("From", frm))), (None, None, True), frm)

    def test_garbage_is_unknown_not_an_error(self) -> None:
        m = req("sip:x@y", ("From", "<<<"), ("P-Asserted-Identity", "not an address <"))
        self.assertEqual(caller_identity(m), (None, None, False))


class RedirectTests(SynchronousTestCase):
    def test_diversion_topmost(self) -> None:
        m = req("sip:x@y", ("Diversion", "<sip:+15553334444@pbx>;reason=no-answer;counter=1, <sip:+15550000000@p>"))
        self.assertEqual(redirecting_number(m), "+15553334444")

    def test_history_info_with_cause(self) -> None:
        m = req("sip:x@y", ("History-Info", "<sip:+15551230000@pbx>;index=1, "
                                            "<sip:+15554445555@pbx;cause=302>;index=1.1"),
                ("History-Info", "<sip:+15556667777@agent>;index=1.1.1"))
        self.assertEqual(redirecting_number(m), "+15551230000")

    def test_history_info_sorted_by_index(self) -> None:
        m = req("sip:x@y", ("History-Info", "<sip:+15559990000@a>;index=1.1, <sip:+15558880000@a>;index=1"))
        self.assertEqual(redirecting_number(m), "+15558880000")

    def test_none(self) -> None:
        self.assertIsNone(redirecting_number(req()))
        self.assertIsNone(redirecting_number(req("sip:x@y", ("History-Info", "<sip:a@b>;index=1"))))
        self.assertIsNone(redirecting_number(req("sip:x@y", ("Diversion", "garbage <"))))


class UuiTests(SynchronousTestCase):
    def test_hex_text(self) -> None:
        data = binascii.hexlify(b"order=42").decode()
        self.assertEqual(decode_uui(f"{data};encoding=hex;purpose=isdn-uui"), ("order=42", None))
        self.assertEqual(decode_uui(data.upper()), ("order=42", None))

    def test_ia5_discriminator_dropped(self) -> None:
        self.assertEqual(decode_uui("04" + binascii.hexlify(b"abc").decode() + ";encoding=hex"), ("abc", None))

    def test_binary_is_hex(self) -> None:
        self.assertEqual(decode_uui("00ff10;encoding=hex"), (None, "00ff10"))

    def test_base64_and_text(self) -> None:
        self.assertEqual(decode_uui("aGVsbG8=;encoding=base64"), ("hello", None))
        self.assertEqual(decode_uui('"case 7"'), ("case 7", None))
        self.assertEqual(decode_uui("plain-token"), ("plain-token", None))

    def test_bad(self) -> None:
        for value in (None, "", "zz;encoding=hex", "abc;encoding=hex", "!!;encoding=base64", "x;encoding=rot13"):
            self.assertEqual(decode_uui(value), (None, None), value)

    @given(st.text(max_size=40))
    def test_never_raises(self, value: str) -> None:
        text, hexa = decode_uui(value)
        self.assertFalse(text is not None and hexa is not None)


class CanonicalCallTests(SynchronousTestCase):
    ctx = QuirkContext("pbx-1", "generic", "sbc.example.com", options={"country_code": "1"}, call_id="abc@pbx")

    def test_full_contract(self) -> None:
        m = req("sip:7168712781@sbc.example.com;user=phone",
                ("P-Asserted-Identity", '"Bob Smith" <sip:5550001111@carrier>'),
                ("Diversion", "<sip:+15553334444@pbx>;reason=unconditional"),
                ("User-to-User", binascii.hexlify(b"ticket 9").decode() + ";encoding=hex"))
        call = build_canonical(m, self.ctx)
        call.vendor_call_id = "CA123"
        call.pass_through("X-Vendor-Thing", "v")
        self.assertEqual(call.headers(), (
            ("X-SBC-Trunk", "pbx-1"),
            ("X-SBC-Vendor", "generic"),
            ("X-SBC-Original-Call-ID", "abc@pbx"),
            ("X-SBC-Vendor-Call-ID", "CA123"),
            ("X-SBC-Callee", "+17168712781"),
            ("X-SBC-Caller", "+15550001111"),
            ("P-Asserted-Identity", '"Bob Smith" <sip:+15550001111@sbc.example.com;user=phone>'),
            ("Privacy", "none"),
            ("X-SBC-Redirecting", "+15553334444"),
            ("X-SBC-UUI", "ticket 9"),
            ("X-Vendor-Thing", "v"),
        ))
        self.assertEqual([n for n, _ in call.headers()][:10],
                         [h for h in CONTRACT_HEADERS if h != "X-SBC-UUI-Hex"])

    def test_anonymous(self) -> None:
        m = req("sip:+15551230000@sbc", ("From", '"Anonymous" <sip:anonymous@anonymous.invalid>;tag=1'))
        headers = dict(build_canonical(m, self.ctx).headers())
        self.assertEqual(headers["P-Asserted-Identity"], ANONYMOUS_PAI)
        self.assertEqual(headers["Privacy"], "id")
        self.assertNotIn("X-SBC-Caller", headers)
        call = build_canonical(m, self.ctx)
        call.caller = "+15550001111"  # a plugin cannot leak it back while privacy holds
        self.assertNotIn("X-SBC-Caller", dict(call.headers()))
        self.assertEqual(dict(call.headers())["P-Asserted-Identity"], ANONYMOUS_PAI)

    def test_non_number_callee_and_caller(self) -> None:
        m = req("sip:support@sbc", ("From", '"Q\\"uote" <sip:alice@pbx>;tag=1'))
        headers = dict(build_canonical(m, self.ctx).headers())
        self.assertEqual(headers["X-SBC-Callee"], "support")
        self.assertEqual(headers["P-Asserted-Identity"], '"Q\\"uote" <sip:alice@sbc.example.com>')

    def test_callee_from_to_when_uri_has_no_user(self) -> None:
        m = req("sip:sbc.example.com", ("To", "<sip:+15551239999@sbc>"))
        self.assertEqual(build_canonical(m, self.ctx).callee, "+15551239999")

    def test_binary_uui(self) -> None:
        m = req("sip:x@y", ("User-to-User", "00ff;encoding=hex"))
        headers = dict(build_canonical(m, self.ctx).headers())
        self.assertEqual(headers["X-SBC-UUI-Hex"], "00ff")
        self.assertNotIn("X-SBC-UUI", headers)

    def test_pass_through_rules(self) -> None:
        call = CanonicalCall("t", "v", "c")
        call.pass_through("X-SBC-Trunk", "spoof")
        call.pass_through("Privacy", "none")
        call.pass_through("X-Ok", "1")
        call.pass_through("X-Ok", "1")
        call.pass_through("X-Bad", "a\x01b")
        call.pass_through("Bad Name", "x")
        self.assertEqual(call.extra, [("X-Ok", "1")])
        for i in range(100):
            call.pass_through(f"X-N{i}", "v")
        self.assertEqual(len(call.extra), 32)

    def test_unsafe_values_dropped(self) -> None:
        call = CanonicalCall("t", "v", "c\r\nX: y", "sbc")
        call.vendor_call_id = "a\nb"
        call.caller_name = "x\x00"
        call.caller = "+15550001111"
        headers = dict(call.headers())
        self.assertNotIn("X-SBC-Original-Call-ID", headers)
        self.assertNotIn("X-SBC-Vendor-Call-ID", headers)
        self.assertEqual(headers["P-Asserted-Identity"], "<sip:+15550001111@sbc;user=phone>")

    def test_copy(self) -> None:
        call = build_canonical(req(), self.ctx)
        other = call.copy()
        other.extra.append(("X-A", "1"))
        other.caller = "x"
        self.assertEqual(call.extra, [])
        self.assertEqual(call.caller, "+15557654321")


_HEADER_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=60)
_SIPISH = st.sampled_from(['"Bob" <sip:+15550001111@c>', "<tel:+15550001111>", "<sip:anonymous@anonymous.invalid>",
                           "sip:7168712781@c;user=phone", '<sip:%2B1555@c>;privacy=full', "<sips:a@b>;index=1.1",
                           "<sip:+1@c;cause=302>;index=1.2", "", "<", '"', "<sip:a@b>, <sip:c@d>"])


class CanonicalPropertyTests(SynchronousTestCase):
    @given(st.dictionaries(st.sampled_from(["From", "P-Asserted-Identity", "Remote-Party-ID", "Diversion",
                                            "History-Info", "User-to-User", "Privacy", "To", "Call-ID"]),
                           st.one_of(_SIPISH, _HEADER_TEXT)),
           st.one_of(st.sampled_from(["sip:+15551230000@sbc", "tel:+15551230000", "sips:%2B1555@x", "sip:x"]),
                     _HEADER_TEXT),
           st.sampled_from([None, "1", "44"]))
    def test_any_headers_give_a_safe_header_list(self, headers: dict[str, str], uri: str, cc: str | None) -> None:
        message = SipMessage(method="INVITE", uri=uri, headers=list(headers.items()))
        ctx = QuirkContext("t", "v", "sbc.example.com", options={} if cc is None else {"country_code": cc})
        call = build_canonical(message, ctx)
        out = call.headers()
        self.assertEqual(out[:2], (("X-SBC-Trunk", "t"), ("X-SBC-Vendor", "v")))
        names = [n for n, _ in out]
        self.assertIn("Privacy", names)
        for name, value in out:
            self.assertRegex(value, r"\A[^\x00-\x1f\x7f]*\Z", name)
        if call.privacy:
            self.assertNotIn("X-SBC-Caller", names)
            self.assertEqual(dict(out)["P-Asserted-Identity"], ANONYMOUS_PAI)
