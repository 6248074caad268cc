# -*- test-case-name: tests.test_sip_transaction -*-
"""Tests for sbc.sip.transaction: the four RFC 3261/6026 transaction machines, the timers,
matching (cookie and RFC 2543 fallback), CANCEL, stray responses and the timer heap."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.sip.message import Request, Response, parse_message
from sbc.sip.transaction import (
    AckMissing,
    AckReceived,
    AckTimeout,
    CancelReceived,
    DuplicateTransaction,
    RequestReceived,
    ResponseReceived,
    StrayResponse,
    Timers,
    TransactionDoesNotExist,
    TransactionKey,
    TransactionLayer,
    TransactionStateError,
    TransactionTerminated,
    TransactionTimeout,
    TransportError,
    TxState,
    build_cancel,
)

PEER = ("udp", "192.0.2.1", 5060)
FAR = 10_000.0


def request(
    method: str = "INVITE",
    branch: str | None = "z9hG4bKabc1",
    *,
    sent_by: str = "192.0.2.10:5060",
    cseq: int = 1,
    cseq_method: str | None = None,
    to_tag: str | None = None,
    from_tag: str = "f1",
    call_id: str = "call-1@192.0.2.10",
    ruri: str = "sip:bob@example.com",
    extra: str = "",
) -> Request:
    via_params = f";branch={branch}" if branch is not None else ""
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    data = (
        f"{method} {ruri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {sent_by}{via_params}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: Alice <sip:alice@example.com>;tag={from_tag}\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {cseq_method or method}\r\n"
        "Contact: <sip:alice@192.0.2.10:5060>\r\n"
        f"{extra}"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


def response(
    status: int,
    branch: str | None = "z9hG4bKabc1",
    *,
    method: str = "INVITE",
    cseq: int = 1,
    to_tag: str | None = "t1",
    sent_by: str = "192.0.2.10:5060",
    extra_via: str = "",
    call_id: str = "call-1@192.0.2.10",
) -> Response:
    via_params = f";branch={branch}" if branch is not None else ""
    to = "<sip:bob@example.com>" + (f";tag={to_tag}" if to_tag else "")
    data = (
        f"SIP/2.0 {status} Whatever\r\n"
        f"Via: SIP/2.0/UDP {sent_by}{via_params}\r\n"
        f"{extra_via}"
        "From: Alice <sip:alice@example.com>;tag=f1\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {method}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    msg = parse_message(data)
    assert isinstance(msg, Response)
    return msg


def answer(req: Request, status: int, to_tag: str | None = "t1") -> Response:
    """A response to a received request, built from its bytes (all Via, From, To, ...)."""
    lines = [f"SIP/2.0 {status} Whatever".encode()]
    for h in req.headers:
        if h.key in ("via", "from", "call-id", "cseq"):
            lines.append(h.to_bytes())
        elif h.key == "to":
            value = h.value
            if to_tag and b"tag=" not in value:
                value += b";tag=" + to_tag.encode()
            lines.append(b"To: " + value)
    lines.append(b"Content-Length: 0")
    msg = parse_message(b"\r\n".join(lines) + b"\r\n\r\n")
    assert isinstance(msg, Response)
    return msg


class Harness:
    """Drives a layer the way the Twisted adapter does: after each input, drain; fire timers
    exactly at next_deadline()."""

    def __init__(self, timers: Timers = Timers(), **kw: Any) -> None:
        self.layer = TransactionLayer(timers, **kw)
        self.now = 0.0
        self.sent: list[tuple[float, Any, Any]] = []
        self.events: list[Any] = []

    def pump(self) -> None:
        for message, peer in self.layer.messages_to_send():
            self.sent.append((self.now, message, peer))
        while (event := self.layer.next_event()) is not None:
            self.events.append(event)

    def advance_to(self, t: float) -> None:
        while (d := self.layer.next_deadline()) is not None and d <= t:
            self.now = max(self.now, d)
            self.layer.handle_timer(self.now)
            self.pump()
        self.now = max(self.now, t)

    def receive(self, message: Any, reliable: bool = False, peer: Any = PEER) -> None:
        self.layer.receive(message, peer, reliable, self.now)
        self.pump()

    def send_request(self, req: Request, reliable: bool = False) -> TransactionKey:
        key = self.layer.send_request(req, PEER, reliable, self.now)
        self.pump()
        return key

    def send_response(self, key: TransactionKey, resp: Response) -> None:
        self.layer.send_response(key, resp, self.now)
        self.pump()

    def take_sent(self) -> list[tuple[float, Any, Any]]:
        out, self.sent = self.sent, []
        return out

    def take_events(self) -> list[Any]:
        out, self.events = self.events, []
        return out

    def times_sent(self, method_or_status: str | int) -> list[float]:
        out = []
        for t, m, _ in self.sent:
            if (m.is_request and m.method == method_or_status) or (
                not m.is_request and m.status == method_or_status
            ):
                out.append(t)
        return out


class _Base(SynchronousTestCase):
    def assertReleased(self, h: Harness) -> None:
        h.advance_to(h.now + FAR)
        self.assertEqual(len(h.layer), 0)
        self.assertIsNone(h.layer.next_deadline())


# ============================================================================ INVITE client


class InviteClientTests(_Base):
    def test_udp_retransmissions_then_timer_b(self) -> None:
        """Timer A doubles from T1; Timer B (64*T1) ends it: 7 sends, then timeout."""
        h = Harness()
        key = h.send_request(request())
        self.assertEqual(h.layer.state(key), TxState.CALLING)
        self.assertEqual(len(h.layer), 1)
        h.advance_to(31.99)
        self.assertEqual(h.times_sent("INVITE"), [0.0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5])
        self.assertEqual(h.events, [])
        h.advance_to(32.0)
        self.assertEqual(len(h.sent), 7)
        self.assertEqual(h.events[0], TransactionTimeout(key, h.sent[0][1]))
        self.assertEqual(h.events[1:], [TransactionTerminated(key)])
        self.assertEqual(len(h.layer), 0)
        self.assertEqual(h.layer.state(key), None)
        self.assertEqual(h.layer.next_deadline(), None)

    def test_retransmissions_go_to_the_peer_unchanged(self) -> None:
        h = Harness()
        req = request()
        h.send_request(req)
        h.advance_to(2.0)
        self.assertEqual([(m, p) for _, m, p in h.sent], [(req, PEER)] * 3)

    def test_custom_t1(self) -> None:
        h = Harness(Timers(t1=1.0))
        key = h.send_request(request())
        h.advance_to(100)
        self.assertEqual(h.times_sent("INVITE"), [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 63.0])
        self.assertIn(TransactionTimeout(key, h.sent[0][1]), h.events)
        self.assertEqual(len(h.layer), 0)

    def test_reliable_no_retransmission_timer_b_still_runs(self) -> None:
        h = Harness()
        key = h.send_request(request(), reliable=True)
        self.assertEqual(h.layer.next_deadline(), 32.0)
        h.advance_to(31.9)
        self.assertEqual(len(h.sent), 1)
        h.advance_to(32)
        self.assertEqual([type(e) for e in h.events], [TransactionTimeout, TransactionTerminated])
        self.assertEqual(h.events[1].key, key)

    def test_provisional_stops_retransmissions_and_timer_b(self) -> None:
        h = Harness()
        key = h.send_request(request())
        h.advance_to(1.0)
        r180 = response(180)
        h.receive(r180)
        self.assertEqual(h.layer.state(key), TxState.PROCEEDING)
        self.assertEqual(h.take_events(), [ResponseReceived(r180, key)])
        h.advance_to(500.0)
        self.assertEqual(h.times_sent("INVITE"), [0.0, 0.5])
        self.assertEqual(h.layer.state(key), TxState.PROCEEDING)
        self.assertEqual(h.events, [])
        # every further provisional is passed up
        r183 = response(183)
        h.receive(r183)
        h.receive(r180)
        self.assertEqual(h.take_events(), [ResponseReceived(r183, key), ResponseReceived(r180, key)])
        self.assertTrue(h.layer.terminate(key))
        h.pump()
        self.assertEqual(h.take_events(), [TransactionTerminated(key)])
        self.assertFalse(h.layer.terminate(key))
        self.assertReleased(h)

    def _non2xx(self, reliable: bool, after_provisional: bool) -> tuple[Harness, TransactionKey]:
        h = Harness()
        key = h.send_request(request(), reliable=reliable)
        if after_provisional:
            h.receive(response(100, to_tag=None), reliable=reliable)
            self.assertEqual(h.layer.state(key), TxState.PROCEEDING)
        h.take_sent()
        h.take_events()
        h.now = 2.0
        busy = response(486)
        h.receive(busy, reliable=reliable)
        sent = h.take_sent()
        self.assertEqual(len(sent), 1)
        self.assertEqual(sent[0][1].method, "ACK")
        self.assertEqual(h.events[0], ResponseReceived(busy, key))
        return h, key

    def test_non2xx_in_calling_acks_and_completes_udp(self) -> None:
        h, key = self._non2xx(reliable=False, after_provisional=False)
        self.assertEqual(h.layer.state(key), TxState.COMPLETED)
        # Timer A stopped: no INVITE retransmission anymore
        h.advance_to(33.99)
        self.assertEqual(h.times_sent("INVITE"), [])
        self.assertEqual(h.layer.state(key), TxState.COMPLETED)
        h.advance_to(34.0)  # Timer D = 32 s over UDP
        self.assertEqual(h.layer.state(key), None)
        self.assertEqual(h.events[-1], TransactionTerminated(key))

    def test_non2xx_in_proceeding(self) -> None:
        h, key = self._non2xx(reliable=False, after_provisional=True)
        self.assertEqual(h.layer.state(key), TxState.COMPLETED)
        self.assertReleased(h)

    def test_completed_retransmitted_final_reacks_and_is_absorbed(self) -> None:
        h, key = self._non2xx(reliable=False, after_provisional=False)
        h.take_events()
        ack = h.sent  # empty now
        self.assertEqual(ack, [])
        h.now = 3.0
        h.receive(response(486))
        h.receive(response(486))
        sent = h.take_sent()
        self.assertEqual([m.method for _, m, _ in sent], ["ACK", "ACK"])
        self.assertEqual(h.events, [])
        # provisional and 2xx in Completed are ignored
        h.receive(response(180))
        h.receive(response(200))
        self.assertEqual(h.sent, [])
        self.assertEqual(h.events, [])
        self.assertEqual(h.layer.state(key), TxState.COMPLETED)

    def test_non2xx_reliable_timer_d_zero(self) -> None:
        h, key = self._non2xx(reliable=True, after_provisional=False)
        self.assertEqual(h.layer.state(key), None)
        self.assertEqual(len(h.layer), 0)
        self.assertEqual(h.events[-1], TransactionTerminated(key))

    def test_ack_contents(self) -> None:
        """§17.1.1.3: R-URI, top Via only, From, Call-ID, Route of the INVITE; To of the
        response; CSeq number with ACK; Max-Forwards 70; no body."""
        routes = "Route: <sip:p1.example.net;lr>\r\nRoute: <sip:p2.example.net;lr>\r\n"
        data = (
            b"INVITE sip:bob@198.51.100.7:5070;transport=udp SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKack1;rport\r\n"
            b"Via: SIP/2.0/UDP 203.0.113.1;branch=z9hG4bKdown\r\n"
            b"Max-Forwards: 69\r\n"
            b"From: \"Alice\" <sip:alice@example.com>;tag=f1\r\n"
            b"To: <sip:bob@example.com>\r\n"
            b"Call-ID: ack-test\r\n"
            b"CSeq: 4711 INVITE\r\n" + routes.encode() +
            b"Contact: <sip:alice@192.0.2.10>\r\n"
            b"Content-Type: application/sdp\r\n"
            b"Content-Length: 4\r\n\r\nv=0\n"
        )
        inv = parse_message(data)
        assert isinstance(inv, Request)
        h = Harness()
        h.send_request(inv)
        h.take_sent()
        resp = parse_message(
            b"SIP/2.0 603 Decline\r\n"
            b"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKack1;rport=5060;received=192.0.2.10\r\n"
            b"Via: SIP/2.0/UDP 203.0.113.1;branch=z9hG4bKdown\r\n"
            b"From: \"Alice\" <sip:alice@example.com>;tag=f1\r\n"
            b"To: <sip:bob@example.com>;tag=callee9\r\n"
            b"Call-ID: ack-test\r\n"
            b"CSeq: 4711 INVITE\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        h.receive(resp)
        [(_, ack, peer)] = h.take_sent()
        self.assertEqual(peer, PEER)
        self.assertEqual(ack.method, "ACK")
        self.assertEqual(ack.uri, b"sip:bob@198.51.100.7:5070;transport=udp")
        self.assertEqual(ack.get_all("Via"), [b"SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKack1;rport"])
        self.assertEqual(ack.to.tag, "callee9")
        self.assertEqual(ack.get("To"), b"<sip:bob@example.com>;tag=callee9")
        self.assertEqual(ack.get("From"), b"\"Alice\" <sip:alice@example.com>;tag=f1")
        self.assertEqual(ack.call_id, "ack-test")
        self.assertEqual((ack.cseq.seq, ack.cseq.method), (4711, "ACK"))
        self.assertEqual(ack.max_forwards, 70)
        self.assertEqual(ack.get_all("Route"), [b"<sip:p1.example.net;lr>", b"<sip:p2.example.net;lr>"])
        self.assertEqual(ack.body, b"")
        self.assertEqual(ack.content_length, 0)
        self.assertFalse(ack.has("Contact"))
        # it survives a serialise/parse round trip
        again = parse_message(ack.to_bytes())
        self.assertEqual(again.get_all("Route"), ack.get_all("Route"))

    def test_2xx_enters_accepted_rfc6026(self) -> None:
        h = Harness()
        key = h.send_request(request())
        h.now = 0.2
        ok = response(200)
        h.receive(ok)
        self.assertEqual(h.layer.state(key), TxState.ACCEPTED)
        self.assertEqual(h.take_events(), [ResponseReceived(ok, key)])
        self.assertEqual(len(h.take_sent()), 1)  # the INVITE only: the TU ACKs a 2xx
        # 2xx retransmissions are passed up (the TU re-ACKs); others ignored
        h.now = 1.0
        h.receive(ok)
        ok2 = response(200, to_tag="fork2")  # a 2xx from another fork, too
        h.receive(ok2)
        h.receive(response(180))
        h.receive(response(486))
        self.assertEqual(h.take_events(), [ResponseReceived(ok, key), ResponseReceived(ok2, key)])
        self.assertEqual(h.take_sent(), [])
        h.advance_to(32.19)
        self.assertEqual(h.layer.state(key), TxState.ACCEPTED)
        self.assertEqual(h.sent, [])  # no retransmission in Accepted
        h.advance_to(32.2)  # Timer M = 64*T1 from 0.2
        self.assertEqual(h.take_events(), [TransactionTerminated(key)])
        self.assertEqual(len(h.layer), 0)

    def test_accepted_holds_a_slim_invite(self) -> None:
        # In Accepted the INVITE is neither retransmitted nor cancelled: only its identity is
        # kept (a held call's transaction must not hold the whole message for 64*T1).
        h = Harness()
        inv = request(extra="Subject: big\r\nContent-Type: application/sdp\r\n")
        key = h.send_request(inv)
        self.assertIs(h.layer.request(key), inv)
        h.receive(response(200))
        kept = h.layer.request(key)
        self.assertIsNot(kept, inv)
        self.assertEqual([x.name for x in kept.headers], ["Via", "From", "To", "Call-ID", "CSeq", "Contact"])
        self.assertEqual((kept.method, kept.uri, kept.body), ("INVITE", inv.uri, b""))
        self.assertEqual((kept.call_id, kept.cseq, kept.top_via.branch), (inv.call_id, inv.cseq, "z9hG4bKabc1"))
        self.assertIsNone(h.layer.cancel(key, h.now))  # nothing to cancel once answered
        h.take_events()
        h.receive(response(200))
        self.assertEqual([type(e) for e in h.take_events()], [ResponseReceived])  # still passed up

    def test_2xx_after_provisional_reliable(self) -> None:
        h = Harness()
        key = h.send_request(request(), reliable=True)
        h.receive(response(180), reliable=True)
        h.receive(response(200), reliable=True)
        self.assertEqual(h.layer.state(key), TxState.ACCEPTED)
        self.assertEqual(h.layer.next_deadline(), 32.0)  # Timer M also over TCP
        self.assertReleased(h)

    def test_duplicate_branch_rejected(self) -> None:
        h = Harness()
        h.send_request(request())
        self.assertRaises(DuplicateTransaction, h.layer.send_request, request(), PEER, False, 0.0)
        # same branch, other method: a different transaction
        h.send_request(request("CANCEL", cseq_method="CANCEL"))
        self.assertEqual(len(h.layer), 2)

    def test_send_request_without_branch(self) -> None:
        h = Harness()
        from sbc.sip.errors import SipParseError

        self.assertRaises(SipParseError, h.layer.send_request, request(branch=None), PEER, False, 0.0)
        self.assertEqual(len(h.layer), 0)

    def test_ack_sent_statelessly(self) -> None:
        h = Harness()
        ack = request("ACK", branch="z9hG4bKack2xx", to_tag="t1")
        key = h.send_request(ack)
        self.assertEqual(len(h.layer), 0)
        self.assertEqual(h.layer.state(key), None)
        self.assertEqual([m for _, m, _ in h.sent], [ack])
        h.layer.send_stateless(ack, PEER)
        self.assertEqual(h.layer.messages_to_send(), [(ack, PEER)])


# ============================================================================ CANCEL (client)


class ClientCancelTests(_Base):
    def test_cancel_in_proceeding_sends_cancel(self) -> None:
        h = Harness()
        inv = request(extra="Route: <sip:edge.example.net;lr>\r\n")
        key = h.send_request(inv)
        h.receive(response(180))
        h.take_sent()
        h.take_events()
        h.now = 5.0
        ckey = h.layer.cancel(key, h.now)
        h.pump()
        self.assertEqual(ckey, TransactionKey(False, "CANCEL", "z9hG4bKabc1", ""))
        [(_, cancel, peer)] = h.take_sent()
        self.assertEqual(peer, PEER)
        self.assertEqual(cancel, build_cancel(inv))
        self.assertEqual(cancel.method, "CANCEL")
        self.assertEqual(cancel.uri, inv.uri)
        self.assertEqual(cancel.get_all("Via"), inv.get_all("Via"))
        self.assertEqual((cancel.cseq.seq, cancel.cseq.method), (1, "CANCEL"))
        self.assertEqual(cancel.get("To"), inv.get("To"))
        self.assertEqual(cancel.get("From"), inv.get("From"))
        self.assertEqual(cancel.get_all("Route"), [b"<sip:edge.example.net;lr>"])
        self.assertEqual(h.layer.state(ckey), TxState.TRYING)
        # idempotent
        self.assertEqual(h.layer.cancel(key, h.now), ckey)
        self.assertEqual(h.layer.messages_to_send(), [])
        # 200 for the CANCEL, then 487 for the INVITE
        ok = response(200, method="CANCEL")
        h.receive(ok)
        terminated = response(487)
        h.receive(terminated)
        self.assertEqual(
            h.take_events(), [ResponseReceived(ok, ckey), ResponseReceived(terminated, key)]
        )
        self.assertEqual([m.method for _, m, _ in h.take_sent()], ["ACK"])
        self.assertEqual(h.layer.state(key), TxState.COMPLETED)
        self.assertIsNone(h.layer.cancel(key, h.now))  # nothing left to cancel
        self.assertReleased(h)

    def test_cancel_in_calling_waits_for_provisional(self) -> None:
        h = Harness()
        key = h.send_request(request())
        h.now = 0.1
        ckey = h.layer.cancel(key, h.now)
        h.pump()
        self.assertEqual(h.times_sent("CANCEL"), [])
        self.assertEqual(h.layer.state(ckey), None)
        h.advance_to(0.7)  # Timer A keeps running
        self.assertEqual(h.times_sent("INVITE"), [0.0, 0.5])
        h.receive(response(100, to_tag=None))
        self.assertEqual(h.times_sent("CANCEL"), [0.7])
        self.assertEqual(h.layer.state(ckey), TxState.TRYING)
        # no final for the INVITE: 64*T1 after the CANCEL the INVITE tx gives up
        h.receive(response(200, method="CANCEL"))
        h.take_events()
        h.advance_to(32.69)
        self.assertEqual(h.layer.state(key), TxState.PROCEEDING)
        h.advance_to(32.7)
        self.assertEqual(h.layer.state(key), None)
        self.assertIn(TransactionTimeout(key, h.sent[0][1]), h.events)
        self.assertReleased(h)

    def test_cancel_in_calling_never_sent_if_final_first(self) -> None:
        h = Harness()
        key = h.send_request(request())
        h.layer.cancel(key, 0.0)
        h.receive(response(486))
        h.advance_to(FAR)
        self.assertEqual(h.times_sent("CANCEL"), [])
        self.assertEqual(len(h.layer), 0)

    def test_cancel_in_calling_never_sent_if_timer_b(self) -> None:
        h = Harness()
        key = h.send_request(request())
        h.layer.cancel(key, 0.0)
        h.advance_to(FAR)
        self.assertEqual(h.times_sent("CANCEL"), [])
        self.assertEqual(len(h.sent), 7)
        self.assertEqual(len(h.layer), 0)

    def test_cancel_unknown_or_non_invite(self) -> None:
        h = Harness()
        nkey = h.send_request(request("OPTIONS"))
        self.assertRaises(TransactionDoesNotExist, h.layer.cancel, nkey, 0.0)
        self.assertRaises(
            TransactionDoesNotExist, h.layer.cancel, TransactionKey(False, "INVITE", "x", ""), 0.0
        )

    def test_cancel_then_2xx(self) -> None:
        h = Harness()
        key = h.send_request(request())
        h.receive(response(180))
        h.layer.cancel(key, 0.0)
        h.receive(response(200))
        self.assertEqual(h.layer.state(key), TxState.ACCEPTED)
        self.assertReleased(h)


# ============================================================================ non-INVITE client


class NonInviteClientTests(_Base):
    def test_udp_schedule_capped_at_t2_then_timer_f(self) -> None:
        h = Harness()
        req = request("OPTIONS")
        key = h.send_request(req)
        self.assertEqual(h.layer.state(key), TxState.TRYING)
        h.advance_to(31.99)
        self.assertEqual(
            h.times_sent("OPTIONS"),
            [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5],
        )
        h.advance_to(32.0)
        self.assertEqual(h.events, [TransactionTimeout(key, req), TransactionTerminated(key)])
        self.assertEqual(len(h.layer), 0)

    def test_proceeding_retransmits_every_t2(self) -> None:
        h = Harness()
        key = h.send_request(request("BYE", to_tag="t1"))
        h.now = 0.2
        trying = response(100, method="BYE")
        h.receive(trying)
        self.assertEqual(h.layer.state(key), TxState.PROCEEDING)
        self.assertEqual(h.take_events(), [ResponseReceived(trying, key)])
        h.advance_to(31.99)
        self.assertEqual(
            h.times_sent("BYE"), [0.0, 0.5, 4.5, 8.5, 12.5, 16.5, 20.5, 24.5, 28.5]
        )
        h.advance_to(32.0)
        self.assertEqual([type(e) for e in h.events], [TransactionTimeout, TransactionTerminated])

    def test_custom_t2(self) -> None:
        h = Harness(Timers(t1=0.5, t2=2.0))
        h.send_request(request("OPTIONS"))
        h.advance_to(8.0)
        self.assertEqual(h.times_sent("OPTIONS"), [0.0, 0.5, 1.5, 3.5, 5.5, 7.5])

    def test_final_in_trying_completes_timer_k(self) -> None:
        h = Harness()
        key = h.send_request(request("OPTIONS"))
        h.advance_to(1.0)
        ok = response(200, method="OPTIONS")
        h.receive(ok)
        self.assertEqual(h.layer.state(key), TxState.COMPLETED)
        self.assertEqual(h.take_events(), [ResponseReceived(ok, key)])
        # retransmitted finals and late provisionals are absorbed
        h.receive(ok)
        h.receive(response(100, method="OPTIONS"))
        self.assertEqual(h.events, [])
        h.advance_to(5.99)
        self.assertEqual(h.times_sent("OPTIONS"), [0.0, 0.5])
        self.assertEqual(h.layer.state(key), TxState.COMPLETED)
        h.advance_to(6.0)  # Timer K = T4
        self.assertEqual(h.events, [TransactionTerminated(key)])

    def test_final_in_proceeding(self) -> None:
        h = Harness()
        key = h.send_request(request("REGISTER"))
        r1 = response(100, method="REGISTER")
        r2 = response(183, method="REGISTER")
        r3 = response(401, method="REGISTER")
        for r in (r1, r2, r3):
            h.receive(r)
        self.assertEqual(h.take_events(), [ResponseReceived(r, key) for r in (r1, r2, r3)])
        self.assertEqual(h.layer.state(key), TxState.COMPLETED)
        self.assertReleased(h)

    def test_reliable(self) -> None:
        h = Harness()
        key = h.send_request(request("OPTIONS"), reliable=True)
        h.advance_to(31.0)
        self.assertEqual(len(h.sent), 1)
        ok = response(200, method="OPTIONS")
        h.receive(ok, reliable=True)
        # Timer K = 0: released at once
        self.assertEqual(h.events, [ResponseReceived(ok, key), TransactionTerminated(key)])
        self.assertEqual(len(h.layer), 0)

    def test_reliable_timer_f(self) -> None:
        h = Harness()
        key = h.send_request(request("OPTIONS"), reliable=True)
        h.advance_to(32.0)
        self.assertEqual([type(e) for e in h.events], [TransactionTimeout, TransactionTerminated])
        self.assertEqual(h.events[0].key, key)


# ============================================================================ INVITE server


class InviteServerTests(_Base):
    def start(self, reliable: bool = False, inv: Request | None = None) -> tuple[Harness, TransactionKey, Request]:
        h = Harness()
        inv = inv or request()
        h.receive(inv, reliable=reliable)
        [event] = h.take_events()
        self.assertIsInstance(event, RequestReceived)
        self.assertEqual(event.request, inv)
        self.assertEqual(event.peer, PEER)
        self.assertEqual(h.layer.state(event.key), TxState.PROCEEDING)
        self.assertEqual(h.sent, [])  # no automatic 100 Trying
        return h, event.key, inv

    def test_key(self) -> None:
        h, key, _ = self.start()
        self.assertEqual(key, TransactionKey(True, "INVITE", "z9hG4bKabc1", "192.0.2.10:5060"))

    def test_retransmission_before_any_response_is_absorbed(self) -> None:
        h, key, inv = self.start()
        h.receive(inv)
        self.assertEqual((h.sent, h.events), ([], []))
        self.assertEqual(len(h.layer), 1)

    def test_provisional_resent_on_retransmission(self) -> None:
        h, key, inv = self.start()
        trying = answer(inv, 100, to_tag=None)
        h.send_response(key, trying)
        ringing = answer(inv, 180)
        h.send_response(key, ringing)
        h.take_sent()
        h.receive(inv)
        self.assertEqual([m for _, m, _ in h.sent], [ringing])
        self.assertEqual(h.events, [])
        self.assertEqual(h.layer.state(key), TxState.PROCEEDING)
        # no timer runs in Proceeding
        self.assertIsNone(h.layer.next_deadline())

    def test_non2xx_udp_timer_g_then_timer_h(self) -> None:
        h, key, inv = self.start()
        busy = answer(inv, 486)
        h.send_response(key, busy)
        self.assertEqual(h.layer.state(key), TxState.COMPLETED)
        h.advance_to(31.99)
        self.assertEqual(
            h.times_sent(486),
            [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5],
        )
        self.assertEqual(h.events, [])
        h.advance_to(32.0)
        self.assertEqual(h.events, [AckTimeout(key, inv), TransactionTerminated(key)])
        self.assertEqual(len(h.layer), 0)

    def test_non2xx_retransmitted_invite_resends_final(self) -> None:
        h, key, inv = self.start()
        h.send_response(key, answer(inv, 100, to_tag=None))
        busy = answer(inv, 486)
        h.send_response(key, busy)
        h.take_sent()
        h.now = 0.2
        h.receive(inv)
        self.assertEqual(h.take_sent(), [(0.2, busy, PEER)])

    def test_ack_confirms_stops_g_timer_i(self) -> None:
        h, key, inv = self.start()
        busy = answer(inv, 486)
        h.send_response(key, busy)
        h.advance_to(2.0)
        self.assertEqual(h.times_sent(486), [0.0, 0.5, 1.5])
        ack = request("ACK", to_tag="t1")
        h.receive(ack)
        self.assertEqual(h.layer.state(key), TxState.CONFIRMED)
        self.assertEqual(h.events, [])  # absorbed
        # retransmitted ACK and INVITE absorbed in Confirmed
        h.receive(ack)
        h.receive(inv)
        h.advance_to(6.99)
        self.assertEqual(h.times_sent(486), [0.0, 0.5, 1.5])
        self.assertEqual(h.events, [])
        h.advance_to(7.0)  # Timer I = T4
        self.assertEqual(h.events, [TransactionTerminated(key)])
        self.assertEqual(len(h.layer), 0)

    def test_reliable_no_timer_g_ack_releases_at_once(self) -> None:
        h, key, inv = self.start(reliable=True)
        h.send_response(key, answer(inv, 603))
        self.assertEqual(h.layer.next_deadline(), 32.0)  # Timer H only
        h.advance_to(10)
        self.assertEqual(len(h.sent), 1)
        h.receive(request("ACK", to_tag="t1"), reliable=True)
        self.assertEqual(h.events, [TransactionTerminated(key)])
        self.assertEqual(len(h.layer), 0)

    def test_reliable_timer_h(self) -> None:
        h, key, inv = self.start(reliable=True)
        h.send_response(key, answer(inv, 603))
        h.advance_to(32)
        self.assertEqual(h.events, [AckTimeout(key, inv), TransactionTerminated(key)])

    def test_2xx_accepted_rfc6026(self) -> None:
        h, key, inv = self.start()
        ok = answer(inv, 200)
        h.send_response(key, ok)
        self.assertEqual(h.layer.state(key), TxState.ACCEPTED)
        h.take_sent()
        # retransmitted INVITE absorbed: neither resent 2xx nor event
        h.now = 0.5
        h.receive(inv)
        self.assertEqual((h.sent, h.events), ([], []))
        # the TU's own 2xx retransmissions go through
        h.send_response(key, ok)
        self.assertEqual(h.take_sent(), [(0.5, ok, PEER)])
        # 1xx or non-2xx after the 2xx is a TU error
        self.assertRaises(TransactionStateError, h.layer.send_response, key, answer(inv, 180), 0.5)
        self.assertRaises(TransactionStateError, h.layer.send_response, key, answer(inv, 500), 0.5)
        # ACK for the 2xx (new branch) matches no transaction: passed up
        ack = request("ACK", branch="z9hG4bKack2xx", to_tag="t1")
        h.receive(ack)
        self.assertEqual(h.take_events(), [AckReceived(ack, PEER)])
        # an ACK with the INVITE's branch (broken UAs) is passed up too in Accepted
        ack_same = request("ACK", to_tag="t1")
        h.receive(ack_same)
        self.assertEqual(h.take_events(), [AckReceived(ack_same, PEER)])
        self.assertEqual(h.layer.state(key), TxState.ACCEPTED)
        h.advance_to(31.99)
        self.assertEqual(h.sent, [])
        h.advance_to(32.0)  # Timer L = 64*T1 from the 2xx at 0
        self.assertEqual(h.events, [TransactionTerminated(key)])
        self.assertEqual(len(h.layer), 0)

    def test_2xx_reliable_timer_l(self) -> None:
        h, key, inv = self.start(reliable=True)
        h.send_response(key, answer(inv, 200))
        self.assertEqual(h.layer.next_deadline(), 32.0)
        self.assertReleased(h)

    def test_responses_after_final_are_errors(self) -> None:
        h, key, inv = self.start()
        h.send_response(key, answer(inv, 486))
        for status in (180, 200, 486):
            self.assertRaises(TransactionStateError, h.layer.send_response, key, answer(inv, status), 0.0)
        h.receive(request("ACK", to_tag="t1"))
        self.assertRaises(TransactionStateError, h.layer.send_response, key, answer(inv, 200), 0.0)

    def test_unknown_key(self) -> None:
        h, key, inv = self.start(reliable=True)
        bogus = TransactionKey(True, "INVITE", "z9hG4bKnope", "x")
        self.assertRaises(TransactionDoesNotExist, h.layer.send_response, bogus, answer(inv, 200), 0.0)
        # a client key is not a server transaction
        ckey = h.send_request(request("OPTIONS", branch="z9hG4bKout"))
        self.assertRaises(TransactionDoesNotExist, h.layer.send_response, ckey, answer(inv, 200), 0.0)
        h.send_response(key, answer(inv, 486))
        h.receive(request("ACK", to_tag="t1"), reliable=True)
        self.assertEqual(h.layer.state(key), None)
        self.assertRaises(TransactionDoesNotExist, h.layer.send_response, key, answer(inv, 486), 0.0)
        self.assertRaises(TransactionDoesNotExist, h.layer.request, key)

    def test_ack_in_proceeding_absorbed(self) -> None:
        h, key, inv = self.start()
        h.receive(request("ACK"))
        self.assertEqual((h.events, h.sent), ([], []))
        self.assertEqual(h.layer.state(key), TxState.PROCEEDING)

    def test_request_accessor(self) -> None:
        h, key, inv = self.start()
        self.assertIs(h.layer.request(key), inv)


# ============================================================================ non-INVITE server


class NonInviteServerTests(_Base):
    def start(self, reliable: bool = False, method: str = "OPTIONS") -> tuple[Harness, TransactionKey, Request]:
        h = Harness()
        req = request(method)
        h.receive(req, reliable=reliable)
        [event] = h.take_events()
        self.assertEqual(event, RequestReceived(req, PEER, event.key))
        self.assertEqual(event.key, TransactionKey(True, method, "z9hG4bKabc1", "192.0.2.10:5060"))
        self.assertEqual(h.layer.state(event.key), TxState.TRYING)
        return h, event.key, req

    def test_trying_absorbs_retransmissions(self) -> None:
        h, key, req = self.start()
        h.receive(req)
        self.assertEqual((h.sent, h.events), ([], []))

    def test_retransmission_from_elsewhere_answered_there(self) -> None:
        """A retransmission that arrives another way (new TCP connection, NAT rebinding)
        gets the response repeated to where it came from."""
        h, key, req = self.start()
        ok = answer(req, 200)
        h.send_response(key, ok)
        self.assertEqual([peer for _, _, peer in h.take_sent()], [PEER])
        elsewhere = ("tcp", "192.0.2.1", 40123)
        h.receive(req, peer=elsewhere)
        self.assertEqual([(m, peer) for _, m, peer in h.take_sent()], [(ok, elsewhere)])
        h.receive(req)
        self.assertEqual([peer for _, _, peer in h.take_sent()], [PEER])

    def test_proceeding(self) -> None:
        h, key, req = self.start(method="BYE")
        trying = answer(req, 100, to_tag=None)
        h.send_response(key, trying)
        self.assertEqual(h.layer.state(key), TxState.PROCEEDING)
        h.send_response(key, trying)
        h.take_sent()
        h.receive(req)
        self.assertEqual([m for _, m, _ in h.take_sent()], [trying])
        ok = answer(req, 200)
        h.send_response(key, ok)
        self.assertEqual(h.layer.state(key), TxState.COMPLETED)
        self.assertReleased(h)

    def test_completed_udp_timer_j(self) -> None:
        h, key, req = self.start()
        ok = answer(req, 200)
        h.send_response(key, ok)
        self.assertEqual(h.layer.state(key), TxState.COMPLETED)
        h.take_sent()
        h.now = 3.0
        h.receive(req)
        self.assertEqual(h.take_sent(), [(3.0, ok, PEER)])
        # further responses from the TU are discarded (§17.2.2)
        h.send_response(key, answer(req, 500))
        h.send_response(key, answer(req, 180))
        self.assertEqual(h.sent, [])
        h.advance_to(31.99)
        self.assertEqual(h.sent, [])  # the server never retransmits on its own
        self.assertEqual(h.layer.state(key), TxState.COMPLETED)
        h.advance_to(32.0)  # Timer J = 64*T1
        self.assertEqual(h.events, [TransactionTerminated(key)])
        self.assertEqual(len(h.layer), 0)

    def test_completed_reliable_timer_j_zero(self) -> None:
        h, key, req = self.start(reliable=True)
        h.send_response(key, answer(req, 404))
        self.assertEqual(h.events, [TransactionTerminated(key)])
        self.assertEqual(len(h.layer), 0)
        self.assertIsNone(h.layer.next_deadline())

    def test_distinct_sent_by_and_method_are_distinct_transactions(self) -> None:
        h, key, req = self.start()
        h.receive(request("OPTIONS", sent_by="192.0.2.99:5060"))
        h.receive(request("INFO"))
        h.receive(request("options"))  # methods are case-sensitive
        self.assertEqual(len(h.layer), 4)
        self.assertEqual([type(e) for e in h.events], [RequestReceived] * 3)


# ============================================================================ matching


class MatchingTests(_Base):
    def test_cancel_matches_invite_server_transaction(self) -> None:
        h = Harness()
        inv = request()
        h.receive(inv)
        [ev] = h.take_events()
        cancel = request("CANCEL")
        h.receive(cancel)
        [cev] = h.take_events()
        self.assertIsInstance(cev, CancelReceived)
        self.assertEqual(cev.invite_key, ev.key)
        self.assertEqual(cev.key, TransactionKey(True, "CANCEL", "z9hG4bKabc1", "192.0.2.10:5060"))
        self.assertNotEqual(cev.key, ev.key)
        self.assertEqual(len(h.layer), 2)
        # the CANCEL retransmission is absorbed by its own transaction
        h.receive(cancel)
        self.assertEqual(h.events, [])
        # TU: 200 to CANCEL, 487 to INVITE
        h.send_response(cev.key, answer(cancel, 200))
        h.send_response(ev.key, answer(inv, 487))
        h.receive(request("ACK", to_tag="t1"))
        self.assertEqual(h.layer.state(ev.key), TxState.CONFIRMED)
        self.assertReleased(h)

    def test_cancel_without_invite(self) -> None:
        h = Harness()
        h.receive(request("CANCEL", branch="z9hG4bKlonely"))
        [cev] = h.take_events()
        self.assertIsInstance(cev, CancelReceived)
        self.assertIsNone(cev.invite_key)
        # other branch / other sent-by do not match
        h.receive(request("INVITE", branch="z9hG4bKinv"))
        h.take_events()
        h.receive(request("CANCEL", branch="z9hG4bKinv", sent_by="198.51.100.1"))
        [cev] = h.take_events()
        self.assertIsNone(cev.invite_key)

    def test_cancel_after_invite_released(self) -> None:
        h = Harness()
        inv = request()
        h.receive(inv, reliable=True)
        [ev] = h.take_events()
        h.send_response(ev.key, answer(inv, 486))
        h.receive(request("ACK", to_tag="t1"), reliable=True)
        h.take_events()
        h.receive(request("CANCEL"), reliable=True)
        [cev] = h.take_events()
        self.assertIsNone(cev.invite_key)

    def test_sent_by_host_is_case_insensitive(self) -> None:
        h = Harness()
        h.receive(request("OPTIONS", sent_by="Host.Example.COM:5060"))
        h.receive(request("OPTIONS", sent_by="host.example.com:5060"))
        self.assertEqual(len(h.layer), 1)

    def test_rfc2543_invite_retransmission_and_ack(self) -> None:
        h = Harness()
        inv = request(branch=None)
        h.receive(inv)
        [ev] = h.take_events()
        self.assertTrue(ev.key.server)
        self.assertTrue(ev.key.branch.startswith("2543"))
        h.receive(request(branch=None))  # retransmission (same bytes) matches
        self.assertEqual((h.events, len(h.layer)), ([], 1))
        busy = answer(inv, 486, to_tag="t9")
        h.send_response(ev.key, busy)
        h.take_sent()
        h.receive(request(branch=None))
        self.assertEqual([m for _, m, _ in h.take_sent()], [busy])
        # an ACK whose To tag differs from the response's does not match
        bad_ack = request("ACK", branch=None, to_tag="other")
        h.receive(bad_ack)
        self.assertEqual(h.take_events(), [AckReceived(bad_ack, PEER)])
        self.assertEqual(h.layer.state(ev.key), TxState.COMPLETED)
        # the right ACK: same R-URI, From tag, Call-ID, CSeq number, top Via; To tag of the 486
        h.receive(request("ACK", branch=None, to_tag="t9"))
        self.assertEqual(h.layer.state(ev.key), TxState.CONFIRMED)
        self.assertEqual(h.events, [])
        self.assertReleased(h)

    def test_rfc2543_fields_distinguish(self) -> None:
        h = Harness()
        h.receive(request("INVITE", branch=None))
        variants = [
            dict(ruri="sip:carol@example.com"),
            dict(from_tag="f2"),
            dict(call_id="other-call"),
            dict(cseq=2),
            dict(sent_by="192.0.2.11:5060"),
            dict(to_tag="x"),
        ]
        for kw in variants:
            h.receive(request("INVITE", branch=None, **kw))  # type: ignore[arg-type]
        self.assertEqual(len(h.layer), 1 + len(variants))
        self.assertEqual(len(h.events), 1 + len(variants))

    def test_rfc2543_branch_without_cookie(self) -> None:
        """A branch that lacks z9hG4bK is not trusted as a transaction id."""
        h = Harness()
        h.receive(request("OPTIONS", branch="oldstyle1"))
        h.receive(request("OPTIONS", branch="oldstyle1", call_id="another"))
        self.assertEqual(len(h.layer), 2)
        h.receive(request("OPTIONS", branch="oldstyle1"))
        self.assertEqual(len(h.layer), 2)

    def test_rfc2543_cancel_matches_invite(self) -> None:
        h = Harness()
        h.receive(request("INVITE", branch=None))
        [ev] = h.take_events()
        h.receive(request("CANCEL", branch=None))
        [cev] = h.take_events()
        self.assertEqual(cev.invite_key, ev.key)
        h.receive(request("CANCEL", branch=None, cseq=5))
        [cev2] = h.take_events()
        self.assertIsNone(cev2.invite_key)

    def test_rfc2543_reinvite_ack(self) -> None:
        """A re-INVITE has a To tag already; its ACK carries the same tag."""
        h = Harness()
        inv = request(branch=None, to_tag="t1", cseq=2)
        h.receive(inv)
        [ev] = h.take_events()
        h.send_response(ev.key, answer(inv, 491))
        h.receive(request("ACK", branch=None, to_tag="t1", cseq=2))
        self.assertEqual(h.layer.state(ev.key), TxState.CONFIRMED)

    def test_ack_without_transaction(self) -> None:
        h = Harness()
        ack = request("ACK", to_tag="t1")
        h.receive(ack)
        self.assertEqual(h.events, [AckReceived(ack, PEER)])
        ack2 = request("ACK", branch=None, to_tag="t1")
        h.receive(ack2)
        self.assertEqual(h.events[1:], [AckReceived(ack2, PEER)])
        self.assertEqual(len(h.layer), 0)

    def test_response_matching_needs_branch_and_method(self) -> None:
        h = Harness()
        key = h.send_request(request())
        for stray in (
            response(200, branch="z9hG4bKother"),
            response(200, method="BYE"),
            response(200, branch=None),
        ):
            h.receive(stray)
            self.assertEqual(h.take_events(), [StrayResponse(stray, PEER)])
        self.assertEqual(h.layer.state(key), TxState.CALLING)

    def test_malformed_response_is_stray(self) -> None:
        h = Harness()
        h.send_request(request())
        for data in (
            b"SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
            b"SIP/2.0 200 OK\r\nVia: garbage\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKabc1\r\nCSeq: x\r\nContent-Length: 0\r\n\r\n",
        ):
            msg = parse_message(data)
            h.receive(msg)
            self.assertEqual(h.take_events(), [StrayResponse(msg, PEER)])

    def test_final_without_to_is_stray_and_changes_nothing(self) -> None:
        h = Harness()
        key = h.send_request(request())
        bad = parse_message(
            b"SIP/2.0 486 Busy\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKabc1\r\n"
            b"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        )
        h.receive(bad)
        self.assertEqual(h.take_events(), [StrayResponse(bad, PEER)])
        self.assertEqual(h.layer.state(key), TxState.CALLING)
        h.advance_to(0.5)
        self.assertEqual(h.times_sent("INVITE"), [0.0, 0.5])  # Timer A still running
        self.assertEqual(h.times_sent("ACK"), [])

    def test_broken_invite_refused_at_send(self) -> None:
        from sbc.sip.errors import SipParseError

        h = Harness()
        broken = parse_message(
            b"INVITE sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK9\r\n"
            b"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
        )
        self.assertRaises(SipParseError, h.layer.send_request, broken, PEER, False, 0.0)
        self.assertEqual((len(h.layer), h.layer.messages_to_send()), (0, []))

    def test_malformed_request_raises_parse_error(self) -> None:
        from sbc.sip.errors import SipParseError

        h = Harness()
        msg = parse_message(b"OPTIONS sip:a@b SIP/2.0\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        self.assertRaises(SipParseError, h.layer.receive, msg, PEER, False, 0.0)
        self.assertEqual(len(h.layer), 0)


# ============================================================================ UAS 2xx retransmission


class Retransmit2xxTests(_Base):
    """The opt-in UAS core behaviour of RFC 3261 §13.3.1.4 (TransactionLayer(retransmit_2xx=True))."""

    def start(self, reliable: bool = False) -> tuple[Harness, TransactionKey, Request, Response]:
        h = Harness(retransmit_2xx=True)
        inv = request()
        h.receive(inv, reliable=reliable)
        [ev] = h.take_events()
        ok = answer(inv, 200, to_tag="uas1")
        h.send_response(ev.key, ok)
        return h, ev.key, inv, ok

    def test_off_by_default(self) -> None:
        h = Harness()
        inv = request()
        h.receive(inv)
        [ev] = h.take_events()
        h.send_response(ev.key, answer(inv, 200))
        h.advance_to(FAR)
        self.assertEqual(len(h.sent), 1)
        self.assertEqual(h.events, [TransactionTerminated(ev.key)])

    def test_retransmits_until_64t1_then_ack_missing(self) -> None:
        h, key, inv, ok = self.start()
        h.advance_to(31.99)
        self.assertEqual(
            h.times_sent(200), [0.0, 0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
        )
        h.advance_to(32.0)
        self.assertEqual(h.events, [AckMissing(key, inv, ok), TransactionTerminated(key)])
        self.assertEqual(h.layer._awaiting_ack, {})

    def test_ack_stops_retransmissions(self) -> None:
        h, key, inv, ok = self.start()
        h.advance_to(2.0)
        self.assertEqual(h.times_sent(200), [0.0, 0.5, 1.5])
        # ACK of another dialog (To tag) or CSeq does not stop them
        for other in (request("ACK", branch="z9hG4bKx", to_tag="nope"),
                      request("ACK", branch="z9hG4bKx", to_tag="uas1", cseq=2)):
            h.receive(other)
        self.assertEqual([type(e) for e in h.take_events()], [AckReceived, AckReceived])
        h.advance_to(3.5)
        self.assertEqual(h.times_sent(200), [0.0, 0.5, 1.5, 3.5])
        ack = request("ACK", branch="z9hG4bKack", to_tag="uas1")
        h.receive(ack)
        self.assertEqual(h.take_events(), [AckReceived(ack, PEER)])
        self.assertEqual(h.layer.state(key), TxState.ACCEPTED)  # still absorbs INVITE retransmits
        h.advance_to(FAR)
        self.assertEqual(h.times_sent(200), [0.0, 0.5, 1.5, 3.5])
        self.assertEqual(h.events, [TransactionTerminated(key)])  # no AckMissing

    def test_acked_transaction_keeps_neither_message_whole(self) -> None:
        h, key, inv, ok = self.start()
        self.assertIs(h.layer.request(key), inv)
        h.receive(request("ACK", branch="z9hG4bKack", to_tag="uas1"))
        kept = h.layer.request(key)
        self.assertEqual([x.name for x in kept.headers], ["Via", "From", "To", "Call-ID", "CSeq", "Contact"])
        self.assertEqual((kept.call_id, kept.cseq), (inv.call_id, inv.cseq))
        # an INVITE retransmission is still absorbed, and nothing is sent again
        h.take_sent()
        h.take_events()
        h.receive(inv)
        self.assertEqual((h.take_sent(), h.take_events()), ([], []))
        h.advance_to(FAR)
        self.assertEqual(h.events, [TransactionTerminated(key)])

    def test_tu_resend_replaces_the_retransmitted_response(self) -> None:
        h, key, inv, ok = self.start()
        ok2 = answer(inv, 202, to_tag="uas1")
        h.now = 0.1
        h.send_response(key, ok2)
        h.advance_to(0.5)
        self.assertEqual([m.status for _, m, _ in h.sent], [200, 202, 202])

    def test_reliable_no_retransmission_but_ack_missing(self) -> None:
        h, key, inv, ok = self.start(reliable=True)
        h.advance_to(FAR)
        self.assertEqual(len(h.sent), 1)
        self.assertEqual(h.events, [AckMissing(key, inv, ok), TransactionTerminated(key)])


class TransportErrorTests(_Base):
    def test_client_and_server(self) -> None:
        h = Harness()
        req = request("OPTIONS")
        ckey = h.send_request(req, reliable=True)
        inv = request("INVITE", branch="z9hG4bKin")
        h.receive(inv, reliable=True)
        [ev] = h.take_events()
        self.assertTrue(h.layer.transport_error(ckey))
        self.assertTrue(h.layer.transport_error(ev.key))
        h.pump()
        self.assertEqual(h.events, [
            TransportError(ckey, req), TransactionTerminated(ckey),
            TransportError(ev.key, inv), TransactionTerminated(ev.key),
        ])
        self.assertFalse(h.layer.transport_error(ckey))
        self.assertEqual(len(h.layer), 0)
        self.assertIsNone(h.layer.next_deadline())


# ============================================================================ heap


class TimerHeapTests(SynchronousTestCase):
    def test_next_deadline_skips_dead_entries(self) -> None:
        layer = TransactionLayer()
        key = layer.send_request(request("OPTIONS"), PEER, False, 0.0)
        self.assertEqual(layer.next_deadline(), 0.5)
        layer.terminate(key)
        self.assertIsNone(layer.next_deadline())
        layer.handle_timer(100.0)
        self.assertEqual(layer.messages_to_send()[1:], [])

    def test_handle_timer_early_does_nothing(self) -> None:
        layer = TransactionLayer()
        layer.send_request(request("OPTIONS"), PEER, False, 0.0)
        layer.messages_to_send()
        layer.handle_timer(0.49)
        self.assertEqual(layer.messages_to_send(), [])
        layer.handle_timer(0.5)
        self.assertEqual(len(layer.messages_to_send()), 1)

    def test_late_handle_timer_fires_everything_due_in_order(self) -> None:
        layer = TransactionLayer()
        k1 = layer.send_request(request("OPTIONS", branch="z9hG4bK1"), PEER, True, 0.0)
        k2 = layer.send_request(request("OPTIONS", branch="z9hG4bK2"), PEER, True, 1.0)
        layer.handle_timer(500.0)
        events = []
        while (e := layer.next_event()) is not None:
            events.append(e)
        self.assertEqual([getattr(e, "key", None) for e in events], [k1, k1, k2, k2])
        self.assertEqual(len(layer), 0)

    def test_heap_is_compacted(self) -> None:
        """Answered client transactions leave dead Timer E/F entries; they do not pile up."""
        layer = TransactionLayer()
        for i in range(6000):
            layer.send_request(request("OPTIONS", branch=f"z9hG4bK{i}"), PEER, False, 0.0)
            layer.receive(response(200, branch=f"z9hG4bK{i}", method="OPTIONS"), PEER, False, 0.0)
        self.assertEqual(len(layer), 6000)  # all in Completed, waiting for Timer K
        self.assertLess(len(layer._heap), 2 * 6000)
        self.assertEqual(layer.next_deadline(), 5.0)
        layer.handle_timer(5.0)
        self.assertEqual(len(layer), 0)
        self.assertIsNone(layer.next_deadline())


# ============================================================================ random interleavings


class _Net:
    """Two layers (A sends requests, B serves them) joined by a lossy, reordering network."""

    def __init__(self, retransmit_2xx: bool = False) -> None:
        self.a = TransactionLayer()
        self.b = TransactionLayer(retransmit_2xx=retransmit_2xx)
        self.now = 0.0
        self.flight: list[tuple[str, Any, bool]] = []  # (destination, message, reliable)
        self.created: set[TransactionKey] = set()  # every key seen to become live, per layer
        self.created_b: list[TransactionKey] = []  # a late retransmission may recreate a key
        self.terminated_a: list[TransactionKey] = []
        self.terminated_b: list[TransactionKey] = []
        self.server_keys: list[tuple[TransactionKey, Request]] = []
        self.client_invites: list[TransactionKey] = []
        self.branches = itertools.count()
        self.reliable_of: dict[int, bool] = {}

    def _drain(self) -> None:
        for dest, layer in (("b", self.a), ("a", self.b)):
            for message, peer in layer.messages_to_send():
                self.flight.append((dest, message, peer == "tcp"))
                if layer is self.a and message.method != "ACK":
                    self.created.add(TransactionKey(False, message.method, message.top_via.branch, ""))

    def collect(self) -> None:
        self._drain()
        while (e := self.a.next_event()) is not None:
            if isinstance(e, TransactionTerminated):
                self.terminated_a.append(e.key)
            elif isinstance(e, ResponseReceived) and e.key.method == "INVITE" and 200 <= e.response.status < 300:
                ack = answer_ack(e.response)
                self.a.send_stateless(ack, "tcp" if self._reliable(e.key) else "udp")
        while (e := self.b.next_event()) is not None:
            if isinstance(e, TransactionTerminated):
                self.terminated_b.append(e.key)
            elif isinstance(e, RequestReceived):
                self.created_b.append(e.key)
                self.server_keys.append((e.key, e.request))
            elif isinstance(e, CancelReceived):
                self.created_b.append(e.key)
                self._try(self.b.send_response, e.key, answer(e.request, 200 if e.invite_key else 481), self.now)
                if e.invite_key is not None:
                    self._try(self.b.send_response, e.invite_key, answer(self.b.request(e.invite_key), 487), self.now)
        self._drain()

    def _reliable(self, key: TransactionKey) -> bool:
        return key.branch.endswith("r")

    @staticmethod
    def _try(fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except (TransactionStateError, TransactionDoesNotExist):
            pass

    def start(self, method: str, reliable: bool) -> None:
        branch = f"z9hG4bK{next(self.branches)}{'r' if reliable else 'u'}"
        req = request(method, branch=branch, to_tag="t1" if method == "BYE" else None)
        key = self.a.send_request(req, "tcp" if reliable else "udp", reliable, self.now)
        if method == "INVITE":
            self.client_invites.append(key)

    def deliver(self, index: int, drop: bool, dup: bool) -> None:
        if not self.flight:
            return
        dest, message, reliable = self.flight.pop(index % len(self.flight))
        if drop and not reliable:
            return
        layer = self.b if dest == "b" else self.a
        for _ in range(2 if dup else 1):
            layer.receive(message, "tcp" if reliable else "udp", reliable, self.now)

    def answer(self, index: int, status: int) -> None:
        if not self.server_keys:
            return
        key, req = self.server_keys[index % len(self.server_keys)]
        if req.method == "ACK":
            return
        self._try(self.b.send_response, key, answer(req, status), self.now)

    def cancel(self, index: int) -> None:
        if not self.client_invites:
            return
        key = self.client_invites[index % len(self.client_invites)]
        if self.a.state(key) is not None:
            self.a.cancel(key, self.now)

    def advance(self, dt: float) -> None:
        target = self.now + dt
        while True:
            deadlines = [d for d in (self.a.next_deadline(), self.b.next_deadline()) if d is not None]
            if not deadlines or min(deadlines) > target:
                break
            self.now = max(self.now, min(deadlines))
            self.a.handle_timer(self.now)
            self.b.handle_timer(self.now)
            self.collect()
        self.now = target


def answer_ack(resp: Response) -> Request:
    data = (
        f"ACK sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bKack{resp.top_via.branch}\r\n"
        "Max-Forwards: 70\r\n"
    ).encode()
    for name in ("From", "To", "Call-ID"):
        data += name.encode() + b": " + (resp.get(name) or b"") + b"\r\n"
    data += b"CSeq: %d ACK\r\nContent-Length: 0\r\n\r\n" % resp.cseq.seq
    msg = parse_message(data)
    assert isinstance(msg, Request)
    return msg


_steps = st.lists(
    st.one_of(
        st.tuples(st.just("start"), st.sampled_from(["INVITE", "OPTIONS", "BYE"]), st.booleans()),
        st.tuples(st.just("deliver"), st.integers(0, 50), st.booleans(), st.booleans()),
        st.tuples(st.just("deliver"), st.integers(0, 50), st.just(False), st.booleans()),
        st.tuples(st.just("advance"), st.floats(0.0, 40.0, allow_nan=False)),
        st.tuples(st.just("advance"), st.sampled_from([0.5, 1.0, 4.0])),
        st.tuples(st.just("answer"), st.integers(0, 50), st.sampled_from([100, 180, 200, 404, 486])),
        st.tuples(st.just("answer"), st.integers(0, 50), st.just(200)),
        st.tuples(st.just("cancel"), st.integers(0, 50)),
    ),
    min_size=10,
    max_size=80,
)
_starts = st.lists(st.tuples(st.sampled_from(["INVITE", "OPTIONS", "BYE"]), st.booleans()), min_size=1, max_size=6)


class RandomInterleavingTests(SynchronousTestCase):
    @settings(max_examples=2000)
    @given(_starts, _steps, st.booleans())
    def test_everything_is_released(
        self, starts: list[tuple[str, bool]], steps: list[tuple[Any, ...]], retransmit_2xx: bool
    ) -> None:
        """Random requests, losses, duplicates, reorderings, answers, CANCELs and time jumps:
        once the TU has answered everything and time has run out, both layers are empty and
        every transaction was released exactly once."""
        net = _Net(retransmit_2xx)
        for method, reliable in starts:
            net.start(method, reliable)
        net.collect()
        for step in steps:
            kind = step[0]
            if kind == "start":
                net.start(step[1], step[2])
            elif kind == "deliver":
                net.deliver(step[1], step[2], step[3])
            elif kind == "advance":
                net.advance(step[1])
            elif kind == "answer":
                net.answer(step[1], step[2])
            else:
                net.cancel(step[1])
            net.collect()
        # wind down: the TU answers whatever is still open and cancels its INVITEs, the
        # network delivers everything, time runs out.
        for _ in range(20):
            for key, req in net.server_keys:
                if net.b.state(key) in (TxState.TRYING, TxState.PROCEEDING):
                    net.b.send_response(key, answer(req, 500), net.now)
            for i in range(len(net.client_invites)):
                net.cancel(i)
            net.collect()
            while net.flight:
                net.deliver(0, False, False)
                net.collect()
            net.advance(40.0)
        self.assertEqual(len(net.a), 0)
        self.assertEqual(len(net.b), 0)
        self.assertIsNone(net.a.next_deadline())
        self.assertIsNone(net.b.next_deadline())
        self.assertEqual(net.b._awaiting_ack, {})
        # each transaction released exactly once
        self.assertEqual(sorted(net.terminated_a), sorted(net.created))
        self.assertEqual(sorted(net.terminated_b), sorted(net.created_b))
