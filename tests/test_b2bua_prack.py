# -*- test-case-name: tests.test_b2bua_prack -*-
"""Reliable provisional responses (RFC 3262, 100rel / PRACK) on the A leg."""

from __future__ import annotations

from sbc.sip.endpoint import Peer
from sbc.sip.message import Request, Response

from .test_b2bua import CallTestCase, only
from .test_b2bua_harness import SDP_A, SDP_B, Net, PbxDialog, cancel, invite, reply

REQUIRE = "Require: 100rel\r\n"


def statuses(messages: list) -> list[int]:
    return [m.status for m in messages if isinstance(m, Response)]


class PrackTests(CallTestCase):
    def ring(self, extra: str = REQUIRE, body: bytes = SDP_A, status: int = 183,
             agent_body: bytes = SDP_B) -> tuple[Request, Request, Response]:
        a_inv, b_inv = self.start(body=body, extra=extra)
        self.assertFalse(b_inv.has("Require"))  # the B leg stays without 100rel
        self.assertNotIn(b"100rel", b"".join(b_inv.get_all("Supported")))
        self.net.from_agent(reply(b_inv, status, body=agent_body))
        prov = only(self, self.net.pbx_take(), Response)
        self.assertEqual(prov.status, status)
        return a_inv, b_inv, prov

    def prack(self, a_inv: Request, prov: Response, rseq: int | None = None, body: bytes = b"") -> Request:
        seq = int(prov.get("RSeq")) if rseq is None else rseq
        return PbxDialog(a_inv, prov).request("PRACK", headers=[("RAck", b"%d %d INVITE" % (seq, a_inv.cseq.seq))],
                                              body=body)

    def test_reliable_183_and_2xx_held_until_prack(self) -> None:
        a_inv, b_inv, p183 = self.ring()
        self.assertEqual(p183.get("Require"), b"100rel")
        rseq = int(p183.get("RSeq"))
        self.assertTrue(1 <= rseq < 2**31)
        self.assertEqual(p183.body, SDP_B)
        # the agent answers, but the 2xx waits for the PRACK of the 183 (it carried SDP)
        self.net.from_agent(reply(b_inv, 200, body=SDP_B))
        self.assertEqual(self.net.pbx_take(), [])
        # the 183 is retransmitted meanwhile (UDP), T1 then 2*T1
        self.net.advance(0.5)
        self.assertEqual([(r.status, r.get("RSeq")) for r in self.net.pbx_take()], [(183, p183.get("RSeq"))])
        self.net.advance(1.0)
        self.assertEqual(statuses(self.net.pbx_take()), [183])
        self.net.from_pbx(self.prack(a_inv, p183))
        out = self.net.pbx_take()
        self.assertEqual([(r.status, r.cseq.method) for r in out], [(200, "PRACK"), (200, "INVITE")])
        self.assertEqual(self.net.agent_take(), [])  # PRACK stays on the A leg
        a_ok = out[1]
        self.assertEqual(a_ok.to.tag, p183.to.tag)
        self.net.advance(10)
        self.assertNotIn(183, statuses(self.net.pbx_take()))  # no more retransmissions
        self.net.from_pbx(PbxDialog(a_inv, a_ok).ack(a_inv))
        self.assertEqual(only(self, self.net.agent_take()).method, "ACK")
        # a retransmitted PRACK (new transaction) still gets 200
        self.net.from_pbx(self.prack(a_inv, p183))
        self.assertEqual(only(self, self.net.pbx_take(), Response).status, 200)

    def test_second_provisional_waits_for_the_first_prack(self) -> None:
        a_inv, b_inv, p180 = self.ring(status=180, agent_body=b"")
        self.net.from_agent(reply(b_inv, 183, body=SDP_B))
        self.assertEqual(self.net.pbx_take(), [])
        self.net.from_pbx(self.prack(a_inv, p180))
        out = self.net.pbx_take()
        self.assertEqual([r.status for r in out], [200, 183])
        self.assertEqual(int(out[1].get("RSeq")), int(p180.get("RSeq")) + 1)
        self.assertEqual(out[1].body, SDP_B)

    def test_2xx_not_held_after_a_provisional_without_sdp(self) -> None:
        a_inv, b_inv, p180 = self.ring(status=180, agent_body=b"")
        self.net.from_agent(reply(b_inv, 200, body=SDP_B))
        a_ok = only(self, self.net.pbx_take(), Response)
        self.assertEqual(a_ok.status, 200)
        self.net.from_pbx(self.prack(a_inv, p180))  # late PRACK
        self.assertEqual(only(self, self.net.pbx_take(), Response).status, 200)
        self.net.advance(5)
        self.assertNotIn(180, statuses(self.net.pbx_take()))

    def test_no_prack_504_and_cancel_toward_the_agent(self) -> None:
        a_inv, b_inv, p183 = self.ring()
        self.net.advance(31.9)
        self.assertEqual(set(statuses(self.net.pbx_take())), {183})
        self.net.advance(0.2)
        self.assertEqual(statuses(self.net.pbx_take()), [504])
        b_cancel = only(self, self.net.agent_take())
        self.assertEqual(b_cancel.method, "CANCEL")
        self.net.from_agent(reply(b_cancel, 200))
        self.net.from_agent(reply(b_inv, 487))
        call = self.net.b2b.ended_calls()[0]
        self.assertEqual((call.end_reason, call.a_status), ("prack-timeout", 504))
        self.assertIdle()

    def test_prack_for_an_unknown_rseq_481(self) -> None:
        a_inv, b_inv, p183 = self.ring()
        self.net.from_pbx(self.prack(a_inv, p183, rseq=int(p183.get("RSeq")) + 5))
        self.assertEqual(only(self, self.net.pbx_take(), Response).status, 481)

    def test_malformed_rack_400(self) -> None:
        a_inv, b_inv, p183 = self.ring()
        for rack in (b"", b"x 1 INVITE", b"1 INVITE"):
            prack = PbxDialog(a_inv, p183).request("PRACK", headers=[("RAck", rack)] if rack else [])
            self.net.from_pbx(prack)
            self.assertEqual(only(self, self.net.pbx_take(), Response).status, 400)
        # the RAck of another request of the dialog
        prack = PbxDialog(a_inv, p183).request("PRACK", headers=[("RAck", b"%s 7 INVITE" % p183.get("RSeq"))])
        self.net.from_pbx(prack)
        self.assertEqual(only(self, self.net.pbx_take(), Response).status, 481)

    def test_prack_with_a_new_offer_488(self) -> None:
        a_inv, b_inv, p183 = self.ring()
        self.net.from_pbx(self.prack(a_inv, p183, body=SDP_A))
        self.assertEqual(only(self, self.net.pbx_take(), Response).status, 488)
        self.assertEqual(self.net.agent_take(), [])

    def test_supported_100rel_is_enough(self) -> None:
        a_inv, b_inv, p180 = self.ring(extra="Supported: 100rel, timer\r\n", status=180, agent_body=b"")
        self.assertEqual(p180.get("Require"), b"100rel")

    def test_without_100rel_provisionals_stay_unreliable(self) -> None:
        a_inv, b_inv, p180 = self.ring(extra="", status=180, agent_body=b"")
        self.assertFalse(p180.has("RSeq"))
        self.net.advance(2)
        self.assertEqual(self.net.pbx_take(), [])

    def test_late_offer_keeps_sdp_out_of_reliable_provisionals(self) -> None:
        a_inv, b_inv, p183 = self.ring(body=b"")
        self.assertEqual((p183.body, p183.get("Require")), (b"", b"100rel"))
        self.net.from_agent(reply(b_inv, 200, body=SDP_B))  # not held: the 183 had no SDP
        a_ok = only(self, self.net.pbx_take(), Response)
        self.assertEqual((a_ok.status, a_ok.body), (200, SDP_B))

    def test_cancel_stops_retransmissions(self) -> None:
        a_inv, b_inv, p183 = self.ring()
        self.net.from_pbx(cancel(a_inv))
        self.assertEqual(sorted(statuses(self.net.pbx_take())), [200, 487])
        b_cancel = only(self, self.net.agent_take())
        self.net.from_agent(reply(b_cancel, 200))
        self.net.from_agent(reply(b_inv, 487))
        self.net.advance(5)
        self.assertNotIn(183, statuses(self.net.pbx_take()))
        self.assertIdle()

    def test_tcp_no_retransmission_but_the_same_timeout(self) -> None:
        self.net = Net(peer=Peer("tcp", "10.0.0.5", 5060, 3))
        a_inv, b_inv, p183 = self.ring()
        self.net.advance(31.9)
        self.assertEqual(self.net.pbx_take(), [])
        self.net.advance(0.2)
        self.assertEqual(statuses(self.net.pbx_take()), [504])
