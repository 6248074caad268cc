# -*- test-case-name: tests.test_b2bua_prack -*-
"""Reliable provisional responses (RFC 3262, 100rel / PRACK): on the A leg (we send them
reliably to the PBX) and on the B leg (we PRACK the agent host's)."""

from __future__ import annotations

from sbc.sip.endpoint import Peer
from sbc.sip.message import Request, Response

from .test_b2bua import CallTestCase, only
from .test_b2bua_harness import SDP_A, SDP_B, AgentDialog, Net, PbxDialog, cancel, invite, reply

REQUIRE = "Require: 100rel\r\n"


def statuses(messages: list) -> list[int]:
    return [m.status for m in messages if isinstance(m, Response)]


class PrackTests(CallTestCase):
    def ring(self, extra: str = REQUIRE, body: bytes = SDP_A, status: int = 183,
             agent_body: bytes = SDP_B) -> tuple[Request, Request, Response]:
        a_inv, b_inv = self.start(body=body, extra=extra)
        # 100rel is offered to the agent host (with an offer in the INVITE), never required
        self.assertFalse(b_inv.has("Require"))
        self.assertEqual(b"100rel" in b_inv.get_all("Supported"), bool(body))
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


def reliable(request: Request, status: int, rseq: int, *, tag: str = "ag1", body: bytes = b"",
             require: bytes | None = b"100rel") -> Response:
    """A reliable provisional response from the agent host (Require: 100rel, RSeq)."""
    headers = [("RSeq", b"%d" % rseq)]
    if require is not None:
        headers.insert(0, ("Require", require))
    return reply(request, status, tag=tag, body=body, headers=headers)


def notices(net: Net) -> list[str]:
    return [n.reason for n in net.b2b.notices()]


class AgentPrackTests(CallTestCase):
    """RFC 3262 on the B leg: the INVITE toward the agent host offers 100rel and the agent
    host's reliable provisionals are PRACKed within their early dialog (RFC 3262 §4)."""

    def prack_of(self, b_inv: Request, rseq: int, cseq: int = 2, tag: str = "ag1") -> Request:
        prack = only(self, self.net.agent_take())
        self.assertEqual(prack.method, "PRACK")
        self.assertEqual(prack.get("RAck"), b"%d %d INVITE" % (rseq, b_inv.cseq.seq))
        self.assertEqual((prack.cseq.seq, prack.cseq.method), (cseq, "PRACK"))
        self.assertEqual((prack.call_id, prack.from_.tag, prack.to.tag), (b_inv.call_id, b_inv.from_.tag, tag))
        self.assertEqual(prack.uri, b"sip:agent@127.0.0.1:5090")  # the 18x's Contact: remote target
        self.assertFalse(prack.body)
        return prack

    def test_invite_offers_100rel_in_one_supported_header(self) -> None:
        a_inv, b_inv = self.start()
        self.assertEqual(b_inv.get_all("Supported"), [b"timer", b"100rel"])
        self.assertEqual(len(b_inv.headers_named("Supported")), 1)
        self.assertFalse(b_inv.has("Require"))
        net = Net(session_timer=None)
        net.from_pbx(invite())
        b2 = [m for m in net.agent_take() if isinstance(m, Request)][0]
        self.assertEqual(b2.get_all("Supported"), [b"100rel"])

    def test_reliable_183_with_sdp_pracked_then_answered(self) -> None:
        a_inv, b_inv = self.start()
        self.net.from_agent(reliable(b_inv, 183, 7, body=SDP_B))
        prack = self.prack_of(b_inv, 7)
        self.assertEqual(prack.top_via.host, "192.0.2.10")
        # relayed to the PBX (unreliably: its INVITE did not offer 100rel), early SDP and all
        p183 = only(self, self.net.pbx_take(), Response)
        self.assertEqual((p183.status, p183.body), (183, SDP_B))
        self.assertFalse(p183.has("RSeq") or p183.has("Require"))
        # the 200 to the PRACK is absorbed: nothing reaches the PBX
        self.net.from_agent(reply(prack, 200))
        self.assertEqual((self.net.pbx_take(), self.net.agent_take()), ([], []))
        self.net.from_agent(reply(b_inv, 200, body=SDP_B))
        a_ok = only(self, self.net.pbx_take(), Response)
        self.assertEqual((a_ok.status, a_ok.body), (200, SDP_B))
        pbx = PbxDialog(a_inv, a_ok)
        self.net.from_pbx(pbx.ack(a_inv))
        self.assertEqual(only(self, self.net.agent_take()).method, "ACK")
        self.net.from_pbx(pbx.request("BYE"))
        self.net.pbx_take()
        b_bye = only(self, self.net.agent_take())
        self.assertEqual(b_bye.cseq.seq, 3)  # after the PRACK's 2 in the same dialog
        self.net.from_agent(reply(b_bye, 200))
        self.assertNotIn("prack-failed", notices(self.net))
        self.assertIdle()

    def test_retransmitted_reliable_provisional_neither_pracked_nor_relayed(self) -> None:
        a_inv, b_inv = self.start()
        p183 = reliable(b_inv, 183, 7, body=SDP_B)
        self.net.from_agent(p183)
        prack = self.prack_of(b_inv, 7)
        self.assertEqual(len(self.net.pbx_take()), 1)
        # the agent retransmits the 183 before our PRACK got there (UDP): discarded
        self.net.from_agent(p183)
        self.assertEqual((self.net.agent_take(), self.net.pbx_take()), ([], []))
        # our PRACK transaction retransmits by itself (Timer E) until its 200
        self.net.advance(0.5)
        again = only(self, self.net.agent_take())
        self.assertEqual((again.method, again.cseq.seq, again.get("RAck")), ("PRACK", 2, prack.get("RAck")))
        self.net.from_agent(reply(prack, 200))
        self.net.from_agent(p183)  # a late retransmission after the PRACK's 200
        self.assertEqual((self.net.agent_take(), self.net.pbx_take()), ([], []))

    def test_several_reliable_provisionals_in_a_row(self) -> None:
        a_inv, b_inv = self.start()
        self.net.from_agent(reliable(b_inv, 180, 41))
        self.net.from_agent(reply(self.prack_of(b_inv, 41, cseq=2), 200))
        self.net.from_agent(reliable(b_inv, 183, 42, body=SDP_B))
        self.net.from_agent(reply(self.prack_of(b_inv, 42, cseq=3), 200))
        self.assertEqual(statuses(self.net.pbx_take()), [180, 183])
        self.net.from_agent(reply(b_inv, 200, body=SDP_B))
        self.assertEqual(statuses(self.net.pbx_take()), [200])

    def test_out_of_order_rseq_discarded(self) -> None:
        a_inv, b_inv = self.start()
        self.net.from_agent(reliable(b_inv, 180, 41))
        self.prack_of(b_inv, 41)
        self.assertEqual(statuses(self.net.pbx_take()), [180])
        self.net.from_agent(reliable(b_inv, 183, 43, body=SDP_B))  # 42 missing
        self.assertEqual((self.net.agent_take(), self.net.pbx_take()), ([], []))
        self.assertIn("100rel-out-of-order", notices(self.net))
        self.net.from_agent(reliable(b_inv, 183, 42, body=SDP_B))  # the next one in order is taken
        self.prack_of(b_inv, 42, cseq=3)
        self.assertEqual(statuses(self.net.pbx_take()), [183])

    def test_prack_failure_logged_and_the_call_goes_on(self) -> None:
        a_inv, b_inv = self.start()
        self.net.from_agent(reliable(b_inv, 183, 7, body=SDP_B))
        prack = self.prack_of(b_inv, 7)
        self.net.pbx_take()
        self.net.from_agent(reply(prack, 481))
        self.assertEqual((self.net.agent_take(), self.net.pbx_take()), ([], []))
        self.assertIn("prack-failed", notices(self.net))
        self.net.from_agent(reply(b_inv, 200, body=SDP_B))
        a_ok = only(self, self.net.pbx_take(), Response)
        self.assertEqual(a_ok.status, 200)
        self.net.from_pbx(PbxDialog(a_inv, a_ok).ack(a_inv))
        self.assertEqual(only(self, self.net.agent_take()).method, "ACK")  # the dialog survived the 481
        self.assertEqual(self.net.b2b.counts()["calls"], 1)

    def test_unanswered_prack_times_out_without_ending_the_call(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer_reliably()
        self.net.advance(40)  # Timer F of the PRACK (64*T1)
        self.assertEqual({m.method for m in self.net.agent_take()}, {"PRACK"})  # retransmissions only
        self.assertIn("prack-failed", notices(self.net))
        self.assertEqual(self.net.b2b.counts()["calls"], 1)
        self.net.from_agent(agent.request("BYE"))
        self.net.agent_take()
        self.net.from_pbx(reply(only(self, self.net.pbx_take()), 200))
        self.assertIdle()

    def answer_reliably(self):
        a_inv, b_inv = self.start()
        self.net.from_agent(reliable(b_inv, 183, 7, body=SDP_B))
        self.prack_of(b_inv, 7)
        self.net.pbx_take()
        b_ok = reply(b_inv, 200, body=SDP_B)
        self.net.from_agent(b_ok)
        a_ok = only(self, self.net.pbx_take(), Response)
        pbx = PbxDialog(a_inv, a_ok)
        self.net.from_pbx(pbx.ack(a_inv))
        self.assertEqual(only(self, self.net.agent_take()).method, "ACK")
        agent = AgentDialog(b_inv)
        agent.dialog.remote_seq = 2  # the PRACK
        return a_inv, b_inv, a_ok, b_ok, pbx, agent

    def test_cancel_with_a_prack_in_flight_releases_everything(self) -> None:
        a_inv, b_inv = self.start()
        self.net.from_agent(reliable(b_inv, 183, 7, body=SDP_B))
        prack = self.prack_of(b_inv, 7)
        self.net.pbx_take()
        self.net.from_pbx(cancel(a_inv))
        self.assertEqual(sorted(statuses(self.net.pbx_take())), [200, 487])
        b_cancel = only(self, self.net.agent_take())
        self.assertEqual(b_cancel.method, "CANCEL")
        self.net.from_agent(reply(b_cancel, 200))
        self.net.from_agent(reply(b_inv, 487))
        self.assertEqual(only(self, self.net.agent_take()).method, "ACK")
        self.net.from_agent(reply(prack, 481))  # the agent already forgot the early dialog
        self.assertIdle()

    def test_failure_after_a_pracked_provisional(self) -> None:
        a_inv, b_inv = self.start()
        self.net.from_agent(reliable(b_inv, 180, 7))
        prack = self.prack_of(b_inv, 7)
        self.net.from_agent(reply(prack, 200))
        self.net.from_agent(reply(b_inv, 486))
        self.assertEqual(statuses(self.net.pbx_take()), [180, 486])
        self.assertEqual(only(self, self.net.agent_take()).method, "ACK")
        self.assertIdle()

    def test_both_legs_reliable(self) -> None:
        """The PBX supports 100rel too: each leg runs its own RSeq and PRACK; no PRACK crosses."""
        a_inv, b_inv = self.start(extra=REQUIRE)
        self.net.from_agent(reliable(b_inv, 183, 7, body=SDP_B))
        prack = self.prack_of(b_inv, 7)
        p183 = only(self, self.net.pbx_take(), Response)
        self.assertEqual((p183.get("Require"), p183.body), (b"100rel", SDP_B))
        self.assertNotEqual(p183.get("RSeq"), b"7")
        self.net.from_agent(reply(prack, 200))
        self.net.from_agent(reply(b_inv, 200, body=SDP_B))
        self.assertEqual(self.net.pbx_take(), [])  # held until the PBX's PRACK (the 183 had SDP)
        a_prack = PbxDialog(a_inv, p183).request(
            "PRACK", headers=[("RAck", b"%s %d INVITE" % (p183.get("RSeq"), a_inv.cseq.seq))])
        self.net.from_pbx(a_prack)
        self.assertEqual([(r.status, r.cseq.method) for r in self.net.pbx_take()], [(200, "PRACK"), (200, "INVITE")])
        self.assertEqual(self.net.agent_take(), [])

    def test_a_fork_is_pracked_in_its_own_dialog(self) -> None:
        a_inv, b_inv = self.start()
        self.net.from_agent(reliable(b_inv, 180, 7))
        self.prack_of(b_inv, 7)
        self.net.from_agent(reliable(b_inv, 180, 900, tag="ag2"))
        fork = self.prack_of(b_inv, 900, cseq=2, tag="ag2")  # its own dialog: its own CSeq space
        self.net.from_agent(reliable(b_inv, 180, 7, tag="ag2"))  # its RSeq space is its own too
        self.assertEqual(self.net.agent_take(), [])
        self.assertEqual(statuses(self.net.pbx_take()), [180, 180])
        self.net.from_agent(reply(fork, 200))
        self.net.from_agent(reply(b_inv, 200, body=SDP_B))
        self.assertEqual(statuses(self.net.pbx_take()), [200])

    def test_switch_off_no_offer_and_unrequested_reliable_provisional_taken_unreliably(self) -> None:
        self.net = Net(agent_100rel=False)
        a_inv, b_inv = self.start()
        self.assertNotIn(b"100rel", b_inv.get_all("Supported"))
        p183 = reliable(b_inv, 183, 7, body=SDP_B)
        self.net.from_agent(p183)
        self.assertEqual(self.net.agent_take(), [])  # no PRACK
        self.assertEqual(statuses(self.net.pbx_take()), [183])
        self.assertIn("100rel-unrequested", notices(self.net))
        # the agent host retransmits it, waiting for a PRACK that never comes: relayed once only
        self.net.from_agent(p183)
        self.assertEqual((self.net.agent_take(), statuses(self.net.pbx_take())), ([], []))
        self.net.from_agent(reliable(b_inv, 180, 8))  # a new one is relayed
        self.assertEqual((self.net.agent_take(), statuses(self.net.pbx_take())), ([], [180]))

    def test_late_offer_invite_does_not_offer_100rel(self) -> None:
        a_inv, b_inv = self.start(body=b"")
        self.assertNotIn(b"100rel", b_inv.get_all("Supported"))
        self.net.from_agent(reliable(b_inv, 183, 7, body=SDP_B))  # an offer we could not answer in a PRACK
        self.assertEqual(self.net.agent_take(), [])
        self.assertEqual(statuses(self.net.pbx_take()), [183])
        self.assertIn("100rel-unrequested", notices(self.net))

    def test_reliable_provisional_without_rseq_taken_unreliably(self) -> None:
        a_inv, b_inv = self.start()
        for rseq in (b"", b"x", b"0", b"2147483648"):
            bad = reliable(b_inv, 180, 1)
            self.net.from_agent(bad.with_header("RSeq", rseq) if rseq else bad.without_header("RSeq"))
            self.assertEqual(self.net.agent_take(), [])
            self.assertEqual(statuses(self.net.pbx_take()), [180])
            self.assertIn("100rel-malformed", notices(self.net))

    def test_100_with_require_100rel_is_not_reliable(self) -> None:
        a_inv, b_inv = self.start()
        self.net.from_agent(reliable(b_inv, 100, 1, tag=None))  # type: ignore[arg-type]
        self.assertEqual((self.net.agent_take(), self.net.pbx_take()), ([], []))

    def test_outbound_call_offers_no_100rel_to_the_trunk(self) -> None:
        from .test_b2bua_outbound import AGENTS, DIAL_TRUNK, agent_invite

        net = Net(trunks=[DIAL_TRUNK], agent_allow=AGENTS)
        net.from_agent(agent_invite())
        b_inv = [m for m in net.pbx_take() if isinstance(m, Request)][0]
        self.assertNotIn(b"100rel", b_inv.get_all("Supported"))


class AgentPrackMediaTests(CallTestCase):
    """With media anchored, the SDP of a reliable 183 is the agent host's early answer."""

    def test_reliable_183_sdp_is_the_early_answer(self) -> None:
        from .test_b2bua_media import TRUNK as MEDIA_TRUNK, FakeEngine, tagged

        engine = FakeEngine()
        self.net = Net(media=engine, trunks=[MEDIA_TRUNK])
        a_inv, b_inv = self.start()
        self.net.from_agent(reliable(b_inv, 183, 7, body=SDP_B))
        self.assertEqual(only(self, self.net.agent_take()).method, "PRACK")
        self.assertEqual(only(self, self.net.pbx_take(), Response).body, tagged(SDP_B, "b"))
        self.net.from_agent(reliable(b_inv, 183, 7, body=SDP_B))  # a retransmission: not answered twice
        self.net.from_agent(reply(b_inv, 200, body=SDP_B))
        self.assertEqual(only(self, self.net.pbx_take(), Response).body, tagged(SDP_B, "b"))
        self.assertEqual([(k, s) for k, s, _ in engine.sessions[-1].log],
                         [("offer", "a"), ("early-answer", "b"), ("answer", "b")])
