# -*- test-case-name: tests.test_quirks_b2bua -*-
"""Vendor quirks in the B2BUA: the canonical INVITE toward the agent host, the hooks on the
PBX-facing leg in both directions, and failing plugins that do not break calls."""

from __future__ import annotations

import binascii

from twisted.trial.unittest import SynchronousTestCase

from sbc.quirks import CanonicalCall, QuirkBase, QuirkContext, SipMessage, VendorDefaults
from sbc.quirks.chain import QuirkChain
from sbc.sip.message import Request, Response

from .test_b2bua import only
from .test_b2bua_harness import SDP_A, SDP_B, TRUNK, AgentDialog, Net, PbxDialog, invite, reply
from .test_b2bua_outbound import AGENTS, DIAL_TRUNK, agent_invite


class Recorder(QuirkBase):
    """A vendor whose hooks mark what they saw."""

    name = "acme"
    title = "Acme"
    defaults = VendorDefaults(call_id_headers=("X-Acme-Call",), pass_x_headers=("X-Acme-Queue",))

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def _what(self, message: SipMessage) -> str:
        return message.method or str(message.status)

    def request_from_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        self.seen.append(("request_from_pbx", self._what(message)))
        message.remove("X-Acme-Secret")
        if message.uri and "sip:ext-" in message.uri:
            message.uri = message.uri.replace("sip:ext-", "sip:+4930", 1)

    def request_to_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        self.seen.append(("request_to_pbx", self._what(message)))
        message.set("X-Acme-Sbc", f"{ctx.sbc_fqdn}/{ctx.direction}")

    def response_from_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        self.seen.append(("response_from_pbx", self._what(message)))

    def response_to_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        self.seen.append(("response_to_pbx", self._what(message)))
        message.set("X-Acme-Sbc", ctx.sbc_fqdn)

    def canonical(self, call: CanonicalCall, message: SipMessage, ctx: QuirkContext) -> None:
        super().canonical(call, message, ctx)
        call.pass_through("X-Acme-Extra", "from-plugin")


class Exploding(QuirkBase):
    name = "boom"

    def request_from_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        message.set("X-Half-Done", "1")
        raise RuntimeError("kaboom")

    def request_to_pbx(self, message: SipMessage, ctx: QuirkContext) -> None:
        raise RuntimeError("kaboom out")

    def canonical(self, call: CanonicalCall, message: SipMessage, ctx: QuirkContext) -> None:
        raise RuntimeError("kaboom canonical")


def net_with(quirk: QuirkBase | None, trunks: list | None = None, **kwargs) -> Net:
    trunks = trunks or [TRUNK]
    chains = {} if quirk is None else {
        t.name: QuirkChain([quirk], trunk=t.name, sbc_fqdn="sbc.example.com", options={"country_code": "49"})
        for t in trunks}
    return Net(trunks=trunks, quirks=chains, **kwargs)


class CanonicalInviteTests(SynchronousTestCase):
    def start(self, net: Net, a_inv: Request) -> Request:
        net.from_pbx(a_inv)
        self.assertEqual(only(self, net.pbx_take(), Response).status, 100)
        b_inv = only(self, net.agent_take())
        assert isinstance(b_inv, Request)
        return b_inv

    def test_generic_behaviour_with_an_empty_mapping(self) -> None:
        net = net_with(None)
        uui = binascii.hexlify(b"case=7").decode()
        b_inv = self.start(net, invite(user="+4930123456", extra=(
            "P-Asserted-Identity: \"Alice A\" <sip:+49301111@10.0.0.5>\r\n"
            f"User-to-User: {uui};encoding=hex\r\n"
            "Diversion: <sip:+49302222@10.0.0.5>;reason=no-answer\r\n"
            "X-SBC-Trunk: spoofed\r\nX-Case: 42\r\n")))
        self.assertEqual(b_inv.uri, b"sip:+4930123456@127.0.0.1:5090")
        self.assertEqual(b_inv.to.uri.user, "+4930123456")
        self.assertEqual(b_inv.get_all("X-SBC-Trunk"), [b"pbx"])
        self.assertEqual(b_inv.get("X-SBC-Vendor"), b"generic")
        self.assertEqual(b_inv.get("X-SBC-Original-Call-ID"), b"pbx-call-1@10.0.0.5")
        self.assertEqual(b_inv.get("X-SBC-Callee"), b"+4930123456")
        self.assertEqual(b_inv.get("X-SBC-Caller"), b"+49301111")
        self.assertEqual(b_inv.get_all("P-Asserted-Identity"),
                         [b'"Alice A" <sip:+49301111@sbc.example.com;user=phone>'])
        self.assertEqual(b_inv.get_all("Privacy"), [b"none"])
        self.assertEqual(b_inv.get("X-SBC-Redirecting"), b"+49302222")
        self.assertEqual(b_inv.get("X-SBC-UUI"), b"case=7")
        # the allowlist still copies what it copied (raw UUI, Diversion, X- headers)
        self.assertEqual(b_inv.get("User-to-User"), f"{uui};encoding=hex".encode())
        self.assertEqual(b_inv.get("X-Case"), b"42")
        self.assertEqual((b_inv.from_.uri.user, b_inv.from_.display), ("+49301111", "Alice A"))
        call = next(iter(net.b2b.calls.values()))
        self.assertEqual(call.canonical_headers[0], ("X-SBC-Trunk", "pbx"))
        self.assertIn(("X-SBC-Callee", "+4930123456"), call.canonical_headers)
        # canonical headers come first, in the contract's order
        names = [h.name for h in b_inv.headers]
        self.assertLess(names.index("X-SBC-Trunk"), names.index("P-Asserted-Identity"))
        self.assertLess(names.index("Privacy"), names.index("X-Case"))

    def test_national_number_with_country_option(self) -> None:
        net = net_with(Recorder())
        b_inv = self.start(net, invite(user="030123456"))
        self.assertEqual(b_inv.uri, b"sip:+4930123456@127.0.0.1:5090")
        self.assertEqual(b_inv.to.uri.user, "+4930123456")
        self.assertEqual(b_inv.get("X-SBC-Vendor"), b"acme")

    def test_plugin_rewrites_the_request_uri(self) -> None:
        net = net_with(Recorder())
        b_inv = self.start(net, invite(user="ext-5551"))
        self.assertEqual(b_inv.uri, b"sip:+49305551@127.0.0.1:5090")
        self.assertEqual(b_inv.get("X-SBC-Callee"), b"+49305551")

    def test_anonymous_caller_stays_anonymous(self) -> None:
        net = net_with(None)
        b_inv = self.start(net, invite(user="+4930123456", extra=(
            "P-Asserted-Identity: <sip:+49301111@10.0.0.5>\r\nPrivacy: id\r\n")))
        head = b_inv.to_bytes().split(b"\r\n\r\n")[0]
        self.assertNotIn(b"49301111", head)
        self.assertNotIn(b"Alice", head)
        self.assertEqual(b_inv.get("P-Asserted-Identity"), b"<sip:anonymous@anonymous.invalid>")
        self.assertEqual(b_inv.get_all("Privacy"), [b"id"])
        self.assertEqual(b_inv.from_.uri.user, "anonymous")

    def test_vendor_hooks_and_pass_through(self) -> None:
        quirk = Recorder()
        net = net_with(quirk)
        b_inv = self.start(net, invite(user="+4930123456", extra=(
            "X-Acme-Call: AC-1\r\nX-Acme-Queue: sales\r\nX-Acme-Secret: s3cret\r\n")))
        self.assertEqual(b_inv.get("X-SBC-Vendor-Call-ID"), b"AC-1")
        self.assertEqual(b_inv.get_all("X-Acme-Queue"), [b"sales"])  # passed once, not copied twice
        self.assertEqual(b_inv.get("X-Acme-Extra"), b"from-plugin")
        self.assertIsNone(b_inv.get("X-Acme-Secret"))  # removed by request_from_pbx
        self.assertIsNone(b_inv.get("X-Acme-Sbc"))  # toward the agent host: no to_pbx hook
        self.assertEqual(quirk.seen, [("request_from_pbx", "INVITE"), ("response_to_pbx", "100")])

    def test_without_quirks_nothing_changes(self) -> None:
        net = Net()
        b_inv = self.start(net, invite(extra="X-SBC-Trunk: spoofed\r\nPrivacy: id\r\n"))
        self.assertEqual(b_inv.get("X-SBC-Trunk"), b"spoofed")  # legacy: no canonicalisation
        self.assertEqual(b_inv.get("Privacy"), b"id")
        self.assertEqual(next(iter(net.b2b.calls.values())).canonical_headers, ())

    def test_failing_plugin_does_not_break_the_call(self) -> None:
        net = net_with(Exploding())
        b_inv = self.start(net, invite(user="+4930123456"))
        self.assertIsNone(b_inv.get("X-Half-Done"))
        self.assertEqual(b_inv.get("X-SBC-Callee"), b"+4930123456")
        notices = [n for n in net.b2b.notices() if n.reason == "quirk-error"]
        self.assertEqual(len(notices), 2)
        self.assertIn("boom failed in request_from_pbx", notices[0].detail)
        self.assertIn("kaboom", notices[0].detail)
        self.assertEqual(notices[0].call_id, "pbx-call-1@10.0.0.5")
        self.assertIn("canonical", notices[1].detail)
        # toward the PBX: the 180 is a response; the raising request hook is not involved
        net.from_agent(reply(b_inv, 180))
        self.assertEqual(only(self, net.pbx_take(), Response).status, 180)


class TowardPbxTests(SynchronousTestCase):
    def test_inbound_call_hooks_on_the_pbx_leg(self) -> None:
        quirk = Recorder()
        net = net_with(quirk)
        a_inv = invite()
        net.from_pbx(a_inv)
        trying = only(self, net.pbx_take(), Response)
        b_inv = only(self, net.agent_take())
        net.from_agent(reply(b_inv, 180))
        ringing = only(self, net.pbx_take(), Response)
        self.assertEqual(ringing.get("X-Acme-Sbc"), b"sbc.example.com")
        net.from_agent(reply(b_inv, 200, body=SDP_B))
        ok = only(self, net.pbx_take(), Response)
        self.assertEqual((ok.status, ok.get("X-Acme-Sbc")), (200, b"sbc.example.com"))
        pbx = PbxDialog(a_inv, ok)
        net.from_pbx(pbx.ack(a_inv))
        self.assertEqual(only(self, net.agent_take()).method, "ACK")
        # the agent host hangs up: the BYE toward the PBX goes through request_to_pbx
        agent = AgentDialog(b_inv)
        net.from_agent(agent.request("BYE"))
        bye = only(self, net.pbx_take())
        self.assertEqual((bye.method, bye.get("X-Acme-Sbc")), ("BYE", b"sbc.example.com/inbound"))
        net.from_pbx(reply(bye, 200, tag=None))
        self.assertEqual(only(self, net.agent_take(), Response).status, 200)
        self.assertIn(("request_to_pbx", "BYE"), quirk.seen)
        self.assertIn(("response_from_pbx", "200"), quirk.seen)
        self.assertIn(("response_to_pbx", "180"), quirk.seen)
        self.assertNotIn(("request_to_pbx", "INVITE"), quirk.seen)  # the B leg INVITE goes to the agent
        self.assertEqual((trying.status, trying.get("X-Acme-Sbc")), (100, b"sbc.example.com"))

    def test_in_dialog_request_from_pbx(self) -> None:
        quirk = Recorder()
        net = net_with(quirk)
        a_inv = invite()
        net.from_pbx(a_inv)
        net.pbx_take()
        b_inv = only(self, net.agent_take())
        net.from_agent(reply(b_inv, 200, body=SDP_B))
        ok = only(self, net.pbx_take(), Response)
        pbx = PbxDialog(a_inv, ok)
        net.from_pbx(pbx.ack(a_inv))
        net.agent_take()
        net.from_pbx(pbx.request("BYE"))
        self.assertEqual(only(self, net.agent_take()).method, "BYE")
        self.assertIn(("request_from_pbx", "BYE"), quirk.seen)

    def test_outbound_call_invite_toward_pbx(self) -> None:
        quirk = Recorder()
        net = net_with(quirk, trunks=[DIAL_TRUNK], agent_allow=AGENTS)
        a_inv = agent_invite("+4930123")
        net.from_agent(a_inv)
        self.assertEqual(only(self, net.agent_take(), Response).status, 100)
        b_inv = only(self, net.pbx_take())
        self.assertEqual((b_inv.method, b_inv.get("X-Acme-Sbc")), ("INVITE", b"sbc.example.com/outbound"))
        self.assertIsNone(b_inv.get("X-SBC-Trunk"))  # the canonical form is for the agent host only
        net.from_pbx(reply(b_inv, 180, tag="pbxt", contact=b"<sip:gw@10.0.0.5:5060>"))
        self.assertEqual(only(self, net.agent_take(), Response).status, 180)
        self.assertIn(("response_from_pbx", "180"), quirk.seen)
        self.assertNotIn(("request_from_pbx", "INVITE"), quirk.seen)  # the agent's INVITE is not the PBX's

    def test_failing_request_hook_sends_the_message_unmodified(self) -> None:
        net = net_with(Exploding(), trunks=[DIAL_TRUNK], agent_allow=AGENTS)
        net.from_agent(agent_invite("+4930123"))
        net.agent_take()
        b_inv = only(self, net.pbx_take())
        self.assertEqual(b_inv.method, "INVITE")
        self.assertEqual(b_inv.body, SDP_B)
        details = [n.detail for n in net.b2b.notices() if n.reason == "quirk-error"]
        self.assertEqual(len(details), 1)
        self.assertIn("request_to_pbx", details[0])


class RecordRouter(Recorder):
    name = "rr"
    defaults = VendorDefaults(record_route=True)


class RecordRouteTests(SynchronousTestCase):
    def test_inbound_call_responses_carry_our_record_route(self) -> None:
        net = net_with(RecordRouter())
        a_inv = invite()
        net.from_pbx(a_inv)
        self.assertEqual(only(self, net.pbx_take(), Response).get_all("Record-Route"), [])  # not on 100
        b_inv = only(self, net.agent_take())
        self.assertEqual(b_inv.get_all("Record-Route"), [])  # never toward the agent host
        net.from_agent(reply(b_inv, 180))
        ringing = only(self, net.pbx_take(), Response)
        self.assertEqual(ringing.get_all("Record-Route"),
                         [b"<sip:sbc.example.com:5060;lr>", b"<sip:10.0.0.99;lr>"])
        net.from_agent(reply(b_inv, 200, body=SDP_B))
        ok = only(self, net.pbx_take(), Response)
        self.assertEqual(ok.get_all("Record-Route")[0], b"<sip:sbc.example.com:5060;lr>")
        pbx = PbxDialog(a_inv, ok)
        net.from_pbx(pbx.ack(a_inv))
        self.assertEqual(only(self, net.agent_take()).method, "ACK")
        # the PBX's in-dialog request, routed through our entry, still reaches the call
        net.from_pbx(pbx.request("BYE"))
        self.assertEqual(only(self, net.agent_take()).method, "BYE")
        bye_ok = [m for m in net.pbx_take() if isinstance(m, Response)]
        self.assertTrue(bye_ok)
        self.assertEqual([r.get_all("Record-Route") for r in bye_ok], [[]] * len(bye_ok))  # initial INVITE only

    def test_outbound_invite_carries_our_record_route(self) -> None:
        net = net_with(RecordRouter(), trunks=[DIAL_TRUNK], agent_allow=AGENTS)
        net.from_agent(agent_invite("+4930123"))
        net.agent_take()
        b_inv = only(self, net.pbx_take())
        self.assertEqual(b_inv.get_all("Record-Route"), [b"<sip:sbc.example.com:5060;lr>"])

    def test_not_with_an_ip_fqdn_or_without_the_default(self) -> None:
        net = net_with(Recorder())
        net.from_pbx(invite())
        net.pbx_take()
        net.from_agent(reply(only(self, net.agent_take()), 180))
        self.assertEqual(only(self, net.pbx_take(), Response).get_all("Record-Route"), [b"<sip:10.0.0.99;lr>"])
        chains = {"pbx": QuirkChain([RecordRouter()], trunk="pbx", sbc_fqdn="192.0.2.10")}
        ip_net = Net(quirks=chains)
        ip_net.b2b.fqdn = "192.0.2.10"
        ip_net.from_pbx(invite())
        ip_net.pbx_take()
        ip_net.from_agent(reply(only(self, ip_net.agent_take()), 180))
        self.assertEqual(only(self, ip_net.pbx_take(), Response).get_all("Record-Route"), [b"<sip:10.0.0.99;lr>"])


class StartupWarningTests(SynchronousTestCase):
    def test_warnings(self) -> None:
        from sbc.quirks.host import startup_warnings

        class Tls(QuirkBase):
            name = "tlsy"
            title = "TLS Vendor"
            defaults = VendorDefaults(transport="tls", fqdn_contact=True)

        chains = {"a": QuirkChain([Tls()], trunk="a", sbc_fqdn="x"), "b": QuirkChain([], trunk="b", sbc_fqdn="x"),
                  "c": QuirkChain([QuirkBase()], trunk="c", sbc_fqdn="x")}
        warnings = startup_warnings(chains, fqdn="192.0.2.10", transports=("udp", "TCP"))
        self.assertEqual(warnings, [
            "trunk a: TLS Vendor needs the SBC's DNS name in Contact/Record-Route, but [sbc] fqdn is '192.0.2.10'",
            "trunk a: TLS Vendor uses TLS, and no tls listener is configured",
        ])
        self.assertEqual(startup_warnings(chains, fqdn="sbc.example.com", transports=("udp", "tls")), [])


class CallStartedTests(SynchronousTestCase):
    def started(self, net: Net, extra: str, user: str = "+4930123456"):
        from sbc.events.schema import CallStarted

        net.from_pbx(invite(user=user, extra=extra))
        events = [e for e in net.b2b.agent_events() if isinstance(e, CallStarted)]
        self.assertEqual(len(events), 1)
        return events[0]

    def test_event_carries_the_canonical_form(self) -> None:
        event = self.started(net_with(None), "P-Asserted-Identity: <sip:+49301111@10.0.0.5>\r\n")
        self.assertEqual((event.caller, event.callee), ("+49301111", "+4930123456"))
        headers = dict(event.headers)
        self.assertEqual(headers["X-SBC-Trunk"], "pbx")
        self.assertEqual(headers["X-SBC-Caller"], "+49301111")

    def test_anonymous_caller_stays_anonymous_in_the_event(self) -> None:
        event = self.started(net_with(None), "P-Asserted-Identity: <sip:+49301111@10.0.0.5>\r\nPrivacy: id\r\n")
        self.assertEqual(event.caller, "")
        self.assertNotIn("49301111", repr(event))
