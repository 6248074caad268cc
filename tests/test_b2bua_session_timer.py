# -*- test-case-name: tests.test_b2bua_session_timer -*-
"""Session timers (RFC 4028) on both legs of a bridged call, on fake time."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.message import Request, Response
from sbc.sip.session_timer import SessionTimerConfig, parse_session_expires

from .test_b2bua import CallTestCase, only
from .test_b2bua_harness import SDP_A, SDP_B, AgentDialog, Net, PbxDialog, invite, reply

#: The PBX supports timers and refreshes the A leg itself.
PBX_REFRESHES = "Supported: timer\r\nSession-Expires: 1800;refresher=uac\r\nMin-SE: 90\r\n"
#: The agent's 2xx: the SBC (its UAC) refreshes the B leg, and UPDATE is allowed.
AGENT_TIMER = [("Session-Expires", b"1800;refresher=uac"), ("Require", b"timer"),
               ("Allow", b"INVITE, ACK, CANCEL, BYE, UPDATE")]


def requests(messages: list) -> list[Request]:
    return [m for m in messages if isinstance(m, Request)]


class SessionTimerTests(CallTestCase):
    def call(self, pbx_extra: str = PBX_REFRESHES, agent_headers=AGENT_TIMER):
        a_inv = invite(extra=pbx_extra)
        self.net.from_pbx(a_inv)
        self.assertEqual(only(self, self.net.pbx_take(), Response).status, 100)
        b_inv = only(self, self.net.agent_take())
        b_ok = reply(b_inv, 200, body=SDP_B, headers=list(agent_headers))
        self.net.from_agent(b_ok)
        a_ok = only(self, self.net.pbx_take(), Response)
        self.assertEqual(a_ok.status, 200)
        pbx = PbxDialog(a_inv, a_ok)
        self.net.from_pbx(pbx.ack(a_inv))
        self.assertEqual(only(self, self.net.agent_take()).method, "ACK")
        return a_inv, b_inv, a_ok, pbx, AgentDialog(b_inv)

    def test_negotiated_per_leg(self) -> None:
        a_inv, b_inv, a_ok, pbx, agent = self.call()
        # B leg: we ask for our interval and leave the refresher open (RFC 4028 §7.1)
        self.assertEqual(parse_session_expires(b_inv.get("Session-Expires")).interval, 1800)
        self.assertIsNone(parse_session_expires(b_inv.get("Session-Expires")).refresher)
        self.assertEqual(b_inv.get("Min-SE"), b"90")
        self.assertIn(b"timer", b_inv.get_all("Supported"))
        # A leg: the PBX's choice kept (it refreshes), Require: timer since it supports timers
        se = parse_session_expires(a_ok.get("Session-Expires"))
        self.assertEqual((se.interval, se.refresher), (1800, "uac"))
        self.assertIn(b"timer", a_ok.get_all("Require"))
        call = next(iter(self.net.b2b.calls.values()))
        self.assertEqual((call.a.session.refresher.value, call.b.session.refresher.value), ("peer", "us"))

    def test_two_hour_call(self) -> None:
        """The PBX refreshes the A leg with re-INVITEs every 15 minutes; the SBC refreshes the
        B leg with UPDATE every 15 minutes; neither refresh reaches the other leg."""
        a_inv, b_inv, a_ok, pbx, agent = self.call()
        updates = pbx_refreshes = 0
        for minute in range(1, 121):
            self.net.advance(60)
            for msg in self.net.agent_take():
                self.assertIsInstance(msg, Request)
                self.assertEqual(msg.method, "UPDATE")  # never the PBX's re-INVITE
                self.assertEqual(msg.body, b"")
                self.assertIn(b"timer", msg.get_all("Supported"))
                se = parse_session_expires(msg.get("Session-Expires"))
                self.assertEqual((se.interval, se.refresher), (1800, "uac"))
                updates += 1
                self.net.from_agent(reply(msg, 200, headers=[("Session-Expires", b"1800;refresher=uac"),
                                                             ("Require", b"timer")]))
                self.assertEqual(self.net.pbx_take(), [])
            self.assertEqual(self.net.pbx_take(), [])  # the SBC never refreshes the A leg
            if minute % 14 == 0:
                refresh = pbx.request("INVITE", body=SDP_A,
                                      headers=[("Session-Expires", b"1800;refresher=uac"),
                                               ("Supported", b"timer")])
                self.net.from_pbx(refresh)
                ok = only(self, self.net.pbx_take(), Response)
                self.assertEqual((ok.status, ok.body), (200, SDP_B))  # our last SDP on the A leg
                self.assertEqual(parse_session_expires(ok.get("Session-Expires")).refresher, "uac")
                self.net.from_pbx(pbx.ack(refresh))
                self.assertEqual(self.net.agent_take(), [])
                pbx_refreshes += 1
        self.assertEqual(updates, 8)  # 7200 s / 900 s
        self.assertEqual(pbx_refreshes, 8)
        self.assertEqual(self.net.b2b.counts()["calls"], 1)
        self.assertEqual(self.net.b2b.ended_calls(), [])
        self.net.from_pbx(pbx.request("BYE"))
        self.net.pbx_take()
        self.net.from_agent(reply(only(self, self.net.agent_take()), 200))
        self.assertEqual(self.net.b2b.ended_calls()[0].end_reason, "bye-a")
        self.assertIdle()

    def test_pbx_stops_refreshing(self) -> None:
        """The PBX is the A leg's refresher and goes silent: BYE on both legs at
        interval - min(32, interval/3) (RFC 4028 §10)."""
        self.call()
        answered = self.net.now
        self.net.advance(900)
        upd = only(self, self.net.agent_take())  # our B-leg refresh at 900 s is answered
        self.assertEqual(upd.method, "UPDATE")
        self.net.from_agent(reply(upd, 200, headers=[("Session-Expires", b"1800;refresher=uac")]))
        self.net.advance(867)
        self.assertEqual(self.net.agent_take(), [])
        self.assertEqual(self.net.pbx_take(), [])
        self.net.advance(answered + 1768.1 - self.net.now)
        a_bye = only(self, self.net.pbx_take())
        b_bye = only(self, self.net.agent_take())
        self.assertEqual((a_bye.method, b_bye.method), ("BYE", "BYE"))
        self.net.from_pbx(reply(a_bye, 200))
        self.net.from_agent(reply(b_bye, 200))
        call = self.net.b2b.ended_calls()[0]
        self.assertEqual(call.end_reason, "session-timer")
        self.assertIn("session-expired", [n.reason for n in self.net.b2b.notices()])
        self.assertIdle()

    def test_agent_stops_answering_refreshes(self) -> None:
        """Our B-leg refresh gets 481: the agent's dialog is gone (so no BYE there) and
        the PBX gets BYE."""
        self.call()
        self.net.advance(900)
        upd = only(self, self.net.agent_take())
        self.assertEqual(upd.method, "UPDATE")
        self.net.from_agent(reply(upd, 481))
        a_bye = only(self, self.net.pbx_take())
        self.assertEqual(a_bye.method, "BYE")
        self.assertEqual(self.net.agent_take(), [])
        self.net.from_pbx(reply(a_bye, 200))
        self.assertEqual(self.net.b2b.ended_calls()[0].end_reason, "session-timer")
        self.assertIdle()

    def test_refresh_timeout_ends_the_call(self) -> None:
        self.call()
        self.net.advance(900)
        self.assertEqual(only(self, self.net.agent_take()).method, "UPDATE")
        self.net.advance(31)
        self.assertEqual(self.net.pbx_take(), [])
        self.net.advance(1.1)  # Timer F (64*T1): our refresh got no answer
        self.assertEqual([m.method for m in requests(self.net.pbx_take())], ["BYE"])
        self.assertIn("BYE", [m.method for m in requests(self.net.agent_take())])
        self.assertEqual(self.net.b2b.calls.popitem()[1].end_reason, "session-timer")

    def test_refresh_retried_after_491(self) -> None:
        self.call()
        self.net.advance(900)
        upd = only(self, self.net.agent_take())
        self.net.from_agent(reply(upd, 491))
        self.assertEqual(self.net.pbx_take(), [])
        self.net.advance(4.1)
        again = only(self, self.net.agent_take())
        self.assertEqual(again.method, "UPDATE")
        self.assertGreater(again.cseq.seq, upd.cseq.seq)
        self.net.from_agent(reply(again, 200))
        self.assertEqual(self.net.b2b.counts()["calls"], 1)

    def test_sbc_refreshes_with_reinvite_when_update_not_allowed(self) -> None:
        """A PBX without timer support and without UPDATE in Allow: the SBC refreshes the A
        leg with a re-INVITE carrying exactly the SDP it last sent there."""
        a_inv, b_inv, a_ok, pbx, agent = self.call(pbx_extra="", agent_headers=AGENT_TIMER)
        se = parse_session_expires(a_ok.get("Session-Expires"))
        self.assertEqual(se.refresher, "uas")  # we refresh the A leg
        self.assertFalse(a_ok.has("Require"))
        self.net.advance(900)
        out = requests(self.net.pbx_take())
        self.assertEqual(len(out), 1)
        re_inv = out[0]
        self.assertEqual((re_inv.method, re_inv.body), ("INVITE", SDP_B))
        self.assertEqual(re_inv.call_id, a_inv.call_id)
        ups = self.net.agent_take()  # the B leg's own UPDATE refresh, at the same moment
        self.assertEqual([m.method for m in ups], ["UPDATE"])
        self.net.from_agent(reply(ups[0], 200))
        self.net.from_pbx(reply(re_inv, 200, body=SDP_A, tag=None, contact=b"<sip:alice@10.0.0.5:5060>"))
        ack = only(self, self.net.pbx_take())
        self.assertEqual((ack.method, ack.cseq.seq), ("ACK", re_inv.cseq.seq))
        self.assertEqual(self.net.agent_take(), [])  # nothing of it on the B leg
        self.net.advance(900)
        self.assertEqual([m.method for m in requests(self.net.pbx_take())], ["INVITE"])

    def test_refresh_from_agent_answered_on_its_leg(self) -> None:
        a_inv, b_inv, a_ok, pbx, agent = self.call()
        re_inv = agent.request("INVITE", body=SDP_B, headers=[("Session-Expires", b"1800"),
                                                              ("Supported", b"timer")])
        self.net.from_agent(re_inv)
        ok = only(self, self.net.agent_take(), Response)
        self.assertEqual((ok.status, ok.body), (200, SDP_A))
        self.assertEqual(self.net.pbx_take(), [])
        self.net.from_agent(agent.ack(re_inv))
        self.assertEqual(self.net.pbx_take(), [])
        upd = agent.request("UPDATE")
        self.net.from_agent(upd)
        ok = only(self, self.net.agent_take(), Response)
        self.assertEqual((ok.status, ok.body), (200, b""))
        self.assertEqual(self.net.pbx_take(), [])
        # a real change still crosses
        hold = SDP_B.replace(b"o=agent 1 1", b"o=agent 1 2").replace(b"sendrecv", b"sendonly")
        self.net.from_agent(agent.request("INVITE", body=hold))
        self.assertEqual(only(self, self.net.pbx_take()).body, hold)

    def test_relayed_change_counts_as_refresh(self) -> None:
        a_inv, b_inv, a_ok, pbx, agent = self.call()
        self.net.advance(800)
        hold = SDP_A.replace(b"o=pbx 1 1", b"o=pbx 1 2").replace(b"sendrecv", b"sendonly")
        re_inv = pbx.request("INVITE", body=hold, headers=[("Session-Expires", b"1800;refresher=uac"),
                                                           ("Supported", b"timer")])
        self.net.from_pbx(re_inv)
        self.net.pbx_take()
        b_re = only(self, self.net.agent_take())
        self.assertEqual(parse_session_expires(b_re.get("Session-Expires")).refresher, "uac")
        self.net.from_agent(reply(b_re, 200, body=SDP_B, headers=[("Session-Expires", b"1800;refresher=uac")]))
        a_re_ok = only(self, self.net.pbx_take(), Response)
        self.assertEqual(parse_session_expires(a_re_ok.get("Session-Expires")).refresher, "uac")
        self.net.from_pbx(pbx.ack(re_inv))
        self.net.agent_take()
        self.net.advance(899)  # 1699 s after the answer, 899 s after the relayed change
        self.assertEqual(self.net.agent_take(), [])
        self.net.advance(1.1)
        self.assertEqual([m.method for m in self.net.agent_take()], ["UPDATE"])

    def test_422_on_the_b_leg(self) -> None:
        self.net = Net(session_timer=SessionTimerConfig(session_expires=300, min_se=90))
        a_inv = invite(extra=PBX_REFRESHES)
        self.net.from_pbx(a_inv)
        self.net.pbx_take()
        b_inv = only(self, self.net.agent_take())
        self.assertEqual(b_inv.get("Session-Expires"), b"300")
        self.net.from_agent(reply(b_inv, 422, headers=[("Min-SE", b"1200")]))
        out = self.net.agent_take()
        self.assertEqual([m.method for m in out], ["ACK", "INVITE"])
        b_inv2 = out[1]
        self.assertEqual(b_inv2.cseq.seq, b_inv.cseq.seq + 1)
        self.assertEqual(b_inv2.call_id, b_inv.call_id)
        self.assertEqual(b_inv2.from_.tag, b_inv.from_.tag)
        self.assertEqual((b_inv2.get("Session-Expires"), b_inv2.get("Min-SE")), (b"1200", b"1200"))
        self.assertEqual(self.net.pbx_take(), [])  # the PBX sees nothing of it
        self.net.from_agent(reply(b_inv2, 200, body=SDP_B, headers=[("Session-Expires", b"1200;refresher=uac")]))
        a_ok = only(self, self.net.pbx_take(), Response)
        self.assertEqual(a_ok.status, 200)
        call = next(iter(self.net.b2b.calls.values()))
        self.assertEqual(call.b.session.interval, 1200)
        self.assertEqual(call.a.session.interval, 300)  # each leg its own interval

    def test_second_422_fails_the_call(self) -> None:
        a_inv = invite(extra=PBX_REFRESHES)
        self.net.from_pbx(a_inv)
        self.net.pbx_take()
        b_inv = only(self, self.net.agent_take())
        self.net.from_agent(reply(b_inv, 422, headers=[("Min-SE", b"3600")]))
        b_inv2 = requests(self.net.agent_take())[-1]
        self.net.from_agent(reply(b_inv2, 422, headers=[("Min-SE", b"7200")]))
        final = [m for m in self.net.pbx_take() if isinstance(m, Response)]
        self.assertEqual([m.status for m in final], [480])
        self.assertIdle()

    def test_pbx_interval_too_small_422(self) -> None:
        self.net.from_pbx(invite(extra="Supported: timer\r\nSession-Expires: 60\r\n"))
        r = only(self, self.net.pbx_take(), Response)
        self.assertEqual((r.status, r.get("Min-SE")), (422, b"90"))
        self.assertEqual(self.net.agent_take(), [])
        self.assertIdle()

    def test_require_timer_passes_the_endpoint(self) -> None:
        """The Endpoint must be given the B2BUA's option tags, or ``Require: timer`` is
        refused (420) before the B2BUA sees it."""
        net = Net(endpoint_supported=())
        net.from_pbx(invite(extra=PBX_REFRESHES + "Require: timer\r\n"))
        self.assertEqual(only(self, net.pbx_take(), Response).status, 420)
        self.assertIn("timer", self.net.b2b.option_tags)
        self.net.from_pbx(invite(extra=PBX_REFRESHES + "Require: timer\r\n"))
        self.assertEqual(only(self, self.net.pbx_take(), Response).status, 100)
        self.assertEqual(only(self, self.net.agent_take()).method, "INVITE")

    def test_timers_off(self) -> None:
        self.net = Net(session_timer=None)
        a_inv, b_inv = self.start()
        self.assertFalse(b_inv.has("Session-Expires"))
        self.assertNotIn("timer", self.net.b2b.option_tags)


class SessionTimerStateTests(SynchronousTestCase):
    def test_bye_stops_the_timers(self) -> None:
        case = SessionTimerTests("test_negotiated_per_leg")
        case.setUp()
        a_inv, b_inv, a_ok, pbx, agent = case.call()
        self.assertGreater(case.net.b2b.counts()["timers"], 0)
        case.net.from_agent(agent.request("BYE"))
        case.net.agent_take()
        case.net.from_pbx(reply(only(self, case.net.pbx_take()), 200))
        self.assertEqual(case.net.b2b.counts()["timers"], 0)
