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


# --------------------------------------------------------------------------- Replaces (RFC 3891)


def escaped(replaces: str) -> str:
    from sbc.sip.replaces import escape_header_value

    return escape_header_value(replaces)


class ReplacesTestCase(CallTestCase):
    """Two calls held at once (call 1 and call 2), as for an attended transfer."""

    def setUp(self) -> None:
        import re

        self.net = Net(trunks=[attrs.evolve(TRUNK, allow_refer=True, match_ruri=(re.compile("agent"),)),
                               attrs.evolve(TRUNK, name="pbx2", allow_refer=True, match_ruri=(re.compile("sales"),))])

    def call(self, n: int, user: str = "agent42", answer: bool = True):
        """Call ``n``: PBX Call-ID pbx-call-<n>@10.0.0.5, PBX tag pbx<n>, agent tag ag<n>."""
        from .test_b2bua_harness import SDP_A, SDP_B, AgentDialog, PbxDialog, invite

        a_inv = invite(call_id=f"pbx-call-{n}@10.0.0.5", from_tag=f"pbx{n}", user=user)
        self.net.from_pbx(a_inv)
        self.net.pbx_take()
        b_inv = only(self, self.net.agent_take())
        self.net.from_agent(reply(b_inv, 180, tag=f"ag{n}"))
        ringing = only(self, self.net.pbx_take(), Response)
        if not answer:
            return a_inv, b_inv, ringing, None, None
        self.net.from_agent(reply(b_inv, 200, tag=f"ag{n}", body=SDP_B))
        a_ok = only(self, self.net.pbx_take(), Response)
        pbx = PbxDialog(a_inv, a_ok)
        self.net.from_pbx(pbx.ack(a_inv, body=b"" if a_inv.body else SDP_A))
        self.assertEqual(only(self, self.net.agent_take()).method, "ACK")
        return a_inv, b_inv, a_ok, pbx, AgentDialog(b_inv, tag=f"ag{n}")

    def notices(self) -> list[str]:
        return [n.reason for n in self.net.b2b.notices()]


class ReferReplacesTests(ReplacesTestCase):
    """REFER from the agent host with Replaces in its Refer-To: the dialog it names (the agent
    host's view of call 2) is mapped to the PBX's view of call 2."""

    def refer(self, agent, refer_to: bytes) -> Request:
        self.net.from_agent(agent.request("REFER", headers=[("Refer-To", refer_to)]))
        return only(self, self.net.pbx_take())

    def test_replaces_mapped_to_the_pbx_dialog(self) -> None:
        from sbc.sip.replaces import Replaces, embedded_replaces

        a1, b1, a1_ok, pbx1, agent1 = self.call(1)
        a2, b2, a2_ok, pbx2, agent2 = self.call(2)
        rep = f"{b2.call_id};to-tag={b2.from_.tag};from-tag=ag2"
        a_refer = self.refer(agent1, f"<sip:alice@192.0.2.10?Replaces={escaped(rep)}>".encode())
        self.assertEqual((a_refer.method, a_refer.call_id), ("REFER", a1.call_id))
        addr, mapped = embedded_replaces(a_refer.get("Refer-To"))
        # the dialog as the PBX knows call 2: its Call-ID, to-tag its own tag, from-tag ours
        self.assertEqual(mapped, Replaces("pbx-call-2@10.0.0.5", "pbx2", a2_ok.to.tag))
        # the transfer target as the PBX knows it: its Contact in call 2 (RFC 5589)
        self.assertEqual(str(addr.uri).split("?")[0], "sip:alice@10.0.0.5:5060")
        raw = a_refer.get("Refer-To")
        self.assertIn(b"Replaces=pbx-call-2%4010.0.0.5%3Bto-tag%3Dpbx2%3Bfrom-tag%3D", raw)
        for leak in (b2.call_id.encode(), b"192.0.2.10", b"ag2", b2.from_.tag.encode()):
            self.assertNotIn(leak, raw)
        self.net.from_pbx(reply(a_refer, 202, tag=None))
        self.assertEqual(only(self, self.net.agent_take(), Response).status, 202)
        self.assertEqual(self.net.b2b.stats.get("refer-replaces-mapped"), 1)

    def test_tags_either_way_round_early_only_and_other_uri_headers_kept(self) -> None:
        from sbc.sip.replaces import embedded_replaces

        a1, b1, a1_ok, pbx1, agent1 = self.call(1)
        a2, b2, a2_ok, pbx2, agent2 = self.call(2)
        rep = f"{b2.call_id};from-tag={b2.from_.tag};to-tag=ag2;early-only"  # the agent's own view
        a_refer = self.refer(agent1, f'"Bob" <sip:bob@192.0.2.10;user=phone?Require=replaces&Replaces={escaped(rep)}>'
                             .encode())
        addr, mapped = embedded_replaces(a_refer.get("Refer-To"))
        self.assertEqual((mapped.call_id, mapped.to_tag, mapped.from_tag, mapped.early_only),
                         ("pbx-call-2@10.0.0.5", "pbx2", a2_ok.to.tag, True))
        self.assertEqual(addr.display, "Bob")
        self.assertEqual([n for n, _v in addr.uri.headers], ["Require", "Replaces"])

    def test_replaces_naming_a_call_of_another_trunk_403(self) -> None:
        a1, b1, a1_ok, pbx1, agent1 = self.call(1)
        a2, b2, a2_ok, pbx2, agent2 = self.call(2, user="sales7")
        rep = f"{b2.call_id};to-tag={b2.from_.tag};from-tag=ag2"
        self.net.from_agent(agent1.request("REFER", headers=[("Refer-To", f"<sip:x@192.0.2.10?Replaces={escaped(rep)}>"
                                                                          .encode())]))
        r = only(self, self.net.agent_take(), Response)
        self.assertEqual(r.status, 403)
        self.assertEqual(self.net.pbx_take(), [])
        self.assertIn("refer-replaces-refused", self.notices())
        self.assertEqual(self.net.b2b.counts()["calls"], 2)  # both calls go on

    def test_replaces_naming_an_unknown_dialog_passed_unchanged(self) -> None:
        a1, b1, a1_ok, pbx1, agent1 = self.call(1)
        refer_to = b"<sip:x@192.0.2.77?Replaces=elsewhere%3Bto-tag%3D1%3Bfrom-tag%3D2>"
        self.assertEqual(self.refer(agent1, refer_to).get("Refer-To"), refer_to)
        self.assertIn("refer-replaces-unknown", self.notices())

    def test_replaces_naming_the_pbx_side_dialog_is_not_mapped(self) -> None:
        """Only the agent host's view of a dialog is mapped: the PBX's Call-ID and tags are not
        a dialog the agent host has."""
        a1, b1, a1_ok, pbx1, agent1 = self.call(1)
        a2, b2, a2_ok, pbx2, agent2 = self.call(2)
        pbx_view = escaped(f"{a2.call_id};to-tag=pbx2;from-tag={a2_ok.to.tag}")
        refer_to = f"<sip:x@192.0.2.77?Replaces={pbx_view}>".encode()
        self.assertEqual(self.refer(agent1, refer_to).get("Refer-To"), refer_to)
        self.assertIn("refer-replaces-unknown", self.notices())

    def test_malformed_replaces_400(self) -> None:
        a1, b1, a1_ok, pbx1, agent1 = self.call(1)
        for refer_to in (b"<sip:x@192.0.2.77?Replaces=abc%3Bto-tag%3D1>",  # no from-tag
                         b"<sip:x@192.0.2.77?Replaces=a%3Bto-tag%3D1%3Bfrom-tag%3D2"
                         b"&Replaces=b%3Bto-tag%3D1%3Bfrom-tag%3D2>",  # two of them
                         b"<sip:x@192.0.2.77?Replaces=a%3Bto-tag%3D1%3Bto-tag%3D3%3Bfrom-tag%3D2>",
                         b"<sip:x@@?Replaces=x>"):
            self.net.from_agent(agent1.request("REFER", headers=[("Refer-To", refer_to)]))
            self.assertEqual(only(self, self.net.agent_take(), Response).status, 400, refer_to)
            self.assertEqual(self.net.pbx_take(), [])
        self.assertIn("refer-replaces-bad", self.notices())

    def test_ringing_call_2_maps_its_early_dialog(self) -> None:
        from sbc.sip.replaces import embedded_replaces

        a1, b1, a1_ok, pbx1, agent1 = self.call(1)
        a2, b2, ringing2, _, _ = self.call(2, answer=False)
        rep = f"{b2.call_id};to-tag={b2.from_.tag};from-tag=ag2;early-only"
        a_refer = self.refer(agent1, f"<sip:x@192.0.2.10?Replaces={escaped(rep)}>".encode())
        _addr, mapped = embedded_replaces(a_refer.get("Refer-To"))
        self.assertEqual((mapped.to_tag, mapped.from_tag, mapped.early_only), ("pbx2", ringing2.to.tag, True))


class InviteReplacesTests(ReplacesTestCase):
    """An INVITE from the PBX with Replaces naming one of its dialogs with us (RFC 3891): the
    INVITE toward the agent host names the agent host's dialog of that call instead."""

    def replacing(self, replaces: str, **kwargs) -> Request:
        from .test_b2bua_harness import invite

        extra = kwargs.pop("extra", "Require: replaces\r\n")
        return invite(call_id="pbx-call-9@10.0.0.5", from_tag="pbx9", extra=f"Replaces: {replaces}\r\n{extra}",
                      **kwargs)

    def test_replaces_mapped_to_the_agent_dialog(self) -> None:
        a1, b1, a1_ok, pbx1, agent1 = self.call(1)
        self.net.from_pbx(self.replacing(f"pbx-call-1@10.0.0.5;to-tag={a1_ok.to.tag};from-tag=pbx1"))
        self.assertEqual(only(self, self.net.pbx_take(), Response).status, 100)
        b_inv = only(self, self.net.agent_take())
        self.assertEqual(b_inv.method, "INVITE")
        self.assertEqual(b_inv.get("Replaces"), f"{b1.call_id};to-tag=ag1;from-tag={b1.from_.tag}".encode())
        self.assertEqual(b_inv.get_all("Require"), [b"replaces"])
        self.assertEqual(len(b_inv.headers_named("Replaces")), 1)
        self.assertEqual(self.net.b2b.stats.get("replaces-mapped"), 1)

    def test_supported_replaces_only_no_require_and_params_kept(self) -> None:
        a1, b1, a1_ok, pbx1, agent1 = self.call(1)
        self.net.from_pbx(self.replacing(f"pbx-call-1@10.0.0.5;from-tag=pbx1;to-tag={a1_ok.to.tag};foo=bar",
                                         extra="Supported: replaces\r\n"))
        self.net.pbx_take()
        b_inv = only(self, self.net.agent_take())
        self.assertEqual(b_inv.get("Replaces"), f"{b1.call_id};to-tag=ag1;from-tag={b1.from_.tag};foo=bar".encode())
        self.assertFalse(b_inv.has("Require"))

    def refused(self, inv: Request) -> Response:
        self.net.from_pbx(inv)
        r = only(self, self.net.pbx_take(), Response)
        self.assertEqual([m for m in self.net.agent_take() if isinstance(m, Request) and m.method == "INVITE"], [])
        self.assertIn("replaces-refused", self.notices())
        return r

    def test_unknown_dialog_481(self) -> None:
        self.call(1)
        self.assertEqual(self.refused(self.replacing("nothing@10.0.0.5;to-tag=1;from-tag=2")).status, 481)

    def test_agent_side_dialog_from_the_pbx_481(self) -> None:
        a1, b1, a1_ok, pbx1, agent1 = self.call(1)
        r = self.refused(self.replacing(f"{b1.call_id};to-tag={b1.from_.tag};from-tag=ag1"))
        self.assertEqual(r.status, 481)

    def test_call_of_another_trunk_481(self) -> None:
        a1, b1, a1_ok, pbx1, agent1 = self.call(1, user="sales1")
        r = self.refused(self.replacing(f"pbx-call-1@10.0.0.5;to-tag={a1_ok.to.tag};from-tag=pbx1"))
        self.assertEqual(r.status, 481)

    def test_early_dialog_we_did_not_initiate_481(self) -> None:
        a1, b1, ringing, _, _ = self.call(1, answer=False)
        r = self.refused(self.replacing(f"pbx-call-1@10.0.0.5;to-tag={ringing.to.tag};from-tag=pbx1;early-only"))
        self.assertEqual(r.status, 481)

    def test_early_only_on_a_confirmed_dialog_486(self) -> None:
        a1, b1, a1_ok, pbx1, agent1 = self.call(1)
        r = self.refused(self.replacing(f"pbx-call-1@10.0.0.5;to-tag={a1_ok.to.tag};from-tag=pbx1;early-only"))
        self.assertEqual(r.status, 486)

    def test_dialog_being_torn_down_603(self) -> None:
        a1, b1, a1_ok, pbx1, agent1 = self.call(1)
        self.net.from_agent(agent1.request("BYE"))  # the A leg's BYE is now in flight
        self.net.agent_take()
        self.assertEqual(only(self, self.net.pbx_take()).method, "BYE")
        r = self.refused(self.replacing(f"pbx-call-1@10.0.0.5;to-tag={a1_ok.to.tag};from-tag=pbx1"))
        self.assertEqual(r.status, 603)

    def test_malformed_or_repeated_replaces_400(self) -> None:
        a1, b1, a1_ok, pbx1, agent1 = self.call(1)
        good = f"pbx-call-1@10.0.0.5;to-tag={a1_ok.to.tag};from-tag=pbx1"
        for inv in (self.replacing("pbx-call-1@10.0.0.5;to-tag=x"),
                    self.replacing(good, extra=f"Replaces: {good}\r\n"),
                    self.replacing(";to-tag=1;from-tag=2")):
            self.assertEqual(self.refused(inv).status, 400)

    def test_replacing_call_completes_and_the_agent_ends_the_old_one(self) -> None:
        """End to end in memory: the agent host takes the new call and hangs up the one it
        replaces; the PBX sees the BYE on the replaced dialog."""
        from .test_b2bua_harness import SDP_B, PbxDialog

        a1, b1, a1_ok, pbx1, agent1 = self.call(1)
        a9 = self.replacing(f"pbx-call-1@10.0.0.5;to-tag={a1_ok.to.tag};from-tag=pbx1")
        self.net.from_pbx(a9)
        self.net.pbx_take()
        b9 = only(self, self.net.agent_take())
        self.net.from_agent(reply(b9, 200, tag="ag9", body=SDP_B))
        a9_ok = only(self, self.net.pbx_take(), Response)
        self.net.from_pbx(PbxDialog(a9, a9_ok).ack(a9))
        self.net.agent_take()
        self.net.from_agent(agent1.request("BYE"))
        self.net.agent_take()
        bye = only(self, self.net.pbx_take())
        self.assertEqual((bye.method, bye.call_id, bye.to.tag), ("BYE", "pbx-call-1@10.0.0.5", "pbx1"))
        self.net.from_pbx(reply(bye, 200))
        self.assertEqual(self.net.b2b.counts()["calls"], 1)


class OutboundReplacesTests(CallTestCase):
    """On outbound calls the agent host is the calling (A) leg: its view of a dialog is the A
    leg's, the PBX's the B leg's; the mapping works the same way round."""

    def setUp(self) -> None:
        self.net = Net(trunks=[attrs.evolve(DIAL_TRUNK, allow_refer=True)], agent_allow=AGENTS)

    def outbound_call(self, n: int):
        from .test_b2bua_harness import SDP_A, PbxDialog

        a_inv = agent_invite(call_id=f"agent-call-{n}@127.0.0.1").with_header(
            "From", f'"Agent" <sip:bot7@127.0.0.1>;tag=agt{n}')
        self.net.from_agent(a_inv)
        self.net.agent_take()
        b_inv = only(self, self.net.pbx_take())
        self.net.from_pbx(reply(b_inv, 200, tag=f"pbxt{n}", body=SDP_A, contact=b"<sip:gw@10.0.0.5:5060>"))
        a_ok = only(self, self.net.agent_take(), Response)
        agent = PbxDialog(a_inv, a_ok)  # the agent host is the UAC here
        self.net.from_agent(agent.ack(a_inv))
        self.net.pbx_take()
        return a_inv, b_inv, a_ok, agent

    def test_refer_replaces_mapped_to_the_trunk_dialog(self) -> None:
        from sbc.sip.replaces import Replaces, embedded_replaces

        a1, b1, a1_ok, agent1 = self.outbound_call(1)
        a2, b2, a2_ok, agent2 = self.outbound_call(2)
        rep = escaped(f"agent-call-2@127.0.0.1;to-tag={a2_ok.to.tag};from-tag=agt2")
        self.net.from_agent(agent1.request("REFER", headers=[("Refer-To", f"<sip:x@192.0.2.10?Replaces={rep}>"
                                                                          .encode())]))
        b_refer = only(self, self.net.pbx_take())
        self.assertEqual(b_refer.call_id, b1.call_id)
        addr, mapped = embedded_replaces(b_refer.get("Refer-To"))
        self.assertEqual(mapped, Replaces(b2.call_id, "pbxt2", b2.from_.tag))
        self.assertEqual(str(addr.uri).split("?")[0], "sip:gw@10.0.0.5:5060")

    def test_agent_invite_with_replaces_mapped_toward_the_trunk(self) -> None:
        a1, b1, a1_ok, agent1 = self.outbound_call(1)
        inv = agent_invite(call_id="agent-call-9@127.0.0.1",
                           extra=f"Replaces: agent-call-1@127.0.0.1;to-tag={a1_ok.to.tag};from-tag=agt1\r\n")
        self.net.from_agent(inv)
        self.net.agent_take()
        b_inv = only(self, self.net.pbx_take())
        self.assertEqual(b_inv.get("Replaces"), f"{b1.call_id};to-tag=pbxt1;from-tag={b1.from_.tag}".encode())
        self.assertFalse(b_inv.has("Require"))
