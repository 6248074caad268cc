# -*- test-case-name: tests.test_demo_agent -*-
"""The demo agent host, sans-IO: every message goes through the real Endpoint as bytes and
is parsed back on its way out, time is fake, media ports come from a fake allocator."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.error import CannotListenError
from twisted.internet.testing import FakeDatagramTransport
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from sbc.demo.agent import DemoAgent, MediaAddress, answer_sdp, offer_sdp
from sbc.demo.echo import EchoProtocol, RtpEcho, parse_port_range
from sbc.demo.tap import Options, parse_listen
from sbc.sip.endpoint import Endpoint, Peer
from sbc.sip.errors import SipParseError
from sbc.sip.message import Request, Response, parse_message
from sbc.sip.sdp import Direction, parse_sdp

CALLER = Peer("udp", "192.0.2.7", 5060, 1)
CALLER_TCP = Peer("tcp", "192.0.2.7", 40123, 7)
LOCAL = ("198.51.100.2", 5090)

SDP_OFFER = (b"v=0\r\no=pbx 11 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n"
             b"m=audio 4000 RTP/AVP 9 8 0 96\r\na=rtpmap:9 G722/8000\r\na=rtpmap:8 PCMA/8000\r\n"
             b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:96 telephone-event/8000\r\na=fmtp:96 0-15\r\n"
             b"a=sendrecv\r\n")

_branches = itertools.count(1)


class FakeMedia:
    """A MediaPorts that hands out 30000, 30002, ... up to ``limit`` at once."""

    def __init__(self, limit: int = 10) -> None:
        self.limit = limit
        self.open_calls: dict[str, MediaAddress] = {}
        self._ports = itertools.count(30000, 2)

    def open(self, key: str, host: str) -> MediaAddress | None:
        if len(self.open_calls) >= self.limit:
            return None
        address = MediaAddress(host, next(self._ports))
        self.open_calls[key] = address
        return address

    def close(self, key: str) -> None:
        self.open_calls.pop(key, None)


class Net:
    """The agent behind a real Endpoint; ``sent`` collects what it sends, parsed."""

    def __init__(self, **kwargs: Any) -> None:
        self.now = 5000.0
        self.media = FakeMedia(kwargs.pop("media_limit", 10))
        self.agent = DemoAgent(local_address=lambda peer: LOCAL, media=self.media, **kwargs)
        self.ep = Endpoint(fqdn=LOCAL[0])
        self.ep.add_handler(self.agent)
        self.ep.set_response_handler(self.agent.handle_response)
        self.sent: list[tuple[Request | Response, Peer]] = []

    def flush(self) -> None:
        for data, peer in self.ep.messages_to_send():
            self.sent.append((parse_message(data), peer))
        for msg, peer in self.agent.messages_to_send():
            self.sent.append((parse_message(msg.to_bytes()), peer))

    def receive(self, msg: Request | Response | bytes, peer: Peer = CALLER) -> None:
        data = msg if isinstance(msg, bytes) else msg.to_bytes()
        self.ep.receive(data, peer, self.now)
        self.flush()

    def advance(self, seconds: float) -> None:
        end = self.now + seconds
        while (deadline := self.agent.next_deadline()) is not None and deadline <= end:
            self.now = max(self.now, deadline)
            self.agent.handle_timer(self.now)
            self.flush()
        self.now = end

    def take(self) -> list[Request | Response]:
        out, self.sent = self.sent, []
        return [m for m, _ in out]

    def settle(self) -> None:
        for _ in range(10):
            self.advance(600)
            if self.agent.next_deadline() is None:
                return


def invite(*, body: bytes = SDP_OFFER, call_id: str = "call-1@192.0.2.7", cseq: int = 1,
           to_tag: str | None = None, extra: str = "", ctype: str = "application/sdp",
           transport: str = "UDP") -> Request:
    to = "<sip:1000@198.51.100.2:5090>" + (f";tag={to_tag}" if to_tag else "")
    head = (
        "INVITE sip:1000@198.51.100.2:5090 SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} 192.0.2.7:5060;branch=z9hG4bKdemo{next(_branches)}\r\n"
        "Max-Forwards: 70\r\n"
        "From: \"PBX\" <sip:alice@192.0.2.7>;tag=caller1\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} INVITE\r\n"
        "Contact: <sip:alice@192.0.2.7:5060>\r\n"
        + (f"Content-Type: {ctype}\r\n" if body else "")
        + extra
        + f"Content-Length: {len(body)}\r\n\r\n"
    )
    return parse_message(head.encode() + body)  # type: ignore[return-value]


def in_dialog(method: str, response: Response, cseq: int, *, body: bytes = b"",
              ctype: str = "application/sdp", branch: str | None = None) -> Request:
    """A request from the caller inside the dialog ``response`` established."""
    to = response.get("To")
    assert to is not None
    head = (
        f"{method} sip:agent@198.51.100.2:5090 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.7:5060;branch={branch or f'z9hG4bKdemo{next(_branches)}'}\r\n"
        "Max-Forwards: 70\r\n"
        "From: \"PBX\" <sip:alice@192.0.2.7>;tag=caller1\r\n"
        f"To: {to.decode()}\r\n"
        f"Call-ID: {response.call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Contact: <sip:alice@192.0.2.7:5060>\r\n"
        + (f"Content-Type: {ctype}\r\n" if body else "")
        + f"Content-Length: {len(body)}\r\n\r\n"
    )
    return parse_message(head.encode() + body)  # type: ignore[return-value]


def cancel_of(request: Request) -> Request:
    via = request.get("Via")
    assert via is not None
    head = (
        f"CANCEL {request.uri.decode()} SIP/2.0\r\nVia: {via.decode()}\r\nMax-Forwards: 70\r\n"
        f"From: {request.get('From').decode()}\r\nTo: {request.get('To').decode()}\r\n"  # type: ignore[union-attr]
        f"Call-ID: {request.call_id}\r\nCSeq: {request.cseq.seq} CANCEL\r\nContent-Length: 0\r\n\r\n"
    )
    return parse_message(head.encode())  # type: ignore[return-value]


def ack_for(request: Request, response: Response, *, body: bytes = b"") -> Request:
    """The caller's ACK: for a 2xx a new transaction, for a non-2xx the INVITE's branch."""
    if 200 <= response.status < 300:
        ack = in_dialog("ACK", response, request.cseq.seq, body=body)
        return ack
    via = request.get("Via")
    assert via is not None
    head = (
        f"ACK {request.uri.decode()} SIP/2.0\r\nVia: {via.decode()}\r\nMax-Forwards: 70\r\n"
        f"From: {request.get('From').decode()}\r\nTo: {response.get('To').decode()}\r\n"  # type: ignore[union-attr]
        f"Call-ID: {request.call_id}\r\nCSeq: {request.cseq.seq} ACK\r\nContent-Length: 0\r\n\r\n"
    )
    return parse_message(head.encode())  # type: ignore[return-value]


def statuses(messages: list[Request | Response]) -> list[int | str]:
    return [m.status if isinstance(m, Response) else m.method for m in messages]


class AgentTestCase(SynchronousTestCase):
    def answered(self, net: Net, request: Request | None = None) -> tuple[Request, Response]:
        """Send an INVITE, check 180 then 200, return the INVITE and the 200."""
        request = request or invite()
        net.receive(request)
        out = net.take()
        self.assertEqual(statuses(out), [180, 200])
        ringing, ok = out
        assert isinstance(ringing, Response) and isinstance(ok, Response)
        self.assertEqual(ringing.to.tag, ok.to.tag)
        self.assertIsNotNone(ok.to.tag)
        return request, ok

    def assertIdle(self, net: Net) -> None:
        net.settle()
        self.assertEqual(net.agent.counts(), {"calls": 0, "transactions": 0, "timers": 0,
                                              "bindings": 0})
        self.assertEqual(net.media.open_calls, {})
        self.assertIsNone(net.agent.next_deadline())


class InviteTests(AgentTestCase):
    def test_offer_gets_matching_answer(self) -> None:
        """180 and 200 at once; the answer takes PCMA (the first offered codec we support)
        and the offer's telephone-event payload type 96 with its fmtp, on our media port."""
        net = Net()
        _, ok = self.answered(net)
        self.assertEqual(ok.get("Content-Type"), b"application/sdp")
        self.assertEqual(ok.contacts[0].uri.host, LOCAL[0])
        self.assertEqual(ok.contacts[0].uri.port, LOCAL[1])
        answer = parse_sdp(ok.body)
        [audio] = answer.media
        [media] = net.media.open_calls.values()
        self.assertEqual(audio.port, media.port)
        self.assertEqual(answer.connection_for(0).address, LOCAL[0])  # type: ignore[union-attr]
        self.assertEqual(audio.payload_types, (8, 96))
        self.assertEqual(audio.codecs()[0].encoding, "PCMA")
        te = audio.telephone_event(8000)
        assert te is not None
        self.assertEqual((te.payload_type, te.events), (96, "0-15"))
        self.assertEqual(answer.direction(0), Direction.SENDRECV)
        [started] = [e for e in net.agent.events() if e.kind == "call-started"]
        self.assertEqual(started.call_id, "call-1@192.0.2.7")
        self.assertFalse(started.fields["late_offer"])

    def test_pcmu_first_and_dynamic_mapping(self) -> None:
        offer = SDP_OFFER.replace(b"RTP/AVP 9 8 0 96", b"RTP/AVP 97 8 101").replace(
            b"a=rtpmap:9 G722/8000", b"a=rtpmap:97 pcmu/8000").replace(
            b"96 telephone-event", b"101 telephone-event").replace(b"fmtp:96", b"fmtp:101")
        net = Net()
        _, ok = self.answered(net, invite(body=offer))
        audio = parse_sdp(ok.body).media[0]
        self.assertEqual(audio.payload_types, (97, 101))
        self.assertEqual(audio.rtpmap()[97].encoding, "PCMU")

    def test_no_telephone_event_offered_none_answered(self) -> None:
        offer = (b"v=0\r\no=x 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n"
                 b"m=audio 4000 RTP/AVP 0\r\n")
        net = Net()
        _, ok = self.answered(net, invite(body=offer))
        audio = parse_sdp(ok.body).media[0]
        self.assertEqual(audio.payload_types, (0,))
        self.assertEqual(audio.telephone_events(), ())

    def test_sendonly_offer_answered_recvonly_and_video_rejected(self) -> None:
        offer = SDP_OFFER.replace(b"a=sendrecv", b"a=sendonly") + (
            b"m=video 4002 RTP/AVP 31\r\n")
        net = Net()
        _, ok = self.answered(net, invite(body=offer))
        answer = parse_sdp(ok.body)
        self.assertEqual(len(answer.media), 2)
        self.assertEqual(answer.direction(0), Direction.RECVONLY)
        self.assertEqual((answer.media[1].media, answer.media[1].port), ("video", 0))

    def test_unsupported_codec_refused_488(self) -> None:
        net = Net()
        request = invite(body=SDP_OFFER.replace(b"RTP/AVP 9 8 0 96", b"RTP/AVP 9"))
        net.receive(request)
        [final] = net.take()
        assert isinstance(final, Response)
        self.assertEqual(final.status, 488)
        self.assertEqual([e.kind for e in net.agent.events()], ["call-refused"])
        net.receive(ack_for(request, final))
        self.assertEqual(net.take(), [])
        self.assertIdle(net)

    def test_srtp_only_offer_refused(self) -> None:
        net = Net()
        net.receive(invite(body=SDP_OFFER.replace(b"RTP/AVP", b"RTP/SAVP")))
        self.assertEqual(statuses(net.take()), [488])

    def test_other_body_type_415(self) -> None:
        net = Net()
        net.receive(invite(body=b"<xml/>", ctype="application/xml"))
        [final] = net.take()
        assert isinstance(final, Response)
        self.assertEqual((final.status, final.get("Accept")), (415, b"application/sdp"))

    def test_unparseable_sdp_400(self) -> None:
        net = Net()
        net.receive(invite(body=b"this is not SDP\r\n"))
        self.assertEqual(statuses(net.take()), [400])
        self.assertIdle(net)

    def test_no_media_port_503(self) -> None:
        net = Net(media_limit=0)
        net.receive(invite())
        [final] = net.take()
        assert isinstance(final, Response)
        self.assertEqual((final.status, final.get("Retry-After")), (503, b"5"))

    def test_failure_inside_a_request_still_answers_500(self) -> None:
        net = Net()

        def broken(key: str, host: str) -> MediaAddress:
            raise SipParseError("media allocator failed")

        net.media.open = broken  # type: ignore[method-assign]
        net.receive(invite())
        self.assertEqual(statuses(net.take()), [500])
        [warning] = net.agent.events()
        self.assertIn("media allocator failed", warning.fields["error"])
        self.assertIdle(net)

    def test_retransmitted_invite_gets_the_200_again_not_a_new_call(self) -> None:
        net = Net()
        request, ok = self.answered(net)
        net.receive(request)
        # RFC 6026 Accepted state: the retransmission is absorbed, the 2xx timer answers it.
        self.assertEqual(net.take(), [])
        net.advance(0.5)
        self.assertEqual(statuses(net.take()), [200])
        self.assertEqual(net.agent.counts()["calls"], 1)
        self.assertEqual(len(net.media.open_calls), 1)

    def test_200_retransmitted_until_ack(self) -> None:
        net = Net()
        request, ok = self.answered(net)
        net.advance(0.5)
        self.assertEqual(statuses(net.take()), [200])
        net.advance(1.0)
        self.assertEqual(statuses(net.take()), [200])
        net.receive(ack_for(request, ok))
        net.advance(30)
        self.assertEqual(net.take(), [])
        self.assertEqual(net.agent.counts()["calls"], 1)

    def test_no_ack_means_bye(self) -> None:
        net = Net()
        self.answered(net)
        net.advance(40)
        sent = statuses(net.take())
        first_bye = sent.index("BYE")
        self.assertEqual(set(sent[:first_bye]), {200})
        self.assertGreaterEqual(first_bye, 7)  # T1 doubling to T2 for 32 s
        self.assertEqual(set(sent[first_bye:]), {"BYE"})  # (BYE retransmissions: no answer)
        ended = [e for e in net.agent.events() if e.kind == "call-ended"]
        self.assertEqual(ended[0].fields["reason"], "no ACK for our 200")
        self.assertIdle(net)

    def test_ring_delay(self) -> None:
        net = Net(ring_delay=2.0)
        net.receive(invite())
        self.assertEqual(statuses(net.take()), [180])
        net.advance(1.9)
        self.assertEqual(net.take(), [])
        net.advance(0.2)
        self.assertEqual(statuses(net.take()), [200])


class LateOfferTests(AgentTestCase):
    def test_offer_in_200_answer_in_ack(self) -> None:
        net = Net()
        request, ok = self.answered(net, invite(body=b""))
        offer = parse_sdp(ok.body)
        self.assertEqual(offer.media[0].payload_types, (0, 8, 101))
        self.assertEqual(offer.media[0].telephone_event(8000).payload_type, 101)  # type: ignore[union-attr]
        answer = (b"v=0\r\no=pbx 1 1 IN IP4 192.0.2.7\r\ns=-\r\nc=IN IP4 192.0.2.7\r\nt=0 0\r\n"
                  b"m=audio 4000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\n")
        net.agent.events()
        net.receive(ack_for(request, ok, body=answer))
        self.assertEqual(net.take(), [])
        self.assertEqual(net.agent.events(), [])
        net.advance(5)
        self.assertEqual(net.take(), [])  # the 200 is no longer retransmitted

    def test_ack_without_answer_is_reported(self) -> None:
        net = Net()
        request, ok = self.answered(net, invite(body=b""))
        net.agent.events()
        net.receive(ack_for(request, ok))
        [warning] = net.agent.events()
        self.assertEqual(warning.kind, "warning")
        self.assertIn("no answer", warning.fields["error"])


class ByeCancelTests(AgentTestCase):
    def test_bye_ends_the_call(self) -> None:
        net = Net()
        request, ok = self.answered(net)
        net.receive(ack_for(request, ok))
        net.receive(in_dialog("BYE", ok, 2))
        [final] = net.take()
        assert isinstance(final, Response)
        self.assertEqual((final.status, final.cseq.method), (200, "BYE"))
        kinds = [e.kind for e in net.agent.events()]
        self.assertEqual(kinds, ["call-started", "call-ended"])
        self.assertEqual(net.media.open_calls, {})
        self.assertIdle(net)

    def test_bye_for_unknown_dialog_481(self) -> None:
        net = Net()
        request, ok = self.answered(net)
        stray = in_dialog("BYE", ok, 2)
        stray = parse_message(stray.to_bytes().replace(b"Call-ID: call-1", b"Call-ID: other"))
        net.receive(stray)
        self.assertEqual(statuses(net.take()), [481])
        self.assertEqual(net.agent.counts()["calls"], 1)

    def test_cancel_while_ringing(self) -> None:
        net = Net(ring_delay=10.0)
        request = invite()
        net.receive(request)
        self.assertEqual(statuses(net.take()), [180])
        net.receive(cancel_of(request))
        out = net.take()
        self.assertEqual(statuses(out), [200, 487])
        self.assertEqual([m.cseq.method for m in out], ["CANCEL", "INVITE"])
        self.assertEqual(out[0].to.tag, out[1].to.tag)
        net.receive(ack_for(request, out[1]))  # type: ignore[arg-type]
        net.advance(15)
        self.assertEqual(net.take(), [])  # no 200 after the ring delay
        ended = [e for e in net.agent.events() if e.kind == "call-ended"]
        self.assertEqual(ended[0].fields["answered"], False)
        self.assertIdle(net)

    def test_bye_while_ringing_answers_the_invite_487(self) -> None:
        net = Net(ring_delay=10.0)
        request = invite()
        net.receive(request)
        [ringing] = net.take()
        assert isinstance(ringing, Response)
        net.receive(in_dialog("BYE", ringing, 2))
        out = net.take()
        self.assertEqual([(m.status, m.cseq.method) for m in out],  # type: ignore[union-attr]
                         [(200, "BYE"), (487, "INVITE")])
        net.receive(ack_for(request, out[1]))  # type: ignore[arg-type]
        self.assertIdle(net)

    def test_cancel_after_answer_changes_nothing(self) -> None:
        net = Net()
        request, ok = self.answered(net)
        net.receive(cancel_of(request))
        self.assertEqual(statuses(net.take()), [200])
        net.receive(ack_for(request, ok))
        self.assertEqual(net.agent.counts()["calls"], 1)

    def test_cancel_of_unknown_invite_481(self) -> None:
        net = Net()
        net.receive(cancel_of(invite()))
        self.assertEqual(statuses(net.take()), [481])

    def test_max_duration_hangs_up_to_the_remote_target(self) -> None:
        net = Net(max_duration=60.0)
        request, ok = self.answered(net)
        net.receive(ack_for(request, ok))
        net.advance(59.9)
        self.assertEqual(net.take(), [])
        net.advance(0.2)
        [(bye, peer)] = net.sent
        net.sent = []
        assert isinstance(bye, Request)
        self.assertEqual(bye.method, "BYE")
        self.assertEqual((peer.host, peer.port, peer.conn), ("192.0.2.7", 5060, CALLER.conn))
        self.assertEqual(bye.uri, b"sip:alice@192.0.2.7:5060")
        self.assertEqual(bye.from_.tag, ok.to.tag)
        self.assertEqual(bye.to.tag, "caller1")
        self.assertEqual(bye.top_via.host, LOCAL[0])
        net.receive(Response(200, "OK", bye.headers[:1] + tuple(
            h for h in bye.headers if h.name in ("From", "To", "Call-ID", "CSeq")))
            .with_header("Content-Length", b"0"))
        self.assertEqual(net.take(), [])
        self.assertIdle(net)

    def test_bye_over_tcp_uses_the_connection(self) -> None:
        net = Net(max_duration=1.0)
        request = invite(transport="TCP")
        net.receive(request, CALLER_TCP)
        out = net.take()
        ok = out[-1]
        assert isinstance(ok, Response)
        self.assertIn(b";transport=tcp", ok.get("Contact") or b"")
        net.receive(ack_for(request, ok), CALLER_TCP)
        net.advance(1.01)
        [(bye, peer)] = net.sent
        self.assertEqual(peer, CALLER_TCP)
        self.assertEqual(bye.top_via.transport, "TCP")  # type: ignore[union-attr]

    def test_hangup_all(self) -> None:
        net = Net(ring_delay=5.0)
        first = invite(call_id="a@x")
        net.receive(first)
        net.agent.ring_delay = 0.0
        second = invite(call_id="b@x")
        net.receive(second)
        net.take()
        net.agent.hangup_all(net.now)
        net.flush()
        out = net.take()
        self.assertEqual(sorted(str(s) for s in statuses(out)), ["480", "BYE"])
        self.assertEqual(net.agent.counts()["calls"], 0)


class InDialogTests(AgentTestCase):
    def confirmed(self, net: Net) -> tuple[Request, Response]:
        request, ok = self.answered(net)
        net.receive(ack_for(request, ok))
        net.agent.events()
        return request, ok

    def test_reinvite_same_offer_same_sdp(self) -> None:
        net = Net()
        _, ok = self.confirmed(net)
        reinvite = in_dialog("INVITE", ok, 2, body=SDP_OFFER)
        net.receive(reinvite)
        [ok2] = net.take()
        assert isinstance(ok2, Response)
        self.assertEqual(ok2.status, 200)
        self.assertEqual(ok2.body, ok.body)  # unchanged: same o= version (RFC 3264 §8)
        net.receive(ack_for(reinvite, ok2))
        net.advance(5)
        self.assertEqual(net.take(), [])

    def test_reinvite_hold_bumps_version(self) -> None:
        net = Net()
        _, ok = self.confirmed(net)
        net.receive(in_dialog("INVITE", ok, 2, body=SDP_OFFER.replace(b"a=sendrecv", b"a=sendonly")))
        [ok2] = net.take()
        assert isinstance(ok2, Response)
        before, after = parse_sdp(ok.body), parse_sdp(ok2.body)
        self.assertEqual(after.direction(0), Direction.RECVONLY)
        self.assertEqual(after.origin.sess_version, before.origin.sess_version + 1)
        self.assertEqual(after.origin.sess_id, before.origin.sess_id)
        self.assertEqual(after.media[0].port, before.media[0].port)

    def test_reinvite_without_sdp_offers_current(self) -> None:
        net = Net()
        _, ok = self.confirmed(net)
        reinvite = in_dialog("INVITE", ok, 2)
        net.receive(reinvite)
        [ok2] = net.take()
        assert isinstance(ok2, Response)
        self.assertEqual(ok2.body, ok.body)

    def test_reinvite_before_ack_500(self) -> None:
        net = Net()
        _, ok = self.answered(net)
        net.receive(in_dialog("INVITE", ok, 2, body=SDP_OFFER))
        out = [m for m in net.take() if m.cseq.seq == 2]
        self.assertEqual(statuses(out), [500])
        self.assertEqual(out[0].get("Retry-After"), b"1")

    def test_update_with_and_without_sdp(self) -> None:
        net = Net()
        _, ok = self.confirmed(net)
        net.receive(in_dialog("UPDATE", ok, 2, body=SDP_OFFER))
        [r1] = net.take()
        assert isinstance(r1, Response)
        self.assertEqual((r1.status, r1.body), (200, ok.body))
        net.receive(in_dialog("UPDATE", ok, 3))
        [r2] = net.take()
        assert isinstance(r2, Response)
        self.assertEqual((r2.status, r2.body), (200, b""))

    def test_info_and_message_answered_and_reported(self) -> None:
        net = Net()
        _, ok = self.confirmed(net)
        net.receive(in_dialog("INFO", ok, 2, body=b"Signal=5\r\nDuration=160\r\n",
                              ctype="application/dtmf-relay"))
        net.receive(in_dialog("MESSAGE", ok, 3, body=b"hello agent", ctype="text/plain"))
        self.assertEqual(statuses(net.take()), [200, 200])
        info, message = net.agent.events()
        self.assertEqual((info.kind, info.fields["content_type"]), ("info", "application/dtmf-relay"))
        self.assertIn("Signal=5", info.fields["body"])
        self.assertEqual((message.kind, message.fields["body"]), ("message", "hello agent"))

    def test_agent_event_in_a_json_info_is_reported_as_an_agent_event(self) -> None:
        net = Net()
        _, ok = self.confirmed(net)
        body = b'{"type": "conversation.item.create", "call_id": "x1", "trigger": "#"}'
        net.receive(in_dialog("INFO", ok, 2, body=body, ctype="application/json"))
        net.receive(in_dialog("INFO", ok, 3, body=b"[1, 2]", ctype="application/json"))
        self.assertEqual(statuses(net.take()), [200, 200])
        event, other = net.agent.events()
        self.assertEqual((event.kind, event.call_id, event.fields["event"]["trigger"]), ("agent-event", "x1", "#"))
        self.assertEqual(other.kind, "info")  # not an event: reported as a plain INFO

    def test_out_of_order_cseq_500(self) -> None:
        net = Net()
        _, ok = self.confirmed(net)
        net.receive(in_dialog("INFO", ok, 5))
        net.receive(in_dialog("INFO", ok, 4))
        self.assertEqual(statuses(net.take()), [200, 500])

    def test_options_answered_by_the_endpoint(self) -> None:
        net = Net()
        head = ("OPTIONS sip:198.51.100.2:5090 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.7;branch=z9hG4bKo1\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:p@192.0.2.7>;tag=o\r\nTo: <sip:198.51.100.2>\r\n"
                "Call-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        net.receive(head.encode())
        [reply] = net.take()
        assert isinstance(reply, Response)
        self.assertEqual(reply.status, 200)
        self.assertIn(b"INVITE", reply.get("Allow") or b"")

    def test_agent_event_hook(self) -> None:
        net = Net()
        net.agent.on_agent_event({"type": "dtmf", "call_id": "c1", "digit": "5"})
        [event] = net.agent.events()
        self.assertEqual((event.kind, event.call_id), ("agent-event", "c1"))
        self.assertEqual(event.fields["event"]["digit"], "5")


class SdpTests(SynchronousTestCase):
    media = MediaAddress("2001:db8::5", 20000)

    def test_ipv6_answer(self) -> None:
        sdp = answer_sdp(parse_sdp(SDP_OFFER), self.media, 7, 1)
        assert sdp is not None
        parsed = parse_sdp(sdp)
        self.assertEqual(parsed.connection.addrtype, "IP6")  # type: ignore[union-attr]
        self.assertEqual(parsed.origin.address, "2001:db8::5")

    def test_offer_parses(self) -> None:
        parsed = parse_sdp(offer_sdp(self.media, 7, 3))
        self.assertEqual(parsed.origin.sess_version, 3)
        self.assertEqual(parsed.media[0].port, 20000)

    @given(st.binary(max_size=300))
    def test_any_body_gets_a_final_answer(self, body: bytes) -> None:
        """Whatever the SDP body, the INVITE gets exactly one final response and nothing
        raises; when refused, no media port stays open."""
        net = Net()
        net.receive(invite(body=SDP_OFFER[:40] + body if body else b"x"))
        finals = [m.status for m in net.take() if isinstance(m, Response) and m.status >= 200]
        self.assertEqual(len(finals), 1)
        self.assertIn(finals[0], (200, 400, 488))
        if finals[0] != 200:
            self.assertEqual(net.media.open_calls, {})


class FakeReactor:
    def __init__(self, busy: set[int] = set()) -> None:
        self.busy = busy
        self.listening: dict[int, Any] = {}

    def listenUDP(self, port: int, proto: Any, interface: str = "") -> Any:
        if port in self.busy or port in self.listening:
            raise CannotListenError(interface, port, OSError("in use"))
        reactor = self

        class Listening:
            def stopListening(self) -> None:
                del reactor.listening[port]

        self.listening[port] = (proto, interface)
        return Listening()


class EchoTests(SynchronousTestCase):
    def test_echo_back_to_source(self) -> None:
        proto = EchoProtocol()
        proto.transport = FakeDatagramTransport()
        proto.datagramReceived(b"\x80\x00rtp", ("203.0.113.9", 41000))
        proto.datagramReceived(b"\x80\x00rtp2", ("203.0.113.9", 41002))
        self.assertEqual(proto.transport.written, [(b"\x80\x00rtp", ("203.0.113.9", 41000)),
                                                    (b"\x80\x00rtp2", ("203.0.113.9", 41002))])
        self.assertEqual(proto.packets, 2)

    def test_ports_from_range_even_first_busy_skipped_released(self) -> None:
        reactor = FakeReactor(busy={20002})
        echo = RtpEcho(reactor, (20000, 20005))
        a = echo.open("a", "127.0.0.1")
        b = echo.open("b", "127.0.0.1")
        self.assertEqual((a, b), (MediaAddress("127.0.0.1", 20000), MediaAddress("127.0.0.1", 20004)))
        self.assertEqual(echo.open("a", "127.0.0.1"), a)  # idempotent
        c = echo.open("c", "127.0.0.1")
        d = echo.open("d", "127.0.0.1")
        e = echo.open("e", "127.0.0.1")
        self.assertEqual([x.port for x in (c, d, e) if x], [20001, 20003, 20005])
        self.assertIsNone(echo.open("f", "127.0.0.1"))
        echo.close("b")
        echo.close("b")
        self.assertNotIn(20004, reactor.listening)
        self.assertEqual(echo.open("f", "127.0.0.1"), MediaAddress("127.0.0.1", 20004))
        echo.close_all()
        self.assertEqual((len(echo), reactor.listening), (0, {}))

    def test_parse_port_range(self) -> None:
        self.assertEqual(parse_port_range("20000-20999"), (20000, 20999))
        for bad in ("20000", "b-c", "3-2", "0-10", "1-70000"):
            self.assertRaises(ValueError, parse_port_range, bad)


class OptionsTests(SynchronousTestCase):
    def test_listen_forms(self) -> None:
        self.assertEqual(parse_listen("127.0.0.1:5090,[::1]:5091"), [("127.0.0.1", 5090), ("::1", 5091)])
        self.assertEqual(parse_listen("127.0.0.2"), [("127.0.0.2", 5090)])
        for bad in ("0.0.0.0:5090", "example.com:5090", "127.0.0.1:0", "[::1", ""):
            self.assertRaises(ValueError, parse_listen, bad)

    def test_options(self) -> None:
        options = Options()
        options.parseOptions(["--listen", "127.0.0.1:6000", "-l", "[::1]:6000", "--rtp-ports",
                              "30000-30009", "--ring", "1.5", "--max-duration", "30"])
        self.assertEqual(options["listen"], [("127.0.0.1", 6000), ("::1", 6000)])
        self.assertEqual((options["rtp-ports"], options["ring"], options["max-duration"]),
                         ((30000, 30009), 1.5, 30.0))
        default = Options()
        default.parseOptions([])
        self.assertEqual(default["listen"], [("127.0.0.1", 5090)])
        self.assertEqual((default["ring"], default["max-duration"], default["rtp-ports"]),
                         (0.0, None, (20000, 20999)))
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--listen", "nowhere"])
        self.assertRaises(usage.UsageError, Options().parseOptions, ["--ring", "-1"])


class RandomCallerTests(AgentTestCase):
    """Whatever a caller does, in whatever order, the agent never raises and ends idle."""

    @given(
        st.lists(st.sampled_from(["ack", "bye", "cancel", "info", "reinvite", "update",
                                  "retransmit", "short", "long"]), max_size=10),
        st.sampled_from([0.0, 1.0]),
        st.sampled_from([None, 5.0]),
        st.booleans(),
    )
    def test_random_caller(self, actions: list[str], ring: float, max_duration: float | None,
                           late: bool) -> None:
        net = Net(ring_delay=ring, max_duration=max_duration)
        request = invite(body=b"" if late else SDP_OFFER)
        seen: list[Request | Response] = []
        cseq = itertools.count(2)

        def send(message: Request) -> None:
            net.receive(message)
            seen.extend(net.take())

        def tagged() -> Response | None:
            return next((m for m in seen if isinstance(m, Response) and m.to.tag
                         and m.cseq.method == "INVITE" and m.cseq.seq == 1), None)

        send(request)
        for action in actions:
            dialog = tagged()
            final = next((m for m in reversed(seen) if isinstance(m, Response)
                          and m.cseq.method == "INVITE" and m.status >= 200), None)
            if action == "ack" and final is not None:
                send(ack_for(request, final) if final.cseq.seq == 1 else
                     in_dialog("ACK", final, final.cseq.seq))
            elif action == "cancel":
                send(cancel_of(request))
            elif action == "retransmit":
                send(request)
            elif action in ("bye", "info", "update", "reinvite") and dialog is not None:
                method = "INVITE" if action == "reinvite" else action.upper()
                body = SDP_OFFER if action in ("update", "reinvite") else b""
                send(in_dialog(method, dialog, next(cseq), body=body))
            elif action == "short":
                net.advance(0.6)
                seen.extend(net.take())
            elif action == "long":
                net.advance(40)
                seen.extend(net.take())
        net.settle()
        seen.extend(net.take())
        dialog = tagged()
        if net.agent.counts()["calls"]:
            assert dialog is not None
            send(in_dialog("BYE", dialog, next(cseq)))
        for message in seen:
            if isinstance(message, Response) and message.cseq.method == "INVITE":
                self.assertIn(message.status, (180, 200, 481, 487, 500))
        self.assertIdle(net)


class TapTests(SynchronousTestCase):
    def test_log_lines(self) -> None:
        from twisted.internet.testing import EventLoggingObserver
        from twisted.logger import formatEvent, globalLogPublisher

        from sbc.demo.agent import DemoEvent
        from sbc.demo.tap import log_event

        observer = EventLoggingObserver.createWithCleanup(self, globalLogPublisher)
        log_event(DemoEvent("call-started", "c1", {
            "caller": "sip:a@x", "callee": "sip:1000@y", "peer": "udp:[::1]:5060",
            "media": "[::1]:20000", "late_offer": False}))
        log_event(DemoEvent("info", "c1", {"content_type": "application/dtmf-relay",
                                           "body": "Signal=5"}))
        log_event(DemoEvent("agent-event", "c1", {"event": {"type": "dtmf", "digit": "5"}}))
        lines = [formatEvent(e) for e in observer if e.get("log_namespace") == "sbc.demo.tap"]
        self.assertEqual(lines, [
            "call c1 answered: sip:a@x -> sip:1000@y from udp:[::1]:5060; RTP echo on [::1]:20000",
            "INFO in call c1 (application/dtmf-relay): Signal=5",
            "agent event for call c1: {'type': 'dtmf', 'digit': '5'}",
        ])

    def test_make_service_builds_udp_and_tcp_per_address(self) -> None:
        from sbc.demo.tap import makeService

        options = Options()
        options.parseOptions(["--listen", "127.0.0.1:45999,[::1]:45999"])
        service = makeService(options)  # builds only: nothing listens until startService
        self.assertEqual(sorted(s.name for s in service), [
            "sip-tcp-127.0.0.1-45999", "sip-tcp-::1-45999",
            "sip-udp-127.0.0.1-45999", "sip-udp-::1-45999"])
        self.assertFalse(service.running)
        service.on_agent_event({"call_id": "x", "type": "hello"})
        self.assertEqual(service.agent.events(), [])  # drained and logged by the driver
