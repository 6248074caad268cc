# -*- test-case-name: tests.test_b2bua -*-
"""B2BUA call flows across both legs, on a fake in-memory network with fake time."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.message import Request, Response

from .b2bua_harness import (
    AGENT,
    SDP_A,
    SDP_B,
    AgentDialog,
    Net,
    PbxDialog,
    ack_2xx,
    invite,
    reply,
)


def only(testcase: SynchronousTestCase, messages: list, kind: type = Request) -> Request | Response:
    testcase.assertEqual(len(messages), 1, messages)
    testcase.assertIsInstance(messages[0], kind)
    return messages[0]


class CallTestCase(SynchronousTestCase):
    """Helpers to bring a call to a given point."""

    def setUp(self) -> None:
        self.net = Net()

    def start(self, body: bytes = SDP_A, **kwargs) -> tuple[Request, Request]:
        """PBX INVITE in; returns (A INVITE, B INVITE) after checking the 100 Trying."""
        a_inv = invite(body=body, **kwargs)
        self.net.from_pbx(a_inv)
        trying = only(self, self.net.pbx_take(), Response)
        self.assertEqual(trying.status, 100)
        b_inv = only(self, self.net.agent_take())
        self.assertEqual(b_inv.method, "INVITE")
        return a_inv, b_inv

    def answer(self, body_a: bytes = SDP_A, body_b: bytes = SDP_B):
        a_inv, b_inv = self.start(body_a)
        self.net.from_agent(reply(b_inv, 180))
        ringing = only(self, self.net.pbx_take(), Response)
        self.assertEqual(ringing.status, 180)
        b_ok = reply(b_inv, 200, body=body_b)
        self.net.from_agent(b_ok)
        a_ok = only(self, self.net.pbx_take(), Response)
        self.assertEqual(a_ok.status, 200)
        self.assertEqual(self.net.agent_take(), [])  # the B leg's ACK waits for the PBX's
        pbx = PbxDialog(a_inv, a_ok)
        self.net.from_pbx(pbx.ack(a_inv))
        b_ack = only(self, self.net.agent_take())
        self.assertEqual(b_ack.method, "ACK")
        return a_inv, b_inv, a_ok, b_ok, pbx, AgentDialog(b_inv)

    def assertIdle(self) -> None:
        self.net.settle()
        self.assertEqual(self.net.b2b.counts(), {"calls": 0, "dialogs": 0, "transactions": 0, "timers": 0,
                                                 "tx_bindings": 0})
        self.assertEqual(len(self.net.b2b), 0)
        self.assertIsNone(self.net.b2b.next_deadline())


class BasicCallTests(CallTestCase):
    def test_invite_200_ack_bye_from_pbx(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        # topology hiding on the B leg
        self.assertNotEqual(b_inv.call_id, a_inv.call_id)
        self.assertNotEqual(b_inv.from_.tag, a_inv.from_.tag)
        self.assertEqual(len(b_inv.vias), 1)
        self.assertEqual(b_inv.top_via.host, "192.0.2.10")
        self.assertFalse(b_inv.has("Record-Route"))
        self.assertFalse(b_inv.has("Route"))
        self.assertNotIn(b"10.0.0.5", b_inv.to_bytes().split(b"\r\n\r\n")[0].replace(b"alice@", b""))
        self.assertEqual(b_inv.contacts[0].uri.host, "192.0.2.10")
        self.assertEqual(b_inv.uri, b"sip:agent42@127.0.0.1:5090")
        self.assertEqual(b_inv.body, SDP_A)
        self.assertEqual(b_inv.get("Content-Type"), b"application/sdp")
        self.assertEqual(b_inv.max_forwards, 69)
        self.assertEqual(b_inv.from_.display, "Alice")
        # the A leg's 2xx: the PBX's Call-ID and tags, our tag and Contact, the agent's SDP
        self.assertEqual(a_ok.call_id, a_inv.call_id)
        self.assertEqual(a_ok.from_.tag, "pbx1")
        self.assertNotEqual(a_ok.to.tag, "ag1")
        self.assertEqual(a_ok.contacts[0].uri.host, "sbc.example.com")
        self.assertEqual(a_ok.body, SDP_B)
        self.assertNotIn(b"127.0.0.1", a_ok.to_bytes().replace(SDP_B, b""))
        self.assertEqual(self.net.b2b.counts()["calls"], 1)
        # BYE from the PBX
        self.net.from_pbx(pbx.request("BYE"))
        ok = only(self, self.net.pbx_take(), Response)
        self.assertEqual((ok.status, ok.cseq.method), (200, "BYE"))
        b_bye = only(self, self.net.agent_take())
        self.assertEqual(b_bye.method, "BYE")
        self.assertEqual(b_bye.call_id, b_inv.call_id)
        self.assertEqual(b_bye.to.tag, "ag1")
        self.assertEqual(b_bye.cseq.seq, 2)
        self.assertEqual(b_bye.uri, b"sip:agent@127.0.0.1:5090")
        self.net.from_agent(reply(b_bye, 200))
        calls = self.net.b2b.ended_calls()
        self.assertEqual(len(calls), 1)
        self.assertEqual(calls[0].end_reason, "bye-a")
        self.assertEqual((calls[0].a_status, calls[0].b_status), (200, 200))
        self.assertIsNotNone(calls[0].answered)
        self.assertIdle()

    def test_bye_from_agent(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        self.net.from_agent(agent.request("BYE"))
        ok = only(self, self.net.agent_take(), Response)
        self.assertEqual(ok.status, 200)
        a_bye = only(self, self.net.pbx_take())
        self.assertEqual(a_bye.method, "BYE")
        self.assertEqual(a_bye.call_id, a_inv.call_id)
        self.assertEqual(a_bye.to.tag, "pbx1")
        self.assertEqual(a_bye.from_.tag, a_ok.to.tag)
        self.assertEqual(a_bye.uri, b"sip:alice@10.0.0.5:5060")
        self.assertEqual([r.to_bytes() for r in a_bye.routes], [b"<sip:10.0.0.99;lr>"])
        self.net.from_pbx(reply(a_bye, 200))
        self.assertEqual(self.net.b2b.ended_calls()[0].end_reason, "bye-b")
        self.assertIdle()

    def test_2xx_retransmissions_reacked(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        self.net.from_agent(b_ok)
        re_ack = only(self, self.net.agent_take())
        self.assertEqual((re_ack.method, re_ack.cseq.seq), ("ACK", 1))
        self.net.advance(40)  # past Timer M: now a stray 2xx
        self.net.agent_take()
        self.net.from_agent(b_ok)
        self.assertEqual(only(self, self.net.agent_take()).method, "ACK")
