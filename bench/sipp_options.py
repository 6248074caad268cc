"""
SIPp OPTIONS benchmark: how many OPTIONS per second the SBC answers with zero loss.

Starts the SBC (one process: one core) on free loopback ports, then runs SIPp at each
requested rate for a fixed number of seconds; a run passes when every request got its 200
(the scenario has no retransmissions, so any loss fails a call).  Prints one line per rate
and the best passing rate.

    .venv/bin/python bench/sipp_options.py --rates 2000,5000,8000,10000,12000 --seconds 10
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.harness import SCENARIOS, RunningSbc, sipp_path  # noqa: E402


def run(port: int, rate: int, seconds: int, transport: str) -> tuple[bool, int, int, float]:
    calls = rate * seconds
    cmd = [
        sipp_path() or "sipp", "-sf", str(SCENARIOS / "options_bench.xml"), "-t", transport,
        "-i", "127.0.0.1", "-m", str(calls), "-r", str(rate), "-rp", "1000",
        "-l", str(max(rate * 6, 1000)), "-nostdin", "-timeout", f"{seconds * 4 + 20}s",
        "-timeout_error", "-max_socket", "1000", f"127.0.0.1:{port}",
    ]
    start = time.monotonic()
    result = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                            timeout=seconds * 6 + 60)
    elapsed = time.monotonic() - start
    out = result.stdout
    ok = re.findall(r"Successful call\s+\|\s+\d+\s+\|\s+(\d+)", out)
    failed = re.findall(r"Failed call\s+\|\s+\d+\s+\|\s+(\d+)", out)
    n_ok = int(ok[-1]) if ok else 0
    n_failed = int(failed[-1]) if failed else calls - n_ok
    return result.returncode == 0 and n_failed == 0 and n_ok == calls, n_ok, n_failed, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--rates", default="1000,2000,5000,8000,10000,12000")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--transport", default="u1", help="sipp -t value (u1, t1)")
    args = parser.parse_args()
    if sipp_path() is None:
        print("sipp not found: apt-get install sip-tester", file=sys.stderr)
        return 2
    # SIPp is one source sending up to 16,000 requests/s: the per-source request limit
    # (security.request_rate, 5,000/s by default) is turned off to measure the SIP path itself.
    sbc = RunningSbc(extra_toml="\n[security]\nrequest_rate = 0\n").start()
    best = 0
    try:
        for rate in (int(r) for r in args.rates.split(",")):
            passed, n_ok, n_failed, elapsed = run(sbc.sip_port, rate, args.seconds,
                                                 args.transport)
            print(f"rate {rate:>6}/s for {args.seconds}s over {args.transport}: "
                  f"{n_ok} answered, {n_failed} failed, wall {elapsed:.1f}s, "
                  f"server RSS {sbc.rss_kib() // 1024} MiB -> {'PASS' if passed else 'FAIL'}",
                  flush=True)
            if passed:
                best = max(best, rate)
            time.sleep(1)
    finally:
        sbc.stop()
    print(f"best zero-loss rate: {best} OPTIONS/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
