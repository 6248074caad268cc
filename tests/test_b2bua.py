# -*- test-case-name: tests.test_b2bua -*-
"""B2BUA call flows across both legs, on a fake in-memory network with fake time."""

from __future__ import annotations

from hypothesis import given, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.message import Request, Response

from .test_b2bua_harness import (
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
                                                 "tx_bindings": 0, "lookups": 0})
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
        # BYE from the PBX, with a Q.850 cause for the agent
        self.net.from_pbx(pbx.request("BYE", headers=[("Reason", b'Q.850;cause=16;text="Normal call clearing"')]))
        ok = only(self, self.net.pbx_take(), Response)
        self.assertEqual((ok.status, ok.cseq.method), (200, "BYE"))
        b_bye = only(self, self.net.agent_take())
        self.assertEqual(b_bye.method, "BYE")
        self.assertEqual(b_bye.call_id, b_inv.call_id)
        self.assertEqual(b_bye.to.tag, "ag1")
        self.assertEqual(b_bye.cseq.seq, 2)
        self.assertEqual(b_bye.uri, b"sip:agent@127.0.0.1:5090")
        self.assertEqual(b_bye.get("Reason"), b'Q.850;cause=16;text="Normal call clearing"')
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
        self.assertNotIn(b"127.0.0.1", a_bye.to_bytes())
        self.assertNotIn(b"ag1", a_bye.to_bytes())  # the agent's tag stays on the B leg
        self.assertEqual(a_bye.top_via.host, "192.0.2.10")
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


class OfferAnswerTests(CallTestCase):
    def test_late_offer(self) -> None:
        a_inv, b_inv = self.start(body=b"")
        self.assertEqual(b_inv.body, b"")
        self.assertFalse(b_inv.has("Content-Type"))
        b_ok = reply(b_inv, 200, body=SDP_B)  # the agent's offer
        self.net.from_agent(b_ok)
        a_ok = only(self, self.net.pbx_take(), Response)
        self.assertEqual((a_ok.status, a_ok.body), (200, SDP_B))
        self.assertEqual(self.net.agent_take(), [])
        pbx = PbxDialog(a_inv, a_ok)
        self.net.from_pbx(pbx.ack(a_inv, body=SDP_A))  # the PBX's answer in the ACK
        b_ack = only(self, self.net.agent_take())
        self.assertEqual((b_ack.method, b_ack.body), ("ACK", SDP_A))
        self.assertEqual(b_ack.get("Content-Type"), b"application/sdp")
        self.assertEqual(b_ack.cseq.seq, b_inv.cseq.seq)
        self.assertEqual(b_ack.to.tag, "ag1")
        self.assertNotEqual(b_ack.top_via.branch, b_inv.top_via.branch)

    def test_early_media_183_with_sdp_and_180_without(self) -> None:
        a_inv, b_inv = self.start()
        self.net.from_agent(reply(b_inv, 100, tag=None))
        self.assertEqual(self.net.pbx_take(), [])  # we sent our own 100 already
        self.net.from_agent(reply(b_inv, 183, body=SDP_B))
        p183 = only(self, self.net.pbx_take(), Response)
        self.assertEqual((p183.status, p183.body), (183, SDP_B))
        self.assertIsNotNone(p183.to.tag)
        self.assertEqual(p183.contacts[0].uri.host, "sbc.example.com")
        self.net.from_agent(reply(b_inv, 180))
        p180 = only(self, self.net.pbx_take(), Response)
        self.assertEqual((p180.status, p180.body), (180, b""))
        self.assertEqual(p180.to.tag, p183.to.tag)
        self.net.from_agent(reply(b_inv, 200, body=SDP_B))
        a_ok = only(self, self.net.pbx_take(), Response)
        self.assertEqual(a_ok.to.tag, p183.to.tag)

    def test_reinvite_hold_from_pbx(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        hold = SDP_A.replace(b"sendrecv", b"sendonly")
        re_inv = pbx.request("INVITE", body=hold)
        self.net.from_pbx(re_inv)
        self.assertEqual(only(self, self.net.pbx_take(), Response).status, 100)
        b_re = only(self, self.net.agent_take())
        self.assertEqual((b_re.method, b_re.body, b_re.call_id), ("INVITE", hold, b_inv.call_id))
        self.assertEqual(b_re.cseq.seq, 2)
        self.assertEqual(b_re.to.tag, "ag1")
        self.assertEqual(b_re.contacts[0].uri.host, "192.0.2.10")
        held = SDP_B.replace(b"sendrecv", b"recvonly")
        b_re_ok = reply(b_re, 200, body=held)
        self.net.from_agent(b_re_ok)
        a_re_ok = only(self, self.net.pbx_take(), Response)
        self.assertEqual((a_re_ok.status, a_re_ok.body, a_re_ok.cseq.seq), (200, held, re_inv.cseq.seq))
        self.assertEqual(self.net.agent_take(), [])
        self.net.from_pbx(pbx.ack(re_inv))
        b_ack = only(self, self.net.agent_take())
        self.assertEqual((b_ack.method, b_ack.cseq.seq), ("ACK", 2))
        # resume
        re_inv2 = pbx.request("INVITE", body=SDP_A)
        self.net.from_pbx(re_inv2)
        self.net.pbx_take()
        b_re2 = only(self, self.net.agent_take())
        self.assertEqual((b_re2.body, b_re2.cseq.seq), (SDP_A, 3))

    def test_reinvite_from_agent_without_sdp(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        re_inv = agent.request("INVITE")  # offerless: the PBX's 200 has the offer
        self.net.from_agent(re_inv)
        self.assertEqual(only(self, self.net.agent_take(), Response).status, 100)
        a_re = only(self, self.net.pbx_take())
        self.assertEqual((a_re.method, a_re.body, a_re.call_id), ("INVITE", b"", a_inv.call_id))
        self.assertEqual(a_re.to.tag, "pbx1")
        self.assertEqual(a_re.from_.tag, a_ok.to.tag)
        self.assertEqual(a_re.cseq.seq, 1)  # our first request on the A leg
        self.net.from_pbx(reply(a_re, 200, body=SDP_A, tag=None, contact=b"<sip:alice@10.0.0.5:5060>"))
        b_re_ok = only(self, self.net.agent_take(), Response)
        self.assertEqual((b_re_ok.status, b_re_ok.body), (200, SDP_A))
        self.assertEqual(self.net.pbx_take(), [])
        self.net.from_agent(agent.ack(re_inv, body=SDP_B))
        a_ack = only(self, self.net.pbx_take())
        self.assertEqual((a_ack.method, a_ack.body, a_ack.cseq.seq), ("ACK", SDP_B, 1))

    def test_update_both_directions(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        upd = pbx.request("UPDATE", body=SDP_A2)
        self.net.from_pbx(upd)
        b_upd = only(self, self.net.agent_take())
        self.assertEqual((b_upd.method, b_upd.body), ("UPDATE", SDP_A2))
        self.net.from_agent(reply(b_upd, 200, body=SDP_B2))
        a_upd_ok = only(self, self.net.pbx_take(), Response)
        self.assertEqual((a_upd_ok.status, a_upd_ok.cseq.method, a_upd_ok.body), (200, "UPDATE", SDP_B2))
        upd2 = agent.request("UPDATE", body=SDP_B3)
        self.net.from_agent(upd2)
        a_upd = only(self, self.net.pbx_take())
        self.assertEqual((a_upd.method, a_upd.body), ("UPDATE", SDP_B3))
        self.net.from_pbx(reply(a_upd, 200, body=SDP_A3, tag=None))
        self.assertEqual(only(self, self.net.agent_take(), Response).body, SDP_A3)

    def test_glare_491(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        self.net.from_pbx(pbx.request("INVITE", body=SDP_HOLD_A))
        self.net.pbx_take()
        b_re = only(self, self.net.agent_take())
        # the agent's own re-INVITE crosses ours
        self.net.from_agent(agent.request("INVITE", body=SDP_B2))
        self.assertEqual(only(self, self.net.agent_take(), Response).status, 491)
        self.assertEqual(self.net.pbx_take(), [])
        # and the agent answers ours 491 too: relayed to the PBX
        self.net.from_agent(reply(b_re, 491))
        out = self.net.agent_take()
        self.assertEqual([m.method for m in out], ["ACK"])  # hop-by-hop ACK of the 491
        r491 = only(self, self.net.pbx_take(), Response)
        self.assertEqual(r491.status, 491)
        # a new attempt works
        self.net.from_agent(agent.request("UPDATE", body=SDP_B2))
        self.assertEqual(only(self, self.net.pbx_take()).method, "UPDATE")

    def test_second_reinvite_from_same_side_while_pending(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        self.net.from_pbx(pbx.request("INVITE", body=SDP_HOLD_A))
        self.net.pbx_take()
        self.net.agent_take()
        self.net.from_pbx(pbx.request("INVITE", body=SDP_A))
        r = only(self, self.net.pbx_take(), Response)
        self.assertEqual(r.status, 500)
        self.assertTrue(r.has("Retry-After"))


SDP_HOLD_A = SDP_A.replace(b"sendrecv", b"sendonly")
# New versions of each side's SDP (a changed o= version is a real change, RFC 3264 §8; the same
# SDP again is only a session refresh, answered on its own leg).
SDP_A2 = SDP_A.replace(b"o=pbx 1 1", b"o=pbx 1 2").replace(b"RTP/AVP 0", b"RTP/AVP 8")
SDP_A3 = SDP_A.replace(b"o=pbx 1 1", b"o=pbx 1 3")
SDP_B2 = SDP_B.replace(b"o=agent 1 1", b"o=agent 1 2").replace(b"RTP/AVP 0", b"RTP/AVP 8")
SDP_B3 = SDP_B.replace(b"o=agent 1 1", b"o=agent 1 3")


class InfoRelayTests(CallTestCase):
    def test_info_message_notify_relayed_both_ways(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        cases = [
            ("INFO", b"application/x-vendor-data", b"id=5\r\n", [("Info-Package", b"vendor")]),
            ("MESSAGE", b"text/plain", b"hello", []),
            ("NOTIFY", b"message/sipfrag", b"SIP/2.0 200 OK", [("Event", b"refer"),
                                                               ("Subscription-State", b"terminated")]),
        ]
        for method, ctype, body, extra in cases:
            req = pbx.request(method, headers=[("Content-Type", ctype), *extra], body=b"")
            req = req.with_body(body, ctype)
            self.net.from_pbx(req)
            out = only(self, self.net.agent_take())
            self.assertEqual((out.method, out.body, out.get("Content-Type")), (method, body, ctype))
            self.assertEqual(out.call_id, b_inv.call_id)
            for name, value in extra:
                self.assertEqual(out.get(name), value)
            self.net.from_agent(reply(out, 200 if method != "MESSAGE" else 202))
            back = only(self, self.net.pbx_take(), Response)
            self.assertEqual((back.status, back.cseq.method, back.call_id),
                             (200 if method != "MESSAGE" else 202, method, a_inv.call_id))
            # and from the agent toward the PBX
            req = agent.request(method, headers=list(extra)).with_body(body, ctype)
            self.net.from_agent(req)
            out = only(self, self.net.pbx_take())
            self.assertEqual((out.method, out.body, out.get("Content-Type")), (method, body, ctype))
            self.assertEqual(out.call_id, a_inv.call_id)
            self.net.from_pbx(reply(out, 415))
            back = only(self, self.net.agent_take(), Response)
            self.assertEqual(back.status, 415)

    def test_info_to_unresponsive_agent_times_out(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        self.net.from_pbx(pbx.request("INFO").with_body(b"x", "text/plain"))
        self.net.agent_take()
        self.net.advance(33)
        out = self.net.pbx_take()
        statuses = [m.status for m in out if isinstance(m, Response)]
        self.assertIn(408, statuses)
        # the agent being gone ends the call: BYE toward the PBX
        self.assertIn("BYE", [m.method for m in out if isinstance(m, Request)])

    def test_unknown_dialog_481(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        bad = pbx.request("INFO").with_header("To", b"<sip:x@sbc.example.com>;tag=nope")
        self.net.from_pbx(bad)
        self.assertEqual(only(self, self.net.pbx_take(), Response).status, 481)
        self.assertEqual(self.net.agent_take(), [])


class FailureTests(CallTestCase):
    def fail_with(self, status: int, headers=None) -> Response:
        a_inv, b_inv = self.start()
        self.net.from_agent(reply(b_inv, 180))
        self.net.pbx_take()
        self.net.from_agent(reply(b_inv, status, headers=headers))
        ack = only(self, self.net.agent_take())  # hop-by-hop ACK by the transaction layer
        self.assertEqual((ack.method, ack.cseq.seq, ack.top_via.branch), ("ACK", 1, b_inv.top_via.branch))
        final = only(self, self.net.pbx_take(), Response)
        self.assertEqual(final.cseq.method, "INVITE")
        self.assertEqual(final.call_id, a_inv.call_id)
        # the PBX ACKs our non-2xx: absorbed, nothing goes to the agent
        from .test_b2bua_harness import ack_non2xx

        self.net.from_pbx(ack_non2xx(a_inv, final))
        self.assertEqual(self.net.agent_take(), [])
        ended = self.net.b2b.ended_calls()
        self.assertEqual(len(ended), 1)
        self.assertEqual(ended[0].b_status, status)
        self.assertEqual(ended[0].a_status, final.status)
        self.assertIdle()
        return final

    def test_pass_through(self) -> None:
        for status in (486, 600, 603, 404, 484):
            self.net = Net()
            final = self.fail_with(status)
            self.assertEqual(final.status, status)

    def test_5xx_becomes_503_with_retry_after(self) -> None:
        final = self.fail_with(500)
        self.assertEqual((final.status, final.get("Retry-After")), (503, b"30"))
        self.net = Net()
        final = self.fail_with(503, headers=[("Retry-After", b"120")])
        self.assertEqual((final.status, final.get("Retry-After")), (503, b"120"))

    def test_redirect_becomes_480(self) -> None:
        final = self.fail_with(302)
        self.assertEqual(final.status, 480)
        self.assertFalse(final.has("Contact"))

    def test_agent_timeout_becomes_480_retry_after(self) -> None:
        a_inv, b_inv = self.start()
        self.net.advance(31)
        retrans = self.net.agent_take()
        self.assertEqual({m.method for m in retrans}, {"INVITE"})  # Timer A retransmissions
        self.assertEqual(self.net.pbx_take(), [])
        self.net.advance(1.1)  # Timer B (64*T1 = 32 s)
        final = only(self, self.net.pbx_take(), Response)
        self.assertEqual((final.status, final.get("Retry-After")), (480, b"30"))
        self.assertEqual(self.net.b2b.ended_calls()[0].b_status, 408)
        self.assertIdle()

    def test_no_answer_timeout(self) -> None:
        self.net = Net(no_answer_timeout=20)
        a_inv, b_inv = self.start()
        self.net.from_agent(reply(b_inv, 180))
        self.net.pbx_take()
        self.net.advance(20)
        b_cancel = only(self, self.net.agent_take())
        self.assertEqual((b_cancel.method, b_cancel.top_via.branch), ("CANCEL", b_inv.top_via.branch))
        final = only(self, self.net.pbx_take(), Response)
        self.assertEqual(final.status, 480)
        self.net.from_agent(reply(b_cancel, 200))
        self.net.from_agent(reply(b_inv, 487))
        self.assertEqual(only(self, self.net.agent_take()).method, "ACK")
        self.assertEqual(self.net.pbx_take(), [])
        call = self.net.b2b.ended_calls()[0]
        self.assertEqual((call.end_reason, call.a_status, call.b_status), ("no-answer", 480, 487))
        self.assertIdle()

    def test_max_call_duration(self) -> None:
        self.net = Net(max_call_duration=3600, session_timer=None)
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        self.net.advance(3599)
        self.assertEqual(self.net.pbx_take(), [])
        self.net.advance(1.2)
        a_bye = only(self, self.net.pbx_take())
        b_bye = only(self, self.net.agent_take())
        self.assertEqual((a_bye.method, b_bye.method), ("BYE", "BYE"))
        self.net.from_pbx(reply(a_bye, 200))
        self.net.from_agent(reply(b_bye, 200))
        self.assertEqual(self.net.b2b.ended_calls()[0].end_reason, "max-duration")
        self.assertIdle()

    def test_bye_unanswered_still_ends_the_call(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        self.net.from_pbx(pbx.request("BYE"))
        self.net.pbx_take()
        self.net.agent_take()
        self.net.advance(40)  # Timer F on our BYE
        self.assertEqual(self.net.b2b.counts()["calls"], 0)
        self.assertIdle()

    def test_pbx_never_acks(self) -> None:
        a_inv, b_inv = self.start(body=b"")
        self.net.from_agent(reply(b_inv, 200, body=SDP_B))
        self.assertEqual(only(self, self.net.pbx_take(), Response).status, 200)
        self.net.advance(31.6)
        self.assertTrue(all(isinstance(m, Response) and m.status == 200 for m in self.net.pbx_take()))
        self.assertEqual(self.net.agent_take(), [])
        self.net.advance(0.5)
        a_bye = only(self, self.net.pbx_take())
        self.assertEqual(a_bye.method, "BYE")
        b_out = self.net.agent_take()
        self.assertEqual([m.method for m in b_out], ["ACK", "BYE"])
        self.net.from_pbx(reply(a_bye, 200))
        self.net.from_agent(reply(b_out[1], 200))
        self.assertEqual(self.net.b2b.ended_calls()[0].end_reason, "ack-timeout")
        self.assertIdle()


class CancelTests(CallTestCase):
    def test_cancel_after_ringing(self) -> None:
        from .test_b2bua_harness import ack_non2xx, cancel

        a_inv, b_inv = self.start()
        self.net.from_agent(reply(b_inv, 180))
        self.net.pbx_take()
        self.net.from_pbx(cancel(a_inv))
        out = self.net.pbx_take()
        self.assertEqual(sorted((m.status, m.cseq.method) for m in out), [(200, "CANCEL"), (487, "INVITE")])
        r487 = [m for m in out if m.cseq.method == "INVITE"][0]
        self.net.from_pbx(ack_non2xx(a_inv, r487))
        b_cancel = only(self, self.net.agent_take())
        self.assertEqual((b_cancel.method, b_cancel.cseq.seq), ("CANCEL", 1))
        self.assertEqual(b_cancel.top_via.branch, b_inv.top_via.branch)
        self.net.from_agent(reply(b_cancel, 200))
        self.net.from_agent(reply(b_inv, 487))
        self.assertEqual(only(self, self.net.agent_take()).method, "ACK")
        self.assertEqual(self.net.pbx_take(), [])
        call = self.net.b2b.ended_calls()[0]
        self.assertEqual((call.end_reason, call.a_status, call.b_status), ("cancel", 487, 487))
        self.assertIdle()

    def test_cancel_before_any_agent_response(self) -> None:
        from .test_b2bua_harness import cancel

        a_inv, b_inv = self.start()
        self.net.from_pbx(cancel(a_inv))
        self.assertEqual(len(self.net.pbx_take()), 2)
        self.assertEqual(self.net.agent_take(), [])  # RFC 3261 §9.1: wait for a provisional
        self.net.from_agent(reply(b_inv, 100, tag=None))
        self.assertEqual(only(self, self.net.agent_take()).method, "CANCEL")
        self.net.from_agent(reply(b_inv, 487))
        self.assertIdle()

    def test_cancel_with_silent_agent(self) -> None:
        from .test_b2bua_harness import cancel

        from .test_b2bua_harness import ack_non2xx

        a_inv, b_inv = self.start()
        self.net.from_pbx(cancel(a_inv))
        r487 = [m for m in self.net.pbx_take() if m.cseq.method == "INVITE"][0]
        self.net.from_pbx(ack_non2xx(a_inv, r487))
        self.net.advance(40)
        self.assertEqual(self.net.pbx_take(), [])
        self.assertIdle()

    def test_200_crosses_cancel(self) -> None:
        from .test_b2bua_harness import cancel

        a_inv, b_inv = self.start()
        self.net.from_agent(reply(b_inv, 180))
        self.net.pbx_take()
        self.net.from_pbx(cancel(a_inv))
        self.net.pbx_take()
        self.assertEqual(only(self, self.net.agent_take()).method, "CANCEL")
        self.net.from_agent(reply(b_inv, 200, body=SDP_B))
        out = self.net.agent_take()
        self.assertEqual([m.method for m in out], ["ACK", "BYE"])
        self.assertEqual(out[1].to.tag, "ag1")
        self.assertEqual(self.net.pbx_take(), [])  # nothing more for the PBX: it has its 487
        self.net.from_agent(reply(out[1], 200))
        self.assertEqual(self.net.b2b.ended_calls()[0].end_reason, "cancel")
        self.assertIdle()

    def test_cancel_after_answer_is_ignored(self) -> None:
        from .test_b2bua_harness import cancel

        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        self.net.from_pbx(cancel(a_inv))
        r = only(self, self.net.pbx_take(), Response)
        self.assertEqual((r.status, r.cseq.method), (200, "CANCEL"))
        self.assertEqual(self.net.agent_take(), [])
        self.assertEqual(self.net.b2b.counts()["calls"], 1)

    def test_unknown_cancel_481(self) -> None:
        from .test_b2bua_harness import cancel

        self.net.from_pbx(cancel(invite()))
        self.assertEqual(only(self, self.net.pbx_take(), Response).status, 481)


class AdmissionTests(CallTestCase):
    def refused(self, net: Net, inv: Request) -> Response:
        net.from_pbx(inv)
        r = only(self, net.pbx_take(), Response)
        self.assertEqual(net.agent_take(), [])
        return r

    def test_unknown_source_403(self) -> None:
        from sbc.sip.endpoint import Peer

        net = Net(peer=Peer("udp", "198.51.100.1", 5060, 1))
        self.assertEqual(self.refused(net, invite()).status, 403)
        self.assertEqual(net.b2b.notices()[0].reason, "no-matching-trunk")

    def test_call_limits(self) -> None:
        self.net = Net(max_calls=1)
        self.start()
        r = self.refused(self.net, invite(call_id="second"))
        self.assertEqual((r.status, r.get("Retry-After")), (503, b"30"))
        self.net = Net(max_calls_per_trunk=1)
        self.start()
        r = self.refused(self.net, invite(call_id="second"))
        self.assertEqual(r.status, 503)

    def test_fqdn_target_without_resolver_503(self) -> None:
        from sbc.config import TrunkConfig
        from .test_b2bua_harness import TRUNK
        import attrs

        trunk = attrs.evolve(TRUNK, agent_uri="sip:{user}@agent.example.com;transport=tls")
        net = Net(trunks=[trunk])
        r = self.refused(net, invite())
        self.assertEqual(r.status, 503)
        self.assertIn("agent.example.com", net.b2b.notices()[0].detail)
        self.assertIsInstance(trunk, TrunkConfig)

    def test_resolver_plugs_in(self) -> None:
        import attrs
        from sbc.sip.endpoint import Peer
        from .test_b2bua_harness import TRUNK

        class Fixed:
            def resolve(self, uri):
                return [Peer("udp", "127.0.0.1", 5090, 0)] if uri.host == "agent.example.com" else []

        trunk = attrs.evolve(TRUNK, agent_uri="sip:{user}@agent.example.com")
        self.net = Net(trunks=[trunk], resolver=Fixed())
        a_inv, b_inv = self.start()
        self.assertEqual(b_inv.uri, b"sip:agent42@agent.example.com")

    def test_outbound_proxy_route(self) -> None:
        import attrs
        from .test_b2bua_harness import TRUNK

        trunk = attrs.evolve(TRUNK, agent_uri="sip:{user}@10.9.9.9", outbound_proxy="sip:127.0.0.1:5090")
        self.net = Net(trunks=[trunk])
        a_inv, b_inv = self.start()
        self.assertEqual(b_inv.uri, b"sip:agent42@10.9.9.9")
        self.assertEqual(b_inv.get("Route"), b"<sip:127.0.0.1:5090;lr>")

    def test_user_percent_decoded_and_unsafe_refused(self) -> None:
        a_inv, b_inv = self.start(uri="sip:%2B4930123@sbc.example.com")
        self.assertEqual(b_inv.uri, b"sip:+4930123@127.0.0.1:5090")
        net = Net()
        self.assertEqual(self.refused(net, invite(uri="sip:a%40b@sbc.example.com")).status, 404)
        self.assertEqual(self.refused(net, invite(uri="sip:sbc.example.com", call_id="x2")).status, 404)

    def test_require_100rel_refused_420(self) -> None:
        """With reliable provisionals turned off, the B2BUA itself refuses Require: 100rel."""
        net = Net(reliable_provisionals=False, endpoint_supported=("100rel", "timer"))
        self.assertNotIn("100rel", net.b2b.option_tags)
        r = self.refused(net, invite(extra="Require: 100rel\r\nSupported: timer\r\n"))
        self.assertEqual(r.status, 420)
        self.assertEqual(r.get("Unsupported"), b"100rel")

    def test_max_forwards_zero_483(self) -> None:
        inv = invite().with_header("Max-Forwards", b"0")
        self.assertEqual(self.refused(self.net, inv).status, 483)

    def test_header_allowlist(self) -> None:
        a_inv, b_inv = self.start(extra=(
            "P-Asserted-Identity: <sip:+4930123@10.0.0.5>\r\nX-Case: 42\r\nPrivacy: id\r\n"
            "P-Internal: secret\r\nUser-Agent: PBX 1.0\r\nSupported: timer\r\n"))
        self.assertEqual(b_inv.get("P-Asserted-Identity"), b"<sip:+4930123@10.0.0.5>")
        self.assertEqual(b_inv.get("X-Case"), b"42")
        self.assertEqual(b_inv.get("Privacy"), b"id")
        self.assertFalse(b_inv.has("P-Internal"))
        self.assertEqual(b_inv.get("User-Agent"), b"sbc")
        # ours (RFC 4028, RFC 3262), not the PBX's line
        self.assertEqual(b_inv.get_all("Supported"), [b"timer", b"100rel"])
        net = Net(copy_headers=(), copy_x_headers=False)
        net.from_pbx(invite(extra="P-Asserted-Identity: <sip:1@10.0.0.5>\r\nX-Case: 1\r\n"))
        b2 = [m for m in net.agent_take() if isinstance(m, Request)][0]
        self.assertFalse(b2.has("P-Asserted-Identity") or b2.has("X-Case"))

    def test_retransmitted_invite_creates_one_call(self) -> None:
        a_inv, b_inv = self.start()
        self.net.from_pbx(a_inv)
        self.assertEqual(self.net.agent_take(), [])
        self.assertEqual(self.net.b2b.counts()["calls"], 1)
        self.assertEqual([m.status for m in self.net.pbx_take()], [100])


class TransportAndLifecycleTests(CallTestCase):
    def test_tcp_pbx_and_tls_agent(self) -> None:
        import attrs
        from sbc.sip.endpoint import Peer
        from .test_b2bua_harness import TRUNK

        trunk = attrs.evolve(TRUNK, agent_uri="sip:{user}@127.0.0.1:5090;transport=tls")
        pbx = Peer("tcp", "10.0.0.5", 5060, 7)
        self.net = Net(peer=pbx, trunks=[trunk], local_ports={"tls": 5061}, contact_port=lambda p: 5080)
        sent = []
        orig = self.net.b2b.messages_to_send

        def spy():
            out = orig()
            sent.extend(out)
            return out

        self.net.b2b.messages_to_send = spy
        a_inv, b_inv = self.start()
        self.assertEqual(b_inv.top_via.transport, "TLS")
        self.assertEqual(b_inv.top_via.port, 5061)
        self.assertEqual(b_inv.contacts[0].uri.port, 5061)
        self.assertEqual(b_inv.contacts[0].uri.param("transport"), "tls")
        self.assertIn(Peer("tls", "127.0.0.1", 5090, 0), [p for _m, p in sent])
        self.net.from_agent(reply(b_inv, 200, body=SDP_B))
        a_ok = only(self, self.net.pbx_take(), Response)
        self.assertEqual(len(a_ok.contacts), 1)
        self.assertEqual(str(a_ok.contacts[0].uri), "sip:sbc.example.com:5080;transport=tcp")
        self.assertIn(b"UPDATE", a_ok.get("Allow"))
        # the 2xx goes back on the PBX's own connection
        self.assertIn(pbx, [p for m, p in sent if isinstance(m, Response) and m.status == 200])

    def test_reinvite_before_ack_is_491(self) -> None:
        a_inv, b_inv = self.start()
        self.net.from_agent(reply(b_inv, 200, body=SDP_B))
        a_ok = only(self, self.net.pbx_take(), Response)
        agent = AgentDialog(b_inv)
        self.net.from_agent(agent.request("INVITE", body=SDP_B2))
        self.assertEqual(only(self, self.net.agent_take(), Response).status, 491)
        self.assertEqual(self.net.pbx_take(), [])
        pbx = PbxDialog(a_inv, a_ok)
        self.net.from_pbx(pbx.ack(a_inv))
        self.assertEqual(only(self, self.net.agent_take()).method, "ACK")
        self.net.from_agent(agent.request("INVITE", body=SDP_B2))
        self.assertEqual(only(self, self.net.pbx_take()).method, "INVITE")

    def test_bye_from_agent_before_pbx_ack_waits_for_the_ack(self) -> None:
        a_inv, b_inv = self.start()
        self.net.from_agent(reply(b_inv, 200, body=SDP_B))
        a_ok = only(self, self.net.pbx_take(), Response)
        agent = AgentDialog(b_inv)
        self.net.from_agent(agent.request("BYE"))
        out = self.net.agent_take()
        self.assertEqual(sorted(m.method if isinstance(m, Request) else str(m.status) for m in out), ["200", "ACK"])
        self.assertEqual(self.net.pbx_take(), [])  # RFC 3261 §15: no BYE before the ACK
        pbx = PbxDialog(a_inv, a_ok)
        self.net.from_pbx(pbx.ack(a_inv))
        bye = only(self, self.net.pbx_take())
        self.assertEqual(bye.method, "BYE")
        self.assertEqual(self.net.agent_take(), [])
        self.net.from_pbx(reply(bye, 200))
        self.assertIdle()

    def test_graceful_shutdown(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        a2 = invite(call_id="second@10.0.0.5", from_tag="pbx2")
        self.net.from_pbx(a2)
        self.net.pbx_take()
        b2 = only(self, self.net.agent_take())
        self.net.b2b.stop_accepting()
        self.net.from_pbx(invite(call_id="third@10.0.0.5", from_tag="pbx3"))
        r = only(self, self.net.pbx_take(), Response)
        self.assertEqual((r.status, r.get("Retry-After")), (503, b"30"))
        self.net.b2b.terminate_all(self.net.now)
        self.net.flush()
        to_pbx = self.net.pbx_take()
        to_agent = self.net.agent_take()
        self.assertEqual(sorted(m.method if isinstance(m, Request) else str(m.status) for m in to_pbx),
                         ["480", "BYE"])
        self.assertEqual(sorted(m.method for m in to_agent), ["BYE"])  # the CANCEL waits for a 1xx
        for m in to_pbx:
            if isinstance(m, Request):
                self.net.from_pbx(reply(m, 200))
            else:
                from .test_b2bua_harness import ack_non2xx

                self.net.from_pbx(ack_non2xx(a2, m))
        self.net.from_agent(reply(to_agent[0], 200))
        self.net.from_agent(reply(b2, 180))
        cancel = only(self, self.net.agent_take())
        self.assertEqual(cancel.method, "CANCEL")
        self.net.from_agent(reply(cancel, 200))
        self.net.from_agent(reply(b2, 487))
        self.assertEqual({c.end_reason for c in self.net.b2b.ended_calls()}, {"shutdown"})
        self.assertIdle()


class NextHopTests(CallTestCase):
    def test_in_dialog_requests_follow_the_agents_contact(self) -> None:
        from sbc.sip.endpoint import Peer

        a_inv, b_inv = self.start()
        self.net.from_agent(reply(b_inv, 200, body=SDP_B, contact=b"<sip:agent@127.0.0.1:5092;transport=tcp>"))
        a_ok = only(self, self.net.pbx_take(), Response)
        sent = []
        orig = self.net.b2b.messages_to_send

        def spy():
            out = orig()
            sent.extend(out)
            return out

        self.net.b2b.messages_to_send = spy
        self.net._route = lambda data, peer: None  # the harness only knows port 5090
        pbx = PbxDialog(a_inv, a_ok)
        self.net.from_pbx(pbx.ack(a_inv))
        self.net.from_pbx(pbx.request("BYE"))
        peers = {(m.method, p) for m, p in sent if isinstance(m, Request)}
        self.assertEqual(peers, {("ACK", Peer("tcp", "127.0.0.1", 5092, 0)),
                                 ("BYE", Peer("tcp", "127.0.0.1", 5092, 0))})

    def test_same_host_port_keeps_the_transport(self) -> None:
        from sbc.sip.endpoint import Peer
        import attrs
        from .test_b2bua_harness import TRUNK

        self.net = Net(trunks=[attrs.evolve(TRUNK, agent_uri="sip:{user}@127.0.0.1:5090;transport=tcp")])
        a_inv, b_inv = self.start()
        self.net.from_agent(reply(b_inv, 200, body=SDP_B))  # Contact without ;transport=
        a_ok = only(self, self.net.pbx_take(), Response)
        sent = []
        orig = self.net.b2b.messages_to_send

        def spy():
            out = orig()
            sent.extend(out)
            return out

        self.net.b2b.messages_to_send = spy
        self.net.from_pbx(PbxDialog(a_inv, a_ok).ack(a_inv))
        self.assertEqual([p for _m, p in sent], [Peer("tcp", "127.0.0.1", 5090, 0)])


class RetransmissionTests(CallTestCase):
    def test_2xx_retransmission_before_the_pbx_acks(self) -> None:
        a_inv, b_inv = self.start()
        b_ok = reply(b_inv, 200, body=SDP_B)
        self.net.from_agent(b_ok)
        a_ok = only(self, self.net.pbx_take(), Response)
        self.net.from_agent(b_ok)  # the agent retransmits: nothing to ACK yet, and no BYE
        self.assertEqual(self.net.agent_take(), [])
        self.net.from_pbx(PbxDialog(a_inv, a_ok).ack(a_inv))
        self.assertEqual(only(self, self.net.agent_take()).method, "ACK")
        self.net.from_agent(b_ok)
        self.assertEqual(only(self, self.net.agent_take()).method, "ACK")
        self.assertEqual(self.net.b2b.counts()["calls"], 1)

    def test_2xx_from_another_fork_is_acked_and_released(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        self.net.from_agent(reply(b_inv, 200, tag="fork2", body=SDP_B))
        out = self.net.agent_take()
        self.assertEqual([(m.method, m.to.tag) for m in out], [("ACK", "fork2"), ("BYE", "fork2")])
        self.assertEqual(self.net.pbx_take(), [])
        self.net.from_agent(reply(out[1], 200))
        self.assertEqual(self.net.b2b.counts()["calls"], 1)

    def test_retransmitted_bye_and_reinvite_absorbed(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        re_inv = pbx.request("INVITE", body=SDP_A2)
        self.net.from_pbx(re_inv)
        self.net.from_pbx(re_inv)
        self.assertEqual([m.status for m in self.net.pbx_take()], [100, 100])
        self.assertEqual(len(self.net.agent_take()), 1)


class PolicyTests(SynchronousTestCase):
    @given(status=st.integers(300, 699), retry=st.one_of(st.none(), st.integers(0, 3600)))
    def test_map_failure_gives_a_sane_final(self, status: int, retry) -> None:
        from sbc.b2bua.call import PASS_THROUGH, map_failure
        from sbc.b2bua.events import Fail

        out = map_failure(Fail(status, "x", retry), 30)
        self.assertTrue(out.status in PASS_THROUGH or out.status in (480, 503, 603), out)
        if status in PASS_THROUGH:
            self.assertEqual(out, Fail(status, "x", retry))
        if 500 <= status < 600:
            self.assertEqual((out.status, out.retry_after), (503, 30 if retry is None else retry))
        if 300 <= status < 400 or status == 408:
            self.assertEqual(out.status, 480)

    def test_state_tables_refuse_unknown_inputs(self) -> None:
        from sbc.b2bua.legs import LegStateError, UacLeg, UacState, UasLeg, UasState

        for cls, states in ((UasLeg, UasState), (UacLeg, UacState)):
            for (state, _what), nxt in cls.TRANSITIONS.items():
                self.assertIsInstance(state, states)
                self.assertIsInstance(nxt, states)
                self.assertIsNot(state, cls.TERMINAL)  # nothing leaves the end state
            leg = cls.__new__(cls)
            leg.state = cls.TERMINAL
            leg.side = cls.side
            self.assertRaises(LegStateError, leg._go, "bye_in")


class ResolverTests(CallTestCase):
    def net_with(self, resolver, **kwargs) -> Net:
        import attrs
        from .test_b2bua_harness import TRUNK

        trunk = attrs.evolve(TRUNK, agent_uri="sip:{user}@agent.example.com")
        return Net(trunks=[trunk], resolver=resolver, **kwargs)

    def test_failover_on_503_and_timeout(self) -> None:
        from sbc.sip.endpoint import Peer

        first, second, third = (Peer("udp", "127.0.0.1", p, 0) for p in (5091, 5092, 5090))
        failed = []

        class Three:
            def resolve(self, uri):
                return [first, second, third]

            def failed(self, peer, now):
                failed.append(peer)

        self.net = self.net_with(Three())
        sent = []
        orig = self.net.b2b.messages_to_send

        def spy():
            out = orig()
            sent.extend(out)
            return [(m, p) for m, p in out if p.port in (5060, 5090)]

        self.net.b2b.messages_to_send = spy
        self.net.from_pbx(invite())
        self.assertEqual(only(self, self.net.pbx_take(), Response).status, 100)
        inv1 = [m for m, p in sent if p == first][0]
        # the first target answers 503 (we ACK it and go on)
        self.net.from_agent(reply(inv1, 503).with_header("Via", inv1.get("Via")))
        inv2 = [m for m, p in sent if p == second and m.method == "INVITE"][0]
        self.assertEqual(inv2.cseq.seq, inv1.cseq.seq + 1)
        self.assertEqual(inv2.call_id, inv1.call_id)
        self.assertNotEqual(inv2.top_via.branch, inv1.top_via.branch)
        self.assertEqual(self.net.pbx_take(), [])
        # the second stays silent: Timer B, then the third
        self.net.advance(33)
        self.assertEqual(failed, [first, second])
        b_inv = only(self, [m for m in self.net.agent_take() if m.method == "INVITE"][:1])
        self.assertEqual(b_inv.cseq.seq, 3)
        self.assertEqual(self.net.pbx_take(), [])
        self.net.from_agent(reply(b_inv, 200, body=SDP_B))
        self.assertEqual(only(self, self.net.pbx_take(), Response).status, 200)
        self.assertEqual(self.net.b2b.notices()[0].reason, "failover")

    def test_no_failover_after_a_provisional(self) -> None:
        from sbc.sip.endpoint import Peer

        class Two:
            def resolve(self, uri):
                return [Peer("udp", "127.0.0.1", 5090, 0), Peer("udp", "127.0.0.1", 5091, 0)]

        self.net = self.net_with(Two())
        a_inv, b_inv = self.start()
        self.net.from_agent(reply(b_inv, 180))
        self.net.pbx_take()
        self.net.from_agent(reply(b_inv, 503))
        self.assertEqual([m.method for m in self.net.agent_take()], ["ACK"])
        self.assertEqual(only(self, self.net.pbx_take(), Response).status, 503)

    def test_pending_lookup(self) -> None:
        from sbc.sip.endpoint import Peer

        class Later:
            def resolve(self, uri):
                return None

        self.net = self.net_with(Later())
        for n in (1, 2):
            self.net.from_pbx(invite(call_id=f"c{n}", from_tag=f"t{n}"))
            self.assertEqual([m.status for m in self.net.pbx_take()], [100])
        self.assertEqual(self.net.agent_take(), [])
        lookups = self.net.b2b.lookups()
        self.assertEqual([str(u) for u in lookups], ["sip:agent42@agent.example.com"])  # asked once
        self.assertEqual(self.net.b2b.lookups(), [])
        self.assertEqual(self.net.b2b.counts()["lookups"], 1)
        self.net.b2b.resolved(lookups[0], [Peer("udp", "127.0.0.1", 5090, 0)], self.net.now)
        self.net.flush()
        invites = self.net.agent_take()
        self.assertEqual([m.method for m in invites], ["INVITE", "INVITE"])
        self.assertEqual(self.net.b2b.counts()["lookups"], 0)

    def test_lookup_fails_or_call_ends_meanwhile(self) -> None:
        from .test_b2bua_harness import ack_non2xx, cancel

        class Later:
            def resolve(self, uri):
                return None

        self.net = self.net_with(Later(), no_answer_timeout=10)
        first = invite(call_id="c1", from_tag="t1")
        second = invite(call_id="c2", from_tag="t2")
        self.net.from_pbx(first)
        self.net.from_pbx(second)
        self.net.pbx_take()
        self.net.from_pbx(cancel(first))  # c1 cancelled while the lookup runs
        out = self.net.pbx_take()
        self.assertEqual(sorted(m.status for m in out), [200, 487])
        self.net.from_pbx(ack_non2xx(first, [m for m in out if m.status == 487][0]))
        uri = self.net.b2b.lookups()[0]
        self.net.b2b.resolved(uri, [], self.net.now)
        self.net.flush()
        final = only(self, self.net.pbx_take(), Response)
        self.assertEqual((final.status, final.get("Retry-After")), (503, b"30"))
        self.assertEqual(final.call_id, "c2")
        self.net.from_pbx(ack_non2xx(second, final))
        self.assertEqual(self.net.agent_take(), [])
        # and a third call whose lookup never comes back ends by the no-answer timeout
        third = invite(call_id="c3", from_tag="t3")
        self.net.from_pbx(third)
        self.net.pbx_take()
        self.net.advance(10)
        final = only(self, self.net.pbx_take(), Response)
        self.assertEqual(final.status, 480)
        self.net.from_pbx(ack_non2xx(third, final))
        self.assertIdle()


class ReinviteCancelTests(CallTestCase):
    def test_cancelled_reinvite_is_cancelled_on_the_other_leg(self) -> None:
        from .test_b2bua_harness import ack_non2xx, cancel

        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        re_inv = pbx.request("INVITE", body=SDP_HOLD_A)
        self.net.from_pbx(re_inv)
        self.net.pbx_take()
        b_re = only(self, self.net.agent_take())
        self.net.from_agent(reply(b_re, 100, tag=None))
        self.net.from_pbx(cancel(re_inv))
        r = only(self, self.net.pbx_take(), Response)
        self.assertEqual((r.status, r.cseq.method), (200, "CANCEL"))
        b_cancel = only(self, self.net.agent_take())
        self.assertEqual((b_cancel.method, b_cancel.cseq.seq), ("CANCEL", b_re.cseq.seq))
        self.net.from_agent(reply(b_cancel, 200))
        self.net.from_agent(reply(b_re, 487))
        self.assertEqual(only(self, self.net.agent_take()).method, "ACK")
        r487 = only(self, self.net.pbx_take(), Response)
        self.assertEqual((r487.status, r487.cseq.method), (487, "INVITE"))
        self.net.from_pbx(ack_non2xx(re_inv, r487))
        # the call goes on; a new re-INVITE works
        self.net.from_pbx(pbx.request("INVITE", body=SDP_A))
        self.net.pbx_take()
        self.assertEqual(only(self, self.net.agent_take()).method, "INVITE")

    def test_agent_bye_overtakes_its_2xx(self) -> None:
        from .test_b2bua_harness import ack_non2xx

        a_inv, b_inv = self.start()
        self.net.from_agent(reply(b_inv, 180))
        self.net.pbx_take()
        agent = AgentDialog(b_inv)
        b_ok = reply(b_inv, 200, body=SDP_B)
        self.net.from_agent(agent.request("BYE"))  # sent after the 200, arrives first
        self.assertEqual(only(self, self.net.agent_take(), Response).status, 200)
        final = only(self, self.net.pbx_take(), Response)
        self.assertEqual(final.status, 480)
        self.net.from_pbx(ack_non2xx(a_inv, final))
        self.net.from_agent(b_ok)
        ack = only(self, self.net.agent_take())
        self.assertEqual((ack.method, ack.to.tag), ("ACK", "ag1"))
        self.assertEqual(self.net.pbx_take(), [])
        self.assertIdle()


class ReloadTests(CallTestCase):
    def test_reload_trunks_keeps_calls(self) -> None:
        import attrs
        from .test_b2bua_harness import TRUNK

        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        self.net.b2b.reload_trunks([attrs.evolve(TRUNK, agent_uri="sip:{user}@127.0.0.1:5090;transport=tcp")])
        self.net.from_pbx(pbx.request("BYE"))
        self.assertEqual(only(self, self.net.agent_take()).method, "BYE")  # the old call goes on
        self.net.from_pbx(invite(call_id="new@10.0.0.5", from_tag="n1"))
        self.net.pbx_take()
        new = only(self, self.net.agent_take())
        self.assertEqual(new.top_via.transport, "TCP")

    def test_agent_down_503(self) -> None:
        down = {"pbx"}
        self.net.b2b.agent_up = lambda trunk: trunk not in down
        self.net.from_pbx(invite())
        r = only(self, self.net.pbx_take(), Response)
        self.assertEqual((r.status, r.get("Retry-After")), (503, b"30"))
        self.assertIn("down", self.net.b2b.notices()[0].detail)
        self.assertEqual(self.net.agent_take(), [])
        down.clear()
        self.start(call_id="again@10.0.0.5")


class InDialogOptionsTests(CallTestCase):
    def test_in_dialog_options_answered_when_handed_over(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        opts = pbx.request("OPTIONS")
        # the endpoint keeps OPTIONS today; a driver may hand in-dialog ones to the B2BUA
        self.net.b2b.handle_request(opts, self.net.pbx_peer, self.net.now)
        self.net.flush()
        r = only(self, self.net.pbx_take(), Response)
        self.assertEqual((r.status, r.cseq.method), (200, "OPTIONS"))
        self.assertEqual(self.net.agent_take(), [])
        stale = pbx.request("OPTIONS").with_header("To", b"<sip:agent42@sbc.example.com>;tag=gone")
        self.net.b2b.handle_request(stale, self.net.pbx_peer, self.net.now)
        self.net.flush()
        self.assertEqual(only(self, self.net.pbx_take(), Response).status, 481)


class AddressFamilyTests(CallTestCase):
    def test_ipv6_agent_gets_our_ipv6_via_and_contact(self) -> None:
        import attrs

        from sbc.sip.message import parse_message

        from .test_b2bua_harness import TRUNK

        trunk = attrs.evolve(TRUNK, agent_uri="sip:{user}@[2001:db8::5]:5090")
        self.net = Net(trunks=[trunk], local_hosts={6: "2001:db8::10"})
        to_v6: list = []
        route = self.net._route

        def spy(data: bytes, peer) -> None:
            if peer.host == "2001:db8::5":
                to_v6.append(parse_message(data))
            else:
                route(data, peer)

        self.net._route = spy
        a_inv = invite()
        self.net.from_pbx(a_inv)
        b_inv = only(self, to_v6)
        self.assertEqual(b_inv.top_via.host, "[2001:db8::10]")
        self.assertEqual(b_inv.contacts[0].uri.host, "[2001:db8::10]")
        # toward the IPv4 PBX nothing changes
        self.assertEqual(self.net.b2b.host_for("10.0.0.5"), "192.0.2.10")
        self.assertEqual(self.net.b2b.host_for(None), "192.0.2.10")
        self.assertEqual(only(self, self.net.pbx_take(), Response).status, 100)


class RequestUriMatchTests(CallTestCase):
    """``match_ruri``: a trunk admits a call only if its Request-URI matches a pattern;
    the next trunk with the same sources may take it; otherwise 404."""

    def setUp(self) -> None:
        import re
        from ipaddress import ip_network

        from sbc.config import TrunkConfig

        net = (ip_network("10.0.0.0/24"),)
        self.us = TrunkConfig(name="us", allow=net, agent_uri="sip:{user}@127.0.0.1:5090",
                              match_ruri=(re.compile(r"^sips?:\+1"),))
        self.uk = TrunkConfig(name="uk", allow=net, agent_uri="sip:{user}@127.0.0.1:5090",
                              match_ruri=(re.compile(r"^sips?:\+44"),))
        self.net = Net(trunks=[self.us, self.uk])

    def test_first_matching_trunk_takes_the_call(self) -> None:
        self.start(user="+442071234567")
        self.assertEqual([c.trunk for c in self.net.b2b.calls.values()], ["uk"])

    def test_no_pattern_matches_404(self) -> None:
        self.net.from_pbx(invite(user="+33123456789"))
        final = self.net.pbx_take()[-1]
        self.assertEqual(final.status, 404)
        self.assertEqual(self.net.agent_take(), [])
        self.assertIn("no-matching-trunk", self.net.b2b.stats)
