#!/usr/bin/env python
"""Concurrent relayed G.711 calls through sbc.media.relay.RtpRelay: loss, added latency, CPU.

Run:  .venv/bin/python bench/rtp_relay.py [--calls 100,250,500,750] [--duration 10]
                                          [--dtmf] [--srtp] [--pin] [--portable]

Two processes on loopback:

* the **relay** (this script with ``--serve``; plain reactor, no twistd) builds an `RtpRelay`
  and takes commands on stdin: allocate N calls (offer from "a", answer from "b", with the
  generator's addresses in the SDP), report stats and its own CPU time;
* the **generator** (this process; no Twisted, one tight loop) plays both peers of every call:
  each call sends 50 packets/s each way (172-byte PCMU RTP, 20 ms apart; the calls' phases are
  spread over the 20 ms), from one socket per side (the relay keeps a port pair per call side,
  so per-call sockets on the generator would only cost it syscalls).

Every payload carries the call number, the direction and the generator's monotonic send time,
so the generator measures per-packet latency through the relay and loss per direction.  The
"added latency" is relayed latency minus the latency of the same generator sending the same
load straight to itself (loopback + generator scheduling), percentile by percentile.

Each step runs ``--duration`` seconds of traffic after a one-second warm-up, then drains
until nothing arrived for half a second (late packets are not lost; at most 5 s); the whole
run is bounded by (duration + 9 s) per step.  The report gives, per N:
packets sent and lost, relayed packets/s, latency p50/p99 relayed and baseline, relay CPU (%
of one core, from getrusage of the relay process over the measured window), generator CPU,
"bufdrop" (the host's UDP RcvbufErrors over the window: datagrams the kernel dropped on a full
receive buffer, the relay's or the generator's -- the usual cause of loss when a process is
descheduled), "lag ms" (the longest the relay's event loop was late for a
10 ms heartbeat: a relay stalled by the scheduler or by a long turn shows here) -- and the
highest N with zero loss.  The host's other load matters (a relay or generator that
loses its core for a few milliseconds shows up directly in p99): run it on an otherwise idle
machine, and read "lag ms" next to p99.

``--dtmf`` turns RFC 4733 decoding on for side a (the per-packet payload-type check is then on
the path).  ``--srtp`` makes side a SRTP (AES_CM_128_HMAC_SHA1_80): the generator protects what
it sends as a and unprotects what it receives, the relay unprotects/protects -- the SRTP<->RTP
bridge cost.  ``--pin`` pins the relay to CPU 0 and the generator to CPU 1.  ``--portable``
runs the relay's listenUDP backend instead of epoll.  Environment: ``RTP_RELAY_PROFILE=<file>``
writes a cProfile of the relay process, ``RTP_RELAY_TRACE=<file>`` every packet's send time
and latency.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HOST = "127.0.0.1"
PTIME = 0.020
PAYLOAD_PAD = 160 - 16  # G.711 20 ms = 160 bytes: 16 bytes of marks + padding
_MARK = struct.Struct("!IId")  # call, direction<<31 | seq, send time
_RTP = struct.Struct("!BBHII")


# ---------------------------------------------------------------------------------------------
# The relay process


def serve(port_min: int, port_max: int, dtmf: bool, srtp: bool, portable: bool) -> None:
    """Run the relay; commands on stdin, one JSON reply per line on stdout."""
    from twisted.internet import reactor, stdio
    from twisted.protocols.basic import LineReceiver

    from sbc.media.core.engine import SideOptions
    from sbc.media.relay import RtpRelay

    relay = RtpRelay(reactor, HOST, HOST, port_min, port_max, media_timeout=0,
                     use_epoll=False if portable else None)
    sessions: list[Any] = []

    class Quiet:
        def media_keypress(self, call_id: str, key: Any) -> None:
            pass

        def media_speech(self, call_id: str, now: float) -> None:
            pass

        def media_timeout(self, call_id: str, now: float) -> None:
            pass

    def sdp(port: int, crypto: str | None) -> bytes:
        lines = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0",
                 f"m=audio {port} RTP/{'SAVP' if crypto else 'AVP'} 0 101",
                 "a=rtpmap:0 PCMU/8000", "a=rtpmap:101 telephone-event/8000", "a=rtcp-mux"]
        if crypto:
            lines.append("a=crypto:" + crypto)
        return "".join(line + "\r\n" for line in lines).encode()

    class Control(LineReceiver):
        delimiter = b"\n"

        def reply(self, value: Any) -> None:
            self.sendLine(json.dumps(value).encode())

        def lineReceived(self, line: bytes) -> None:
            cmd = json.loads(line)
            op = cmd["op"]
            if op == "alloc":
                a_opts = SideOptions(dtmf=dtmf, srtp="required" if srtp else "off")
                out = []
                for i in range(cmd["n"]):
                    try:
                        session = relay.allocate(f"bench-{len(sessions)}", a_opts, SideOptions(), Quiet())
                    except Exception as e:
                        self.reply({"error": str(e), "allocated": i})
                        return
                    sessions.append(session)
                    to_b = session.offer("a", sdp(cmd["a_port"], cmd.get("crypto")))
                    to_a = session.answer("b", sdp(cmd["b_port"], None))
                    out.append({"to_a": _port_of(to_a), "to_b": _port_of(to_b),
                                "crypto": _crypto_of(to_a)})
                self.reply(out)
            elif op == "free":
                while sessions:
                    sessions.pop().release()
                relay.when_closed().addCallback(lambda _: self.reply({"ok": True}))
            elif op == "stats":
                usage = resource.getrusage(resource.RUSAGE_SELF)
                import gc

                self.reply({"cpu": usage.ru_utime + usage.ru_stime, "wall": time.monotonic(),
                            "gc": [g["collections"] for g in gc.get_stats()],
                            "max_lag": lags["max"], **relay.stats()})
                lags["max"] = 0.0
            elif op == "quit":
                reactor.stop()

        def connectionLost(self, reason: Any = None) -> None:
            if reactor.running:
                reactor.stop()

    from twisted.internet.task import LoopingCall

    # The relay's event-loop lag: how late a 10 ms heartbeat runs (scheduling, GC, long turns).
    lags = {"max": 0.0, "last": time.monotonic()}

    def beat() -> None:
        now = time.monotonic()
        lags["max"] = max(lags["max"], now - lags["last"] - 0.01)
        lags["last"] = now

    LoopingCall(beat).start(0.01)
    stdio.StandardIO(Control())
    profile_to = os.environ.get("RTP_RELAY_PROFILE")
    if profile_to:
        import cProfile

        cProfile.runctx("reactor.run()", globals(), {"reactor": reactor}, profile_to)
    else:
        reactor.run()


def _port_of(body: bytes) -> int:
    from sbc.sip.sdp import parse_sdp

    return parse_sdp(body).media[0].port


def _crypto_of(body: bytes) -> str | None:
    from sbc.sip.sdp import parse_sdp

    values = parse_sdp(body).media[0].attributes("crypto")
    return values[0].decode() if values else None


class RelayProcess:
    def __init__(self, args: argparse.Namespace, port_min: int, port_max: int) -> None:
        cmd = [sys.executable, __file__, "--serve", str(port_min), str(port_max)]
        if args.dtmf:
            cmd.append("--dtmf")
        if args.srtp:
            cmd.append("--srtp")
        if args.portable:
            cmd.append("--portable")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        if args.pin:
            os.sched_setaffinity(self.proc.pid, {0})

    def call(self, **cmd: Any) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit("relay process died")
        return json.loads(line)

    def close(self) -> None:
        try:
            assert self.proc.stdin is not None
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(5)
        except Exception:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------------------------------------
# The generator


def udp_socket() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        s.setsockopt(socket.SOL_SOCKET, opt, 4 * 1024 * 1024)
    s.bind((HOST, 0))
    s.setblocking(False)
    return s


def udp_rcvbuf_errors() -> int:
    """Datagrams the kernel dropped host-wide because a receive buffer was full (Linux)."""
    try:
        with open("/proc/net/snmp") as f:
            rows = [line.split() for line in f if line.startswith("Udp:")]
        return int(rows[1][rows[0].index("RcvbufErrors")])
    except (OSError, ValueError, IndexError):
        return -1


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[index]


def run_traffic(sock_a: socket.socket, sock_b: socket.socket, targets: list[tuple[int, int]],
                duration: float, warmup: float, srtp: tuple[Any, Any] | None = None,
                at_start: Any = None, at_stop: Any = None) -> dict[str, Any]:
    """Send 50 pps each way per call for warmup + duration seconds; measure the last duration.

    ``targets[i]`` = (where side a of call i sends, where side b sends).  ``srtp`` =
    (protect session for what a sends, unprotect session for what a receives)."""
    n = len(targets)
    pad = b"\xff" * PAYLOAD_PAD
    seq = [0] * n
    # Spread the calls' 20 ms phases over 20 one-millisecond slots.
    slots: list[list[int]] = [[] for _ in range(20)]
    for i in range(n):
        slots[i % 20].append(i)
    sent = [0, 0]
    received = [0, 0]
    latencies: list[float] = []
    start = time.monotonic()
    measure_from = start + warmup
    stop_at = measure_from + duration
    next_tick = start
    tick = 0
    protect = srtp[0].protect if srtp else None
    unprotect = srtp[1].unprotect if srtp else None
    send_a, send_b = sock_a.sendto, sock_b.sendto
    recv_a, recv_b = sock_a.recv, sock_b.recv
    mark = _MARK.pack
    unmark = _MARK.unpack_from
    rtp = _RTP.pack
    monotonic = time.monotonic
    to_a = [(HOST, a) for a, _ in targets]
    to_b = [(HOST, b) for _, b in targets]
    stopped = False
    drain_until = stop_at + 0.5
    last_count = -1
    started = False
    trace: list[tuple[float, float, int]] | None = [] if os.environ.get("RTP_RELAY_TRACE") else None
    while True:
        now = time.monotonic()
        if not started and now >= measure_from:
            started = True
            if at_start is not None:
                at_start()
        if not stopped and now >= next_tick:
            if now >= stop_at:
                stopped = True
                if at_stop is not None:
                    at_stop()
            else:
                measuring = now >= measure_from
                batch = slots[tick % 20]
                for i in batch:
                    s = seq[i] = (seq[i] + 1) & 0xFFFF
                    t = monotonic() if measuring else -1.0
                    header = rtp(0x80, 0, s, s * 160, i)
                    pa = header + mark(i, s, t) + pad
                    if protect is not None:
                        pa = protect(pa)
                    send_a(pa, to_a[i])
                    send_b(header + mark(i, 0x80000000 | s, t) + pad, to_b[i])
                if measuring:
                    sent[0] += len(batch)
                    sent[1] += len(batch)
                tick += 1
                next_tick += PTIME / 20
                if next_tick < now - 0.1:  # fell far behind: do not burst to catch up
                    next_tick = now
        # Drain both sockets.
        for recv, direction in ((recv_b, 0), (recv_a, 1)):
            while True:
                try:
                    data = recv(2048)
                except BlockingIOError:
                    break
                if direction == 1 and unprotect is not None:
                    data = unprotect(data)
                t = time.monotonic()
                _, _, sent_at = unmark(data, 12)
                if sent_at >= 0:
                    received[direction] += 1
                    latencies.append(t - sent_at)
                    if trace is not None:
                        trace.append((sent_at - measure_from, t - sent_at, direction))
        if stopped:
            now = time.monotonic()
            if received[0] + received[1] != last_count:
                last_count = received[0] + received[1]
                drain_until = min(now + 0.5, stop_at + 5.0)  # late is not lost: wait for quiet
            if now >= drain_until:
                break
        wait = (drain_until if stopped else next_tick) - time.monotonic()
        if wait > 0:
            select.select([sock_a, sock_b], [], [], wait)
    if trace is not None:
        with open(os.environ["RTP_RELAY_TRACE"], "w") as f:
            f.writelines(f"{a:.6f} {b * 1e3:.3f} {d}\n" for a, b, d in trace)
    latencies.sort()
    return {
        "sent": sent, "received": received, "lost": [sent[0] - received[0], sent[1] - received[1]],
        "p50_ms": percentile(latencies, 0.50) * 1e3, "p99_ms": percentile(latencies, 0.99) * 1e3,
        "max_ms": (latencies[-1] * 1e3) if latencies else float("nan"),
    }


def baseline(n: int, duration: float) -> dict[str, Any]:
    """The same load sent generator -> generator directly (no relay)."""
    sock_a, sock_b = udp_socket(), udp_socket()
    try:
        pa, pb = sock_a.getsockname()[1], sock_b.getsockname()[1]
        return run_traffic(sock_a, sock_b, [(pb, pa)] * n, duration, 0.5)
    finally:
        sock_a.close()
        sock_b.close()


def step(relay: RelayProcess, n: int, duration: float, srtp: bool) -> dict[str, Any]:
    sock_a, sock_b = udp_socket(), udp_socket()
    try:
        session_keys = None
        cmd: dict[str, Any] = {"op": "alloc", "n": n, "a_port": sock_a.getsockname()[1],
                               "b_port": sock_b.getsockname()[1]}
        if srtp:
            from pylibsrtp import Policy, Session

            from sbc.media.core.sdes import crypto_value, new_keying, parse_crypto_value

            ours = new_keying("AES_CM_128_HMAC_SHA1_80")
            cmd["crypto"] = crypto_value(1, ours).decode()
        calls = relay.call(**cmd)
        if isinstance(calls, dict):
            raise SystemExit(f"relay refused call {calls['allocated'] + 1}: {calls['error']}")
        if srtp:
            # Each call has its own relay key toward a: one inbound session per call, found by
            # the SSRC (the generator sends call i with SSRC i, and the relay keeps SSRCs).
            protect = Session(Policy(key=ours.key, ssrc_type=Policy.SSRC_ANY_OUTBOUND,
                                     srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80))
            inbound = {}
            for i, c in enumerate(calls):
                key = parse_crypto_value(c["crypto"].encode())[1]
                inbound[i] = Session(Policy(key=key.key, ssrc_type=Policy.SSRC_ANY_INBOUND,
                                            srtp_profile=Policy.SRTP_PROFILE_AES128_CM_SHA1_80))

            class Unprotect:
                @staticmethod
                def unprotect(data: bytes) -> bytes:
                    ssrc = int.from_bytes(data[8:12], "big")
                    return inbound[ssrc].unprotect(data)

            session_keys = (protect, Unprotect)
        targets = [(c["to_a"], c["to_b"]) for c in calls]
        marks: list[dict[str, Any]] = []
        gen: list[float] = []

        def mark() -> None:
            marks.append(relay.call(op="stats"))
            marks[-1]["rcvbuf_errors"] = udp_rcvbuf_errors()
            usage = resource.getrusage(resource.RUSAGE_SELF)
            gen.append(usage.ru_utime + usage.ru_stime)

        result = run_traffic(sock_a, sock_b, targets, duration, 1.0, session_keys, mark, mark)
        before, after = marks
        wall = after["wall"] - before["wall"]
        result["relay_cpu_pct"] = 100.0 * (after["cpu"] - before["cpu"]) / wall
        result["gen_cpu_pct"] = 100.0 * (gen[1] - gen[0]) / wall
        result["relayed_pps"] = (after["packets_relayed"] - before["packets_relayed"]) / wall
        result["relay_dropped"] = after["packets_dropped"] - before["packets_dropped"]
        result["relay_gc"] = [x - y for x, y in zip(after["gc"], before["gc"])]
        result["relay_max_lag_ms"] = after["max_lag"] * 1e3
        result["rcvbuf_errors"] = after["rcvbuf_errors"] - before["rcvbuf_errors"]
        relay.call(op="free")
        return result
    finally:
        sock_a.close()
        sock_b.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", default="100,250,500,750", help="comma-separated N to run")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per step")
    parser.add_argument("--dtmf", action="store_true", help="RFC 4733 decoding on side a")
    parser.add_argument("--srtp", action="store_true", help="side a speaks SRTP")
    parser.add_argument("--pin", action="store_true", help="relay on CPU 0, generator on CPU 1")
    parser.add_argument("--portable", action="store_true",
                        help="relay with one listenUDP DatagramProtocol per socket instead of epoll")
    parser.add_argument("--port-min", type=int, default=16000,
                        help="first relay port (keep the range below the ephemeral ports)")
    parser.add_argument("--serve", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], args.dtmf, args.srtp, args.portable)
        return
    counts = [int(n) for n in args.calls.split(",")]
    port_max = args.port_min + 4 * max(counts) + max(64, max(counts) // 5)  # slack: ports in use
    if args.pin:
        os.sched_setaffinity(0, {1})
    relay = RelayProcess(args, args.port_min, port_max)
    best = 0
    mode = ", ".join(m for m, on in (("dtmf on side a", args.dtmf), ("SRTP on side a", args.srtp),
                                     ("listenUDP backend", args.portable)) if on)
    print(f"RTP relay bench: G.711 20 ms, 50 pps each way per call, {args.duration:g} s per step"
          + (f" ({mode})" if mode else ""))
    print(f"{'calls':>6} {'sent':>8} {'lost':>6} {'relayed/s':>10} {'relay CPU':>9} "
          f"{'p50 ms':>7} {'p99 ms':>7} {'base p50':>8} {'base p99':>8} {'added p50':>9} {'added p99':>9} "
          f"{'gen CPU':>7} {'bufdrop':>7} {'lag ms':>6}")
    try:
        for n in counts:
            base = baseline(n, min(args.duration, 3.0))
            r = step(relay, n, args.duration, args.srtp)
            lost = sum(r["lost"])
            if lost == 0:
                best = max(best, n)
            print(f"{n:>6} {sum(r['sent']):>8} {lost:>6} {r['relayed_pps']:>10.0f} "
                  f"{r['relay_cpu_pct']:>8.1f}% {r['p50_ms']:>7.3f} {r['p99_ms']:>7.3f} "
                  f"{base['p50_ms']:>8.3f} {base['p99_ms']:>8.3f} "
                  f"{r['p50_ms'] - base['p50_ms']:>9.3f} {r['p99_ms'] - base['p99_ms']:>9.3f} "
                  f"{r['gen_cpu_pct']:>6.1f}% {r['rcvbuf_errors']:>7} {r['relay_max_lag_ms']:>6.1f}",
                  flush=True)
    finally:
        relay.close()
    print(f"highest N with zero loss: {best}")


if __name__ == "__main__":
    main()
