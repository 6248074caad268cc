# -*- test-case-name: tests.test_b2bua_outbound -*-
"""Calls from the agent host toward a trunk (outbound dialling) through the B2BUA."""

from __future__ import annotations

import re
from ipaddress import ip_network

import attrs
from twisted.trial.unittest import SynchronousTestCase

from sbc.cdr import cdr_record
from sbc.sip.message import Request, Response, parse_message

from .test_b2bua import CallTestCase, only
from .test_b2bua_harness import SDP_A, SDP_B, TRUNK, AgentDialog, Net, PbxDialog, branch, reply

AGENTS = (ip_network("127.0.0.0/8"),)
DIAL_TRUNK = attrs.evolve(TRUNK, peer_uri="sip:{user}@10.0.0.5:5060", dial=(re.compile(r"\+49[0-9]+"),))


def agent_invite(user: str = "+4930123", *, body: bytes = SDP_B, call_id: str = "agent-call-1@127.0.0.1",
                 extra: str = "") -> Request:
    ctype = "Content-Type: application/sdp\r\n" if body else ""
    data = (
        f"INVITE sip:{user}@192.0.2.10 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5090;branch={branch()}\r\n"
        "Max-Forwards: 70\r\n"
        "From: \"Agent\" <sip:bot7@127.0.0.1>;tag=agt1\r\n"
        f"To: <sip:{user}@192.0.2.10>\r\n"
        f"Call-ID: {call_id}\r\n"
        "CSeq: 1 INVITE\r\n"
        "Contact: <sip:bot7@127.0.0.1:5090>\r\n"
        "P-Asserted-Identity: <sip:+4930999@agent.example.com>\r\n"
        "P-Internal: agent-secret\r\n"
        f"{extra}{ctype}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


class OutboundTests(CallTestCase):
    def setUp(self) -> None:
        self.net = Net(trunks=[DIAL_TRUNK], agent_allow=AGENTS)

    def dial(self, user: str = "+4930123", **kwargs) -> tuple[Request, Request]:
        a_inv = agent_invite(user, **kwargs)
        self.net.from_agent(a_inv)
        self.assertEqual(only(self, self.net.agent_take(), Response).status, 100)
        b_inv = only(self, self.net.pbx_take())
        return a_inv, b_inv

    def test_outbound_call_end_to_end(self) -> None:
        a_inv, b_inv = self.dial()
        # toward the trunk's peer_uri, with the dialled user; topology of the agent host hidden
        self.assertEqual(b_inv.method, "INVITE")
        self.assertEqual(b_inv.uri, b"sip:+4930123@10.0.0.5:5060")
        self.assertNotEqual(b_inv.call_id, a_inv.call_id)
        self.assertEqual(len(b_inv.vias), 1)
        self.assertEqual(b_inv.top_via.host, "192.0.2.10")
        head = b_inv.to_bytes().split(b"\r\n\r\n")[0]
        self.assertNotIn(b"127.0.0.1", head)
        self.assertNotIn(b"agt1", head)
        self.assertNotIn(b"P-Internal", head)
        self.assertEqual(b_inv.get("P-Asserted-Identity"), b"<sip:+4930999@agent.example.com>")
        self.assertEqual(b_inv.from_.uri.user, "bot7")
        self.assertEqual(b_inv.from_.uri.host, "sbc.example.com")
        self.assertEqual(b_inv.contacts[0].uri.host, "sbc.example.com")
        self.assertEqual(b_inv.body, SDP_B)
        self.assertEqual(b_inv.max_forwards, 69)
        # the PBX rings and answers
        self.net.from_pbx(reply(b_inv, 180, tag="pbxt", contact=b"<sip:gw@10.0.0.5:5060>"))
        ring = only(self, self.net.agent_take(), Response)
        self.assertEqual(ring.status, 180)
        b_ok = reply(b_inv, 200, tag="pbxt", body=SDP_A, contact=b"<sip:gw@10.0.0.5:5060>")
        self.net.from_pbx(b_ok)
        a_ok = only(self, self.net.agent_take(), Response)
        self.assertEqual((a_ok.status, a_ok.body, a_ok.call_id), (200, SDP_A, a_inv.call_id))
        self.assertEqual(a_ok.contacts[0].uri.host, "192.0.2.10")  # toward the agent: our address
        self.assertNotIn(b"10.0.0.5", a_ok.to_bytes().replace(SDP_A, b""))
        self.assertNotIn(b"pbxt", a_ok.to_bytes())
        self.assertEqual(self.net.pbx_take(), [])  # the PBX's ACK waits for the agent's
        agent = PbxDialog(a_inv, a_ok)  # the agent is the UAC of this call
        self.net.from_agent(agent.ack(a_inv))
        b_ack = only(self, self.net.pbx_take())
        self.assertEqual((b_ack.method, b_ack.to.tag), ("ACK", "pbxt"))
        call = next(iter(self.net.b2b.calls.values()))
        self.assertEqual((call.direction, call.trunk), ("outbound", "pbx"))
        # BYE from the PBX ends both legs
        pbx = AgentDialog(b_inv, tag="pbxt")
        self.net.from_pbx(pbx.request("BYE"))
        self.assertEqual(only(self, self.net.pbx_take(), Response).status, 200)
        a_bye = only(self, self.net.agent_take())
        self.assertEqual((a_bye.method, a_bye.call_id), ("BYE", a_inv.call_id))
        self.net.from_agent(reply(a_bye, 200))
        ended = self.net.b2b.ended_calls()
        self.assertEqual(ended[0].end_reason, "bye-b")
        record = cdr_record(ended[0])
        self.assertEqual((record["direction"], record["caller"], record["callee"], record["trunk"]),
                         ("outbound", "bot7", "+4930123", "pbx"))
        self.assertIdle()

    def test_pbx_rejects(self) -> None:
        a_inv, b_inv = self.dial()
        self.net.from_pbx(reply(b_inv, 486, tag="pbxt"))
        self.assertEqual(only(self, self.net.agent_take(), Response).status, 486)
        self.assertEqual(only(self, self.net.pbx_take()).method, "ACK")
        self.assertEqual(self.net.b2b.ended_calls()[0].direction, "outbound")
        self.assertIdle()

    def test_no_dial_match_404(self) -> None:
        self.net.from_agent(agent_invite("999"))
        r = only(self, self.net.agent_take(), Response)
        self.assertEqual(r.status, 404)
        self.assertEqual(self.net.pbx_take(), [])
        self.assertIdle()

    def test_first_matching_trunk_and_uri_without_placeholder(self) -> None:
        other = attrs.evolve(TRUNK, name="carrier", allow=(ip_network("10.9.0.0/24"),),
                             peer_uri="sip:10.0.0.5:5060;transport=tcp", dial=(re.compile(r"\+1[0-9]+"),
                                                                               re.compile(r"00[0-9]+")))
        self.net = Net(trunks=[other, DIAL_TRUNK], agent_allow=AGENTS)
        a_inv, b_inv = self.dial("+15550100")
        self.assertEqual(b_inv.uri, b"sip:+15550100@10.0.0.5:5060;transport=tcp")
        self.assertEqual(next(iter(self.net.b2b.calls.values())).trunk, "carrier")
        self.net.from_agent(agent_invite("+4930555", call_id="agent-call-2@127.0.0.1"))
        b2 = [m for m in self.net.pbx_take() if isinstance(m, Request)][0]
        self.assertEqual(b2.uri, b"sip:+4930555@10.0.0.5:5060")
        self.assertEqual(sorted(c.trunk for c in self.net.b2b.calls.values()), ["carrier", "pbx"])

    def test_only_the_agent_host_may_dial(self) -> None:
        self.net = Net(trunks=[DIAL_TRUNK])  # no agent_allow
        self.net.from_agent(agent_invite())
        self.assertEqual(only(self, self.net.agent_take(), Response).status, 403)
        self.assertEqual(self.net.pbx_take(), [])

    def test_limits_apply(self) -> None:
        self.net = Net(trunks=[DIAL_TRUNK], agent_allow=AGENTS, max_calls_per_trunk=1)
        self.dial()
        self.net.from_agent(agent_invite(call_id="agent-call-2@127.0.0.1"))
        r = only(self, self.net.agent_take(), Response)
        self.assertEqual(r.status, 503)
        self.assertTrue(r.has("Retry-After"))
        self.net.b2b.stop_accepting()
        self.net.from_agent(agent_invite(call_id="agent-call-3@127.0.0.1"))
        self.assertEqual(only(self, self.net.agent_take(), Response).status, 503)

    def test_agent_down_does_not_block_outbound(self) -> None:
        self.net.b2b.agent_up = lambda trunk: False
        a_inv, b_inv = self.dial()
        self.assertEqual(b_inv.method, "INVITE")

    def test_cancel_from_agent(self) -> None:
        from sbc.sip.transaction import build_cancel

        a_inv, b_inv = self.dial()
        self.net.from_pbx(reply(b_inv, 180, tag="pbxt"))
        self.net.agent_take()
        self.net.from_agent(build_cancel(a_inv))
        statuses = sorted(m.status for m in self.net.agent_take() if isinstance(m, Response))
        self.assertEqual(statuses, [200, 487])
        b_cancel = only(self, self.net.pbx_take())
        self.assertEqual(b_cancel.method, "CANCEL")
        self.net.from_pbx(reply(b_cancel, 200, tag="pbxt"))
        self.net.from_pbx(reply(b_inv, 487, tag="pbxt"))
        self.assertEqual(self.net.b2b.ended_calls()[0].end_reason, "cancel")

    def test_session_timer_on_both_legs(self) -> None:
        a_inv, b_inv = self.dial(extra="Supported: timer\r\n")
        self.assertIsNotNone(b_inv.get("Session-Expires"))
        self.net.from_pbx(reply(b_inv, 200, tag="pbxt", body=SDP_A))
        a_ok = only(self, self.net.agent_take(), Response)
        self.assertIsNotNone(a_ok.get("Session-Expires"))

    def test_inbound_from_the_pbx_unchanged(self) -> None:
        a_inv, b_inv = self.start()
        self.assertEqual(b_inv.uri, b"sip:agent42@127.0.0.1:5090")
        self.assertEqual(next(iter(self.net.b2b.calls.values())).direction, "inbound")


class OverlapTests(SynchronousTestCase):
    def test_agent_and_pbx_on_one_address(self) -> None:
        """A source both in a trunk's allow and in the agent networks: a dialled number that
        a trunk's ``dial`` matches is outbound, anything else inbound."""
        trunk = attrs.evolve(DIAL_TRUNK, allow=(ip_network("127.0.0.0/8"),),
                             peer_uri="sip:{user}@10.0.0.5:5060")
        net = Net(trunks=[trunk], agent_allow=AGENTS)
        net.from_agent(agent_invite("+4930123"))
        self.assertEqual([c.direction for c in net.b2b.calls.values()], ["outbound"])
        net.from_agent(agent_invite("agent9", call_id="agent-call-2@127.0.0.1"))
        self.assertEqual(sorted(c.direction for c in net.b2b.calls.values()), ["inbound", "outbound"])
