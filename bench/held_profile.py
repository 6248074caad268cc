"""
Where the memory of a held call goes: the whole SBC service runs in this process under
tracemalloc (same configuration as ``bench/sipp_calls.py held``), SIPp sets up ``--held``
calls and holds them, and once every INVITE transaction has ended the allocations still
alive are compared with a snapshot taken before the calls, grouped by line (or by
traceback with ``--frames``), per live call.

    .venv/bin/python bench/held_profile.py --held 1000 --rate 100 --top 25

tracemalloc slows the process down about threefold: keep the rate modest.  The figure is
the Python heap only (what tracemalloc sees), after a full ``gc.collect()``; the
process-level RSS figure comes from ``bench/sipp_calls.py held``.

``--rss`` runs without tracemalloc and prints the RSS per live call as that benchmark does,
then again after ``gc.collect()`` (is the collector only deferring garbage?) and after
``malloc_trim(0)`` (is freed memory only waiting in the C allocator?):

    .venv/bin/python bench/held_profile.py --held 5000 --rate 250 --rss
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.harness import RunningSbc, free_port, sipp_path  # noqa: E402

from bench.sipp_calls import NO_MEDIA, start_uas, uac_cmd  # noqa: E402


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--held", type=int, default=1000)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--settle", type=float, default=35.0)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--frames", type=int, default=1, help="traceback depth to group by (1: by line)")
    parser.add_argument("--rss", action="store_true",
                        help="no tracemalloc: RSS (as the bench measures it), then after gc.collect() and "
                             "after malloc_trim(0)")
    args = parser.parse_args()
    if sipp_path() is None:
        print("sipp not found", file=sys.stderr)
        return 2

    from twisted.internet import reactor

    from sbc.config import load_config
    from sbc.service import build_service
    from sbc.tap import tune_gc

    agent_port = free_port()
    cfg = RunningSbc(agent_uri=f"sip:{{user}}@127.0.0.1:{agent_port}",
                     extra_toml=f"\n[calls]\nmax_calls = {args.held * 2}\n" + NO_MEDIA)
    service = build_service(load_config(str(cfg.config)), reactor, install_signals=False)
    service.startService()
    tune_gc()
    if not args.rss:
        tracemalloc.start(max(args.frames, 1))
    procs: list[subprocess.Popen[str]] = []
    result: dict[str, object] = {}

    def snapshot() -> tracemalloc.Snapshot | None:
        if args.rss:
            result["rss"] = rss_kib()
            return None
        gc.collect()
        return tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, "<unknown>")])

    def start_calls() -> None:
        result["before"] = snapshot()
        procs.append(start_uas(agent_port, args.held, "u1"))
        time.sleep(0.3)
        procs.append(subprocess.Popen(
            uac_cmd(cfg.sip_port, args.held, args.rate, "u1", "-l", str(args.held), "-d", "600000"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True))
        reactor.callLater(args.held / args.rate + args.settle, measure)

    def measure() -> None:
        b2bua = service.b2bua
        counts = b2bua.counts()
        live = max(counts["calls"], 1)
        if args.rss:
            idle = result["rss"]
            steps = [("held", rss_kib())]
            gc.collect()
            steps.append(("after gc.collect()", rss_kib()))
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            steps.append(("after malloc_trim(0)", rss_kib()))
            print(f"{counts}\nRSS idle {idle} KiB")
            for what, kib in steps:
                print(f"{what}: {kib} KiB, {(kib - idle) / live:.1f} KiB per live call")
            finish()
            return
        after = snapshot()
        stats = after.compare_to(result["before"], "traceback" if args.frames > 1 else "lineno")
        total = sum(s.size_diff for s in stats)
        print(f"{counts}")
        print(f"{live} live calls: Python heap +{total / 1024:.0f} KiB, {total / live:.0f} B per call "
              f"({total / live / 1024:.2f} KiB)")
        for s in stats[:args.top]:
            where = s.traceback.format()[-1 if args.frames == 1 else 0:]
            print(f"{s.size_diff / live:8.0f} B/call {s.count_diff / live:6.2f} blk/call  "
                  + " | ".join(line.strip() for line in where))
        finish()

    def finish() -> None:
        for p in procs:
            p.kill()
            p.wait()
        reactor.stop()

    reactor.callLater(1.0, start_calls)
    reactor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
