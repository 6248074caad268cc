# -*- test-case-name: tests.test_quirks_chain -*-
"""QuirkChain: hooks run in order on copies; a failing hook leaves the message unmodified."""

from __future__ import annotations

from types import SimpleNamespace

from twisted.trial.unittest import SynchronousTestCase

from sbc.quirks import CanonicalCall, QuirkBase, QuirkContext, SipMessage, VendorDefaults
from sbc.quirks.chain import QuirkChain, QuirkNotice, UnknownVendor, build_chains, recognised_by
from sbc.sip.message import Request, Response, parse_message

from .test_quirks_interface import invite


class Tagger(QuirkBase):
    """Appends its name to X-Trail in every hook."""

    def __init__(self, name: str, order: int = 100) -> None:
        self.name = name
        self.order = order

    def _tag(self, message: SipMessage) -> None:
        trail = message.get("X-Trail")
        message.set("X-Trail", f"{trail},{self.name}" if trail else self.name)

    def request_from_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        self._tag(message)

    def request_to_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        self._tag(message)
        message.set("X-Direction", ctx.direction)

    def response_from_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        self._tag(message)

    def response_to_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        self._tag(message)

    def sdp_from_pbx(self, sdp: bytes, ctx: QuirkContext) -> bytes:
        return sdp + f"a=from-{self.name}\r\n".encode()

    def sdp_to_pbx(self, sdp: bytes, ctx: QuirkContext) -> bytes:
        return sdp + f"a=to-{self.name}\r\n".encode()


class Broken(QuirkBase):
    """Changes the message, then raises: the change must not stick."""

    name = "broken"

    def request_from_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        message.set("X-Broken", "1")
        message.remove("To")
        raise RuntimeError("plugin bug")

    def response_to_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        message.status = 42  # cannot be a SIP response

    def canonical(self, call: CanonicalCall, message: SipMessage, ctx: QuirkContext) -> None:
        call.callee = "+19999999999"
        raise KeyError("x")

    def sdp_from_pbx(self, sdp: bytes, ctx: QuirkContext) -> bytes:
        return "not bytes"  # type: ignore[return-value]

    def recognise(self, message: SipMessage) -> bool:
        raise ValueError("boom")


class Vendor(QuirkBase):
    name = "acme"
    defaults = VendorDefaults(call_id_headers=("X-Acme-Id",), pass_x_headers=("X-Acme-*",))

    def canonical(self, call: CanonicalCall, message: SipMessage, ctx: QuirkContext) -> None:
        super().canonical(call, message, ctx)
        if call.callee and call.callee.startswith("9"):
            call.callee = "+1" + call.callee[1:]


def chain(*quirks: QuirkBase, **kw: object) -> QuirkChain:
    return QuirkChain(list(quirks), trunk="t1", sbc_fqdn="sbc.example.com", **kw)  # type: ignore[arg-type]


class ChainTests(SynchronousTestCase):
    def test_order_then_name(self) -> None:
        c = chain(Tagger("b"), Tagger("a"), Tagger("z", order=1))
        out = c.request_from_pbx(invite())
        self.assertEqual(out.get("X-Trail"), b"z,a,b")
        self.assertEqual(c.vendor, "b")  # the first given, whatever the order
        self.assertEqual(c.notices(), [])

    def test_no_op_chain_returns_the_same_message(self) -> None:
        msg = invite()
        c = chain(QuirkBase())
        self.assertIs(c.request_from_pbx(msg), msg)
        self.assertIs(c.request_to_pbx(msg), msg)
        resp = Response(200, "OK")
        self.assertIs(c.response_to_pbx(resp), resp)
        self.assertIs(chain().request_from_pbx(msg), msg)

    def test_failing_hook_leaves_message_unmodified(self) -> None:
        c = chain(Tagger("a"), Broken(), Tagger("c"))
        msg = invite()
        out = c.request_from_pbx(msg)
        self.assertEqual(out.get("X-Trail"), b"a,c")
        self.assertIsNone(out.get("X-Broken"))
        self.assertEqual(out.get("To"), msg.get("To"))
        notices = c.notices()
        self.assertEqual(notices[0], QuirkNotice("t1", "broken", "request_from_pbx", "RuntimeError: plugin bug",
                                                 ""))
        self.assertEqual(notices[1].hook, "sdp_from_pbx")
        self.assertIn("not bytes", notices[1].error)
        self.assertEqual(c.notices(), [])  # drained

    def test_only_the_failing_hook_is_dropped(self) -> None:
        msg = Broken()
        c = chain(msg)
        resp = Response(180, "Ringing", (), b"")
        self.assertIs(c.response_to_pbx(resp), resp)
        self.assertEqual([n.hook for n in c.notices()], ["response_to_pbx"])

    def test_protected_headers(self) -> None:
        class Meddler(QuirkBase):
            name = "meddler"

            def request_to_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
                message.set("X-Ok", "1")
                message.set(ctx.option("header"), "changed")

        for header in ("Via", "From", "To", "Call-ID", "CSeq", "v", "i"):
            c = chain(Meddler(), options={"header": header})
            msg = invite()
            self.assertIs(c.request_to_pbx(msg), msg, header)
            [notice] = c.notices()
            self.assertIn("may not change", notice.error)
        c = chain(Meddler(), options={"header": "Contact"})
        out = c.request_to_pbx(invite())
        self.assertEqual((out.get("Contact"), out.get("X-Ok")), (b"changed", b"1"))
        self.assertEqual(c.notices(), [])

    def test_sdp_hooks_only_on_sdp(self) -> None:
        c = chain(Tagger("a"))
        out = c.request_from_pbx(invite())
        self.assertEqual(out.body, b"v=0\na=from-a\r\n")
        self.assertEqual(parse_message(out.to_bytes()).body, out.body)
        out = c.request_to_pbx(invite())
        self.assertEqual(out.body, b"v=0\na=to-a\r\n")
        plain = invite().with_body(b"hello", "text/plain")
        self.assertEqual(c.request_from_pbx(plain).body, b"hello")
        empty = invite().with_body(b"")
        self.assertEqual(c.request_from_pbx(empty).body, b"")

    def test_context(self) -> None:
        c = chain(Tagger("a"), options={"country_code": "1"})
        ctx = c.context("outbound", "cid")
        self.assertEqual((ctx.trunk, ctx.vendor, ctx.sbc_fqdn, ctx.direction, ctx.call_id),
                         ("t1", "a", "sbc.example.com", "outbound", "cid"))
        self.assertEqual(ctx.option("country_code"), "1")
        out = c.request_to_pbx(invite(), ctx)
        self.assertEqual(out.get("X-Direction"), b"outbound")

    def test_canonical(self) -> None:
        c = chain(Vendor(), Broken(), options={"country_code": "1"}, vendor="acme")
        msg = invite().with_uri("sip:97168712781@sbc").append_header("X-Acme-Id", "A-1")
        msg = msg.append_header("X-Acme-Region", "eu").append_header("X-SBC-Trunk", "spoofed")
        call = c.canonical(msg)
        self.assertEqual(call.callee, "+17168712781")
        self.assertEqual(call.vendor_call_id, "A-1")
        self.assertEqual(call.extra, [("X-Acme-Id", "A-1"), ("X-Acme-Region", "eu")])
        self.assertEqual(call.original_call_id, "c1@pbx")
        self.assertEqual(dict(call.headers())["X-SBC-Trunk"], "t1")
        self.assertEqual(dict(call.headers())["X-SBC-Vendor"], "acme")
        notices = c.notices()
        self.assertEqual([(n.quirk, n.hook, n.call_id) for n in notices], [("broken", "canonical", "c1@pbx")])

    def test_recognise(self) -> None:
        msg = invite().append_header("X-Acme-Id", "1")
        self.assertTrue(chain(Vendor()).recognise(msg))
        self.assertFalse(chain(Vendor()).recognise(invite()))
        broken = chain(Broken())
        self.assertFalse(broken.recognise(msg))
        self.assertEqual([n.hook for n in broken.notices()], ["recognise"])
        self.assertFalse(chain().recognise(msg))
        self.assertEqual(recognised_by([Vendor(), Broken(), Tagger("x")], msg), ["acme"])

    def test_notices_are_bounded(self) -> None:
        c = chain(Broken(), max_notices=3)
        for _ in range(10):
            c.request_from_pbx(invite())
        self.assertEqual(len(c.notices()), 3)

    def test_build_chains(self) -> None:
        registry = {"acme": Vendor(), "generic": QuirkBase(), "extra": Tagger("extra")}
        trunks = [SimpleNamespace(name="a", vendor="acme", vendor_options={"country_code": "44"}),
                  SimpleNamespace(name="b", vendor="generic", quirks=("extra",))]
        chains = build_chains(trunks, registry, "sbc.example.com")
        self.assertEqual(sorted(chains), ["a", "b"])
        self.assertEqual(chains["a"].vendor, "acme")
        self.assertEqual(chains["a"].options, {"country_code": "44"})
        self.assertEqual([q.name for q in chains["b"].quirks], ["base", "extra"])
        self.assertEqual(chains["b"].vendor, "generic")
        with self.assertRaises(UnknownVendor) as e:
            build_chains([SimpleNamespace(name="c", vendor="nope")], registry, "sbc")
        self.assertIn("trunk 'c'", str(e.exception))
        self.assertIn("'nope'", str(e.exception))
        self.assertIn("acme, extra, generic", str(e.exception))

    def test_request_type_preserved(self) -> None:
        out = chain(Tagger("a")).request_to_pbx(invite())
        self.assertIsInstance(out, Request)
        resp = chain(Tagger("a")).response_from_pbx(Response(200, "OK"))
        self.assertIsInstance(resp, Response)
        self.assertEqual(resp.get("X-Trail"), b"a")
