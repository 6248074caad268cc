# -*- test-case-name: tests.test_b2bua_random -*-
"""Thousands of random calls through the B2BUA; afterwards nothing may remain.

A fake PBX and a fake agent host, each a small UA over its own
:class:`~sbc.sip.transaction.TransactionLayer`, play random scripts: answers, failures,
silence, CANCELs (also racing a 200), BYEs from either side, re-INVITEs, UPDATEs and INFOs
with random answers (491 included), a PBX that never ACKs, and a lossy network.  The world
runs on fake time; at the end every call must have ended and the B2BUA must hold no call,
dialog, transaction binding, transaction or timer.
"""

from __future__ import annotations

import heapq
import itertools
import random
from typing import Any, Callable

import attrs
from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from sbc.b2bua.core import B2bua
from sbc.sip.dialog import Dialog, DialogError
from sbc.sip.endpoint import Endpoint, Peer
from sbc.sip.errors import SipError
from sbc.sip.message import Request, Response, make_response, parse_message
from sbc.sip.session_timer import SessionTimerConfig
from sbc.sip.transaction import (
    AckReceived,
    CancelReceived,
    RequestReceived,
    ResponseReceived,
    Timers,
    TransactionKey,
    TransactionLayer,
)

from .test_b2bua_harness import AGENT, PBX, SDP_A, SDP_B, TRUNK

SBC = Peer("udp", "192.0.2.10", 5060, 0)


class FakeUA:
    """A scripted UA: a transaction layer, scheduled actions and per-call state."""

    def __init__(self, world: "World", name: str, me: Peer, contact: bytes) -> None:
        self.world = world
        self.rng = world.rng
        self.name = name
        self.me = me
        self.contact = contact
        self.tx = TransactionLayer(Timers(), retransmit_2xx=True)
        self.actions: list[tuple[float, int, Callable[[float], None]]] = []
        self.dialogs: dict[str, Dialog] = {}  # Call-ID -> dialog
        self.ended: set[str] = set()
        self.branches = itertools.count(1)
        self.reinvites: dict[TransactionKey, Request] = {}

    # ---- plumbing

    def via(self) -> bytes:
        return f"SIP/2.0/{self.world.transport.upper()} {self.me.host}:{self.me.port};branch=z9hG4bK{self.name}{next(self.branches)}".encode()

    def later(self, delay: float, fn: Callable[[float], None]) -> None:
        heapq.heappush(self.actions, (self.world.now + delay, next(self.world.seq), fn))

    def deadline(self) -> float | None:
        times = [t for t in (self.tx.next_deadline(), self.actions[0][0] if self.actions else None) if t is not None]
        return min(times) if times else None

    def on_timer(self, now: float) -> None:
        self.tx.handle_timer(now)
        while self.actions and self.actions[0][0] <= now:
            _, _, fn = heapq.heappop(self.actions)
            try:
                fn(now)
            except (SipError, DialogError):
                pass  # e.g. the transaction is gone already: a script step that came too late
        self.drain(now)

    def receive(self, msg: Request | Response, now: float) -> None:
        try:
            self.tx.receive(msg, SBC, self.world.reliable, now)
        except SipError:
            return
        self.drain(now)

    def drain(self, now: float) -> None:
        while (event := self.tx.next_event()) is not None:
            try:
                self.on_event(event, now)
            except (SipError, DialogError):
                pass

    def respond(self, key: TransactionKey, request: Request, status: int, *, tag: str | None = None,
                body: bytes = b"") -> None:
        headers: list[tuple[str, bytes]] = []
        if 100 < status < 300 and request.method in ("INVITE", "UPDATE"):
            headers.append(("Contact", self.contact))
        if body:
            headers.append(("Content-Type", b"application/sdp"))
        response = make_response(request, status, to_tag=tag if request.to.tag is None else None,
                                 headers=headers, body=body)
        self.tx.send_response(key, response, self.world.now)

    def send(self, request: Request) -> TransactionKey:
        return self.tx.send_request(request, SBC, self.world.reliable, self.world.now)

    def in_dialog(self, call_id: str, method: str, body: bytes = b"") -> TransactionKey | None:
        dialog = self.dialogs.get(call_id)
        if dialog is None or call_id in self.ended:
            return None
        headers = [("Content-Type", b"application/sdp")] if body else []
        if method in ("INFO", "MESSAGE"):
            headers, body = [("Content-Type", b"text/plain")], b"hello"
        elif method == "REFER":  # relayed from the agent host, refused (405) from the PBX
            headers, body = [("Refer-To", b"<sip:+4930777@pbx.example.com>")], b""
        req = dialog.create_request(method, via=self.via(), contact=self.contact if method in ("INVITE", "UPDATE") else None,
                                    headers=headers, body=body)
        key = self.send(req)
        if method == "BYE":
            self.ended.add(call_id)
        return key

    def mid_call(self, call_id: str, method: str, body: bytes) -> None:
        key = self.in_dialog(call_id, method, body)
        if key is not None and method == "INVITE" and self.rng.random() < 0.2:
            self.later(self.rng.uniform(0, 1.5), lambda now: self.tx.cancel(key, now))

    def random_mid_call(self, call_id: str, sdp: bytes) -> None:
        """Schedule a few in-dialog actions, maybe a BYE."""
        rng = self.rng
        for _ in range(rng.choice((0, 0, 1, 2))):
            method = rng.choice(("INVITE", "INVITE", "UPDATE", "INFO", "MESSAGE", "REFER"))
            body = b"" if method == "INVITE" and rng.random() < 0.2 else sdp
            self.later(rng.uniform(0, 20), lambda now, m=method, b=body: self.mid_call(call_id, m, b))
        if rng.random() < 0.5:
            self.later(rng.uniform(0, 30), lambda now: self.in_dialog(call_id, "BYE"))

    def answer_in_dialog(self, event: RequestReceived, sdp: bytes) -> None:
        request = event.request
        call_id = request.call_id
        dialog = self.dialogs.get(call_id)
        if dialog is not None:
            try:
                dialog.receive_request(request)
            except DialogError:
                pass
        if request.method == "BYE":
            self.ended.add(call_id)
            self.respond(event.key, request, 200)
            return
        r = self.rng.random()
        if r < 0.05:
            return  # silence: the B2BUA's transaction times out
        if r < 0.15:
            status = self.rng.choice((491, 488, 500, 481))
            if status == 481:
                self.ended.add(call_id)  # we just declared the dialog gone
            self.later(self.rng.uniform(0, 2), lambda now: self.respond(event.key, request, status))
            return
        body = sdp if request.method in ("INVITE", "UPDATE") else b""
        if request.method == "INVITE":
            self.reinvites[event.key] = request
            self.respond(event.key, request, 100)
        self.later(self.rng.uniform(0, 2), lambda now: self.respond(event.key, request, 200, body=body))

    def cancelled(self, event: CancelReceived) -> bool:
        """A CANCEL for one of the re-INVITEs we have not answered yet: 487 it."""
        request = self.reinvites.pop(event.invite_key, None) if event.invite_key else None
        if request is None:
            return False
        self.respond(event.key, event.request, 200)
        try:
            self.respond(event.invite_key, request, 487)  # type: ignore[arg-type]
        except SipError:
            pass  # already answered
        return True

    def on_event(self, event: Any, now: float) -> None:
        raise NotImplementedError

    def note_response(self, event: Any) -> None:
        if isinstance(event, ResponseReceived) and event.response.status in (408, 481):
            self.ended.add(event.response.call_id)


class FakePbx(FakeUA):
    def __init__(self, world: "World") -> None:
        super().__init__(world, "pbx", PBX, b"<sip:pbx@10.0.0.5:5060>")
        self.invites: dict[TransactionKey, Request] = {}
        self.finals: dict[str, int] = {}
        self.never_ack: set[str] = set()
        self.offerless: set[str] = set()
        self.calls = itertools.count(1)
        self.early: dict[str, Dialog] = {}  # Call-ID -> early dialog (PRACKs, RFC 3262)

    def start_call(self, now: float) -> None:
        n = next(self.calls)
        call_id = f"pbx-{n}@10.0.0.5"
        body = SDP_A if self.rng.random() < 0.8 else b""
        if not body:
            self.offerless.add(call_id)
        if self.rng.random() < 0.02:
            self.never_ack.add(call_id)
        ctype = "Content-Type: application/sdp\r\n" if body else ""
        r = self.rng.random()
        ctype += "Require: 100rel\r\n" if r < 0.1 else "Supported: 100rel\r\n" if r < 0.3 else ""
        data = (
            f"INVITE sip:agent{n}@sbc.example.com SIP/2.0\r\n"
            f"Via: {self.via().decode()}\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:caller{n}@10.0.0.5>;tag=p{n}\r\n"
            f"To: <sip:agent{n}@sbc.example.com>\r\n"
            f"Call-ID: {call_id}\r\n"
            "CSeq: 1 INVITE\r\n"
            "Contact: <sip:pbx@10.0.0.5:5060>\r\n"
            f"{ctype}Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        invite = parse_message(data)
        assert isinstance(invite, Request)
        key = self.send(invite)
        self.invites[key] = invite
        if self.rng.random() < 0.15:
            self.later(self.rng.uniform(0, 6), lambda now: self.tx.cancel(key, now))

    def on_event(self, event: Any, now: float) -> None:
        self.note_response(event)
        if isinstance(event, ResponseReceived):
            response = event.response
            if event.key.method == "INVITE":
                self.invite_response(event.key, response, now)
        elif isinstance(event, RequestReceived):
            self.answer_in_dialog(event, SDP_A)
        elif isinstance(event, CancelReceived):
            if not self.cancelled(event):
                self.respond(event.key, event.request, 200)

    def invite_response(self, key: TransactionKey, response: Response, now: float) -> None:
        call_id = response.call_id
        invite = self.invites.get(key)
        if invite is None:  # a re-INVITE of ours
            dialog = self.dialogs.get(call_id)
            if 200 <= response.status < 300 and dialog is not None:
                self.tx.send_stateless(dialog.create_ack(response.cseq.seq, via=self.via()), SBC)
            return
        if response.status < 200:
            if response.has("RSeq") and self.rng.random() < 0.9:
                self.later(self.rng.uniform(0, 1), lambda now: self.prack(invite, response))
            return
        self.finals.setdefault(call_id, response.status)
        if response.status >= 300:
            return
        first = call_id not in self.dialogs
        if first:
            self.dialogs[call_id] = Dialog.from_uac(invite, response)
            early = self.early.pop(call_id, None)
            if early is not None:
                self.dialogs[call_id].local_seq = max(self.dialogs[call_id].local_seq, early.local_seq)
        if call_id in self.never_ack:
            return
        body = SDP_A if call_id in self.offerless else b""
        headers = [("Content-Type", b"application/sdp")] if body else []
        ack = self.dialogs[call_id].create_ack(1, via=self.via(), headers=headers, body=body)
        self.tx.send_stateless(ack, SBC)
        if first:
            self.random_mid_call(call_id, SDP_A)


    def prack(self, invite: Request, response: Response) -> None:
        call_id = invite.call_id
        if call_id in self.dialogs or call_id in self.finals:
            return
        early = self.early.get(call_id)
        if early is None:
            early = self.early[call_id] = Dialog.from_uac(invite, response)
        rack = b"%s %d INVITE" % (response.get("RSeq"), invite.cseq.seq)
        self.send(early.create_request("PRACK", via=self.via(), headers=[("RAck", rack)]))


class FakeAgent(FakeUA):
    def __init__(self, world: "World") -> None:
        super().__init__(world, "agent", AGENT, b"<sip:agent@127.0.0.1:5090>")
        self.pending: dict[TransactionKey, Request] = {}  # INVITEs not answered finally yet
        self.rseq: dict[str, int] = {}  # Call-ID -> last RSeq sent
        self.pracks = 0

    def on_event(self, event: Any, now: float) -> None:
        self.note_response(event)
        if isinstance(event, RequestReceived):
            request = event.request
            if request.method == "INVITE" and request.to.tag is None:
                self.new_invite(event, now)
            else:
                self.pracks += request.method == "PRACK"
                self.answer_in_dialog(event, SDP_B)
        elif isinstance(event, CancelReceived):
            if self.cancelled(event):
                return
            self.respond(event.key, event.request, 200)
            invite = self.pending.pop(event.invite_key, None) if event.invite_key else None
            if invite is not None:
                if self.rng.random() < 0.3:
                    self.final(event.invite_key, invite, 200)  # the 200 crosses the CANCEL
                else:
                    self.final(event.invite_key, invite, 487)
        elif isinstance(event, AckReceived):
            pass
        elif isinstance(event, ResponseReceived):
            response = event.response
            if event.key.method == "INVITE" and 200 <= response.status < 300:
                dialog = self.dialogs.get(response.call_id)
                if dialog is not None:
                    self.tx.send_stateless(dialog.create_ack(response.cseq.seq, via=self.via()), SBC)

    def final(self, key: TransactionKey, invite: Request, status: int) -> None:
        self.pending.pop(key, None)
        tag = f"ag-{invite.call_id}"
        if status < 300:
            body = SDP_B
            self.respond(key, invite, status, tag=tag, body=body)
            self.dialogs[invite.call_id] = Dialog.from_uas(invite, tag, self.contact)
            self.random_mid_call(invite.call_id, SDP_B)
        else:
            self.respond(key, invite, status, tag=tag)

    def ring(self, key: TransactionKey, invite: Request, status: int, *, tag: str, body: bytes) -> None:
        """A provisional response: reliable (RFC 3262) now and then when the INVITE offers
        100rel -- sometimes two in a row, out of order or retransmitted; the SBC's PRACKs get
        random answers (answer_in_dialog)."""
        rng = self.rng
        if b"100rel" not in invite.get_all("Supported") or rng.random() < 0.4:
            self.respond(key, invite, status, tag=tag, body=body)
            return
        for _ in range(rng.choice((1, 1, 2))):
            rseq = self.rseq.get(invite.call_id, 0) + rng.choice((1, 1, 1, 1, 2))
            self.rseq[invite.call_id] = rseq
            headers = [("Contact", self.contact), ("Require", b"100rel"), ("RSeq", b"%d" % rseq)]
            if body:
                headers.append(("Content-Type", b"application/sdp"))
            response = make_response(invite, status, to_tag=tag, headers=headers, body=body)
            self.tx.send_response(key, response, self.world.now)
            if rng.random() < 0.3:  # our retransmission (as if the PRACK were late)
                self.later(rng.uniform(0, 1), lambda now, r=response: key in self.pending and
                           self.tx.send_response(key, r, now))

    def new_invite(self, event: RequestReceived, now: float) -> None:
        key, invite = event.key, event.request
        self.pending[key] = invite
        rng = self.rng
        tag = f"ag-{invite.call_id}"
        script = rng.random()
        if rng.random() < 0.5:
            self.respond(key, invite, 100)
        if script < 0.05:
            return  # silent agent: Timer B
        if rng.random() < 0.7:
            self.later(rng.uniform(0, 2), lambda now: key in self.pending and self.ring(
                key, invite, rng.choice((180, 183)), tag=tag, body=SDP_B if rng.random() < 0.3 else b""))
        if script < 0.12:
            return  # rings forever: the no-answer timeout
        if script < 0.35:
            status = rng.choice((404, 486, 480, 500, 503, 600, 603, 302, 484))
            self.later(rng.uniform(0, 4), lambda now: key in self.pending and self.final(key, invite, status))
            return
        self.later(rng.uniform(0, 8), lambda now: key in self.pending and self.final(key, invite, 200))


class _LaterResolver:
    """Never knows at once: every lookup goes through B2bua.lookups() / resolved()."""

    def resolve(self, uri: Any) -> None:
        return None


class World:
    def __init__(self, seed: int, loss: float, transport: str = "udp", latency: float = 0.0,
                 async_lookup: bool = False, session_timer: Any = SessionTimerConfig()) -> None:
        """``transport`` "tcp" runs both legs over a reliable transport (no retransmissions,
        zero-length Timers D, I, J, K): then ``loss`` must be 0.  ``latency`` > 0 delays each
        message by up to that many seconds -- randomly over UDP (so messages overtake each
        other), by exactly that much over TCP (order kept).  ``session_timer``: the B2BUA's
        RFC 4028 settings (short intervals make it refresh both legs during the calls)."""
        self.rng = random.Random(seed)
        self.latency = latency
        self.flight: list[tuple[float, int, bool, bytes, Peer]] = []
        self.transport = transport
        self.reliable = transport != "udp"
        self.loss = loss
        self.pbx_peer = Peer(transport, PBX.host, PBX.port, 1)
        self.agent_peer = Peer(transport, AGENT.host, AGENT.port, 2)
        trunk = attrs.evolve(TRUNK, allow_refer=True) if transport == "udp" else attrs.evolve(
            TRUNK, agent_uri=f"sip:{{user}}@127.0.0.1:5090;transport={transport}")
        self.now = 1000.0
        self.seq = itertools.count()
        self.async_lookup = async_lookup
        resolver = _LaterResolver() if async_lookup else None
        self.b2b = B2bua(trunks=[trunk], local_host="192.0.2.10", local_port=5060, fqdn="sbc.example.com",
                         no_answer_timeout=20, max_call_duration=300, max_calls=100_000, resolver=resolver,
                         session_timer=session_timer)
        self.ep = Endpoint(fqdn="sbc.example.com", supported=self.b2b.option_tags)
        self.ep.add_handler(self.b2b)
        self.ep.set_response_handler(self.b2b.handle_response)
        self.pbx = FakePbx(self)
        self.agent = FakeAgent(self)
        self.delivered = 0

    def lost(self) -> bool:
        return self.rng.random() < self.loss

    def pump(self) -> None:
        for _ in range(1000):
            moved = False
            for ua, peer in ((self.pbx, self.pbx_peer), (self.agent, self.agent_peer)):
                for msg, _to in ua.tx.messages_to_send():
                    moved = True
                    self.transmit(True, msg.to_bytes(), peer)
            for data, peer in self.ep.messages_to_send():
                moved = True
                self.transmit(False, data, peer)
            for msg, peer in self.b2b.messages_to_send():
                moved = True
                self.transmit(False, msg.to_bytes(), peer)
            for uri in self.b2b.lookups():
                # the "DNS" answers a little later; now and then it finds nothing
                peers = [] if self.rng.random() < 0.05 else [self.agent_peer]
                self.agent.later(self.rng.uniform(0, 0.5),
                                 lambda now, u=uri, p=peers: self.b2b.resolved(u, p, now))
            if not moved:
                return
        raise AssertionError("message storm")

    def transmit(self, to_sbc: bool, data: bytes, peer: Peer) -> None:
        if self.lost():
            return
        if self.latency <= 0:
            self.deliver(to_sbc, data, peer)
            return
        delay = self.latency if self.reliable else self.rng.uniform(0, self.latency)
        heapq.heappush(self.flight, (self.now + delay, next(self.seq), to_sbc, data, peer))

    def deliver(self, to_sbc: bool, data: bytes, peer: Peer) -> None:
        self.delivered += 1
        if to_sbc:
            self.ep.receive(data, peer, self.now)
        else:
            self.to_fake(data, peer)

    def to_fake(self, data: bytes, peer: Peer) -> None:
        msg = parse_message(data)
        if (peer.host, peer.port) == (PBX.host, PBX.port):
            self.pbx.receive(msg, self.now)
        elif (peer.host, peer.port) == (AGENT.host, AGENT.port):
            self.agent.receive(msg, self.now)
        else:  # pragma: no cover
            raise AssertionError(f"message to {peer}")

    def run_until(self, end: float) -> None:
        while True:
            candidates = [t for t in (self.b2b.next_deadline(), self.pbx.deadline(), self.agent.deadline(),
                                      self.flight[0][0] if self.flight else None)
                          if t is not None]
            if not candidates or min(candidates) > end:
                break
            self.now = max(self.now, min(candidates))
            while self.flight and self.flight[0][0] <= self.now:
                _at, _seq, to_sbc, data, peer = heapq.heappop(self.flight)
                self.deliver(to_sbc, data, peer)
                self.pump()
            self.b2b.handle_timer(self.now)
            self.pump()
            self.pbx.on_timer(self.now)
            self.pump()
            self.agent.on_timer(self.now)
            self.pump()
        self.now = end

    def run(self, calls: int) -> None:
        for _ in range(calls):
            self.run_until(self.now + self.rng.uniform(0, 0.4))
            self.pbx.start_call(self.now)
            self.pump()
        self.run_until(self.now + 4 * 3600)


class RandomCallsTests(SynchronousTestCase):
    def check_world(self, world: World, calls: int) -> None:
        b2b = world.b2b
        self.assertEqual(b2b.counts(), {"calls": 0, "dialogs": 0, "transactions": 0, "timers": 0,
                                        "tx_bindings": 0, "lookups": 0})
        self.assertIsNone(b2b.next_deadline())
        self.assertEqual(len(b2b), 0)
        ended = b2b.ended_calls()
        self.assertEqual(len(ended), calls)
        for call in ended:
            self.assertIsNotNone(call.ended)
            self.assertIsNotNone(call.end_reason)
            self.assertIsNotNone(call.a_status, call)
        errors = [n for n in b2b.notices() if n.reason in ("call-error", "internal-error", "unexpected-event", "relay-dropped")]
        self.assertEqual(errors, [])
        # every PBX INVITE got a final response (nothing half-open toward the PBX)
        self.assertEqual(len(world.pbx.finals), calls)
        if world.loss == 0:
            # every dialog either side saw answered was ended with a BYE (or declared dead)
            for ua in (world.pbx, world.agent):
                self.assertEqual(set(ua.dialogs) - ua.ended, set(), ua.name)

    def test_two_thousand_calls_lossless(self) -> None:
        world = World(seed=1, loss=0.0)
        world.run(2000)
        ended = world.b2b.ended_calls()
        world.b2b._ended.extend(ended)  # check_world reads them again
        self.check_world(world, 2000)
        # the scripts did exercise every way a call can end
        reasons = {c.end_reason for c in ended}
        for reason in ("bye-a", "bye-b", "cancel", "no-answer", "max-duration", "ack-timeout",
                       "failed-486", "failed-503", "failed-302"):
            self.assertIn(reason, reasons)
        self.assertGreater(world.b2b.stats.get("cancel-race", 0), 10)
        # reliable provisionals from the agent host: PRACKed, some out of order, some PRACKs failed
        self.assertGreater(world.agent.pracks, 100)
        for reason in ("100rel-out-of-order", "prack-failed"):
            self.assertGreater(world.b2b.stats.get(reason, 0), 5, reason)

    @settings(max_examples=10)
    @given(seed=st.integers(0, 2**32 - 1), loss=st.sampled_from([0.0, 0.02, 0.1]))
    def test_random_calls_lossy(self, seed: int, loss: float) -> None:
        world = World(seed=seed, loss=loss, async_lookup=seed % 2 == 0)
        world.run(200)
        self.check_world(world, 200)

    @settings(max_examples=4)
    @given(seed=st.integers(0, 2**32 - 1), latency=st.sampled_from([0.0, 0.05]))
    def test_random_calls_tcp(self, seed: int, latency: float) -> None:
        world = World(seed=seed, loss=0.0, transport="tcp", latency=latency)
        world.run(250)
        self.check_world(world, 250)

    @settings(max_examples=6)
    @given(seed=st.integers(0, 2**32 - 1), loss=st.sampled_from([0.0, 0.05]),
           latency=st.sampled_from([0.2, 1.0]))
    def test_random_calls_reordering(self, seed: int, loss: float, latency: float) -> None:
        world = World(seed=seed, loss=loss, latency=latency)
        world.run(200)
        self.check_world(world, 200)

    @settings(max_examples=6)
    @given(seed=st.integers(0, 2**32 - 1), loss=st.sampled_from([0.0, 0.05]),
           latency=st.sampled_from([0.0, 0.3]))
    def test_random_calls_short_session_timers(self, seed: int, loss: float, latency: float) -> None:
        """Session intervals of 90 s: the SBC refreshes both legs (re-INVITEs: the fakes
        allow no UPDATE) among the scripts' own re-INVITEs, and the fakes' random answers
        (491, 500, 481, silence) to the refreshes end some calls by the session timer."""
        world = World(seed=seed, loss=loss, latency=latency,
                      session_timer=SessionTimerConfig(session_expires=90, min_se=90, retry_delay=2.0))
        world.run(200)
        ended = world.b2b.ended_calls()
        world.b2b._ended.extend(ended)
        self.check_world(world, 200)
        self.assertGreater(world.b2b.stats.get("session-refresh", 0), 50)
