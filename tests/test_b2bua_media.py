# -*- test-case-name: tests.test_b2bua_media -*-
"""The B2BUA with a media engine: SDP through the engine on every offer/answer path, DTMF
from RTP (engine) and from SIP INFO turned into agent events, media timeout, and agent
events sent as INFO.  The engine is a recording fake; the relay has its own tests."""

from __future__ import annotations

from ipaddress import ip_network
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from sbc.config import DtmfConfig, TrunkConfig
from sbc.events.schema import CallEnded, CallStarted, DtmfEventReceived, TextSubmitted, to_json
from sbc.media.core.engine import MediaError, SideOptions
from sbc.media.core.rfc4733 import Keypress
from sbc.sip.message import Response

from .test_b2bua import CallTestCase, only
from .test_b2bua_harness import SDP_A, SDP_B, Net, PbxDialog, invite, reply


def tagged(sdp: bytes, side: str) -> bytes:
    """What the fake engine makes of ``sdp`` arriving from ``side``."""
    return sdp.replace(b"c=IN IP4 ", b"c=IN IP4 relay-for-" + side.encode() + b"-")


def info_request(pbx: PbxDialog, content_type: bytes, body: bytes) -> Any:
    return pbx.dialog.create_request("INFO", via=pbx._via(), headers=[("Content-Type", content_type)], body=body)


class FakeSession:
    def __init__(self, engine: "FakeEngine", call_id: str, a: SideOptions, b: SideOptions, listener: Any) -> None:
        self.engine = engine
        self.call_id = call_id
        self.options = {"a": a, "b": b}
        self.listener = listener
        self.log: list[tuple[str, str, bytes]] = []
        self.vad: list[bool] = []
        self.released = 0

    def offer(self, from_side: str, sdp: bytes) -> bytes:
        self.log.append(("offer", from_side, sdp))
        if b"m=video" in sdp:
            raise MediaError(488, "no video here")
        return tagged(sdp, from_side)

    def answer(self, from_side: str, sdp: bytes, *, provisional: bool = False) -> bytes:
        self.log.append(("early-answer" if provisional else "answer", from_side, sdp))
        if b"m=video" in sdp:
            raise MediaError(488, "no video here")
        return tagged(sdp, from_side)

    def set_vad(self, on: bool) -> None:
        self.vad.append(on)

    def release(self) -> None:
        self.released += 1


class FakeEngine:
    def __init__(self, ports: int = 10) -> None:
        self.ports = ports
        self.sessions: list[FakeSession] = []

    def allocate(self, call_id: str, a: SideOptions, b: SideOptions, listener: Any) -> FakeSession:
        if self.ports <= 0:
            raise MediaError(503, "no ports left")
        self.ports -= 1
        session = FakeSession(self, call_id, a, b, listener)
        self.sessions.append(session)
        return session


TRUNK = TrunkConfig(name="pbx", allow=(ip_network("10.0.0.0/24"),), agent_uri="sip:{user}@127.0.0.1:5090",
                    srtp="required", dtmf=DtmfConfig(submit_key="#", idle_timeout=2.5))


class MediaTestCase(CallTestCase):
    def setUp(self) -> None:
        self.engine = FakeEngine()
        self.net = Net(media=self.engine, trunks=[TRUNK])

    @property
    def session(self) -> FakeSession:
        return self.engine.sessions[-1]

    def events(self) -> list[Any]:
        return self.net.b2b.agent_events()


class SdpPathTests(MediaTestCase):
    def test_offer_answer_through_the_engine(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        self.assertEqual(b_inv.body, tagged(SDP_A, "a"))
        self.assertEqual(a_ok.body, tagged(SDP_B, "b"))
        self.assertEqual([(kind, side) for kind, side, _ in self.session.log], [("offer", "a"), ("answer", "b")])
        a, b = self.session.options["a"], self.session.options["b"]
        self.assertEqual((a.srtp, a.dtmf, a.vad, a.pass_tones), ("required", True, True, False))
        self.assertEqual((b.srtp, b.dtmf), ("off", False))
        self.net.from_pbx(pbx.request("BYE"))
        self.net.from_agent(reply(only(self, self.net.agent_take()), 200))
        self.assertEqual(self.session.released, 1)
        events = self.events()
        self.assertIsInstance(events[0], CallStarted)
        self.assertEqual((events[0].trunk, events[0].callee, events[0].caller), ("pbx", "agent42", "alice"))
        self.assertIsInstance(events[-1], CallEnded)
        self.assertEqual((events[-1].reason, events[-1].a_status, events[-1].b_status), ("bye-a", 200, 200))
        self.assertEqual(to_json(events[-1])["type"], "call.ended")
        self.assertIdle()

    def test_late_offer_from_the_agent_answered_in_the_ack(self) -> None:
        a_inv, b_inv = self.start(body=b"")
        self.net.from_agent(reply(b_inv, 200, body=SDP_B))
        a_ok = only(self, self.net.pbx_take(), Response)
        self.assertEqual(a_ok.body, tagged(SDP_B, "b"))
        self.net.from_pbx(PbxDialog(a_inv, a_ok).ack(a_inv, body=SDP_A))
        b_ack = only(self, self.net.agent_take())
        self.assertEqual(b_ack.body, tagged(SDP_A, "a"))
        self.assertEqual([(k, s) for k, s, _ in self.session.log], [("offer", "b"), ("answer", "a")])

    def test_early_media_then_answer(self) -> None:
        a_inv, b_inv = self.start()
        self.net.from_agent(reply(b_inv, 183, body=SDP_B))
        self.assertEqual(only(self, self.net.pbx_take(), Response).body, tagged(SDP_B, "b"))
        self.net.from_agent(reply(b_inv, 200, body=SDP_B))
        self.assertEqual(only(self, self.net.pbx_take(), Response).body, tagged(SDP_B, "b"))
        self.assertEqual([(k, s) for k, s, _ in self.session.log],
                         [("offer", "a"), ("early-answer", "b"), ("answer", "b")])

    def test_reinvite_both_ways(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        hold = SDP_A.replace(b"sendrecv", b"sendonly")
        re_inv = pbx.request("INVITE", body=hold)
        self.net.from_pbx(re_inv)
        self.net.pbx_take()
        b_re = only(self, self.net.agent_take())
        self.assertEqual(b_re.body, tagged(hold, "a"))
        self.net.from_agent(reply(b_re, 200, body=SDP_B))
        self.assertEqual(only(self, self.net.pbx_take(), Response).body, tagged(SDP_B, "b"))
        self.net.from_pbx(pbx.ack(re_inv))
        self.net.agent_take()
        # offerless re-INVITE from the agent: the PBX's 200 offers, the agent's ACK answers
        re2 = agent.request("INVITE")
        self.net.from_agent(re2)
        self.net.agent_take()
        a_re = only(self, self.net.pbx_take())
        self.net.from_pbx(reply(a_re, 200, body=SDP_A, tag=None, contact=b"<sip:alice@10.0.0.5:5060>"))
        self.assertEqual(only(self, self.net.agent_take(), Response).body, tagged(SDP_A, "a"))
        self.net.from_agent(agent.ack(re2, body=SDP_B))
        self.assertEqual(only(self, self.net.pbx_take()).body, tagged(SDP_B, "b"))
        self.assertEqual([(k, s) for k, s, _ in self.session.log][2:],
                         [("offer", "a"), ("answer", "b"), ("offer", "a"), ("answer", "b")])

    def test_reoffer_the_engine_refuses_gets_488_and_is_not_relayed(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        re_inv = pbx.request("INVITE", body=SDP_A + b"m=video 5000 RTP/AVP 96\r\n")
        self.net.from_pbx(re_inv)
        statuses = [r.status for r in self.net.pbx_take()]
        self.assertEqual(statuses[-1], 488)
        self.assertEqual(self.net.agent_take(), [])
        # the call goes on: a later re-INVITE works
        re2 = pbx.request("INVITE", body=SDP_A)
        self.net.from_pbx(re2)
        self.net.pbx_take()
        self.assertEqual(only(self, self.net.agent_take()).body, tagged(SDP_A, "a"))

    def test_initial_offer_refused_488_no_b_leg(self) -> None:
        self.net.from_pbx(invite(body=SDP_A + b"m=video 5000 RTP/AVP 96\r\n"))
        statuses = [r.status for r in self.net.pbx_take()]
        self.assertEqual(statuses[-1], 488)
        self.assertEqual(self.net.agent_take(), [])
        self.assertEqual(self.session.released, 1)
        self.assertEqual(self.net.b2b.counts()["calls"], 0)

    def test_no_ports_503_with_retry_after(self) -> None:
        self.engine.ports = 0
        self.net.from_pbx(invite())
        final = self.net.pbx_take()[-1]
        self.assertEqual(final.status, 503)
        self.assertEqual(final.get("Retry-After"), b"30")
        self.assertEqual(self.net.agent_take(), [])

    def test_media_timeout_hangs_up_both_legs(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        self.net.b2b.media_timeout(self.session.call_id, self.net.now)
        self.net.flush()
        a_bye, b_bye = only(self, self.net.pbx_take()), only(self, self.net.agent_take())
        self.assertEqual((a_bye.method, b_bye.method), ("BYE", "BYE"))
        self.net.from_pbx(reply(a_bye, 200, tag=None))
        self.net.from_agent(reply(b_bye, 200, tag=None))
        call = self.net.b2b.ended_calls()[0]
        self.assertEqual(call.end_reason, "media-timeout")
        self.assertEqual(self.session.released, 1)
        self.assertIdle()

    def test_media_disabled_passes_sdp_untouched(self) -> None:
        self.net = Net(trunks=[TRUNK])
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        self.assertEqual((b_inv.body, a_ok.body), (SDP_A, SDP_B))


class DtmfTests(MediaTestCase):
    def keys(self, digits: str) -> None:
        for d in digits:
            self.net.b2b.media_keypress(self.session.call_id, Keypress(d, self.net.now, "rfc4733"))
            self.net.flush()

    def test_rfc4733_keys_then_hash(self) -> None:
        self.answer()
        self.events()
        self.keys("123#")
        events = self.events()
        audits = [e for e in events if isinstance(e, DtmfEventReceived)]
        self.assertEqual([e.event for e in audits], ["1", "2", "3", "#"])
        texts = [e for e in events if isinstance(e, TextSubmitted)]
        self.assertEqual([(t.text, t.trigger) for t in texts], [("123", "#")])
        self.assertEqual(texts[0].call_id, self.session.call_id)
        self.assertEqual(self.session.vad, [True, False])  # VAD only while digits are buffered

    def test_idle_submit(self) -> None:
        self.answer()
        self.events()
        self.keys("42")
        self.net.advance(2.4)
        self.assertEqual([e for e in self.events() if isinstance(e, TextSubmitted)], [])
        self.net.advance(0.2)
        texts = [e for e in self.events() if isinstance(e, TextSubmitted)]
        self.assertEqual([(t.text, t.trigger) for t in texts], [("42", "idle")])

    def test_speech_submits(self) -> None:
        self.answer()
        self.events()
        self.keys("7")
        self.net.b2b.media_speech(self.session.call_id, self.net.now)
        texts = [e for e in self.events() if isinstance(e, TextSubmitted)]
        self.assertEqual([(t.text, t.trigger) for t in texts], [("7", "speech")])

    def test_info_dtmf_relay_is_answered_and_not_relayed(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        self.events()
        for digit, ctype, body in (("1", b"application/dtmf-relay", b"Signal=1\r\nDuration=160\r\n"),
                                   ("2", b"application/dtmf", b"2"),
                                   ("#", b"application/dtmf-relay", b"Signal=#\r\nDuration=160\r\n")):
            info = info_request(pbx, ctype, body)
            self.net.from_pbx(info)
            ok = only(self, self.net.pbx_take(), Response)
            self.assertEqual((ok.status, ok.cseq.method), (200, "INFO"))
            self.assertEqual(self.net.agent_take(), [])
        events = self.events()
        self.assertEqual([e.event for e in events if isinstance(e, DtmfEventReceived)], ["1", "2", "#"])
        self.assertEqual([(t.text, t.trigger) for t in events if isinstance(t, TextSubmitted)], [("12", "#")])

    def test_other_info_still_relayed(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        info = info_request(pbx, b"application/x-custom", b"hello")
        self.net.from_pbx(info)
        b_info = only(self, self.net.agent_take())
        self.assertEqual((b_info.method, b_info.body), ("INFO", b"hello"))

    def test_events_as_sip_info_to_the_agent(self) -> None:
        self.net = Net(media=self.engine, trunks=[TRUNK], events_sip_info=True)
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        self.keys("5")
        b_info = only(self, self.net.agent_take())
        self.assertEqual((b_info.method, b_info.get("Content-Type")), ("INFO", b"application/json"))
        self.assertIn(b'"input_audio_buffer.dtmf_event_received"', b_info.body)
        self.net.from_agent(reply(b_info, 200, tag=None))
        self.assertEqual(self.net.pbx_take(), [])  # the answer is ours, not relayed

    def test_keys_after_the_end_are_ignored(self) -> None:
        a_inv, b_inv, a_ok, b_ok, pbx, agent = self.answer()
        call_id = self.session.call_id
        self.net.from_pbx(pbx.request("BYE"))
        self.net.from_agent(reply(only(self, self.net.agent_take()), 200))
        self.events()
        self.net.b2b.media_keypress(call_id, Keypress("1", self.net.now, "rfc4733"))
        self.assertEqual(self.events(), [])
        self.assertIdle()


class ManyCallsTests(MediaTestCase):
    def test_every_session_released(self) -> None:
        for i in range(5):
            self.net.from_pbx(invite(call_id=f"c{i}@pbx", from_tag=f"t{i}"))
        self.net.pbx_take()
        for b_inv in self.net.agent_take():
            self.net.from_agent(reply(b_inv, 486))
        self.net.settle()
        self.assertEqual([s.released for s in self.engine.sessions], [1] * 5)
        self.assertIdle()


class VendorSrtpDefaultTests(SynchronousTestCase):
    """A trunk without ``srtp`` takes its vendor plugin's default (Teams: required)."""

    def test_vendor_default_then_optional(self) -> None:
        from sbc.quirks.chain import build_chains
        from sbc.quirks.loader import registry

        teams = TrunkConfig(name="teams", vendor="teams", allow=(ip_network("10.0.0.0/24"),),
                            agent_uri="sip:{user}@127.0.0.1:5090")
        plain = TrunkConfig(name="plain", allow=(ip_network("10.0.1.0/24"),), agent_uri="sip:{user}@127.0.0.1:5090")
        mine = TrunkConfig(name="mine", vendor="teams", srtp="off", allow=(ip_network("10.0.2.0/24"),),
                           agent_uri="sip:{user}@127.0.0.1:5090")
        trunks = [teams, plain, mine]
        net = Net(media=FakeEngine(), trunks=trunks, quirks=build_chains(trunks, registry(), "sbc.example.com"))
        self.assertEqual([net.b2b._trunk_srtp(t) for t in trunks], ["required", "optional", "off"])
        self.assertEqual(Net(trunks=[plain]).b2b._trunk_srtp(plain), "optional")  # no quirks at all
