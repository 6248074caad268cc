# -*- test-case-name: tests.test_b2bua_refer -*-
"""REFER (transfer) from the agent host, relayed to the trunk's side when the trunk allows it."""

from __future__ import annotations

import attrs
from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.message import Request, Response

from .test_b2bua import CallTestCase, only
from .test_b2bua_harness import TRUNK, Net, reply
from .test_b2bua_outbound import AGENTS, DIAL_TRUNK, agent_invite

REFER_TO = b"<sip:+4930777@pbx.example.com>"


def sipfrag(req: Request, status_line: bytes, state: bytes) -> Request:
    return req.with_body(status_line, "message/sipfrag").with_header("Subscription-State", state)


class ReferTests(CallTestCase):
    def setUp(self) -> None:
        self.net = Net(trunks=[attrs.evolve(TRUNK, allow_refer=True)])

    def test_blind_transfer_relayed_with_notifies(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        self.assertIn(b"REFER", b_inv.get("Allow"))  # the agent host may transfer
        self.assertNotIn(b"REFER", a_ok.get("Allow"))  # the PBX may not
        # an in-dialog OPTIONS first, so the agent's REFER CSeq differs from ours on the A leg
        self.net.from_agent(agent.request("OPTIONS"))
        self.assertEqual(only(self, self.net.agent_take(), Response).status, 200)
        refer = agent.request("REFER", headers=[("Refer-To", REFER_TO),
                                                ("Referred-By", b"<sip:bot@127.0.0.1>")])
        self.net.from_agent(refer)
        a_refer = only(self, self.net.pbx_take())
        self.assertEqual((a_refer.method, a_refer.call_id, a_refer.to.tag), ("REFER", a_inv.call_id, "pbx1"))
        self.assertEqual(a_refer.get("Refer-To"), REFER_TO)
        self.assertFalse(a_refer.has("Referred-By"))
        self.assertNotIn(b"127.0.0.1", a_refer.to_bytes())
        self.assertEqual(a_refer.contacts[0].uri.host, "sbc.example.com")
        self.assertNotEqual(a_refer.cseq.seq, refer.cseq.seq)
        self.net.from_pbx(reply(a_refer, 202, tag=None))
        accepted = only(self, self.net.agent_take(), Response)
        self.assertEqual((accepted.status, accepted.cseq.method), (202, "REFER"))
        # the PBX reports progress in NOTIFYs (sipfrag), relayed with the agent's REFER CSeq as id
        for frag, state in ((b"SIP/2.0 100 Trying", b"active;expires=60"),
                            (b"SIP/2.0 200 OK", b"terminated;reason=noresource")):
            notify = sipfrag(pbx.request("NOTIFY", headers=[("Event", b"refer;id=%d" % a_refer.cseq.seq)]),
                             frag, state)
            self.net.from_pbx(notify)
            b_notify = only(self, self.net.agent_take())
            self.assertEqual((b_notify.method, b_notify.call_id, b_notify.body), ("NOTIFY", b_inv.call_id, frag))
            self.assertEqual(b_notify.get("Content-Type"), b"message/sipfrag")
            self.assertEqual(b_notify.get("Event"), b"refer;id=%d" % refer.cseq.seq)
            self.assertEqual(b_notify.get("Subscription-State"), state)
            self.net.from_agent(reply(b_notify, 200))
            self.assertEqual(only(self, self.net.pbx_take(), Response).status, 200)
        # the transferred PBX hangs up the A leg: the agent gets BYE
        self.net.from_pbx(pbx.request("BYE"))
        self.net.pbx_take()
        b_bye = only(self, self.net.agent_take())
        self.assertEqual(b_bye.method, "BYE")
        self.net.from_agent(reply(b_bye, 200))
        self.assertIdle()

    def test_notify_without_id_maps_to_the_last_refer(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        self.net.from_agent(agent.request("OPTIONS"))
        self.net.agent_take()
        refer = agent.request("REFER", headers=[("Refer-To", REFER_TO)])
        self.net.from_agent(refer)
        a_refer = only(self, self.net.pbx_take())
        self.net.from_pbx(reply(a_refer, 202, tag=None))
        self.net.agent_take()
        self.net.from_pbx(sipfrag(pbx.request("NOTIFY", headers=[("Event", b"refer")]),
                                  b"SIP/2.0 180 Ringing", b"active"))
        self.assertEqual(only(self, self.net.agent_take()).get("Event"), b"refer;id=%d" % refer.cseq.seq)

    def test_refer_failure_relayed(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        self.net.from_agent(agent.request("REFER", headers=[("Refer-To", REFER_TO)]))
        a_refer = only(self, self.net.pbx_take())
        self.net.from_pbx(reply(a_refer, 603, tag=None))
        self.assertEqual(only(self, self.net.agent_take(), Response).status, 603)
        self.assertEqual(self.net.b2b.counts()["calls"], 1)  # the call goes on

    def test_refer_without_refer_to_400(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        self.net.from_agent(agent.request("REFER"))
        self.assertEqual(only(self, self.net.agent_take(), Response).status, 400)
        self.assertEqual(self.net.pbx_take(), [])

    def test_refer_from_the_pbx_405(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        self.net.from_pbx(pbx.request("REFER", headers=[("Refer-To", b"<sip:x@10.0.0.7>")]))
        r = only(self, self.net.pbx_take(), Response)
        self.assertEqual(r.status, 405)
        self.assertNotIn(b"REFER", r.get("Allow"))
        self.assertEqual(self.net.agent_take(), [])

    def test_out_of_dialog_refer_403(self) -> None:
        inv = agent_invite()
        data = inv.to_bytes().replace(b"INVITE sip:", b"REFER sip:", 1).replace(b"1 INVITE", b"1 REFER")
        self.net.from_agent(data.split(b"\r\n\r\n")[0].replace(b"Content-Type: application/sdp\r\n", b"")
                            .replace(b"Content-Length: %d" % len(inv.body), b"Content-Length: 0")
                            + b"\r\nRefer-To: <sip:x@10.0.0.7>\r\n\r\n")
        self.assertEqual(only(self, self.net.agent_take(), Response).status, 403)
        self.assertEqual(self.net.pbx_take(), [])


class ReferNotAllowedTests(CallTestCase):
    def test_refused_403_and_the_call_goes_on(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()  # TRUNK: allow_refer false
        self.net.from_agent(agent.request("REFER", headers=[("Refer-To", REFER_TO)]))
        self.assertNotIn(b"REFER", b_inv.get("Allow"))
        r = only(self, self.net.agent_take(), Response)
        self.assertEqual(r.status, 403)
        self.assertEqual(self.net.pbx_take(), [])
        self.assertIn("refer-refused", [n.reason for n in self.net.b2b.notices()])
        # the call is undisturbed: an INFO still crosses, BYE ends both legs
        self.net.from_agent(agent.request("INFO").with_body(b"x", "text/plain"))
        self.assertEqual(only(self, self.net.pbx_take()).method, "INFO")
        self.net.from_pbx(pbx.request("BYE"))
        self.assertEqual(only(self, self.net.agent_take()).method, "BYE")


class OutboundReferTests(CallTestCase):
    """On an outbound call the agent host is the A leg."""

    def test_refer_on_an_outbound_call(self) -> None:
        from .test_b2bua_harness import SDP_A, AgentDialog, PbxDialog

        self.net = Net(trunks=[attrs.evolve(DIAL_TRUNK, allow_refer=True)], agent_allow=AGENTS)
        a_inv = agent_invite()
        self.net.from_agent(a_inv)
        self.net.agent_take()
        b_inv = only(self, self.net.pbx_take())
        self.net.from_pbx(reply(b_inv, 200, tag="pbxt", body=SDP_A, contact=b"<sip:gw@10.0.0.5:5060>"))
        a_ok = only(self, self.net.agent_take(), Response)
        agent = PbxDialog(a_inv, a_ok)
        self.net.from_agent(agent.ack(a_inv))
        self.net.pbx_take()
        self.net.from_agent(agent.request("REFER", headers=[("Refer-To", REFER_TO)]))
        b_refer = only(self, self.net.pbx_take())
        self.assertEqual((b_refer.method, b_refer.call_id, b_refer.get("Refer-To")),
                         ("REFER", b_inv.call_id, REFER_TO))
        self.net.from_pbx(reply(b_refer, 202, tag=None))
        self.assertEqual(only(self, self.net.agent_take(), Response).status, 202)
        pbx = AgentDialog(b_inv, tag="pbxt")
        self.net.from_pbx(sipfrag(pbx.request("NOTIFY", headers=[("Event", b"refer")]),
                                  b"SIP/2.0 200 OK", b"terminated"))
        notify = only(self, self.net.agent_take())
        self.assertEqual((notify.method, notify.call_id), ("NOTIFY", a_inv.call_id))


class EventIdTests(SynchronousTestCase):
    @given(seq=st.integers(1, 2**31 - 1), old=st.one_of(st.none(), st.integers(0, 10**10 - 1)),
           params=st.lists(st.sampled_from([b";foo=bar", b";x", b" ;ID = 7"]), max_size=3))
    def test_event_id_rewritten_once(self, seq: int, old, params) -> None:
        from sbc.b2bua.legs import _event_id, _event_package, _with_event_id

        value = b"refer" + b"".join(params) + (b"" if old is None else b";id=%d" % old)
        out = _with_event_id(value, seq)
        self.assertEqual(_event_id(out), seq)
        self.assertEqual(out.lower().count(b";id="), 1)
        self.assertEqual(_event_package(out), b"refer")
