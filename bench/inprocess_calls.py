"""
CPU per call of the whole SBC service, in process: the real service tree (``build_service``:
admission, endpoint, B2BUA, quirks, CDRs, agent events, metrics) on a fake reactor, fed a
PBX's INVITE / ACK / BYE and an agent host's 180 / 200 / 200 as datagrams.  Only the SBC's
handling of each datagram is timed (the fake peers' work is not), so the figure is steady
enough to compare one change with the next; SIPp (``bench/sipp_calls.py``) gives the real
call rate, including the kernel and Twisted's reactor.

    .venv/bin/python bench/inprocess_calls.py --calls 3000 [--profile out.prof]
"""

from __future__ import annotations

import argparse
import gc
import heapq
import itertools
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sbc.config import load_config_text  # noqa: E402
from sbc.service import build_service  # noqa: E402
from sbc.tap import tune_gc  # noqa: E402
from sbc.sip.dialog import Dialog  # noqa: E402
from sbc.sip.message import Request, make_response, parse_message  # noqa: E402
from tests.test_service import FakeReactor  # noqa: E402
from twisted.internet.base import DelayedCall  # noqa: E402

CONFIG = """
[sbc]
fqdn = "sbc.example.com"
[[listen]]
transport = "udp"
address = "127.0.0.1"
port = 5060
[admin]
address = "127.0.0.1"
port = 18080
[agent]
options_interval = 0
[media]
enabled = false
[[trunk]]
name = "local"
allow = ["127.0.0.1/32"]
agent_uri = "sip:{user}@127.0.0.1:5090"
"""

PBX = ("127.0.0.1", 5061)
AGENT = ("127.0.0.1", 5090)

SDP = (b"v=0\r\no=user1 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
       b"t=0 0\r\nm=audio 6000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")


def invite(n: int) -> bytes:
    return (
        f"INVITE sip:service@127.0.0.1:5060 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{n}-1-0\r\n"
        f"From: sipp <sip:sipp@127.0.0.1:5061>;tag={n}SIPpTag001\r\n"
        f"To: service <sip:service@127.0.0.1:5060>\r\n"
        f"Call-ID: {n}-bench@127.0.0.1\r\n"
        f"CSeq: 1 INVITE\r\n"
        f"Contact: sip:sipp@127.0.0.1:5061\r\n"
        f"Max-Forwards: 70\r\n"
        f"Subject: Performance Test\r\n"
        f"Content-Type: application/sdp\r\n"
        f"Content-Length: {len(SDP)}\r\n\r\n"
    ).encode() + SDP


class HeapReactor(FakeReactor):
    """The fake reactor with a heap of delayed calls, as the real reactors keep them
    (``task.Clock`` sorts its whole list on every ``callLater``, which would dominate)."""

    def __init__(self) -> None:
        super().__init__()
        self._heap: list[tuple[float, int, DelayedCall]] = []
        self._order = itertools.count()

    def callLater(self, delay: float, f: Any, *args: Any, **kw: Any) -> DelayedCall:
        call = DelayedCall(self.seconds() + delay, f, args, kw, lambda c: None, lambda c: None,
                           self.seconds)
        heapq.heappush(self._heap, (call.getTime(), next(self._order), call))
        return call

    def getDelayedCalls(self) -> list[DelayedCall]:
        return [c for _, _, c in self._heap if c.active()]

    def advance(self, amount: float) -> None:
        self.rightNow += amount
        heap = self._heap
        while heap and heap[0][0] <= self.rightNow:
            _, _, call = heapq.heappop(heap)
            if not call.active():
                continue
            if call.getTime() > self.rightNow:  # reset() later
                heapq.heappush(heap, (call.getTime(), next(self._order), call))
                continue
            call.called = 1
            call.func(*call.args, **call.kw)


class Bench:
    def __init__(self) -> None:
        self.reactor = HeapReactor()
        self.top = build_service(load_config_text(CONFIG), self.reactor, install_signals=False)
        self.top.startService()
        tune_gc()  # as twistd sbc does after building the service (no full collection runs here)
        self.port = self.reactor.udp_ports[0]
        self.seen = 0
        self.busy = 0.0

    def deliver(self, data: bytes, source: tuple[str, int]) -> list[tuple[bytes, tuple[str, int]]]:
        started = time.thread_time()
        self.port.protocol.datagramReceived(data, source)
        self.busy += time.thread_time() - started
        out = self.port.written[self.seen:]
        self.seen = len(self.port.written)
        return out

    def call(self, n: int) -> None:
        out = self.deliver(invite(n), PBX)
        b_invite = next(parse_message(d) for d, a in out if a == AGENT and d.startswith(b"INVITE"))
        assert isinstance(b_invite, Request)
        self.deliver(make_response(b_invite, 180, to_tag=f"ag{n}").to_bytes(), AGENT)
        ok = make_response(b_invite, 200, to_tag=f"ag{n}", headers=[
            ("Contact", b"<sip:agent@127.0.0.1:5090>"), ("Content-Type", b"application/sdp")], body=SDP)
        out = self.deliver(ok.to_bytes(), AGENT)
        a_ok = next(parse_message(d) for d, a in out if a == PBX and d.startswith(b"SIP/2.0 200"))
        pbx = Dialog.from_uac(parse_message(invite(n)), a_ok)  # type: ignore[arg-type]
        self.deliver(pbx.create_ack(1, via=f"SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{n}-ack".encode()
                                    ).to_bytes(), PBX)
        out = self.deliver(pbx.create_request("BYE", via=f"SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bK-{n}-bye"
                                              .encode()).to_bytes(), PBX)
        bye = next(parse_message(d) for d, a in out if a == AGENT and d.startswith(b"BYE"))
        out += self.deliver(make_response(bye, 200).to_bytes(), AGENT)  # type: ignore[arg-type]
        assert any(a == PBX and d.startswith(b"SIP/2.0 200") for d, a in out), "no 200 to the BYE"
        self.tick(0.001)

    def tick(self, seconds: float) -> None:
        """Let time pass; the timers that fire (retransmissions, transactions ending) are the
        SBC's work too."""
        started = time.thread_time()
        self.reactor.advance(seconds)
        self.busy += time.thread_time() - started

    def settle(self) -> None:
        """Run until every transaction of the calls has ended (Timers D, J, K, L, M: 32 s)."""
        for _ in range(700):
            self.tick(0.1)
        b2bua = self.top.b2bua
        assert not b2bua.calls, f"{len(b2bua.calls)} calls left"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", help="write a cProfile of one round here")
    parser.add_argument("--profile-settle", action="store_true",
                        help="profile only the timers after the calls")
    args = parser.parse_args()
    best = float("inf")
    for _ in range(args.rounds):
        bench = Bench()
        for n in range(200):  # warm up
            bench.call(10_000_000 + n)
        gc.collect()
        bench.busy = 0.0
        if args.profile:
            import cProfile

            prof = cProfile.Profile()
            prof.enable()
        for n in range(args.calls):
            bench.call(n)
        if args.profile and args.profile_settle:
            prof.disable()
            prof = cProfile.Profile()
            prof.enable()
        bench.settle()
        if args.profile:
            prof.disable()
            prof.dump_stats(args.profile)
        best = min(best, bench.busy)
        bench.top.stopService()
    print(f"{args.calls} calls: SBC CPU {best * 1e6 / args.calls:.0f} us per call "
          f"(best of {args.rounds} rounds; 7 datagrams handled per call, and the timers until every "
          f"transaction ended)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
