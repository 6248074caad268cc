"""
SIPp call benchmarks through the B2BUA (no media): a SIPp UAC plays the PBX, a SIPp UAS
plays the agent host.

Call rate: for each rate, `--calls` calls at that rate; a rate passes when every call on both
sides succeeded.

    .venv/bin/python bench/sipp_calls.py rate --rates 100,200,400 --calls 10000 [--pin]

``--pin`` puts the SBC alone on CPU 0 and the SIPp peers on CPU 1 (needs two CPUs).

Held calls: `--held` calls are set up and held (each lasts `--hold` seconds), and the SBC's
resident memory is compared with its memory before the calls.

    .venv/bin/python bench/sipp_calls.py held --held 5000 --hold 90 --rate 250
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.harness import RunningSbc, free_port, sipp_path  # noqa: E402

NO_MEDIA = "\n[media]\nenabled = false\n"


def bench_toml(folder: str) -> str:
    """The benchmark's configuration: no media anchoring (signalling only; bench/rtp_relay.py
    measures the relay), and the CDRs in their own file in ``folder`` as a production SBC
    writes them (not in the log, whose text formatting costs more than the file's write)."""
    return NO_MEDIA + f'\n[cdr]\npath = "{Path(folder) / "cdr.jsonl"}"\n'


def _counts(out: str) -> tuple[int, int]:
    ok = re.findall(r"Successful call\s+\|\s+\d+\s+\|\s+(\d+)", out)
    failed = re.findall(r"Failed call\s+\|\s+\d+\s+\|\s+(\d+)", out)
    return (int(ok[-1]) if ok else 0), (int(failed[-1]) if failed else -1)


def start_uas(port: int, calls: int, transport: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sipp_path() or "sipp", "-sn", "uas", "-i", "127.0.0.1", "-p", str(port), "-t", transport,
         "-m", str(calls), "-nostdin", "-timeout", "900s", "-timeout_error", "-max_socket", "5000"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)


def uac_cmd(sbc_port: int, calls: int, rate: int, transport: str, *extra: str) -> list[str]:
    return [sipp_path() or "sipp", "-sn", "uac", "-i", "127.0.0.1", "-t", transport, "-s", "agent",
            "-m", str(calls), "-r", str(rate), "-rp", "1000", "-nostdin", "-timeout", "900s",
            "-timeout_error", "-max_socket", "5000", *extra, f"127.0.0.1:{sbc_port}"]


def _pin(sbc: RunningSbc) -> None:
    """The SBC alone on CPU 0, this script and the SIPp peers it starts on CPU 1: "one core"
    for the SBC, and no peer scheduled onto its core to evict its caches."""
    assert sbc.proc is not None
    for tid in os.listdir(f"/proc/{sbc.proc.pid}/task"):
        os.sched_setaffinity(int(tid), {0})
    os.sched_setaffinity(0, {1})


def rate_sweep(args: argparse.Namespace) -> None:
    for rate in (int(r) for r in args.rates.split(",")):
        agent_port = free_port()
        # Signalling only: the call benchmarks run without media anchoring (bench/rtp_relay.py
        # measures the relay).
        folder = tempfile.mkdtemp(prefix="sbc-bench-cdr-")
        sbc = RunningSbc(agent_uri=f"sip:{{user}}@127.0.0.1:{agent_port}", extra_toml=bench_toml(folder)).start()
        try:
            if args.pin:
                _pin(sbc)
            uas = start_uas(agent_port, args.calls, args.transport)
            time.sleep(0.5)
            start = time.monotonic()
            cpu = sbc.cpu_seconds()
            uac = subprocess.run(uac_cmd(sbc.sip_port, args.calls, rate, args.transport,
                                         "-l", str(max(rate * 10, 100))),
                                 capture_output=True, text=True, stdin=subprocess.DEVNULL)
            wall = time.monotonic() - start
            try:
                uas_out, _ = uas.communicate(timeout=60)
            except subprocess.TimeoutExpired:  # calls the agent side never saw end
                uas.kill()
                uas_out, _ = uas.communicate()
            cpu = sbc.cpu_seconds() - cpu
            ok, failed = _counts(uac.stdout)
            uas_ok, uas_failed = _counts(uas_out)
            passed = uac.returncode == 0 and uas.returncode == 0 and ok == args.calls
            print(f"rate {rate:>5}/s x {args.calls} calls over {args.transport}: UAC {ok} ok "
                  f"{failed} failed, UAS {uas_ok} ok {uas_failed} failed, wall {wall:.1f}s, "
                  f"SBC CPU {cpu * 1000 / args.calls:.2f} ms per call, "
                  f"SBC RSS {sbc.rss_kib() // 1024} MiB -> {'PASS' if passed else 'FAIL'}",
                  flush=True)
        finally:
            sbc.stop()
            shutil.rmtree(folder, ignore_errors=True)


def held(args: argparse.Namespace) -> None:
    agent_port = free_port()
    sbc = RunningSbc(agent_uri=f"sip:{{user}}@127.0.0.1:{agent_port}",
                     extra_toml=f"\n[calls]\nmax_calls = {args.held * 2}\n" + NO_MEDIA).start()
    try:
        time.sleep(1)
        idle = sbc.rss_kib()
        uas = start_uas(agent_port, args.held, args.transport)
        time.sleep(0.5)
        uac = subprocess.Popen(uac_cmd(sbc.sip_port, args.held, args.rate, args.transport,
                                       "-l", str(args.held), "-d", str(args.hold * 1000)),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, text=True)
        ramp = args.held / args.rate
        # Measure once the calls' INVITE transactions have ended (Timer L, 64*T1 = 32 s after
        # the 2xx): what remains is the steady cost of a held call.
        time.sleep(ramp + args.settle)
        peak = sbc.rss_kib()
        live = sbc.health().get("calls")
        print(f"{args.held} calls set up ({live} live in the SBC): SBC RSS idle {idle} KiB, "
              f"with calls held {peak} KiB, {(peak - idle) / max(live or 1, 1):.1f} KiB per live call",
              flush=True)
        try:
            out, _ = uac.communicate(timeout=args.hold + ramp + 120)
            uas_out, _ = uas.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            uac.kill()
            uas.kill()
            out, _ = uac.communicate()
            uas_out, _ = uas.communicate()
        ok, failed = _counts(out)
        print(f"UAC {ok} ok {failed} failed")
    finally:
        sbc.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    r = sub.add_parser("rate")
    r.add_argument("--rates", default="100,200,400")
    r.add_argument("--calls", type=int, default=10000)
    r.add_argument("--transport", default="u1")
    r.add_argument("--pin", action="store_true", help="the SBC on CPU 0, the SIPp peers on CPU 1")
    h = sub.add_parser("held")
    h.add_argument("--held", type=int, default=5000)
    h.add_argument("--hold", type=int, default=60)
    h.add_argument("--rate", type=int, default=500)
    h.add_argument("--settle", type=float, default=35.0,
                   help="seconds after the last call is set up before memory is measured")
    h.add_argument("--transport", default="u1")
    args = parser.parse_args()
    if sipp_path() is None:
        print("sipp not found: apt-get install sip-tester", file=sys.stderr)
        return 2
    rate_sweep(args) if args.mode == "rate" else held(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
