"""
Flood benchmark: one source floods the SBC with junk UDP while SIPp calls from an allowed
source at a steady rate; every call must complete.  Also measures what the drop path costs
per packet.

    .venv/bin/python bench/flood.py                       # all three parts, defaults below
    .venv/bin/python bench/flood.py --pps 20000 --seconds 10 --cps 20
    .venv/bin/python bench/flood.py send --target 127.0.0.1:5060 --source 127.0.0.2 --pps 20000 --seconds 10

Parts (``all`` runs them in this order):

``micro``
    in-process timings: ``Allowlist.admits`` (a cached source, an uncached one, IPv6), and
    the whole UDP drop path ``SipDatagramProtocol.datagramReceived`` for a source outside
    the allowlist (fake transport, nothing else), in microseconds per call;
``drop``
    a real SBC process; a separate process sends ``--pps`` junk datagrams per second for
    ``--seconds`` from ``--source`` (127.0.0.2, outside the allowlist).  The SBC's CPU time
    (utime+stime from /proc) during the flood, minus its idle CPU over as long, divided by the
    datagrams it dropped (its ``source-not-allowed`` counter from /healthz) is the cost per
    dropped packet, everything included (the kernel's receive, Twisted's read loop, the check);
``calls``
    the same flood while SIPp from 127.0.0.1 runs ``--cps`` calls per second for ``--seconds``:
    every call must complete (SIPp's successful count = calls placed, no failed call).

``send`` is the flood sender itself (a paced ``sendto`` loop, run as its own process).
Only processes started here are stopped, by their own pid.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

JUNK = (b"INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP junk;branch=z9hG4bKjunk\r\n" + b"X-Junk: " + b"j" * 180
        + b"\r\n\r\n")


# ----------------------------------------------------------------------------- the sender

def send(target: tuple[str, int], source: str, pps: int, seconds: float) -> int:
    """Send ``pps`` datagrams per second for ``seconds`` from ``source``; returns how many."""
    family = socket.AF_INET6 if ":" in target[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * 1024 * 1024)
    batch = max(1, pps // 1000)  # one batch per millisecond
    sent = 0
    start = time.monotonic()
    end = start + seconds
    sendto = sock.sendto
    while True:
        now = time.monotonic()
        if now >= end:
            break
        due = int((now - start) * pps)
        if sent >= due:
            time.sleep(min(0.001, (sent + batch) / pps - (now - start)) if pps else 0.001)
            continue
        for _ in range(min(batch, due - sent)):
            try:
                sendto(JUNK, target)
            except OSError:  # ENOBUFS, ECONNREFUSED from an earlier ICMP: keep going
                pass
            sent += 1
    sock.close()
    return sent


def spawn_sender(target: tuple[str, int], source: str, pps: int, seconds: float) -> subprocess.Popen[str]:
    host = f"[{target[0]}]" if ":" in target[0] else target[0]
    return subprocess.Popen(
        [sys.executable, __file__, "send", "--target", f"{host}:{target[1]}", "--source", source,
         "--pps", str(pps), "--seconds", str(seconds)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)


def sender_count(proc: subprocess.Popen[str], timeout: float) -> int:
    out, _ = proc.communicate(timeout=timeout)
    m = re.search(r"sent (\d+)", out or "")
    return int(m.group(1)) if m else 0


# ----------------------------------------------------------------------------- measurements

def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def udp_rcvbuf_errors() -> int:
    lines = Path("/proc/net/snmp").read_text().splitlines()
    head, values = [l.split() for l in lines if l.startswith("Udp:")][:2]
    return int(dict(zip(head, values)).get("RcvbufErrors", 0))


def counters(sbc: object) -> dict[str, int]:
    return dict(sbc.health().get("counters", {}))  # type: ignore[attr-defined]


def micro() -> dict[str, float]:
    """In-process timings, microseconds per call."""
    import ipaddress

    from twisted.internet.task import Clock

    from sbc.policy.allowlist import Allowlist, Rule
    from sbc.sip.endpoint import Endpoint
    from sbc.transport.admission import Admission
    from sbc.transport.driver import SipDriver
    from sbc.transport.udp import SipDatagramProtocol

    rules = [Rule(ipaddress.ip_network(n), "trunk:t") for n in
             ("127.0.0.1/32", "::1/128", "52.112.0.0/14", "52.120.0.0/14", "2603:1063::/38", "192.0.2.0/24")]
    rules += [Rule(ipaddress.ip_network(f"10.{i}.0.0/16"), "trunk:many") for i in range(0, 256, 2)]
    allow = Allowlist(rules)
    n = 200_000
    out: dict[str, float] = {}
    allow.admits("203.0.113.9")
    out["admits_cached_us"] = timeit.timeit(lambda: allow.admits("203.0.113.9"), number=n) / n * 1e6
    hosts = [f"198.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(n)]
    fresh = Allowlist(rules, cache_size=10 * n)
    it = iter(hosts)
    out["admits_uncached_us"] = timeit.timeit(lambda: fresh.admits(next(it)), number=n) / n * 1e6
    v6 = Allowlist(rules, cache_size=10 * n)
    hosts6 = iter([f"2001:db8::{i:x}" for i in range(n)])
    out["admits_uncached_v6_us"] = timeit.timeit(lambda: v6.admits(next(hosts6)), number=n) / n * 1e6

    clock = Clock()
    driver = SipDriver(Endpoint(fqdn="sbc.example.com"), clock)
    driver.admission = Admission(clock, driver._count, allowlist=allow)
    proto = SipDatagramProtocol(driver)
    addr = ("127.0.0.2", 40000)
    out["datagram_drop_path_us"] = timeit.timeit(lambda: proto.datagramReceived(JUNK, addr), number=n) / n * 1e6
    driver.admission = None
    m = 20_000
    out["datagram_parse_path_us_no_admission"] = timeit.timeit(
        lambda: proto.datagramReceived(JUNK, addr), number=m) / m * 1e6
    return out


def start_sbc(agent_port: int | None = None) -> object:
    from tests.integration.harness import RunningSbc

    # Signalling only (no media anchoring), pings off: the flood is the only load.
    uri = f"sip:{{user}}@127.0.0.1:{agent_port}" if agent_port else "sip:{user}@127.0.0.1:5090"
    return RunningSbc(agent_uri=uri, extra_toml="\n[media]\nenabled = false\n").start()


def drop(args: argparse.Namespace) -> dict[str, float]:
    sbc = start_sbc()
    try:
        pid = sbc.proc.pid  # type: ignore[attr-defined]
        time.sleep(1.0)
        idle0 = cpu_seconds(pid)
        time.sleep(args.seconds)
        idle = cpu_seconds(pid) - idle0
        before = counters(sbc).get("source-not-allowed", 0)
        rcvbuf0 = udp_rcvbuf_errors()
        cpu0 = cpu_seconds(pid)
        sender = spawn_sender(("127.0.0.1", sbc.sip_port), args.source, args.pps, args.seconds)  # type: ignore[attr-defined]
        sent = sender_count(sender, args.seconds + 30)
        time.sleep(0.5)  # let the SBC drain its socket buffer
        cpu = cpu_seconds(pid) - cpu0
        dropped = counters(sbc).get("source-not-allowed", 0) - before
        lost = udp_rcvbuf_errors() - rcvbuf0
        return {
            "sent": sent, "dropped_by_sbc": dropped, "kernel_rcvbuf_drops": lost,
            "sbc_cpu_s": round(cpu, 3), "sbc_idle_cpu_s": round(idle, 3),
            "sbc_cpu_share": round(cpu / (args.seconds + 0.5), 3),
            "us_per_dropped_packet": round((cpu - idle) / dropped * 1e6, 2) if dropped else float("nan"),
        }
    finally:
        sbc.stop()  # type: ignore[attr-defined]


def calls(args: argparse.Namespace) -> dict[str, float]:
    from tests.integration.harness import free_port, sipp_path

    sipp = sipp_path()
    if sipp is None:
        raise SystemExit("sipp is not installed (Debian package sip-tester)")
    agent_port = free_port()
    sbc = start_sbc(agent_port)
    n = int(args.cps * args.seconds)
    try:
        uas = subprocess.Popen(
            [sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", str(agent_port), "-m", str(n), "-nostdin",
             "-timeout", "120s", "-timeout_error"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
        time.sleep(0.5)
        before = counters(sbc)
        sender = spawn_sender(("127.0.0.1", sbc.sip_port), args.source, args.pps, args.seconds + 2)  # type: ignore[attr-defined]
        time.sleep(1.0)  # the flood is on before the first call
        start = time.monotonic()
        uac = subprocess.run(
            [sipp, "-sn", "uac", "-i", "127.0.0.1", "-s", "agent", "-m", str(n), "-r", str(args.cps),
             "-nostdin", "-timeout", "120s", "-timeout_error", "-recv_timeout", "10000",
             f"127.0.0.1:{sbc.sip_port}"],  # type: ignore[attr-defined]
            capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=180)
        elapsed = time.monotonic() - start
        sent = sender_count(sender, args.seconds + 30)
        try:
            uas.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            uas.kill()
            uas.communicate()
        after = counters(sbc)
        ok = re.findall(r"Successful call\s+\|\s+\d+\s+\|\s+(\d+)", uac.stdout)
        failed = re.findall(r"Failed call\s+\|\s+\d+\s+\|\s+(\d+)", uac.stdout)
        return {
            "calls": n, "successful": int(ok[-1]) if ok else 0, "failed": int(failed[-1]) if failed else -1,
            "uac_exit": uac.returncode, "uas_exit": uas.returncode, "seconds": round(elapsed, 2),
            "flood_sent": sent,
            "flood_dropped": after.get("source-not-allowed", 0) - before.get("source-not-allowed", 0),
        }
    finally:
        sbc.stop()  # type: ignore[attr-defined]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", nargs="?", default="all", choices=("all", "micro", "drop", "calls", "send"))
    parser.add_argument("--pps", type=int, default=20_000, help="junk datagrams per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="flood (and call) duration")
    parser.add_argument("--cps", type=int, default=20, help="calls per second from 127.0.0.1")
    parser.add_argument("--source", default="127.0.0.2", help="the flood's source address (outside the allowlist)")
    parser.add_argument("--target", default="127.0.0.1:5060", help="send: HOST:PORT")
    args = parser.parse_args()
    if args.part == "send":
        host, _, port = args.target.rpartition(":")
        n = send((host.strip("[]"), int(port)), args.source, args.pps, args.seconds)
        print(f"sent {n}")
        return 0
    results: dict[str, object] = {}
    if args.part in ("all", "micro"):
        results["micro"] = {k: round(v, 3) for k, v in micro().items()}
        print("micro:", json.dumps(results["micro"]), flush=True)
    if args.part in ("all", "drop"):
        results["drop"] = drop(args)
        print("drop:", json.dumps(results["drop"]), flush=True)
    status = 0
    if args.part in ("all", "calls"):
        results["calls"] = c = calls(args)
        print("calls:", json.dumps(c), flush=True)
        if c["successful"] != c["calls"] or c["failed"] != 0 or c["uac_exit"] != 0:
            print("FAIL: not every call completed during the flood", flush=True)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
