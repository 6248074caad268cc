# -*- test-case-name: tests.test_b2bua_memory -*-
"""What a held call costs in memory, and that an ended call leaves no cyclic garbage.

The figures are Python heap bytes counted by ``tracemalloc`` for calls driven through the
in-memory harness (the same INVITE shape as the SIPp benchmark ``bench/sipp_calls.py held``,
vendor canonicalisation on and the agent event hub buffering ``call.started``, as the service
runs them).  They are deterministic: no timing, no sockets.  The bounds leave some room above
what this branch measured (noted next to each) so that small changes pass, while keeping a
whole INVITE per call again (5-9 KB) fails.

The process figure (RSS per held call) follows the *setup* figure rather than the held one:
a burst of call setups keeps every call's transactions for 64*T1, and the memory they free
afterwards stays with the process.
"""

from __future__ import annotations

import gc
import tracemalloc

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from sbc.agent.hub import EventHub
from sbc.cdr import cdr_record
from sbc.sip import message as sip_message, uri as sip_uri
from sbc.sip.message import Request, Response, parse_message
from sbc.sip.slim import IDENTITY

from .test_b2bua_harness import SDP_B, Net, PbxDialog, reply

#: Calls per measurement: enough that per-call rounding and one-off allocations do not matter.
CALLS = 60

#: Bytes per call while held (every transaction ended).  Measured: 10.2 KB (26.1 KB before the
#: held-call memory work).
HELD_BOUND = 12_500
#: Bytes per call right after set-up, the INVITE transactions still alive.  Measured: 12.7 KB
#: (30.3 KB before).
SETUP_BOUND = 15_500

_SDP = (b"v=0\r\no=user1 53655765 2353687637 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n"
        b"m=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def sipp_invite(n: int) -> Request:
    """The INVITE of SIPp's built-in ``uac`` scenario (the benchmark's PBX), call number ``n``."""
    head = (f"INVITE sip:agent@10.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 10.0.0.5:5061;branch=z9hG4bK-1234-{n}-0\r\n"
            f"From: sipp <sip:sipp@10.0.0.5:5061>;tag=1234SIPpTag00{n}\r\n"
            f"To: agent <sip:agent@10.0.0.1:5060>\r\n"
            f"Call-ID: {n}-1234@10.0.0.5\r\nCSeq: 1 INVITE\r\nContact: sip:sipp@10.0.0.5:5061\r\n"
            f"Max-Forwards: 70\r\nSubject: Performance Test\r\nContent-Type: application/sdp\r\n"
            f"Content-Length: {len(_SDP)}\r\n\r\n").encode()
    msg = parse_message(head + _SDP)
    assert isinstance(msg, Request)
    return msg


def _clear_parse_caches() -> None:
    """Empty the memoised parsers (bounded process-wide caches, not per-call state)."""
    for module in (sip_message, sip_uri):
        for obj in list(vars(module).values()):
            if callable(getattr(obj, "cache_clear", None)):
                obj.cache_clear()


class _Calls:
    """The harness plus the event hub, and a SIPp-like caller that answers and ACKs."""

    def __init__(self, *, remember: bool = True) -> None:
        """``remember``: keep each call's PBX side for :meth:`hang_up_all` (not while
        measuring: it would count)."""
        self.net = Net(quirks={})  # canonical headers on, as the service does
        self.hub = EventHub(Clock())
        self.remember = remember
        self.pbx: dict[str, tuple[Request, Response]] = {}

    def publish(self) -> None:
        for event in self.net.b2b.agent_events():
            self.hub.publish(event)

    def call(self, n: int) -> None:
        net = self.net
        inv = sipp_invite(n)
        net.from_pbx(inv)
        net.pbx_take()
        [b_inv] = [m for m in net.agent_take() if isinstance(m, Request)]
        net.from_agent(reply(b_inv, 180))
        net.from_agent(reply(b_inv, 200, body=SDP_B))
        [a_ok] = [m for m in net.pbx_take() if isinstance(m, Response) and m.status == 200]
        net.from_pbx(PbxDialog(inv, a_ok).ack(inv))
        acks = [m for m in net.agent_take() if isinstance(m, Request) and m.method == "ACK"]
        assert len(acks) == 1, acks
        if self.remember:
            self.pbx[inv.call_id] = (inv, a_ok)
        self.publish()

    def hang_up_all(self) -> None:
        net = self.net
        for inv, a_ok in self.pbx.values():
            net.from_pbx(PbxDialog(inv, a_ok).request("BYE"))
        for bye in net.agent_take():
            if isinstance(bye, Request) and bye.method == "BYE":
                net.from_agent(reply(bye, 200))
        net.pbx_take()
        self.pbx.clear()
        self.publish()


def _traced(fn) -> int:  # type: ignore[no-untyped-def]
    """Bytes allocated by ``fn()`` and still alive after it (parse caches emptied)."""
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    try:
        _clear_parse_caches()
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        fn()
        _clear_parse_caches()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        if not was_tracing:
            tracemalloc.stop()


class HeldCallMemoryTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.calls = _Calls(remember=False)
        for n in range(3):  # warm up: interned names, first-use allocations
            self.calls.call(10_000 + n)
        self.calls.net.advance(40)

    def test_held_call_bytes(self) -> None:
        calls = self.calls

        def hold() -> None:
            for n in range(CALLS):
                calls.call(n)
            calls.net.advance(40)  # Timer L and M end the INVITE transactions

        per_call = _traced(hold) / CALLS
        self.assertEqual(calls.net.b2b.counts()["transactions"], 0)
        self.assertEqual(len(calls.net.b2b.calls), CALLS + 3)
        self.assertLess(per_call, HELD_BOUND, f"{per_call:.0f} bytes per held call")

    def test_setup_bytes(self) -> None:
        calls = self.calls

        def set_up() -> None:
            for n in range(CALLS):
                calls.call(n)

        per_call = _traced(set_up) / CALLS
        self.assertEqual(calls.net.b2b.counts()["transactions"], 2 * CALLS)  # the two INVITEs each
        self.assertLess(per_call, SETUP_BOUND, f"{per_call:.0f} bytes per call set up")

    def test_confirmed_call_keeps_slim_invites(self) -> None:
        calls = self.calls
        calls.remember = True
        calls.call(1)
        call = next(c for c in calls.net.b2b.calls.values() if c.a.invite.call_id == "1-1234@10.0.0.5")
        for leg in (call.a, call.b):
            self.assertEqual(leg.invite.body, b"")
            self.assertLessEqual({h.key for h in leg.invite.headers}, IDENTITY)
            self.assertFalse(hasattr(leg, "__dict__") and leg.__dict__)  # slots only
        self.assertIsNone(call.b._try)
        self.assertIsNotNone(call.b._last_ack)
        # what the CDR reads is still there
        calls.hang_up_all()
        record = cdr_record(call)
        self.assertEqual((record["caller"], record["callee"], record["a_call_id"], record["b_call_id"]),
                         ("sipp", "agent", "1-1234@10.0.0.5", call.b.call_id))
        self.assertEqual(record["result"], "answered")


class CyclicGarbageTests(SynchronousTestCase):
    def test_ended_calls_need_no_cyclic_collection(self) -> None:
        """Once its transactions are over, an ended call is freed by reference counting: a
        held call's objects sit in the collector's oldest generation, where garbage waits for
        a rare full collection (see ``sbc.tap.tune_gc``)."""
        calls = _Calls()
        gc.collect()
        enabled = gc.isenabled()
        gc.disable()
        try:
            for n in range(20):
                calls.call(n)
            calls.net.advance(40)
            calls.hang_up_all()
            calls.net.settle()
            self.assertEqual(calls.net.b2b.counts(), {"calls": 0, "dialogs": 0, "transactions": 0, "timers": 0,
                                                      "tx_bindings": 0, "lookups": 0})
            ended = calls.net.b2b.ended_calls()
            self.assertEqual(len(ended), 20)
            self.assertTrue(all(c.a.call is None and c.b.call is None for c in ended))  # detached
            del ended
            self.assertEqual(gc.collect(), 0)
        finally:
            if enabled:
                gc.enable()

    def test_a_call_is_detached_only_once_its_transactions_end(self) -> None:
        calls = _Calls()
        calls.call(1)
        calls.hang_up_all()
        [call] = calls.net.b2b.ended_calls()
        self.assertIsNotNone(call.ended)
        # the INVITE transactions (Timer L, M) and our BYE (Timer K) still run: not yet
        self.assertIs(call.a.call, call)
        calls.net.settle()
        self.assertIsNone(call.a.call)
        self.assertIsNone(call.b.call)
